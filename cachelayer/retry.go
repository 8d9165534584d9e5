package cachelayer

import (
	"context"
	"sync"
	"time"
)

// An invalidation that cannot reach Valkey (a timeout under load, the
// breaker open, Valkey restarting) follows a write that has happened:
// without it, the other replicas would answer from what the write
// replaced until their entries expire. So its tags are sent again, with
// backoff, for retryFor. A longer outage is the subscription's business:
// a replica that loses it clears its L1.
const (
	retryFor     = 10 * time.Second
	retryMaxTags = 4096 // tags held at most; past that, new ones are given up at once
)

// retryTags holds the tags whose invalidation failed, until they are sent
// or retryFor has passed since their first failure.
type retryTags struct {
	mu   sync.Mutex
	tags map[string]failedSince
	wake chan struct{} // one token: the retrier has tags to send
}

// failedSince is when a tag's invalidation first failed and last failed,
// in unix nanos.
type failedSince struct{ first, last int64 }

func newRetryTags() *retryTags {
	return &retryTags{tags: make(map[string]failedSince), wake: make(chan struct{}, 1)}
}

// add holds tags that failed at now, and wakes the retrier. It returns
// how many it could not hold.
func (r *retryTags) add(tags []string, now int64) (dropped int) {
	r.mu.Lock()
	for _, tag := range tags {
		f, ok := r.tags[tag]
		switch {
		case ok:
			f.last = now
		case len(r.tags) >= retryMaxTags:
			dropped++
			continue
		default:
			f = failedSince{first: now, last: now}
		}
		r.tags[tag] = f
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return dropped
}

// due returns the tags to send now, and forgets those that first failed
// more than retryFor ago: it returns how many.
func (r *retryTags) due(now int64) (tags []string, expired int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for tag, f := range r.tags {
		if now-f.first > int64(retryFor) {
			delete(r.tags, tag)
			expired++
			continue
		}
		tags = append(tags, tag)
	}
	return tags, expired
}

// sent forgets tags sent by an invalidation begun at start, except those
// that failed again after it began: that sending may not cover their
// write.
func (r *retryTags) sent(tags []string, start int64) {
	r.mu.Lock()
	for _, tag := range tags {
		if f, ok := r.tags[tag]; ok && f.last <= start {
			delete(r.tags, tag)
		}
	}
	r.mu.Unlock()
}

// runRetries sends the failed invalidations again until ctx ends: when
// woken, and then with backoff while Valkey keeps refusing them.
func (c *Cache) runRetries(ctx context.Context) {
	defer close(c.retryDone)
	var warned time.Time // the last warning of tags given up
	lost := 0            // tags given up since
	for {
		select {
		case <-c.retry.wake:
		case <-ctx.Done():
			return
		}
		backoff := resubscribeFirst
		for {
			start := time.Now().UnixNano()
			tags, expired := c.retry.due(start)
			if expired > 0 {
				c.stats.invalidationsLost.Add(uint64(expired))
				lost += expired
				// One line a minute at most while an outage goes on,
				// with the tags given up since the last.
				if now := time.Now(); now.Sub(warned) >= time.Minute {
					c.log.Warn("invalidations not sent within the retry window; other replicas may answer from older entries until they expire",
						"tags", lost, "window", retryFor.String())
					warned, lost = now, 0
				}
			}
			if len(tags) == 0 {
				break
			}
			if err := c.sendInvalidation(ctx, tags, start); err == nil {
				c.retry.sent(tags, start)
				c.stats.invalidationsRetried.Add(uint64(len(tags)))
				continue
			}
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			backoff = min(2*backoff, resubscribeLast)
		}
	}
}
