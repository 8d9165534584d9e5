package coalesce

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Errors that Submit returns without queueing the item. The proxy answers
// both with 503 and Retry-After: the item was never written.
var (
	ErrQueueFull = errors.New("coalesce: batch queue full")
	ErrClosed    = errors.New("coalesce: batcher closed")
)

// ErrResultCount fails every item of a batch whose flush returned a number
// of results other than the number of items: with no way to tell which
// result belongs to whom, no caller may have one. A flush may return it
// too (wrapped), for a batch its store took but whose answer it cannot
// match to the items; such a batch is never split, as its halves would
// be written a second time.
var ErrResultCount = errors.New("coalesce: flush returned the wrong number of results")

// BatcherConfig bounds a Batcher. A zero field takes its default; a
// negative one is an error.
type BatcherConfig struct {
	MaxItems    int           // flush at this many items (default 100)
	MaxBytes    int           // flush at this many bytes, by Size (default 1 MiB)
	MaxWait     time.Duration // longest an item waits for batch-mates once the route is busy (default 2ms)
	Queue       int           // items waiting, beyond which Submit refuses (default 10000)
	MaxInFlight int           // flushes running at once (default 4)
	Timeout     time.Duration // bounds one flush's context (default 10s)
	// Split reports whether a failed flush may come from a bad item, so
	// that splitting the batch can isolate it. Nil: every failure may.
	// A failure that is the store's (down, 5xx) is not: splitting it
	// would only multiply the calls, each failing the same way, so every
	// item gets that error at once.
	Split func(err error) bool
	// Observe, when set, is told of every call of the flush function
	// (split retries included) as it starts; the function it returns is
	// called with the call's error when it ends. The context it returns
	// becomes the flush's, so a trace span can ride on it.
	Observe func(ctx context.Context, f FlushInfo) (context.Context, func(error))
}

// FlushInfo describes one call of the flush function to Observe.
type FlushInfo struct {
	Items int
	Bytes int           // by Size
	Wait  time.Duration // how long its oldest item waited to go
	// Submitters are the contexts the items were submitted with, in
	// the items' order: a trace links the flush to each caller's span.
	Submitters []context.Context
}

// withDefaults fills the zero fields and rejects the negative ones.
func (c BatcherConfig) withDefaults() (BatcherConfig, error) {
	var errs []error
	count := func(name string, v *int, def int) {
		switch {
		case *v < 0:
			errs = append(errs, fmt.Errorf("coalesce: batcher %s is negative (%d)", name, *v))
		case *v == 0:
			*v = def
		}
	}
	span := func(name string, v *time.Duration, def time.Duration) {
		switch {
		case *v < 0:
			errs = append(errs, fmt.Errorf("coalesce: batcher %s is negative (%v)", name, *v))
		case *v == 0:
			*v = def
		}
	}
	count("MaxItems", &c.MaxItems, 100)
	count("MaxBytes", &c.MaxBytes, 1<<20)
	span("MaxWait", &c.MaxWait, 2*time.Millisecond)
	count("Queue", &c.Queue, 10000)
	count("MaxInFlight", &c.MaxInFlight, 4)
	span("Timeout", &c.Timeout, 10*time.Second)
	return c, errors.Join(errs...)
}

// FlushFunc writes a batch. It returns exactly one result per item, in the
// items' order, or an error for the whole batch. It must honour ctx (Close
// waits for it) and must not keep items after it returns.
type FlushFunc[I, R any] func(ctx context.Context, items []I) ([]R, error)

// BatcherStats is a snapshot of a Batcher's counters.
type BatcherStats struct {
	Batches   int64   // batches formed and flushed (split retries not counted)
	Items     int64   // items in those batches
	MeanBatch float64 // Items / Batches
	Flushes   int64   // calls to the flush function, split retries included
	Queued    int     // items waiting for a flush now
	InFlight  int     // flushes running now
	Refused   int64   // Submits refused with ErrQueueFull
	Splits    int64   // failed batches split in halves to isolate a bad item
	Failures  int64   // items whose caller got an error after they were queued
}

