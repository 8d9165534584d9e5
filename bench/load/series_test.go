package load

import (
	"testing"
	"time"
)

// TestSeriesFoldsALastSliver: answers that drain in the last few
// milliseconds of a run are not charted as a spike of their own; they join
// the second before, so the series still adds up to the run.
func TestSeriesFoldsALastSliver(t *testing.T) {
	start := time.Unix(1000, 0)
	r := newRecorder(start, 3*time.Second)
	k := r.kind("read")
	for i := range 200 { // 100 answers a second for two seconds
		r.answer(k, start, start.Add(time.Duration(i)*10*time.Millisecond), 200)
	}
	for range 50 { // 50 more in the 20ms after the load stopped
		r.answer(k, start, start.Add(2*time.Second+10*time.Millisecond), 200)
	}
	series := r.series(2*time.Second + 20*time.Millisecond)
	if len(series) != 2 {
		t.Fatalf("%d seconds charted, want 2: %+v", len(series), series)
	}
	if series[0].Throughput != 100 {
		t.Errorf("first second: %v/s, want 100/s", series[0].Throughput)
	}
	// 150 answers over 1.02s, not 50 over 20ms (2500/s).
	if got := series[1]; got.Answered != 150 || got.Throughput < 140 || got.Throughput > 150 {
		t.Errorf("last second: %d answered at %v/s, want 150 at about 147/s", got.Answered, got.Throughput)
	}
}

// TestLatency2xxLeavesErrorsOut: a run's Latency covers every answer;
// Latency2xx only the 2xx ones, so quick 503s cannot pull it down.
func TestLatency2xxLeavesErrorsOut(t *testing.T) {
	start := time.Unix(1000, 0)
	r := newRecorder(start, time.Second)
	k := r.kind("write")
	for range 90 {
		r.answer(k, start, start.Add(time.Millisecond), 503)
	}
	for range 10 {
		r.answer(k, start, start.Add(80*time.Millisecond), 201)
	}
	res := r.result(time.Second)
	if res.Latency.Count != 100 || res.Latency2xx.Count != 10 {
		t.Fatalf("samples: %d over all, %d 2xx; want 100 and 10", res.Latency.Count, res.Latency2xx.Count)
	}
	if res.Latency.P50 > 2*time.Millisecond || res.Latency2xx.P50 < 79*time.Millisecond {
		t.Errorf("p50 %v over all, %v over 2xx; want about 1ms and 80ms", res.Latency.P50, res.Latency2xx.P50)
	}
}
