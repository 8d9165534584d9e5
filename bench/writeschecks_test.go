package main

import (
	"strings"
	"testing"

	"github.com/style-shepherd/sheepdog/bench/report"
)

func TestWriteChecks(t *testing.T) {
	row := func(scenario, target string, rate, p50, p99 float64) report.Row {
		return report.Row{Scenario: scenario, Target: target, Throughput: rate, Seconds: 1,
			Latency: report.Latency{P50: p50, P99: p99}}
	}
	rows := []report.Row{
		row("postgres/lone", targetBatched, 2000, 0.5, 1),
		row("postgres/lone", targetSingle, 2000, 0.5, 1),
		row("postgres/64", targetBatched, 30000, 2, 2.9), // 6x; added 2.4 ≤ 2 + 0.5
		row("postgres/64", targetSingle, 5000, 10, 12),
		row("store-memory/lone", targetBatched, 90, 10.5, 11),
		row("store-memory/lone", targetSingle, 90, 10.5, 11),
		row("store-memory/64", targetBatched, 4000, 13, 30), // 0.8x; added 19.5 > 12.5
		row("store-memory/64", targetSingle, 5000, 11, 14),
		row("valkey/64", targetBatched, 60000, 1, 3), // ½ of 100000; no lone rows, no added p99
		row("valkey/64", targetSingle, 30000, 2, 5),
		row("valkey/64", targetRedisBenchmark, 100000, 0.8, 0),
	}
	got := map[string]bool{}
	for _, c := range writeChecks(rows, []int{64, 256}) {
		got[c.Criterion] = c.Pass
	}
	want := map[string]bool{
		"postgres/64: batched ÷ single":                             true,
		"postgres/64: added p99 (p99 − lone p50)":                   true,
		"store-memory/64: batched ÷ single":                         false,
		"store-memory/64: added p99 (p99 − lone p50)":               false,
		"postgres/64: added p99 over single (p99 − single p99)":     true,  // 2.9 − 12
		"store-memory/64: added p99 over single (p99 − single p99)": false, // 30 − 14 > 2 + 10.5
		"valkey/64: batched ÷ redis-benchmark -P 16":                true,
	}
	if len(got) != len(want) {
		t.Errorf("checks %v, want %v", got, want)
	}
	for c, pass := range want {
		if p, ok := got[c]; !ok || p != pass {
			t.Errorf("%s: pass %v (present %v), want %v", c, p, ok, pass)
		}
	}
}

func TestAddedP99Shows(t *testing.T) {
	c := addedP99("postgres/64", 2.9, 0.5, 0.45)
	if c.Measured != "2.90ms − 500µs = 2.40ms" || c.Limit != "≤ 2.00ms + 450µs = 2.45ms" || !c.Pass {
		t.Errorf("%+v", c)
	}
	if c := addedP99("valkey/lone", 0.2, 0.3, 0.1); !strings.HasPrefix(c.Measured, "200µs − 300µs = -100µs") || !c.Pass {
		t.Errorf("a negative added p99: %+v", c)
	}
}

func TestFlushNotes(t *testing.T) {
	rows := []report.Row{
		{Scenario: "postgres/256", Target: targetBatched, Seconds: 5, Batches: 2000, BatchedItems: 150000},
		{Scenario: "postgres/lone", Target: targetBatched, Seconds: 5, Batches: 9000, BatchedItems: 9000},
		{Scenario: "postgres/256", Target: targetSingle, Seconds: 5, Batches: 30000, BatchedItems: 30000},
	}
	notes := flushNotes(rows)
	if len(notes) != 1 || !strings.Contains(notes[0], "at most 10.0ms (4 at once × 5.0s ÷ 2000 batches of 75.0)") {
		t.Errorf("notes %q", notes)
	}
}

// TestWriteChecksCountOnlyWrittenAnswers: a batched row whose every answer
// is a 5xx wrote nothing, so its throughput of answers must not pass the
// "batched ÷ single ≥ 5x" criterion, nor ½ of redis-benchmark.
func TestWriteChecksCountOnlyWrittenAnswers(t *testing.T) {
	row := func(scenario, target string, rate float64, served uint64, status map[string]uint64) report.Row {
		return report.Row{Scenario: scenario, Target: target, Throughput: rate, Served: served, Seconds: 1,
			Status: status, Latency: report.Latency{P50: 1, P99: 2}}
	}
	rows := []report.Row{
		row("postgres/64", targetBatched, 30000, 30000, map[string]uint64{"5xx": 30000}), // fast 503s: nothing inserted
		row("postgres/64", targetSingle, 5000, 5000, map[string]uint64{"2xx": 5000}),
		row("valkey/64", targetBatched, 60000, 60000, map[string]uint64{"2xx": 6000, "5xx": 54000}),
		row("valkey/64", targetRedisBenchmark, 100000, 500000, nil),
	}
	for _, c := range writeChecks(rows, []int{64}) {
		if c.Pass {
			t.Errorf("%s: PASS at %s, though the batched row's answers were (mostly) 5xx", c.Criterion, c.Measured)
		}
	}
}

// TestAddedP99CountsOnlyWrittenAnswers: fast error answers pull a row's
// p99 down; the added-p99 checks read the 2xx answers' latencies, so a
// batched row whose writes waited long does not pass on its quick 503s.
func TestAddedP99CountsOnlyWrittenAnswers(t *testing.T) {
	row := func(scenario, target string, all, ok report.Latency) report.Row {
		return report.Row{Scenario: scenario, Target: target, Throughput: 1000, Served: 1000, Seconds: 1,
			Status: map[string]uint64{"2xx": 500, "5xx": 500}, Latency: all, Latency2xx: &ok}
	}
	quick, slow := report.Latency{P50: 1, P99: 3}, report.Latency{P50: 40, P99: 90}
	lone := report.Latency{P50: 10, P99: 11}
	rows := []report.Row{
		row("postgres/lone", targetBatched, lone, lone),
		row("postgres/lone", targetSingle, lone, lone),
		row("postgres/64", targetBatched, quick, slow), // half answered 503 at once
		row("postgres/64", targetSingle, lone, lone),
	}
	checks := writeChecks(rows, []int{64})
	added := 0
	for _, c := range checks {
		if !strings.Contains(c.Criterion, "added p99") {
			continue
		}
		added++
		if c.Pass {
			t.Errorf("%s: PASS at %s; the written answers' p99 was 90ms", c.Criterion, c.Measured)
		}
	}
	if added != 2 {
		t.Fatalf("%d added-p99 checks, want 2: %+v", added, checks)
	}
}
