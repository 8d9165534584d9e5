package cachelayer

import (
	"sync"
	"time"
)

// The breaker's thresholds: after breakerFailures failures in a row it
// opens for breakerCooldown, so an L2 outage costs at most one timeout a
// second instead of one per request.
const (
	breakerFailures = 5
	breakerCooldown = time.Second
)

type breakerState uint8

const (
	breakerClosed   breakerState = iota // calls go through
	breakerOpen                         // calls fail at once until openUntil
	breakerHalfOpen                     // one probe is out; the rest fail at once
)

// breaker guards L2 calls. It is a plain mutex and a few fields: every
// call it guards is a network round trip, so its own cost is noise.
type breaker struct {
	now func() time.Time // time.Now, replaced in tests

	mu        sync.Mutex // protects the fields below
	state     breakerState
	failures  int       // consecutive, while closed
	openUntil time.Time // while open
	opens     uint64    // times the breaker opened, for Stats
}

// allow reports whether a call may go to the network. When the cooldown
// has passed it lets exactly one call through as a probe.
func (b *breaker) allow() bool {
	ok, _ := b.allowProbe()
	return ok
}

// allowProbe is allow that also tells whether the call is the probe,
// whose outcome must be recorded for the breaker to leave half-open.
func (b *breaker) allowProbe() (ok, probe bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case breakerClosed:
		return true, false
	case breakerOpen:
		if b.now().Before(b.openUntil) {
			return false, false
		}
		b.state = breakerHalfOpen
		return true, true
	default: // a probe is already out
		return false, false
	}
}

// record takes the outcome of an allowed call. Any success closes the
// breaker: the server answered, whatever state we thought it was in.
func (b *breaker) record(ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ok {
		b.state, b.failures = breakerClosed, 0
		return
	}
	switch b.state {
	case breakerClosed:
		b.failures++
		if b.failures >= breakerFailures {
			b.trip()
		}
	case breakerHalfOpen:
		b.trip()
	}
	// Already open: a call that started before the breaker opened failed
	// late; the cooldown stands.
}

// release takes back an allowed call that never reached the network
// (refused before it was sent): a probe's turn passes to the next call,
// which would otherwise find the breaker half-open for good.
func (b *breaker) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == breakerHalfOpen {
		b.state = breakerOpen // openUntil has passed: the next allow probes
	}
}

func (b *breaker) trip() {
	b.state, b.failures = breakerOpen, 0
	b.openUntil = b.now().Add(breakerCooldown)
	b.opens++
}

// closed reports whether calls go through freely, and how often the
// breaker has opened.
func (b *breaker) status() (closed bool, opens uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state == breakerClosed, b.opens
}
