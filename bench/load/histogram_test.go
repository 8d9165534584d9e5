package load

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// nearestRank is the reference quantile: the sample at rank ceil(q·n).
func nearestRank(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

// logUniform draws n durations spread evenly over the orders of magnitude
// between lo and hi, so every part of the bucket layout is exercised.
func logUniform(r *rand.Rand, n int, lo, hi time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	l, h := math.Log(float64(lo)), math.Log(float64(hi))
	for i := range out {
		out[i] = time.Duration(math.Exp(l + r.Float64()*(h-l)))
	}
	return out
}

func TestHistogramQuantilesMatchSortedReference(t *testing.T) {
	tests := []struct {
		name   string
		lo, hi time.Duration
		n      int
	}{
		{"microseconds", time.Microsecond, 100 * time.Microsecond, 20000},
		{"full range", time.Microsecond, 60 * time.Second, 50000},
		{"narrow around 5ms", 4 * time.Millisecond, 6 * time.Millisecond, 20000},
		{"few samples", time.Millisecond, time.Second, 7},
	}
	quantiles := []float64{0.001, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(i), 42))
			samples := logUniform(r, tt.n, tt.lo, tt.hi)
			var h Histogram
			for _, s := range samples {
				h.Record(s)
			}
			slices.Sort(samples)
			for _, q := range quantiles {
				want := nearestRank(samples, q)
				got := h.Quantile(q)
				if rel := math.Abs(float64(got-want)) / float64(want); rel > 0.01 {
					t.Errorf("q=%v: got %v, want %v (off by %.2f%%)", q, got, want, rel*100)
				}
			}
			if got, want := h.Max(), samples[len(samples)-1]; got != want {
				t.Errorf("Max = %v, want %v", got, want)
			}
			if got, want := h.Min(), samples[0]; got != want {
				t.Errorf("Min = %v, want %v", got, want)
			}
			if got := h.Count(); got != uint64(tt.n) {
				t.Errorf("Count = %d, want %d", got, tt.n)
			}
			var sum time.Duration
			for _, s := range samples {
				sum += s
			}
			if got, want := h.Mean(), sum/time.Duration(tt.n); got != want {
				t.Errorf("Mean = %v, want %v", got, want)
			}
		})
	}
}

func TestHistogramEdges(t *testing.T) {
	tests := []struct {
		name     string
		record   []time.Duration
		q        float64
		want     time.Duration
		wantMax  time.Duration
		wantMean time.Duration
	}{
		{"empty", nil, 0.5, 0, 0, 0},
		{"negative counts as zero", []time.Duration{-5}, 0.5, 0, 0, 0},
		{"small values are exact", []time.Duration{3, 100, 200}, 0.5, 100, 200, 101},
		{"beyond range keeps exact max", []time.Duration{2 * time.Minute}, 1, 2 * time.Minute, 2 * time.Minute, 2 * time.Minute},
		{"quantile never exceeds max", []time.Duration{time.Second + 1}, 0.99, time.Second + 1, time.Second + 1, time.Second + 1},
		{"q above 1 is max", []time.Duration{time.Millisecond, time.Second}, 7, time.Second, time.Second, 500500 * time.Microsecond},
		{"q NaN is min", []time.Duration{time.Millisecond, time.Second}, math.NaN(), time.Millisecond, time.Second, 500500 * time.Microsecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			for _, d := range tt.record {
				h.Record(d)
			}
			if got := h.Quantile(tt.q); got != tt.want {
				t.Errorf("Quantile(%v) = %v, want %v", tt.q, got, tt.want)
			}
			if got := h.Max(); got != tt.wantMax {
				t.Errorf("Max = %v, want %v", got, tt.wantMax)
			}
			if got := h.Mean(); got != tt.wantMean {
				t.Errorf("Mean = %v, want %v", got, tt.wantMean)
			}
		})
	}
}

func TestBucketLayoutIsContiguous(t *testing.T) {
	// Every bucket's midpoint must map back to that bucket, and consecutive
	// values must never skip a bucket.
	for i := range numBuckets {
		if got := bucketOf(bucketMid(i)); got != i {
			t.Fatalf("bucketOf(bucketMid(%d)) = %d", i, got)
		}
	}
	prev := bucketOf(0)
	for v := int64(1); v < 1<<20; v++ {
		b := bucketOf(v)
		if b != prev && b != prev+1 {
			t.Fatalf("value %d jumps from bucket %d to %d", v, prev, b)
		}
		prev = b
	}
	if got := bucketOf(maxValue + 1000); got != numBuckets-1 {
		t.Errorf("beyond range: bucket %d, want the top one %d", got, numBuckets-1)
	}
}

func TestHistogramMergeEqualsOneHistogram(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	samples := logUniform(r, 30000, time.Microsecond, 10*time.Second)
	var whole, a, b, merged Histogram
	for i, s := range samples {
		whole.Record(s)
		if i%3 == 0 {
			a.Record(s)
		} else {
			b.Record(s)
		}
	}
	merged.Merge(&a)
	merged.Merge(&b)
	if got, want := merged.Summary(), whole.Summary(); got != want {
		t.Errorf("merged summary %+v, want %+v", got, want)
	}
}

func TestHistogramConcurrentRecord(t *testing.T) {
	const workers, each = 4, 5000
	var h Histogram
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				h.Record(time.Duration(w*each+i+1) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	if got := h.Count(); got != workers*each {
		t.Fatalf("Count = %d, want %d", got, workers*each)
	}
	if got, want := h.Max(), time.Duration(workers*each)*time.Microsecond; got != want {
		t.Errorf("Max = %v, want %v", got, want)
	}
	if got := h.Min(); got != time.Microsecond {
		t.Errorf("Min = %v, want 1µs", got)
	}
}

func TestHistogramRecordDoesNotAllocate(t *testing.T) {
	h := new(Histogram)
	allocs := testing.AllocsPerRun(1000, func() { h.Record(1234 * time.Microsecond) })
	if allocs != 0 {
		t.Errorf("Record allocates %v times per call, want 0", allocs)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	h := new(Histogram)
	values := logUniform(rand.New(rand.NewPCG(1, 2)), 1024, time.Microsecond, time.Second)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.Record(values[i&1023])
	}
}

func BenchmarkHistogramRecordParallel(b *testing.B) {
	h := new(Histogram)
	values := logUniform(rand.New(rand.NewPCG(1, 2)), 1024, time.Microsecond, time.Second)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			h.Record(values[i&1023])
		}
	})
}
