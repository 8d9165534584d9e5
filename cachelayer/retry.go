package cachelayer

import (
	"context"
	"sync"
	"time"
)

// An invalidation that cannot reach Valkey (a timeout under load, the
// breaker open, Valkey restarting or out of this replica's reach) follows
// a write that has happened: without it, the other replicas, and L2
// itself, would answer from what the write replaced until their entries
// expire. A replica that loses its subscription clears its L1, but that
// does not save it: it fills L1 again from L2's old entry, which the tag's
// unbumped version in L2 still vouches for. So the tags are sent again,
// with backoff, until Valkey takes them, however long that is.
//
// retryMaxTags bounds the tags held. Past it, a tag is not held, and this
// replica owes a ban of every entry stored until then, sent once Valkey
// answers: more misses, never an old answer.
const retryMaxTags = 4096

// retryTags holds the tags whose invalidation failed, until they are sent.
type retryTags struct {
	mu   sync.Mutex
	tags map[string]int64 // when each last failed, in unix nanos
	// owedBan is when a tag last could not be held (unix nanos), 0 if
	// none since the last ban sent.
	owedBan int64
	wake    chan struct{} // one token: the retrier has tags to send
}

func newRetryTags() *retryTags {
	return &retryTags{tags: make(map[string]int64), wake: make(chan struct{}, 1)}
}

// add holds tags that failed at now, and wakes the retrier. It returns
// how many it could not hold: a ban of everything is owed for those.
func (r *retryTags) add(tags []string, now int64) (dropped int) {
	r.mu.Lock()
	for _, tag := range tags {
		if _, ok := r.tags[tag]; !ok && len(r.tags) >= retryMaxTags {
			dropped++
			r.owedBan = now
			continue
		}
		r.tags[tag] = now
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return dropped
}

// due returns the tags to send now, and when the ban of everything owed
// was last owed (Unix ns), 0 if none is.
func (r *retryTags) due() (tags []string, owedBan int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for tag := range r.tags {
		tags = append(tags, tag)
	}
	return tags, r.owedBan
}

// banSent forgets the ban owed, unless a tag was given up after the ban
// that was sent began at start.
func (r *retryTags) banSent(start int64) {
	r.mu.Lock()
	if r.owedBan <= start {
		r.owedBan = 0
	}
	r.mu.Unlock()
}

// sent forgets tags sent by an invalidation begun at start, except those
// that failed again after it began: that sending may not cover their
// write.
func (r *retryTags) sent(tags []string, start int64) {
	r.mu.Lock()
	for _, tag := range tags {
		if last, ok := r.tags[tag]; ok && last <= start {
			delete(r.tags, tag)
		}
	}
	r.mu.Unlock()
}

// runRetries sends the failed invalidations again until ctx ends: when
// woken, and then with backoff while Valkey keeps refusing them.
func (c *Cache) runRetries(ctx context.Context) {
	defer close(c.retryDone)
	var warned time.Time // the last warning that invalidations wait
	for {
		select {
		case <-c.retry.wake:
		case <-ctx.Done():
			return
		}
		backoff := resubscribeFirst
		for {
			start := time.Now().UnixNano()
			tags, owedBan := c.retry.due()
			if len(tags) == 0 && owedBan == 0 {
				break
			}
			err := c.sendRetries(ctx, tags, owedBan, start)
			if err == nil {
				continue
			}
			// One line a minute at most while an outage goes on.
			if now := time.Now(); now.Sub(warned) >= time.Minute {
				c.log.Warn("invalidations wait for Valkey; other replicas may answer from what the writes replaced until it takes them",
					"tags", len(tags), "ban_everything", owedBan != 0, "err", err.Error())
				warned = now
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

// sendRetries sends held tags, then the ban owed (if owedBan is not 0) of
// every entry stored before the last tag that could not be held, from a
// round begun at start: what was stored since is newer than every write
// whose tags were given up, and stays.
func (c *Cache) sendRetries(ctx context.Context, tags []string, owedBan, start int64) error {
	if len(tags) > 0 {
		if err := c.sendInvalidation(ctx, tags, start); err != nil {
			return err
		}
		c.retry.sent(tags, start)
		c.stats.invalidationsRetried.Add(uint64(len(tags)))
	}
	if owedBan != 0 {
		if err := c.banAt(ctx, "", owedBan); err != nil {
			return err
		}
		c.retry.banSent(start)
	}
	return nil
}
