package cachelayer

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Lookups that arrive together share a round trip: each Get queues its
// commands, and a few owned workers send whatever is queued as one
// pipeline (auto-pipelining, as rueidis does). Under load that is one
// write and one read system call for dozens of lookups instead of one
// each, which is what an L2 hit mostly costs.
const (
	lookupWorkers   = 4    // pipelines in flight at once
	lookupBatch     = 128  // lookups in one pipeline at most
	lookupQueueSize = 4096 // lookups waiting; beyond, Get fails at once
)

// errLookupQueueFull is returned when more lookups wait than the queue
// holds; the caller goes upstream, as for any L2 failure.
var errLookupQueueFull = errors.New("l2 lookup queue full")

// pendingLookup is one Get waiting for its pipeline. The worker fills get
// and tagCmds and then closes done; the caller reads them only after.
type pendingLookup struct {
	entryKey string
	tagKeys  []string
	get      *redis.StringCmd
	tagCmds  []redis.Cmder
	done     chan struct{}
}

// runLookups is one lookup worker, owned by L2 and stopped by Close.
func (l *L2) runLookups() {
	defer l.lookupsDone.Done()
	batch := make([]*pendingLookup, 0, lookupBatch)
	for {
		select {
		case p := <-l.lookups:
			batch = append(batch[:0], p)
		gather:
			for len(batch) < cap(batch) {
				select {
				case p := <-l.lookups:
					batch = append(batch, p)
				default:
					break gather
				}
			}
			l.sendLookups(batch)
		case <-l.stop:
			return
		}
	}
}

// sendLookups runs one pipeline for a batch and wakes every caller. The
// batch counts once for the breaker and Health: one round trip.
func (l *L2) sendLookups(batch []*pendingLookup) {
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	pipe := l.client.Pipeline()
	for _, p := range batch {
		p.get = pipe.Get(ctx, p.entryKey)
		p.tagCmds = l.queueVersionReads(ctx, pipe, p.tagKeys)
	}
	start := time.Now()
	cmds, _ := pipe.Exec(ctx) // each command's own error is read by its caller
	var err error
	for _, c := range cmds {
		if e := c.Err(); e != nil && !errors.Is(e, redis.Nil) {
			err = e
			break
		}
	}
	l.observe(start, err)
	l.askingMu.Lock()
	for _, p := range batch {
		if l.asking[p.entryKey] == p {
			delete(l.asking, p.entryKey)
		}
	}
	l.askingMu.Unlock()
	for _, p := range batch {
		close(p.done)
	}
}

// queueLookup hands a lookup to the workers and waits for its pipeline,
// at most the L2 timeout (plus the pipeline's own, which is the same).
//
// A lookup of a key that is already queued or on its way, with the same
// tags, waits for that one instead: a herd of clients missing L1 on one
// key asks Valkey once, and its leader goes upstream without queueing
// behind its own herd's copies of the question. The callers then read
// the same commands; each decodes its own copy of the entry.
//
// A caller that joins may get the answer to a question asked up to one
// round trip before it arrived: a window like the one in which another
// replica's invalidation is still on its way to this one. This process's
// own invalidations are safe either way: they raise the local tag
// versions, against which every caller checks the entry.
func (l *L2) queueLookup(k Key, tags []string) (*pendingLookup, error) {
	entryKey := l.entryKey(k)
	l.askingMu.Lock()
	p := l.asking[entryKey]
	if p == nil || !l.sameTags(p.tagKeys, tags) {
		p = &pendingLookup{entryKey: entryKey, done: make(chan struct{})}
		if len(tags) > 0 {
			// Keys are built here: tags may view the caller's buffers,
			// reused once Get returns, even if this lookup is still queued.
			p.tagKeys = make([]string, len(tags))
			for i, tag := range tags {
				p.tagKeys[i] = l.tagKey(tag)
			}
		}
		select {
		case l.lookups <- p:
		default:
			l.askingMu.Unlock()
			return nil, errLookupQueueFull
		}
		l.asking[entryKey] = p
	}
	l.askingMu.Unlock()
	t := time.NewTimer(2 * l.timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return p, nil
	case <-t.C:
		return nil, context.DeadlineExceeded
	}
}

// sameTags reports whether tagKeys are the keys of tags.
func (l *L2) sameTags(tagKeys, tags []string) bool {
	if len(tagKeys) != len(tags) {
		return false
	}
	for i, tag := range tags {
		// tagKeys[i] is l.tagKey of a tag: the prefix, tagInfix, the tag.
		if k := tagKeys[i]; len(k) != len(l.prefix)+len(tagInfix)+len(tag) || k[len(l.prefix)+len(tagInfix):] != tag {
			return false
		}
	}
	return true
}