// Batcher gathers the items that callers submit at about the same time
// into one call of a flush function (one pipeline, one multi-row insert,
// one call to a batch endpoint) and hands each caller its own item's result.
//
// It works as group commit: an item that arrives while no flush runs is
// flushed at once, alone; items that arrive while flushes run gather into
// the next batch, which goes when a flush slot is free and it is full
// (MaxItems or MaxBytes) or its first item has waited MaxWait. So batches
// grow with the load by themselves, and at rest an item waits for one
// flush only.
//
// A batch whose flush fails is split in halves and each half flushed
// again, down to single items, so that one bad item fails alone and its
// batch-mates are written.
type Batcher[I, R any] struct {
	cfg   BatcherConfig
	size  func(I) int
	flush FlushFunc[I, R]

	// ctx is the parent of every flush's context; cancel ends it when a
	// Close runs out of time, so running flushes give up.
	ctx    context.Context
	cancel context.CancelFunc

	// wg counts the flush goroutines and the armed timer's callback, so
	// that Close can wait for every goroutine the Batcher starts.
	wg sync.WaitGroup

	// Counters of BatcherStats that flush goroutines write.
	failures, flushes, splits atomic.Int64

	mu      sync.Mutex       // protects the fields below and pending.state
	queue   []*pending[I, R] // items not yet flushed, oldest first; dropped ones are skipped
	queued  int              // items in queue that are still waiting
	bytes   int              // their total size
	running int              // flushes running
	timer   *time.Timer      // dispatches when the oldest item's MaxWait is up
	armed   bool             // timer is set and its callback has not yet run
	closed  bool             // Submit refuses; every waiting item is ready to go
	batches int64            // see BatcherStats
	items   int64            // see BatcherStats
	refused int64            // see BatcherStats
}

// pending is one submitted item and, once its flush returns, its answer.
type pending[I, R any] struct {
	ctx   context.Context // Submit's, for Observe
	item  I
	size  int
	since time.Time
	state pendingState // guarded by Batcher.mu
	res   R
	err   error
	done  chan struct{} // closed after res and err are set
}

type pendingState uint8

const (
	waiting pendingState = iota // in the queue
	taken                       // handed to a flush, or answered by an aborted Close
	dropped                     // its caller gave up before it was taken
)

// NewBatcher returns a Batcher that writes with flush. size gives an
// item's weight against MaxBytes; nil counts every item as 0 bytes, so only
// MaxItems bounds a batch. A negative size counts as 0.
func NewBatcher[I, R any](cfg BatcherConfig, size func(I) int, flush FlushFunc[I, R]) (*Batcher[I, R], error) {
	if flush == nil {
		return nil, errors.New("coalesce: batcher needs a flush function")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Batcher[I, R]{cfg: cfg, size: size, flush: flush, ctx: ctx, cancel: cancel}, nil
}

// Submit queues item and waits for its own result from the flush that
// writes it.
//
// It returns ErrQueueFull at once when Queue items are already waiting,
// and ErrClosed once Close has begun. If ctx ends while the item waits
// for a flush, it is dropped, never written, and Submit returns ctx.Err().
// Once its flush has begun the write may land, so Submit waits for the
// flush's own result: one flush, or, when a failed batch is split, the
// flushes of its parts, each bounded by Timeout. A caller is never told
// its write failed when it may not have.
func (b *Batcher[I, R]) Submit(ctx context.Context, item I) (R, error) {
	var zero R
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	p := &pending[I, R]{ctx: ctx, item: item, done: make(chan struct{})}
	if b.size != nil {
		p.size = max(b.size(item), 0)
	}

	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return zero, ErrClosed
	case b.queued >= b.cfg.Queue:
		b.refused++
		b.mu.Unlock()
		return zero, ErrQueueFull
	}
	if len(b.queue) >= 2*b.cfg.Queue {
		// Callers that gave up left their items behind; with fewer
		// than Queue waiting, at least half are dropped.
		b.compact()
	}
	p.since = time.Now()
	b.queue = append(b.queue, p)
	b.queued++
	b.bytes += p.size
	b.dispatch()
	b.mu.Unlock()

	select {
	case <-p.done:
		return p.res, p.err
	case <-ctx.Done():
	}
	b.mu.Lock()
	if p.state == waiting {
		p.state = dropped
		b.queued--
		b.bytes -= p.size
		b.mu.Unlock()
		return zero, ctx.Err()
	}
	b.mu.Unlock()
	<-p.done // taken into a flush
	return p.res, p.err
}

