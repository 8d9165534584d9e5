package cachelayer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Lookups that arrive together share a round trip: each Get queues its
// keys, and a few owned workers send whatever is queued as one MGET (on a
// cluster, one pipeline of GETs): auto-pipelining, as rueidis does. Under
// load that is one write and one read system call for dozens of lookups
// instead of one each, which is what an L2 hit mostly costs.
const (
	lookupWorkers   = 2    // round trips in flight at once
	lookupBatch     = 128  // lookups in one round trip at most
	lookupQueueSize = 4096 // lookups waiting; beyond, Get fails at once
)

// errLookupQueueFull is returned when more lookups wait than the queue
// holds; the caller goes upstream, as for any L2 failure.
var errLookupQueueFull = errors.New("l2 lookup queue full")

// pendingLookup is one Get waiting for its round trip. The worker fills
// the answer fields and then closes done; callers read them only after,
// and never write them: callers that joined share one.
type pendingLookup struct {
	entryKey string
	tagKeys  []string
	done     chan struct{}

	value    string   // the entry's encoded value, if found
	found    bool     // false: no such key
	versions []uint64 // the tags' versions, one per tag key
	err      error    // the lookup failed; then the fields above mean nothing
}

// runLookups is one lookup worker, owned by L2 and stopped by Close.
func (l *L2) runLookups() {
	defer l.lookupsDone.Done()
	batch := make([]*pendingLookup, 0, lookupBatch)
	for {
		select {
		case p := <-l.lookups:
			batch = append(batch[:0], p)
			// Let the goroutines that are ready run first: under load,
			// many are about to queue a lookup, and this round trip
			// takes them along. When none is, this returns at once.
			runtime.Gosched()
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

// sendLookups answers a batch in one round trip and wakes every caller.
// The batch counts once for the breaker and Health, by whether Valkey
// answered; a value that does not parse fails only the lookups it is for.
func (l *L2) sendLookups(batch []*pendingLookup) {
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	start := time.Now()
	var err error
	if l.cluster {
		err = l.lookupEach(ctx, batch)
	} else {
		err = l.lookupAll(ctx, batch)
	}
	// The batch leaves asking before its outcome counts for the breaker:
	// a half-open probe that joined it must be counted with it, so it
	// may not join once the outcome was taken while the breaker was open.
	l.askingMu.Lock()
	for _, p := range batch {
		if l.asking[p.entryKey] == p {
			delete(l.asking, p.entryKey)
		}
	}
	l.askingMu.Unlock()
	l.observe(start, err)
	for _, p := range batch {
		close(p.done)
	}
}

// lookupAll reads a batch with one MGET: the entries, then each tag
// version the batch needs, once. One command instead of two a lookup
// halves what go-redis builds and parses and what Valkey dispatches. It
// returns the round trip's error, which every lookup of the batch gets.
func (l *L2) lookupAll(ctx context.Context, batch []*pendingLookup) error {
	keys := make([]string, len(batch), 2*len(batch))
	var at []int             // each lookup's tag keys' places in keys, lookup by lookup
	var place map[string]int // a tag key's place in keys
	for i, p := range batch {
		keys[i] = p.entryKey
		for _, tk := range p.tagKeys {
			j, ok := place[tk]
			if !ok {
				if place == nil {
					place = make(map[string]int)
				}
				j = len(keys)
				place[tk] = j
				keys = append(keys, tk)
			}
			at = append(at, j)
		}
	}
	values, err := l.client.MGet(ctx, keys...).Result()
	if err == nil && len(values) != len(keys) {
		err = fmt.Errorf("mget of %d keys answered %d values", len(keys), len(values))
	}
	if err != nil {
		for _, p := range batch {
			p.err = err
		}
		return err
	}
	versions := make([]uint64, len(at))
	for i, p := range batch {
		if v, ok := values[i].(string); ok {
			p.value, p.found = v, true
		}
		n := len(p.tagKeys)
		p.versions, versions = versions[:n:n], versions[n:]
		for j := range p.versions {
			if p.versions[j], err = parseVersion(values[at[j]]); err != nil {
				p.err = err
				break
			}
		}
		at = at[n:]
	}
	return nil
}

// lookupEach reads a batch from a cluster in one pipeline: a GET for
// every key, since the keys live in different slots and go-redis sends
// each GET of a pipeline to its own node. A lookup fails only if one of
// its own commands does (its node is down, say); the round trip counts
// as failed if any command did.
func (l *L2) lookupEach(ctx context.Context, batch []*pendingLookup) error {
	pipe := l.client.Pipeline()
	var cmds []*redis.StringCmd
	for _, p := range batch {
		cmds = append(cmds, pipe.Get(ctx, p.entryKey))
		for _, tk := range p.tagKeys {
			cmds = append(cmds, pipe.Get(ctx, tk))
		}
	}
	_, _ = pipe.Exec(ctx) // each command's error is read below
	var failed error
	read := func(p *pendingLookup) (string, bool) {
		v, err := cmds[0].Result()
		cmds = cmds[1:]
		if err != nil && !errors.Is(err, redis.Nil) {
			failed = cmp.Or(failed, err)
			p.err = cmp.Or(p.err, err)
		}
		return v, err == nil
	}
	for _, p := range batch {
		p.value, p.found = read(p)
		p.versions = make([]uint64, len(p.tagKeys))
		for j := range p.versions {
			v, ok := read(p)
			if !ok || p.err != nil {
				continue // never bumped (version 0), or already failed
			}
			p.versions[j], p.err = parseVersion(v)
		}
	}
	return failed
}

// queueLookup hands a lookup to the workers and waits for its round trip,
// at most the L2 timeout (plus the round trip's own, which is the same).
//
// A lookup of a key that is already queued or on its way, with the same
// tags, waits for that one instead: a herd of clients missing L1 on one
// key asks Valkey once, and its leader goes upstream without queueing
// behind its own herd's copies of the question. The callers then read
// the same answer; each decodes its own Entry, viewing the same value.
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
	t := startTimer(2 * l.timeout)
	defer stopTimer(t)
	select {
	case <-p.done:
		return p, nil
	case <-t.C:
		return nil, context.DeadlineExceeded
	}
}

// waitTimers holds stopped timers for lookups to reuse: a timer is two
// allocations, and every L2 lookup waits on one.
var waitTimers sync.Pool

func startTimer(d time.Duration) *time.Timer {
	if t, ok := waitTimers.Get().(*time.Timer); ok {
		t.Reset(d) // a stopped timer's channel holds no stale tick (Go 1.23)
		return t
	}
	return time.NewTimer(d)
}

func stopTimer(t *time.Timer) {
	t.Stop()
	waitTimers.Put(t)
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
