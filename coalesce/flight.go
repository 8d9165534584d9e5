// Package coalesce merges duplicate work: Flight runs one fetch per key
// however many callers ask for it at once, and (with the write path)
// Batcher gathers many small writes into one call.
package coalesce

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Flight runs at most one fetch per key at a time; callers that ask for a
// key while its fetch runs wait for that fetch's result.
//
// The fetch runs on its own context, detached from every caller's
// cancellation and bounded by Timeout, so one client hanging up does not
// fail the others. Each caller waits only until its own context ends.
type Flight[V any] struct {
	// Timeout bounds one fetch. Zero means no bound beyond the fetch's own.
	Timeout time.Duration

	g singleflight.Group

	mu    sync.Mutex        // protects calls
	calls map[string]*joins // callers per key, for the leader's Waiters
}

// joins counts the callers of one key's fetch.
type joins struct {
	n       int
	claimed bool // the fetch ended and read n
}

// Result is one caller's view of a fetch.
type Result[V any] struct {
	Value V
	Err   error
	// Leader is true for the caller whose request ran the fetch.
	Leader bool
	// Shared is true when the value went to more than one caller.
	Shared bool
	// Waiters is, for the leader, how many other callers joined its
	// fetch before it ended; 0 for the others. A caller that joins in
	// the instant between the fetch's end and its result going out is
	// served but not counted.
	Waiters int
}

// Do returns the result of fetch for key, running it only if no fetch for
// key is already under way. If ctx ends first, Do returns ctx.Err() and the
// fetch goes on for the others; a later Do may still share it.
//
// fetch receives a context that keeps ctx's values (a trace, say) but not
// its cancellation.
func (f *Flight[V]) Do(ctx context.Context, key string, fetch func(context.Context) (V, error)) Result[V] {
	j := f.join(key)
	// ran and waiters are written by the fetch goroutine before it sends
	// on the channel and read by this caller after receiving: the channel
	// orders the two, so no lock is needed.
	var ran bool
	var waiters int
	ch := f.g.DoChan(key, func() (any, error) {
		ran = true
		fctx := context.WithoutCancel(ctx)
		if f.Timeout > 0 {
			var cancel context.CancelFunc
			fctx, cancel = context.WithTimeout(fctx, f.Timeout)
			defer cancel()
		}
		v, err := fetch(fctx)
		waiters = f.claim(key, j) - 1
		return v, err
	})
	select {
	case r := <-ch:
		v, _ := r.Val.(V)
		if !ran {
			f.leave(key, j)
			waiters = 0
		}
		return Result[V]{Value: v, Err: r.Err, Leader: ran, Shared: r.Shared, Waiters: waiters}
	case <-ctx.Done():
		f.leave(key, j)
		return Result[V]{Err: ctx.Err()}
	}
}

// join counts a caller of key's fetch.
func (f *Flight[V]) join(key string) *joins {
	f.mu.Lock()
	defer f.mu.Unlock()
	j := f.calls[key]
	if j == nil {
		if f.calls == nil {
			f.calls = make(map[string]*joins)
		}
		j = &joins{}
		f.calls[key] = j
	}
	j.n++
	return j
}

// claim is the leader's, once its fetch ends: it returns how many callers
// joined, itself included, and starts a fresh count for the next fetch.
func (f *Flight[V]) claim(key string, j *joins) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	j.claimed = true
	if f.calls[key] == j {
		delete(f.calls, key)
	}
	return j.n
}

// leave undoes a join whose count no leader will claim: a caller that
// gave up, or one that joined after the fetch ended and was served by it.
// The count goes when its last such caller leaves.
func (f *Flight[V]) leave(key string, j *joins) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if j.claimed {
		return
	}
	if j.n--; j.n == 0 && f.calls[key] == j {
		delete(f.calls, key)
	}
}

// Forget makes the next Do for key start a new fetch even if one is under
// way (its callers still get its result).
func (f *Flight[V]) Forget(key string) { f.g.Forget(key) }
