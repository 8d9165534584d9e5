package coalesce

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

// job is a test item: ID names it, Size weighs it against MaxBytes, a Bad
// job fails every batch that holds it (as a row that violates a constraint
// fails a whole multi-row insert), and the flush of a Held job waits until
// the sink's gate opens.
type job struct {
	ID   int
	Size int
	Bad  bool
	Held bool
}

// gateID names the held job that behindGate submits first, so that the
// jobs after it wait in the queue.
const gateID = -1

var errBadJob = errors.New("batch holds a bad job")

func answer(id int) string { return "done " + strconv.Itoa(id) }

// sink is a flush function that records the IDs of every batch it is
// given, split retries included.
type sink struct {
	delay time.Duration // each flush takes this long
	extra int           // each flush returns this many results more than it should
	fail  error         // each flush returns this error instead of results

	gate     chan struct{}
	openGate sync.Once

	mu      sync.Mutex // protects batches
	batches [][]int
}

func newSink() *sink { return &sink{gate: make(chan struct{})} }

func (s *sink) open() { s.openGate.Do(func() { close(s.gate) }) }

func (s *sink) flush(ctx context.Context, jobs []job) ([]string, error) {
	ids := make([]int, len(jobs))
	bad, gated := false, false
	for i, j := range jobs {
		ids[i] = j.ID
		bad = bad || j.Bad
		gated = gated || j.Held
	}
	s.mu.Lock()
	s.batches = append(s.batches, ids)
	s.mu.Unlock()

	wait := s.gate
	if !gated {
		wait = nil
	}
	var delay <-chan time.Time
	if s.delay > 0 {
		delay = time.After(s.delay)
	}
	for wait != nil || delay != nil {
		select {
		case <-wait:
			wait = nil
		case <-delay:
			delay = nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if bad {
		return nil, errBadJob
	}
	if s.fail != nil {
		return nil, s.fail
	}
	res := make([]string, max(len(jobs)+s.extra, 0))
	for i := range res {
		res[i] = answer(i)
		if i < len(jobs) {
			res[i] = answer(jobs[i].ID)
		}
	}
	return res, nil
}

func (s *sink) recorded() [][]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]int(nil), s.batches...)
}

// flushedOK counts, per ID, the recorded batches that held it and no bad
// job, so succeeded.
func (s *sink) flushedOK(bad map[int]bool) map[int]int {
	n := make(map[int]int)
	for _, ids := range s.recorded() {
		ok := true
		for _, id := range ids {
			ok = ok && !bad[id]
		}
		for _, id := range ids {
			if ok {
				n[id]++
			}
		}
	}
	return n
}

// startBatcher returns a Batcher over s, closed when the test ends.
func startBatcher(t *testing.T, cfg BatcherConfig, s *sink) *Batcher[job, string] {
	t.Helper()
	b, err := NewBatcher(cfg, func(j job) int { return j.Size }, s.flush)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.open()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("close at the end of the test: %v", err)
		}
	})
	return b
}

type outcome struct {
	res string
	err error
}

// submit runs Submit in a goroutine of its own, which ends when the
// Batcher answers (the tests close every Batcher) and sends the answer on
// out, which has room for it.
func submit(ctx context.Context, b *Batcher[job, string], j job, out chan<- map[int]outcome) {
	go func() {
		res, err := b.Submit(ctx, j)
		out <- map[int]outcome{j.ID: {res, err}}
	}()
}

// behindGate submits the gate job and, once its flush holds a slot, the
// jobs one by one, each once the one before is queued, so that they wait
// in order. The Batcher must not flush them while the gate is shut (one
// flush slot, or a long MaxWait).
func behindGate(t *testing.T, b *Batcher[job, string], jobs []job) <-chan map[int]outcome {
	t.Helper()
	out := make(chan map[int]outcome, len(jobs)+1)
	submit(context.Background(), b, job{ID: gateID, Held: true}, out)
	waitFor(t, "the gate's flush", func() bool { s := b.Stats(); return s.InFlight == 1 && s.Queued == 0 })
	for i, j := range jobs {
		submit(context.Background(), b, j, out)
		waitFor(t, "job "+strconv.Itoa(j.ID)+" queued", func() bool { return b.Stats().Queued == i+1 })
	}
	return out
}