// Close stops taking items (Submit returns ErrClosed), flushes every item
// already queued, and returns once every flush has returned.
//
// If ctx ends first, items not yet handed to a flush are answered
// ErrClosed and never written, running flushes see their context
// cancelled, and Close still waits for them to return, so that no
// goroutine outlives it; it then returns ctx's error. Calling Close again
// waits in the same way.
func (b *Batcher[I, R]) Close(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	if b.armed && b.timer.Stop() {
		b.armed = false
		b.wg.Done()
	}
	b.dispatch()
	b.mu.Unlock()

	done := make(chan struct{})
	go func() {
		b.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		b.cancel()
		return nil
	case <-ctx.Done():
	}

	b.mu.Lock()
	for _, p := range b.queue {
		if p.state == waiting {
			p.state = taken
			p.err = ErrClosed
			close(p.done)
			b.failures.Add(1)
		}
	}
	clear(b.queue)
	b.queue, b.queued, b.bytes = nil, 0, 0
	b.mu.Unlock()
	b.cancel()
	<-done
	return fmt.Errorf("coalesce: close: %w", ctx.Err())
}

// Stats returns the Batcher's counters.
func (b *Batcher[I, R]) Stats() BatcherStats {
	b.mu.Lock()
	s := BatcherStats{
		Batches:  b.batches,
		Items:    b.items,
		Queued:   b.queued,
		InFlight: b.running,
		Refused:  b.refused,
	}
	b.mu.Unlock()
	s.Flushes = b.flushes.Load()
	s.Splits = b.splits.Load()
	s.Failures = b.failures.Load()
	if s.Batches > 0 {
		s.MeanBatch = float64(s.Items) / float64(s.Batches)
	}
	return s
}

// dispatch starts a flush for every batch that is ready while a flush slot
// is free, and otherwise sets the timer for when the oldest item's MaxWait
// is up. It runs, with b.mu held, whenever that can change: an item
// arrives, a flush returns, the timer fires, Close begins.
func (b *Batcher[I, R]) dispatch() {
	for b.running < b.cfg.MaxInFlight && b.queued > 0 {
		first := b.oldest()
		// A slot is free. Nothing running means nothing to wait for:
		// holding the batch back would only add latency.
		ready := b.closed || b.running == 0 ||
			b.queued >= b.cfg.MaxItems || b.bytes >= b.cfg.MaxBytes
		if !ready {
			wait := b.cfg.MaxWait - time.Since(first.since)
			if wait > 0 {
				b.arm(wait)
				return
			}
		}
		batch := b.take()
		b.running++
		b.batches++
		b.items += int64(len(batch))
		b.wg.Add(1)
		go b.run(batch)
	}
}

// oldest drops the abandoned items at the head of the queue and returns
// the first waiting one. The queue holds one, as b.queued > 0.
func (b *Batcher[I, R]) oldest() *pending[I, R] {
	for b.queue[0].state != waiting {
		b.queue[0] = nil
		b.queue = b.queue[1:]
	}
	return b.queue[0]
}

// arm sets the timer to run dispatch after wait, unless it is already set:
// then it is set for an item at least as old, and fires no later.
func (b *Batcher[I, R]) arm(wait time.Duration) {
	if b.armed {
		return
	}
	b.armed = true
	b.wg.Add(1)
	if b.timer == nil {
		b.timer = time.AfterFunc(wait, b.onTimer)
	} else {
		b.timer.Reset(wait)
	}
}

func (b *Batcher[I, R]) onTimer() {
	defer b.wg.Done()
	b.mu.Lock()
	b.armed = false
	b.dispatch()
	b.mu.Unlock()
}

