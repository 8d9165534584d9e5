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
