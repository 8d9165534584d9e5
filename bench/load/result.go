package load

import (
	"fmt"
	"time"
)

// Result is what one run measured. Package report turns it into rows that
// can be printed, saved and compared.
type Result struct {
	Target  string
	Mode    string // "closed" or "open"
	Clients int
	Rate    float64 // open loop: arrivals per second asked for

	// Elapsed runs from the start to the last answer.
	Elapsed time.Duration
	// Sent counts requests handed to a connection.
	Sent uint64
	// Answered counts requests that got an HTTP answer, of any status.
	Answered uint64
	// Errors counts requests that got no answer, by kind.
	Errors ErrorCounts
	// Dropped counts open-loop arrivals that found every client busy and
	// the waiting line full: the target could not keep up.
	Dropped uint64
	// Canceled counts requests cut off by the caller's context, sent or not.
	Canceled uint64
	// Throughput is answers per second over Elapsed.
	Throughput float64
	// Status counts answers by status class.
	Status StatusCounts
	// Latency covers every answer and every timeout (at the time it gave
	// up, which flatters it, but leaving timeouts out would flatter it
	// more). In the open loop it counts from each request's scheduled time,
	// so time spent waiting for a free client is included.
	Latency Summary
	// Latency2xx covers the 2xx answers only: what a write that was made
	// waited, without the errors, which may come back at once.
	Latency2xx Summary
	Histogram  *Histogram
	// Kinds breaks the figures down by the kind the Source named, sorted.
	Kinds []KindResult
	// Series has one entry per second of the run, for charts.
	Series []Second
}

// KindResult is the share of a Result of one kind of request.
type KindResult struct {
	Kind      string
	Answered  uint64
	Errors    ErrorCounts
	Status    StatusCounts
	Latency   Summary
	Histogram *Histogram
}

// Second is one second of a run: what finished in it.
type Second struct {
	// At is the start of the second, from the start of the run.
	At       time.Duration
	Answered uint64
	Failed   uint64
	// Throughput is answers per second; the last, partial, second is
	// scaled by its length.
	Throughput float64
	P50        time.Duration
	P99        time.Duration
}

// Progress is a run's state so far, for a live progress line.
type Progress struct {
	Elapsed  time.Duration
	Sent     uint64
	Answered uint64
	Failed   uint64
	Dropped  uint64
	InFlight uint64
	// Throughput and P99 are of the last full second.
	Throughput float64
	P99        time.Duration
}

// String is a one-line rendering, such as "3s: 41250 answered (13750/s,
// p99 2.1ms), 0 failed, 0 dropped, 16 in flight".
func (p Progress) String() string {
	return fmt.Sprintf("%s: %d answered (%.0f/s, p99 %s), %d failed, %d dropped, %d in flight",
		p.Elapsed.Round(time.Second), p.Answered, p.Throughput, p.P99.Round(time.Microsecond),
		p.Failed, p.Dropped, p.InFlight)
}

// StatusCounts counts answers by status class: index c counts the codes
// c00 to c99, and index 0 the codes outside 100..599.
type StatusCounts [6]uint64

// statusClass is the index of code in a StatusCounts.
func statusClass(code int) int {
	if code < 100 || code > 599 {
		return 0
	}
	return code / 100
}

// Total is the number of answers counted.
func (s StatusCounts) Total() uint64 { return sum(s[:]) }

func sum(counts []uint64) uint64 {
	var n uint64
	for _, v := range counts {
		n += v
	}
	return n
}

// ByClass maps "2xx", "4xx", … (and "other") to non-zero counts, for reports.
func (s StatusCounts) ByClass() map[string]uint64 {
	m := make(map[string]uint64)
	for c, v := range s {
		if v == 0 {
			continue
		}
		if c == 0 {
			m["other"] = v
		} else {
			m[fmt.Sprintf("%dxx", c)] = v
		}
	}
	return m
}
