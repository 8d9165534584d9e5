package cachelayer

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ban voids every entry whose path starts with prefix and that was
// stored before at (unix nanos), as a Varnish ban does.
type ban struct {
	prefix string
	at     int64
}

// banTime rounds t up to the millisecond: L2 keeps ban times as sorted-set
// scores, which hold milliseconds exactly. Rounding up bans a little more,
// never less.
func banTime(t int64) int64 {
	const ms = int64(time.Millisecond)
	return (t + ms - 1) / ms * ms
}

// banList is an immutable set of bans, replaced whole on change.
type banList struct {
	bans   []ban
	newest int64 // the latest ban time: entries stored after it pass at once
}

// bans is a replica's ban list. The list is nearly always empty, and a
// lookup costs one atomic load then; with bans, an entry stored after the
// newest one costs one comparison more.
type bans struct {
	mu   sync.Mutex // serialises writers
	list atomic.Pointer[banList]
}

// allows reports whether no ban voids e.
func (b *bans) allows(e *Entry) bool {
	l := b.list.Load()
	if l == nil || e.Stored >= l.newest {
		return true
	}
	for _, x := range l.bans {
		if e.Stored < x.at && strings.HasPrefix(e.Path, x.prefix) {
			return false
		}
	}
	return true
}

// add merges incoming into the list, keeping the later time of a prefix
// banned twice, and forgets bans older than forgetAfter.
func (b *bans) add(now int64, incoming ...ban) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var merged []ban
	if l := b.list.Load(); l != nil {
		merged = append(merged, l.bans...)
	}
next:
	for _, in := range incoming {
		for i := range merged {
			if merged[i].prefix == in.prefix {
				merged[i].at = max(merged[i].at, in.at)
				continue next
			}
		}
		merged = append(merged, in)
	}
	l := &banList{}
	for _, x := range merged {
		if now-x.at <= int64(forgetAfter) {
			l.bans = append(l.bans, x)
			l.newest = max(l.newest, x.at)
		}
	}
	if len(l.bans) == 0 {
		l = nil
	}
	b.list.Store(l)
}

// count returns how many bans are in force.
func (b *bans) count() int {
	if l := b.list.Load(); l != nil {
		return len(l.bans)
	}
	return 0
}
