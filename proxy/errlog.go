package proxy

import (
	"strings"
	"sync"
	"time"
)

// Logs: one JSON line per error, never the same error twice in a row.
// An outage fails every request alike; its line is written once, and
// again at most once a minute while it goes on, saying how often it
// recurred since. Only Sheepdog's 5xx answers are logged: a 4xx is the
// client's, and /stats keeps the last twenty of every kind.

// errLogEvery is how long the same error stays quiet after its line.
const errLogEvery = time.Minute

// errLogKeys bounds the errors remembered; past it the oldest are forgot.
const errLogKeys = 1000

// errLog remembers when each error was last logged. It is shared by the
// generations of a reloaded config.
type errLog struct {
	mu   sync.Mutex // protects seen
	seen map[string]*errSeen
}

type errSeen struct {
	at      time.Time
	repeats int // since at
}

// note calls emit, with how often key recurred since its last line, if
// key has not been logged within errLogEvery; else it counts a repeat.
func (l *errLog) note(key string, emit func(repeats int)) {
	now := time.Now()
	l.mu.Lock()
	s := l.seen[key]
	if s != nil && now.Sub(s.at) < errLogEvery {
		s.repeats++
		l.mu.Unlock()
		return
	}
	repeats := 0
	if s != nil {
		repeats = s.repeats
	}
	if l.seen == nil {
		l.seen = make(map[string]*errSeen)
	}
	if len(l.seen) >= errLogKeys {
		for k, v := range l.seen {
			if now.Sub(v.at) >= errLogEvery {
				delete(l.seen, k)
			}
		}
		if len(l.seen) >= errLogKeys {
			clear(l.seen)
		}
	}
	l.seen[key] = &errSeen{at: now}
	l.mu.Unlock()
	emit(repeats)
}

// logAnswered logs an error Sheepdog answered with, once (see errLog).
func (p *Proxy) logAnswered(route, method, path string, n errorNote) {
	if n.status < 500 {
		return
	}
	// Addresses and ports (a reset's local port) are left out of what
	// counts as the same error.
	p.errLog.note(n.code+"\x00"+withoutDigits(n.cause), func(repeats int) {
		p.log.Error("answered with an error", "status", n.status, "code", n.code, "message", n.msg,
			"cause", n.cause, "route", route, "method", method, "path", path, "repeats", repeats)
	})
}

// logLibrary logs a line fasthttp wrote, once: its lines name client
// addresses and ports, which are left out of what counts as the same.
func (p *Proxy) logLibrary(msg string) {
	p.errLog.note("fasthttp\x00"+withoutDigits(msg), func(repeats int) {
		p.log.Warn(msg, "component", "fasthttp", "repeats", repeats)
	})
}

// withoutDigits drops the digits of s: what an error's text says without
// the addresses, ports and counts that differ from one time to the next.
func withoutDigits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return -1
		}
		return r
	}, s)
}
