package cachelayer

import (
	"context"
	"sync"
	"time"
)

// Invalidations sent together. Every write invalidates its tags, and one
// invalidation costs two round trips to Valkey (the tag versions' bump,
// then the publish). Under a burst of writes that was two round trips a
// write. Instead, the calls that arrive while a round is on its way join
// the next one, which bumps and publishes all their tags at once, as a
// database's group commit does: one round in flight, one gathering. A
// caller still returns only after a round that began after its call has
// raised its tags here and published them.

// round is one gathering of invalidations.
type round struct {
	tags []string
	seen map[string]struct{}
	done chan struct{}
	err  error // set before done closes
}

func (r *round) add(tags []string) {
	for _, t := range tags {
		if _, ok := r.seen[t]; !ok {
			r.seen[t] = struct{}{}
			r.tags = append(r.tags, t)
		}
	}
}

// rounds is the Cache's gathering of invalidations.
type rounds struct {
	mu      sync.Mutex // protects next and running
	next    *round     // gathering; nil when no call waits
	running bool       // a round is on its way
}

// sendTogether sends tags in the next round and waits for it. The wait
// is bounded by the round's own L2 timeout, not by the caller's context:
// a request context ends when shutdown begins, and a write the app took
// must still have its tags published before its caller is answered.
func (c *Cache) sendTogether(tags []string) error {
	rs := &c.rounds
	rs.mu.Lock()
	r := rs.next
	if r == nil {
		r = &round{seen: make(map[string]struct{}, len(tags)), done: make(chan struct{})}
		rs.next = r
	}
	r.add(tags)
	if !rs.running {
		rs.running, rs.next = true, nil
		go c.sendRounds(r)
	}
	rs.mu.Unlock()
	<-r.done
	return r.err
}

// sendRounds sends r, then each round gathered meanwhile, until none is.
func (c *Cache) sendRounds(r *round) {
	for r != nil {
		r.err = c.sendInvalidation(context.Background(), r.tags, time.Now().UnixNano())
		close(r.done)
		c.rounds.mu.Lock()
		r, c.rounds.next = c.rounds.next, nil
		c.rounds.running = r != nil
		c.rounds.mu.Unlock()
	}
}