// take removes the next batch from the queue: the oldest waiting items, up
// to MaxItems and MaxBytes. An item larger than MaxBytes goes alone.
func (b *Batcher[I, R]) take() []*pending[I, R] {
	n, size, end := 0, 0, 0
	for ; end < len(b.queue) && n < b.cfg.MaxItems; end++ {
		p := b.queue[end]
		if p.state != waiting {
			continue
		}
		if n > 0 && size+p.size > b.cfg.MaxBytes {
			break
		}
		n++
		size += p.size
	}
	batch := make([]*pending[I, R], 0, n)
	for _, p := range b.queue[:end] {
		if p.state == waiting {
			p.state = taken
			batch = append(batch, p)
		}
	}
	clear(b.queue[:end])
	if end == len(b.queue) {
		b.queue = b.queue[:0] // reuse the whole array
	} else {
		b.queue = b.queue[end:]
	}
	b.queued -= n
	b.bytes -= size
	return batch
}

// compact removes the dropped items from the queue.
func (b *Batcher[I, R]) compact() {
	kept := b.queue[:0]
	for _, p := range b.queue {
		if p.state == waiting {
			kept = append(kept, p)
		}
	}
	clear(b.queue[len(kept):])
	b.queue = kept
}

// run flushes one batch in its own goroutine, then frees its slot.
func (b *Batcher[I, R]) run(batch []*pending[I, R]) {
	defer b.wg.Done() // after dispatch, which may start the next flush
	items := make([]I, len(batch))
	for i, p := range batch {
		items[i] = p.item
	}
	b.write(batch, items)

	b.mu.Lock()
	b.running--
	b.dispatch()
	b.mu.Unlock()
}

// write flushes items (batch's items, in order) and answers each caller,
// splitting the batch when its flush fails so that only bad items fail.
func (b *Batcher[I, R]) write(batch []*pending[I, R], items []I) {
	res, split, err := b.flushOnce(batch, items)
	if err != nil && split && len(batch) > 1 {
		b.splits.Add(1)
		mid := len(batch) / 2
		// The full slice expression keeps a flush that appends to the
		// first half from writing over the second.
		b.write(batch[:mid], items[:mid:mid])
		b.write(batch[mid:], items[mid:])
		return
	}
	if err != nil {
		b.failures.Add(int64(len(batch)))
	}
	for i, p := range batch {
		if err != nil {
			p.err = err
		} else {
			p.res = res[i]
		}
		close(p.done)
	}
}

// flushOnce calls flush on its own bounded context. split reports whether
// a failure may come from one bad item, so that halves may succeed. It
// cannot when the results were miscounted (a fault of the sink, found
// here or by the flush itself: ErrResultCount), nor when
// the flush's context ended: a sink too slow for the whole batch would
// only make every half wait as long again; nor when Split says no.
func (b *Batcher[I, R]) flushOnce(batch []*pending[I, R], items []I) (res []R, split bool, err error) {
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.Timeout)
	defer cancel()
	b.flushes.Add(1)
	if b.cfg.Observe != nil {
		var done func(error)
		ctx, done = b.cfg.Observe(ctx, flushInfo(batch))
		defer func() { done(err) }()
	}
	res, err = b.flush(ctx, items)
	switch {
	case err != nil:
		split = ctx.Err() == nil && !errors.Is(err, ErrResultCount) && (b.cfg.Split == nil || b.cfg.Split(err))
		return nil, split, err
	case len(res) != len(items):
		return nil, false, fmt.Errorf("%w: %d for %d items", ErrResultCount, len(res), len(items))
	}
	return res, false, nil
}

// flushInfo describes a batch for Observe.
func flushInfo[I, R any](batch []*pending[I, R]) FlushInfo {
	f := FlushInfo{Items: len(batch), Submitters: make([]context.Context, len(batch))}
	oldest := batch[0].since
	for i, p := range batch {
		f.Bytes += p.size
		f.Submitters[i] = p.ctx
		if p.since.Before(oldest) {
			oldest = p.since
		}
	}
	f.Wait = time.Since(oldest)
	return f
}
