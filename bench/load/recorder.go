package load

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// tally counts one slice of the results: the whole run, or one kind.
type tally struct {
	latency Histogram
	written Histogram // the 2xx answers' latencies only
	status  [len(StatusCounts{})]atomic.Uint64
	errors  [numErrorKinds]atomic.Uint64
}

func (t *tally) answered() uint64 {
	var n uint64
	for i := range t.status {
		n += t.status[i].Load()
	}
	return n
}

func (t *tally) statusCounts() StatusCounts {
	var s StatusCounts
	for i := range t.status {
		s[i] = t.status[i].Load()
	}
	return s
}

func (t *tally) errorCounts() ErrorCounts {
	var e ErrorCounts
	for i := range t.errors {
		e[i] = t.errors[i].Load()
	}
	return e
}

// second is what finished in one second of the run. Its histogram is made on
// the first answer in that second, so idle seconds cost nothing.
type second struct {
	answered atomic.Uint64
	failed   atomic.Uint64
	latency  atomic.Pointer[Histogram]
}

func (s *second) histogram() *Histogram {
	if h := s.latency.Load(); h != nil {
		return h
	}
	h := new(Histogram)
	if s.latency.CompareAndSwap(nil, h) {
		return h
	}
	return s.latency.Load()
}

// recorder gathers the outcome of every request of a run. Workers share it;
// everything on the recording path is atomic, and the kinds map is read
// under its lock only the first time a worker meets a kind.
type recorder struct {
	start   time.Time
	all     tally
	seconds []second // one per second the run can last; the last takes any overflow

	sent     atomic.Uint64
	failed   atomic.Uint64
	dropped  atomic.Uint64
	canceled atomic.Uint64

	mu    sync.Mutex // protects kinds
	kinds map[string]*tally
}

func newRecorder(start time.Time, maxLength time.Duration) *recorder {
	return &recorder{
		start:   start,
		seconds: make([]second, int(maxLength/time.Second)+2),
		kinds:   make(map[string]*tally),
	}
}

// kind finds or adds the tally of one kind of request.
func (r *recorder) kind(name string) *tally {
	if name == "" {
		name = "request"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.kinds[name]
	if !ok {
		t = new(tally)
		r.kinds[name] = t
	}
	return t
}

func (r *recorder) secondAt(end time.Time) *second {
	i := int(end.Sub(r.start) / time.Second)
	i = max(0, min(i, len(r.seconds)-1))
	return &r.seconds[i]
}

// answer records one HTTP answer, with its latency from intended to end.
func (r *recorder) answer(k *tally, intended, end time.Time, status int) {
	lat := end.Sub(intended)
	c := statusClass(status)
	for _, t := range [2]*tally{&r.all, k} {
		t.status[c].Add(1)
		t.latency.Record(lat)
		if status >= 200 && status < 300 {
			t.written.Record(lat)
		}
	}
	s := r.secondAt(end)
	s.answered.Add(1)
	s.histogram().Record(lat)
}

// fail records one request that got no answer. Timeouts keep their latency
// (see Result.Latency); other failures are only counted.
func (r *recorder) fail(k *tally, intended, end time.Time, kind ErrorKind) {
	lat := end.Sub(intended)
	r.failed.Add(1)
	for _, t := range [2]*tally{&r.all, k} {
		t.errors[kind].Add(1)
		if kind == Timeout {
			t.latency.Record(lat)
		}
	}
	s := r.secondAt(end)
	s.failed.Add(1)
	if kind == Timeout {
		s.histogram().Record(lat)
	}
}

// progress reads the run so far; last is the last full second's index.
func (r *recorder) progress(now time.Time) Progress {
	elapsed := now.Sub(r.start)
	p := Progress{
		Elapsed:  elapsed,
		Sent:     r.sent.Load(),
		Answered: r.all.answered(),
		Failed:   r.failed.Load(),
		Dropped:  r.dropped.Load(),
	}
	if done := p.Answered + p.Failed + r.canceled.Load(); p.Sent > done {
		p.InFlight = p.Sent - done
	}
	if last := int(elapsed/time.Second) - 1; last >= 0 && last < len(r.seconds) {
		s := &r.seconds[last]
		p.Throughput = float64(s.answered.Load())
		if h := s.latency.Load(); h != nil {
			p.P99 = h.Quantile(0.99)
		}
	}
	return p
}

// result reads the finished run. Call it only once every worker has stopped.
func (r *recorder) result(elapsed time.Duration) *Result {
	res := &Result{
		Elapsed:    elapsed,
		Sent:       r.sent.Load(),
		Answered:   r.all.answered(),
		Errors:     r.all.errorCounts(),
		Dropped:    r.dropped.Load(),
		Canceled:   r.canceled.Load(),
		Status:     r.all.statusCounts(),
		Latency:    r.all.latency.Summary(),
		Latency2xx: r.all.written.Summary(),
		Histogram:  &r.all.latency,
	}
	if elapsed > 0 {
		res.Throughput = float64(res.Answered) / elapsed.Seconds()
	}
	for name, t := range r.kinds {
		res.Kinds = append(res.Kinds, KindResult{
			Kind:      name,
			Answered:  t.answered(),
			Errors:    t.errorCounts(),
			Status:    t.statusCounts(),
			Latency:   t.latency.Summary(),
			Histogram: &t.latency,
		})
	}
	slices.SortFunc(res.Kinds, func(a, b KindResult) int { return strings.Compare(a.Kind, b.Kind) })
	res.Series = r.series(elapsed)
	return res
}

// series turns the per-second counters into chart points, up to elapsed.
func (r *recorder) series(elapsed time.Duration) []Second {
	var out []Second
	for i := range r.seconds {
		at := time.Duration(i) * time.Second
		if at >= elapsed {
			break
		}
		s := &r.seconds[i]
		length := min(time.Second, elapsed-at)
		if length < time.Second/2 && len(out) > 0 {
			// A last sliver of a second holds the answers that drained
			// after the load stopped; divided by its few milliseconds it
			// would chart as a spike. It joins the second before, whose
			// rate is then taken over both.
			last := &out[len(out)-1]
			last.Answered += s.answered.Load()
			last.Failed += s.failed.Load()
			last.Throughput = float64(last.Answered) / (time.Second + length).Seconds()
			break
		}
		p := Second{
			At:         at,
			Answered:   s.answered.Load(),
			Failed:     s.failed.Load(),
			Throughput: float64(s.answered.Load()) / length.Seconds(),
		}
		if h := s.latency.Load(); h != nil {
			p.P50, p.P99 = h.Quantile(0.5), h.Quantile(0.99)
		}
		out = append(out, p)
	}
	return out
}