// collect gathers n answers from out.
func collect(t *testing.T, out <-chan map[int]outcome, n int) map[int]outcome {
	t.Helper()
	got := make(map[int]outcome, n)
	timeout := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case o := <-out:
			for id, r := range o {
				got[id] = r
			}
		case <-timeout:
			t.Fatalf("%d of %d answers after 10s", len(got), n)
		}
	}
	return got
}

// wantAnswered checks that every job in got has its own answer.
func wantAnswered(t *testing.T, got map[int]outcome) {
	t.Helper()
	for id, o := range got {
		if o.err != nil || o.res != answer(id) {
			t.Errorf("job %d: %q, %v; want %q", id, o.res, o.err, answer(id))
		}
	}
}

// waitFor polls cond until it holds, for at most 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
	}
}

func jobs(sizes ...int) []job {
	js := make([]job, len(sizes))
	for i, size := range sizes {
		js[i] = job{ID: i, Size: size}
	}
	return js
}

func TestNewBatcherConfig(t *testing.T) {
	noop := func(_ context.Context, items []int) ([]int, error) { return items, nil }
	defaults := BatcherConfig{MaxItems: 100, MaxBytes: 1 << 20, MaxWait: 2 * time.Millisecond,
		Queue: 10000, MaxInFlight: 4, Timeout: 10 * time.Second}
	custom := BatcherConfig{MaxItems: 5, MaxBytes: 64, MaxWait: time.Second, Queue: 7, MaxInFlight: 1, Timeout: time.Minute}
	tests := []struct {
		name    string
		cfg     BatcherConfig
		flush   FlushFunc[int, int]
		want    BatcherConfig
		wantErr bool
	}{
		{name: "zero takes the defaults", flush: noop, want: defaults},
		{name: "set fields are kept", cfg: custom, flush: noop, want: custom},
		{name: "negative MaxItems", cfg: BatcherConfig{MaxItems: -1}, flush: noop, wantErr: true},
		{name: "negative MaxBytes", cfg: BatcherConfig{MaxBytes: -1}, flush: noop, wantErr: true},
		{name: "negative MaxWait", cfg: BatcherConfig{MaxWait: -time.Millisecond}, flush: noop, wantErr: true},
		{name: "negative Queue", cfg: BatcherConfig{Queue: -1}, flush: noop, wantErr: true},
		{name: "negative MaxInFlight", cfg: BatcherConfig{MaxInFlight: -1}, flush: noop, wantErr: true},
		{name: "negative Timeout", cfg: BatcherConfig{Timeout: -time.Second}, flush: noop, wantErr: true},
		{name: "no flush function", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := NewBatcher(tt.cfg, nil, tt.flush)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("no error for %+v", tt.cfg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close(context.Background())
			if !reflect.DeepEqual(b.cfg, tt.want) { // Split, a func, is nil in both
				t.Errorf("config %+v, want %+v", b.cfg, tt.want)
			}
		})
	}
}

// TestBatcherLoneItem: an item on an idle Batcher is flushed at once, not
// held for MaxWait in the hope of batch-mates.
func TestBatcherLoneItem(t *testing.T) {
	servicetest.CheckGoroutines(t)
	s := newSink()
	b := startBatcher(t, BatcherConfig{MaxWait: time.Second}, s)
	for id := range 5 {
		start := time.Now()
		res, err := b.Submit(context.Background(), job{ID: id})
		if took := time.Since(start); err != nil || res != answer(id) || took > 250*time.Millisecond {
			t.Fatalf("lone job %d: %q, %v after %v (MaxWait 1s)", id, res, err, took)
		}
	}
	if st := b.Stats(); st.Batches != 5 || st.Items != 5 || st.Flushes != 5 || st.MeanBatch != 1 {
		t.Errorf("stats %+v, want 5 batches of 1", st)
	}
}

