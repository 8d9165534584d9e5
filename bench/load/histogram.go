package load

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// The histogram is log-linear, in the manner of HdrHistogram: values below
// linearCount nanoseconds each have a bucket of their own; above that, every
// power of two is cut into halfCount equal buckets. A bucket is then at most
// 1/halfCount (0.78%) of its lower bound wide, and a quantile, reported as the
// bucket's midpoint, is within 0.4% of the true sample.
const (
	subBits     = 8
	linearCount = 1 << subBits    // 256 buckets of 1ns each
	halfCount   = linearCount / 2 // 128 buckets per power of two above that
	maxExponent = 36              // 2^36 ns is about 68.7s
	numBuckets  = linearCount + (maxExponent-subBits)*halfCount
	maxValue    = 1<<maxExponent - 1 // larger values share the top bucket
)

// Histogram records latencies from 1µs to 60s with about 1% precision, in a
// fixed 30 KB of counters. Record is lock-free and allocation-free, so every
// worker of a run can share one; histograms of different workers or runs merge
// exactly. The zero value is empty and ready to use. A Histogram must not be
// copied after first use.
type Histogram struct {
	counts [numBuckets]atomic.Uint64
	total  atomic.Uint64
	sum    atomic.Uint64 // nanoseconds; overflows only after 584 years of samples
	min    atomic.Int64  // smallest value + 1, so that 0 means "none yet"
	max    atomic.Int64
}

// Record adds one latency. Negative values count as 0; values beyond the
// top of the range count in the top bucket, but Max stays exact.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)].Add(1)
	h.total.Add(1)
	h.sum.Add(uint64(v))
	for {
		m := h.min.Load()
		if m != 0 && m <= v+1 || h.min.CompareAndSwap(m, v+1) {
			break
		}
	}
	for {
		m := h.max.Load()
		if m >= v || h.max.CompareAndSwap(m, v) {
			break
		}
	}
}

// Merge adds every sample of o to h. o may still be recording; Merge then
// takes what it sees.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c != 0 {
			h.counts[i].Add(c)
		}
	}
	h.total.Add(o.total.Load())
	h.sum.Add(o.sum.Load())
	if m := o.min.Load(); m != 0 {
		for {
			cur := h.min.Load()
			if cur != 0 && cur <= m || h.min.CompareAndSwap(cur, m) {
				break
			}
		}
	}
	if m := o.max.Load(); m > 0 {
		for {
			cur := h.max.Load()
			if cur >= m || h.max.CompareAndSwap(cur, m) {
				break
			}
		}
	}
}

// Count is the number of samples recorded.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Min is the smallest sample, exact; 0 when empty.
func (h *Histogram) Min() time.Duration {
	if m := h.min.Load(); m > 0 {
		return time.Duration(m - 1)
	}
	return 0
}

// Max is the largest sample, exact; 0 when empty.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Mean is the exact mean of the samples; 0 when empty.
func (h *Histogram) Mean() time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Quantile is the sample at rank ceil(q·count) (the nearest-rank definition),
// to within the histogram's precision. q outside [0, 1] is clamped; an empty
// histogram answers 0. Quantile(0) and Quantile(1) are the exact Min and Max.
func (h *Histogram) Quantile(q float64) time.Duration {
	switch {
	case q <= 0 || math.IsNaN(q):
		return h.Min()
	case q >= 1:
		return h.Max()
	}
	// Sum the buckets rather than trusting total: a concurrent Record may
	// have bumped one and not yet the other.
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return h.clamp(bucketMid(i))
		}
	}
	return h.Max()
}

// clamp keeps a bucket's midpoint inside the exact range seen, so that a
// quantile never exceeds Max nor undercuts Min.
func (h *Histogram) clamp(v int64) time.Duration {
	d := time.Duration(v)
	if lo := h.Min(); d < lo {
		return lo
	}
	if hi := h.Max(); d > hi {
		return hi
	}
	return d
}

// Summary is a histogram's headline figures.
type Summary struct {
	Count uint64
	Min   time.Duration
	Mean  time.Duration
	P50   time.Duration
	P95   time.Duration
	P99   time.Duration
	P999  time.Duration
	Max   time.Duration
}

// Summary reads the headline figures in one call.
func (h *Histogram) Summary() Summary {
	return Summary{
		Count: h.Count(),
		Min:   h.Min(),
		Mean:  h.Mean(),
		P50:   h.Quantile(0.50),
		P95:   h.Quantile(0.95),
		P99:   h.Quantile(0.99),
		P999:  h.Quantile(0.999),
		Max:   h.Max(),
	}
}

// bucketOf maps a value in nanoseconds to its bucket.
func bucketOf(v int64) int {
	if v < linearCount {
		return int(v)
	}
	if v > maxValue {
		v = maxValue
	}
	u := uint64(v)
	exp := bits.Len64(u) - 1 // u is in [2^exp, 2^(exp+1)), exp >= subBits
	shift := exp - (subBits - 1)
	return linearCount + (exp-subBits)*halfCount + int(u>>shift) - halfCount
}

// bucketMid is the middle of bucket i, in nanoseconds.
func bucketMid(i int) int64 {
	if i < linearCount {
		return int64(i)
	}
	j := i - linearCount
	exp := j/halfCount + subBits
	shift := exp - (subBits - 1)
	lower := int64(j%halfCount+halfCount) << shift
	return lower + int64(1)<<shift/2
}
