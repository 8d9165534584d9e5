// Package coalesce merges duplicate work: Flight runs one fetch per key
// however many callers ask for it at once, and (with the write path)
// Batcher gathers many small writes into one call.
package coalesce

import (
	"context"
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
}

// Result is one caller's view of a fetch.
type Result[V any] struct {
	Value V
	Err   error
	// Leader is true for the caller whose request ran the fetch.
	Leader bool
	// Shared is true when the value went to more than one caller.
	Shared bool
}

// Do returns the result of fetch for key, running it only if no fetch for
// key is already under way. If ctx ends first, Do returns ctx.Err() and the
// fetch goes on for the others; a later Do may still share it.
//
// fetch receives a context that keeps ctx's values (a trace, say) but not
// its cancellation.
func (f *Flight[V]) Do(ctx context.Context, key string, fetch func(context.Context) (V, error)) Result[V] {
	// ran is written by the fetch goroutine before it sends on the
	// channel and read by this caller after receiving: the channel orders
	// the two, so no lock is needed.
	var ran bool
	ch := f.g.DoChan(key, func() (any, error) {
		ran = true
		fctx := context.WithoutCancel(ctx)
		if f.Timeout > 0 {
			var cancel context.CancelFunc
			fctx, cancel = context.WithTimeout(fctx, f.Timeout)
			defer cancel()
		}
		return fetch(fctx)
	})
	select {
	case r := <-ch:
		v, _ := r.Val.(V)
		return Result[V]{Value: v, Err: r.Err, Leader: ran, Shared: r.Shared}
	case <-ctx.Done():
		return Result[V]{Err: ctx.Err()}
	}
}

// Forget makes the next Do for key start a new fetch even if one is under
// way (its callers still get its result).
func (f *Flight[V]) Forget(key string) { f.g.Forget(key) }