// TestBatcherMaxWait: while a flush runs, an item waits for batch-mates,
// but no longer than MaxWait, and then takes a free slot.
func TestBatcherMaxWait(t *testing.T) {
	servicetest.CheckGoroutines(t)
	const maxWait = 50 * time.Millisecond
	s := newSink()
	b := startBatcher(t, BatcherConfig{MaxWait: maxWait, MaxInFlight: 2}, s)
	out := behindGate(t, b, nil)

	start := time.Now()
	res, err := b.Submit(context.Background(), job{ID: 1})
	took := time.Since(start)
	if err != nil || res != answer(1) {
		t.Fatalf("job 1: %q, %v", res, err)
	}
	if took < maxWait || took > 5*time.Second {
		t.Errorf("job 1 answered after %v beside a running flush; want MaxWait (%v), give or take the scheduler", took, maxWait)
	}
	s.open()
	if got := collect(t, out, 1)[gateID]; got.err != nil {
		t.Errorf("gate job: %v", got.err)
	}
}

// TestBatcherBounds: a batch never holds more than MaxItems items nor,
// unless one item alone is larger, more than MaxBytes bytes; items keep
// their order.
func TestBatcherBounds(t *testing.T) {
	tests := []struct {
		name     string
		maxItems int
		maxBytes int
		sizes    []int
		want     [][]int // IDs per batch after the gate's
	}{
		{name: "MaxItems", maxItems: 3, maxBytes: 1000, sizes: []int{1, 1, 1, 1, 1, 1, 1},
			want: [][]int{{0, 1, 2}, {3, 4, 5}, {6}}},
		{name: "MaxBytes", maxItems: 100, maxBytes: 10, sizes: []int{4, 4, 4, 4, 4},
			want: [][]int{{0, 1}, {2, 3}, {4}}},
		{name: "MaxBytes exactly", maxItems: 100, maxBytes: 10, sizes: []int{5, 5, 5},
			want: [][]int{{0, 1}, {2}}},
		{name: "an item larger than MaxBytes goes alone", maxItems: 100, maxBytes: 10, sizes: []int{3, 12, 3, 3},
			want: [][]int{{0}, {1}, {2, 3}}},
		{name: "whichever bound comes first", maxItems: 2, maxBytes: 10, sizes: []int{1, 1, 6, 6, 1},
			want: [][]int{{0, 1}, {2}, {3, 4}}},
		{name: "negative sizes count as 0", maxItems: 100, maxBytes: 10, sizes: []int{-50, 10, 1},
			want: [][]int{{0, 1}, {2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			servicetest.CheckGoroutines(t)
			s := newSink()
			b := startBatcher(t, BatcherConfig{MaxItems: tt.maxItems, MaxBytes: tt.maxBytes,
				MaxWait: time.Minute, MaxInFlight: 1}, s)
			out := behindGate(t, b, jobs(tt.sizes...))
			s.open()
			wantAnswered(t, collect(t, out, len(tt.sizes)+1))
			want := append([][]int{{gateID}}, tt.want...)
			if batches := s.recorded(); !reflect.DeepEqual(batches, want) {
				t.Errorf("batches %v, want %v", batches, want)
			}
		})
	}
}

// TestBatcherFullBatchGoes: while a flush runs, a batch that is full goes
// to a free slot at once rather than wait out MaxWait.
func TestBatcherFullBatchGoes(t *testing.T) {
	tests := []struct {
		name     string
		maxItems int
		maxBytes int
		sizes    []int // the last one fills the batch
	}{
		{name: "MaxItems", maxItems: 3, maxBytes: 1000, sizes: []int{1, 1, 1}},
		{name: "MaxBytes", maxItems: 100, maxBytes: 10, sizes: []int{4, 6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			servicetest.CheckGoroutines(t)
			s := newSink()
			b := startBatcher(t, BatcherConfig{MaxItems: tt.maxItems, MaxBytes: tt.maxBytes,
				MaxWait: time.Minute, MaxInFlight: 2}, s)
			js := jobs(tt.sizes...)
			last := len(js) - 1
			out := behindGate(t, b, js[:last])
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			res, err := b.Submit(ctx, js[last])
			if err != nil || res != answer(last) {
				t.Fatalf("job %d, which fills the batch: %q, %v (MaxWait is a minute)", last, res, err)
			}
			wantAnswered(t, collect(t, out, last)) // all but the gate's, which is still shut
			s.open()
			collect(t, out, 1)
		})
	}
}

// TestBatcherLateCallerGetsItsResult: a caller whose deadline passes while
// its item is in a flush gets that flush's result, not its deadline's
// error: the write lands, and the caller must know it did. An item still
// queued when its caller gives up is dropped, never written.
func TestBatcherLateCallerGetsItsResult(t *testing.T) {
	servicetest.CheckGoroutines(t)
	s := newSink()
	b := startBatcher(t, BatcherConfig{MaxItems: 1, MaxInFlight: 1}, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	out := make(chan map[int]outcome, 2)
	submit(ctx, b, job{ID: 1, Held: true}, out) // flushed, held at the gate
	waitFor(t, "job 1's flush", func() bool { return len(s.recorded()) == 1 })
	submit(ctx, b, job{ID: 2}, out) // queued behind it: MaxInFlight 1
	<-ctx.Done()
	time.Sleep(20 * time.Millisecond) // both callers are past their deadline
	s.open()
	got := collect(t, out, 2)
	if o := got[1]; o.err != nil || o.res != answer(1) {
		t.Errorf("job 1, in a flush when its deadline passed: %q, %v; want %q", o.res, o.err, answer(1))
	}
	if o := got[2]; !errors.Is(o.err, context.DeadlineExceeded) {
		t.Errorf("job 2, queued when its deadline passed: %q, %v; want %v", o.res, o.err, context.DeadlineExceeded)
	}
	if rec := s.recorded(); len(rec) != 1 {
		t.Errorf("flushes %v, want only job 1's: job 2 was dropped", rec)
	}
}

// TestBatcherNoSplitOnTimeout: a batch that runs out of time is not split,
// as each half would wait as long again on a slow sink.
func TestBatcherNoSplitOnTimeout(t *testing.T) {
	servicetest.CheckGoroutines(t)
	s := newSink()
	b := startBatcher(t, BatcherConfig{Timeout: 30 * time.Millisecond, MaxInFlight: 1}, s)
	out := make(chan map[int]outcome, 4)
	for id := range 4 {
		submit(context.Background(), b, job{ID: id, Held: true}, out)
	}
	for id, o := range collect(t, out, 4) {
		if !errors.Is(o.err, context.DeadlineExceeded) {
			t.Errorf("job %d: %q, %v; want %v", id, o.res, o.err, context.DeadlineExceeded)
		}
	}
	if st := b.Stats(); st.Splits != 0 || st.Flushes != st.Batches || st.Failures != 4 {
		t.Errorf("stats %+v, want no split", st)
	}
}

// TestBatcherGroupsUnderLoad: many concurrent writers against a slow sink
// share few flushes, and each gets its own item's result.
func TestBatcherGroupsUnderLoad(t *testing.T) {
	servicetest.CheckGoroutines(t)
	const n = 200
	s := newSink()
	s.delay = 20 * time.Millisecond
	b := startBatcher(t, BatcherConfig{MaxItems: 50}, s)

	out := make(chan map[int]outcome, n)
	for id := range n {
		submit(context.Background(), b, job{ID: id}, out)
	}
	wantAnswered(t, collect(t, out, n))
	st := b.Stats()
	t.Logf("%d items in %d batches (mean %.1f)", st.Items, st.Batches, st.MeanBatch)
	if st.Items != n || st.Flushes != st.Batches || st.Batches > n/4 {
		t.Errorf("stats %+v; want %d items in at most %d batches", st, n, n/4)
	}
	seen := make(map[int]int)
	for _, ids := range s.recorded() {
		if len(ids) > 50 {
			t.Errorf("a batch of %d items, over MaxItems 50", len(ids))
		}
		for _, id := range ids {
			seen[id]++
		}
	}
	for id := range n {
		if seen[id] != 1 {
			t.Errorf("job %d flushed %d times", id, seen[id])
		}
	}
}

// TestBatcherSplitIsolatesBadItems: when a batch fails as a whole, its
// halves are retried until only the bad items fail.
func TestBatcherSplitIsolatesBadItems(t *testing.T) {
	tests := []struct {
		name string
		n    int
		bad  []int
	}{
		{name: "no bad item", n: 20},
		{name: "one bad item", n: 20, bad: []int{7}},
		{name: "first and last bad", n: 20, bad: []int{0, 19}},
		{name: "neighbours bad", n: 20, bad: []int{10, 11}},
		{name: "all bad", n: 5, bad: []int{0, 1, 2, 3, 4}},
		{name: "a lone bad item", n: 1, bad: []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			servicetest.CheckGoroutines(t)
			s := newSink()
			b := startBatcher(t, BatcherConfig{MaxWait: time.Minute, MaxInFlight: 1}, s)
			bad := make(map[int]bool)
			js := jobs(make([]int, tt.n)...)
			for _, id := range tt.bad {
				bad[id] = true
				js[id].Bad = true
			}
			out := behindGate(t, b, js)
			s.open()
			got := collect(t, out, tt.n+1)
			for id := range tt.n {
				o := got[id]
				if bad[id] && !errors.Is(o.err, errBadJob) {
					t.Errorf("bad job %d: %q, %v; want %v", id, o.res, o.err, errBadJob)
				}
				if !bad[id] && (o.err != nil || o.res != answer(id)) {
					t.Errorf("good job %d: %q, %v", id, o.res, o.err)
				}
			}
			ok := s.flushedOK(bad)
			for id := range tt.n {
				if want := map[bool]int{true: 0, false: 1}[bad[id]]; ok[id] != want {
					t.Errorf("job %d written %d times, want %d", id, ok[id], want)
				}
			}
			st := b.Stats()
			if st.Failures != int64(len(tt.bad)) || (st.Splits > 0) != (len(tt.bad) > 0 && tt.n > 1) {
				t.Errorf("stats %+v with %d bad of %d", st, len(tt.bad), tt.n)
			}
		})
	}
}

// TestBatcherWrongResultCount: a flush that miscounts its results fails
// its batch with ErrResultCount, and is not split: that is the sink's
// fault, not an item's.
func TestBatcherWrongResultCount(t *testing.T) {
	for _, extra := range []int{-1, 1, -5} {
		t.Run(strconv.Itoa(extra), func(t *testing.T) {
			servicetest.CheckGoroutines(t)
			s := newSink()
			s.extra = extra
			b := startBatcher(t, BatcherConfig{MaxWait: time.Minute, MaxInFlight: 1}, s)
			wantResultCountFailures(t, b, s)
		})
	}
}

// TestBatcherFlushReportsResultCount: a flush that returns ErrResultCount
// itself (its store took the batch, but the answer cannot be matched to
// the items) fails every item without a split, even with no Split: the
// halves would be written again.
func TestBatcherFlushReportsResultCount(t *testing.T) {
	servicetest.CheckGoroutines(t)
	s := newSink()
	s.fail = fmt.Errorf("answer not JSON: %w", ErrResultCount)
	b := startBatcher(t, BatcherConfig{MaxWait: time.Minute, MaxInFlight: 1}, s)
	wantResultCountFailures(t, b, s)
}

// wantResultCountFailures sends a batch of one behind s's gate and a batch
// of five after it, and wants every job failed with ErrResultCount, in two
// flushes and no split.
func wantResultCountFailures(t *testing.T, b *Batcher[job, string], s *sink) {
	t.Helper()
	out := behindGate(t, b, jobs(0, 0, 0, 0, 0))
	s.open()
	for id, o := range collect(t, out, 6) {
		if !errors.Is(o.err, ErrResultCount) || o.res != "" {
			t.Errorf("job %d: %q, %v; want %v", id, o.res, o.err, ErrResultCount)
		}
	}
	if st := b.Stats(); st.Splits != 0 || st.Flushes != 2 || st.Failures != 6 {
		t.Errorf("stats %+v, want 2 flushes, no split, 6 failures", st)
	}
}

func TestBatcherQueueFull(t *testing.T) {
	servicetest.CheckGoroutines(t)
	s := newSink()
	b := startBatcher(t, BatcherConfig{Queue: 3, MaxInFlight: 1}, s)
	out := behindGate(t, b, jobs(0, 0, 0))

	start := time.Now()
	if _, err := b.Submit(context.Background(), job{ID: 3}); !errors.Is(err, ErrQueueFull) || time.Since(start) > time.Second {
		t.Errorf("fourth job beyond a queue of 3: %v after %v; want %v at once", err, time.Since(start), ErrQueueFull)
	}
	if st := b.Stats(); st.Refused != 1 || st.Queued != 3 {
		t.Errorf("stats %+v, want 1 refused, 3 queued", st)
	}
	s.open()
	wantAnswered(t, collect(t, out, 4))
	if res, err := b.Submit(context.Background(), job{ID: 4}); err != nil || res != answer(4) {
		t.Errorf("after the queue drained: %q, %v", res, err)
	}
}

// TestBatcherClose: Close flushes what is queued at once (not after
// MaxWait), waits for every flush, and then refuses.
func TestBatcherClose(t *testing.T) {
	servicetest.CheckGoroutines(t)
	s := newSink()
	b := startBatcher(t, BatcherConfig{MaxWait: time.Minute, MaxInFlight: 2}, s)
	const n = 10
	out := behindGate(t, b, jobs(make([]int, n)...))

	closed := make(chan error, 1)
	go func() { closed <- b.Close(context.Background()) }()
	// The queued jobs take the second slot without waiting their minute.
	got := collect(t, out, n)
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v while the gate's flush ran", err)
	default:
	}
	s.open()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close still waiting 5s after the last flush could end (MaxWait is a minute)")
	}
	for id, o := range collect(t, out, 1) {
		got[id] = o
	}
	wantAnswered(t, got)
	if st := b.Stats(); st.Items != n+1 || st.Queued != 0 || st.InFlight != 0 {
		t.Errorf("stats after Close %+v", st)
	}
	for id, times := range s.flushedOK(nil) {
		if times != 1 {
			t.Errorf("job %d flushed %d times", id, times)
		}
	}
	if _, err := b.Submit(context.Background(), job{ID: n}); !errors.Is(err, ErrClosed) {
		t.Errorf("submit after Close: %v, want %v", err, ErrClosed)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestBatcherCloseDeadline: a Close out of time answers what is queued
// with ErrClosed unwritten, cancels running flushes, and still leaves no
// goroutine behind.
func TestBatcherCloseDeadline(t *testing.T) {
	servicetest.CheckGoroutines(t)
	s := newSink()
	b := startBatcher(t, BatcherConfig{MaxInFlight: 1}, s)
	out := behindGate(t, b, jobs(0, 0, 0))

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("close past its deadline: %v", err)
	}
	got := collect(t, out, 4)
	if o := got[gateID]; !errors.Is(o.err, context.Canceled) {
		t.Errorf("running flush's job: %v, want %v", o.err, context.Canceled)
	}
	for id := range 3 {
		if o := got[id]; !errors.Is(o.err, ErrClosed) {
			t.Errorf("queued job %d: %v, want %v", id, o.err, ErrClosed)
		}
	}
	if batches := s.recorded(); !reflect.DeepEqual(batches, [][]int{{gateID}}) {
		t.Errorf("flushed %v; want only the gate's batch", batches)
	}
	if st := b.Stats(); st.Failures != 4 || st.Queued != 0 || st.InFlight != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestBatcherSubmitContext: a caller that gives up gets its context's
// error at once; its item is written only if its flush had begun.
func TestBatcherSubmitContext(t *testing.T) {
	tests := []struct {
		name        string
		queued      bool // the job waits behind a held one, rather than is held in its flush
		wantWritten bool
	}{
		{name: "before its flush", queued: true, wantWritten: false},
		{name: "during its flush", queued: false, wantWritten: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			servicetest.CheckGoroutines(t)
			s := newSink()
			b := startBatcher(t, BatcherConfig{MaxInFlight: 1}, s)
			var out <-chan map[int]outcome
			if tt.queued {
				out = behindGate(t, b, nil)
			}
			ctx, cancel := context.WithCancel(context.Background())
			mine := make(chan map[int]outcome, 1)
			const id = 1
			submit(ctx, b, job{ID: id, Held: !tt.queued}, mine)
			busy := 1 // the job's own flush
			if tt.queued {
				busy = 2 // the gate's flush and the job in the queue
			}
			waitFor(t, "the job queued or flushing", func() bool { s := b.Stats(); return s.Queued+s.InFlight == busy })
			cancel()
			if tt.queued {
				if o := collect(t, mine, 1)[id]; !errors.Is(o.err, context.Canceled) {
					t.Errorf("cancelled caller: %q, %v", o.res, o.err)
				}
			}
			if st := b.Stats(); st.Queued != 0 {
				t.Errorf("stats after cancel %+v, want nothing queued", st)
			}
			s.open()
			if out != nil {
				collect(t, out, 1)
			}
			if !tt.queued {
				// Its write lands, so its caller hears so (see
				// TestBatcherLateCallerGetsItsResult).
				if o := collect(t, mine, 1)[id]; o.err != nil || o.res != answer(id) {
					t.Errorf("caller cancelled during its flush: %q, %v; want %q", o.res, o.err, answer(id))
				}
			}
			waitFor(t, "flushes to end", func() bool { return b.Stats().InFlight == 0 })
			if written := s.flushedOK(nil)[id] == 1; written != tt.wantWritten {
				t.Errorf("job written: %v, want %v (batches %v)", written, tt.wantWritten, s.recorded())
			}
		})
	}
}

func TestBatcherSubmitDoneContext(t *testing.T) {
	servicetest.CheckGoroutines(t)
	s := newSink()
	b := startBatcher(t, BatcherConfig{}, s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Submit(ctx, job{}); !errors.Is(err, context.Canceled) {
		t.Errorf("submit with a done context: %v", err)
	}
	if st := b.Stats(); st.Batches != 0 {
		t.Errorf("stats %+v, want nothing flushed", st)
	}
}

// TestBatcherDroppedItemsDoNotPileUp: items whose callers gave up leave the
// queue's memory even while no flush slot frees.
func TestBatcherDroppedItemsDoNotPileUp(t *testing.T) {
	servicetest.CheckGoroutines(t)
	s := newSink()
	const queue = 4
	b := startBatcher(t, BatcherConfig{Queue: queue, MaxInFlight: 1}, s)
	out := behindGate(t, b, nil)
	for id := range 50 {
		ctx, cancel := context.WithCancel(context.Background())
		mine := make(chan map[int]outcome, 1)
		submit(ctx, b, job{ID: id}, mine)
		waitFor(t, "job queued", func() bool { return b.Stats().Queued == 1 })
		cancel()
		collect(t, mine, 1)
	}
	b.mu.Lock()
	held := len(b.queue)
	b.mu.Unlock()
	if held > 2*queue {
		t.Errorf("queue holds %d entries for 0 waiting items (Queue %d)", held, queue)
	}
	s.open()
	collect(t, out, 1)
}

// BenchmarkBatcherSubmit measures Submit's own cost with a flush that
// does nothing (an idle Batcher, so mostly batches of one), and the
// batching with a flush that takes a round trip's time, 64 writers a core.
func BenchmarkBatcherSubmit(b *testing.B) {
	tests := []struct {
		name        string
		roundTrip   time.Duration
		parallelism int
	}{
		{name: "noop", parallelism: 1},
		{name: "roundtrip=200us", roundTrip: 200 * time.Microsecond, parallelism: 64},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			batcher, err := NewBatcher(BatcherConfig{}, nil, func(_ context.Context, items []int) ([]int, error) {
				if tt.roundTrip > 0 {
					time.Sleep(tt.roundTrip)
				}
				return items, nil
			})
			if err != nil {
				b.Fatal(err)
			}
			defer batcher.Close(context.Background())
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(tt.parallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for i := 0; pb.Next(); i++ {
					if r, err := batcher.Submit(ctx, i); err != nil || r != i {
						b.Errorf("submit %d: %d, %v", i, r, err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(batcher.Stats().MeanBatch, "items/batch")
		})
	}
}

// TestBatcherSplitPredicate: a failure Split calls the store's, not an
// item's, reaches every caller from one flush; nothing is split.
func TestBatcherSplitPredicate(t *testing.T) {
	servicetest.CheckGoroutines(t)
	down := errors.New("store down")
	var flushes atomic.Int64
	release := make(chan struct{})
	b, err := NewBatcher(BatcherConfig{MaxWait: time.Second, Split: func(err error) bool { return !errors.Is(err, down) }}, nil,
		func(_ context.Context, items []int) ([]int, error) {
			if flushes.Add(1) == 1 {
				<-release // hold the first flush so the others gather
				return items, nil
			}
			return nil, down
		})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	first := make(chan error, 1)
	go func() { _, err := b.Submit(context.Background(), 0); first <- err }()
	for b.Stats().InFlight == 0 {
		time.Sleep(time.Millisecond)
	}
	const n = 8
	errs := make(chan error, n)
	for i := 1; i <= n; i++ {
		go func() { _, err := b.Submit(context.Background(), i); errs <- err }()
	}
	for b.Stats().Queued < n {
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("first item: %v", err)
	}
	for range n {
		if err := <-errs; !errors.Is(err, down) {
			t.Errorf("caller got %v, want the store's error", err)
		}
	}
	if got, s := flushes.Load(), b.Stats(); got != 2 || s.Splits != 0 || s.Failures != n {
		t.Errorf("%d flushes, %d splits, %d failures; want 2, 0 and %d", got, s.Splits, s.Failures, n)
	}
}

// TestBatcherObserve: Observe sees every flush call, split retries
// included, with its items' sizes, their callers' contexts in order, how
// long the oldest waited, and then the call's error; and the context it
// returns is the one the flush function gets.
func TestBatcherObserve(t *testing.T) {
	type caller struct{}
	type flushMark struct{}
	type seen struct {
		info FlushInfo
		err  error
	}
	var mu sync.Mutex
	var calls []seen
	s := newSink()
	flush := func(ctx context.Context, js []job) ([]string, error) {
		if ctx.Value(flushMark{}) != "observed" {
			t.Errorf("the flush did not get Observe's context")
		}
		return s.flush(ctx, js)
	}
	b, err := NewBatcher(BatcherConfig{MaxWait: time.Minute, MaxInFlight: 1,
		Observe: func(ctx context.Context, f FlushInfo) (context.Context, func(error)) {
			return context.WithValue(ctx, flushMark{}, "observed"), func(err error) {
				mu.Lock()
				calls = append(calls, seen{f, err})
				mu.Unlock()
			}
		}}, func(j job) int { return j.Size }, flush)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan map[int]outcome, 5)
	submit(context.WithValue(context.Background(), caller{}, gateID), b, job{ID: gateID, Held: true}, out)
	waitFor(t, "the gate's flush", func() bool { return b.Stats().InFlight == 1 })
	js := []job{{ID: 0, Size: 3}, {ID: 1, Size: 4, Bad: true}, {ID: 2, Size: 5}, {ID: 3, Size: 6}}
	for i, j := range js {
		submit(context.WithValue(context.Background(), caller{}, j.ID), b, j, out)
		waitFor(t, "queued", func() bool { return b.Stats().Queued == i+1 })
	}
	time.Sleep(20 * time.Millisecond)
	s.open()
	collect(t, out, 5)
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The gate; the four (failing: job 1 is bad); halves {0,1} (failing)
	// and {2,3}; then {0} and {1} (failing).
	want := []struct {
		ids   []int
		bytes int
		fails bool
	}{{[]int{gateID}, 0, false}, {[]int{0, 1, 2, 3}, 18, true}, {[]int{0, 1}, 7, true}, {[]int{0}, 3, false}, {[]int{1}, 4, true}, {[]int{2, 3}, 11, false}}
	if len(calls) != len(want) {
		t.Fatalf("%d flush calls observed, want %d: %+v", len(calls), len(want), calls)
	}
	for i, w := range want {
		c := calls[i]
		var ids []int
		for _, ctx := range c.info.Submitters {
			ids = append(ids, ctx.Value(caller{}).(int))
		}
		if !slices.Equal(ids, w.ids) || c.info.Items != len(w.ids) || c.info.Bytes != w.bytes || (c.err != nil) != w.fails {
			t.Errorf("call %d: submitters %v, %d items, %d bytes, err %v; want %v, %d bytes, failing %v",
				i, ids, c.info.Items, c.info.Bytes, c.err, w.ids, w.bytes, w.fails)
		}
		if i == 1 && c.info.Wait < 20*time.Millisecond {
			t.Errorf("the batch's oldest item waited %v, want at least the 20ms it was held", c.info.Wait)
		}
	}
}
