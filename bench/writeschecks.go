package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/style-shepherd/sheepdog/bench/report"
)

// The criteria of the write path's acceptance point G.
const (
	// minBatchedGain is how many times single's throughput batched must
	// reach, for PostgreSQL inserts and store-memory.
	minBatchedGain = 5.0
	// minRedisShare is the share of redis-benchmark -P 16's SET rate the
	// valkey sink must reach.
	minRedisShare = 0.5
)

// flushesAtOnce is how many flushes a batch route runs at once: the
// default of coalesce.BatcherConfig.MaxInFlight, which the proxy keeps.
const flushesAtOnce = 4

// loadedFlush bounds how long one flush of a batched row lasted, in
// milliseconds: with every flush slot busy all the row long, a flush lasted
// flushesAtOnce × the row's time ÷ its batches; with slots idle, less. ok
// is false without batches.
func loadedFlush(row *report.Row) (ms float64, ok bool) {
	if row.Batches == 0 {
		return 0, false
	}
	return flushesAtOnce * row.Seconds * 1000 / float64(row.Batches), true
}

// flushNotes say, for each batched row of many writers, how long a flush
// lasted at most under that load, and the added-p99 limit it would give:
// the lone write's flush is a floor, since a full batch takes longer.
func flushNotes(rows []report.Row) []string {
	var notes []string
	for i := range rows {
		r := &rows[i]
		if r.Target != targetBatched || strings.HasSuffix(r.Scenario, "/lone") {
			continue
		}
		if f, ok := loadedFlush(r); ok {
			wait := float64(batchMaxWait.Microseconds()) / 1000
			notes = append(notes, fmt.Sprintf("%s batched: a flush under this load lasted at most %s (%d at once × %.1fs ÷ %d batches of %.1f); max_wait plus that is %s",
				r.Scenario, report.Millis(f), flushesAtOnce, r.Seconds, r.Batches, r.MeanBatch(), report.Millis(wait+f)))
		}
	}
	return notes
}

// writeChecks judges a -writes run's rows against the criteria, for each
// count of writers:
//   - postgres and store-memory: batched throughput ≥ 5 × single's;
//   - valkey: batched throughput ≥ ½ × redis-benchmark -P 16's;
//   - every sink: the added p99 ≤ max_wait + one flush (a lone single
//     write's p50), read two ways: over a lone write (batched p99 − a lone
//     batched write's p50: what a writer waits beyond an idle route, the
//     load's own queueing included), and over writing one call per write
//     at the same load (batched p99 − single p99: what batching adds);
//     latencies over the 2xx answers, the writes that were made.
//
// A criterion whose rows are missing is left out.
func writeChecks(rows []report.Row, writers []int) []report.Check {
	find := func(scenario, target string) *report.Row {
		for i := range rows {
			if rows[i].Scenario == scenario && rows[i].Target == target {
				return &rows[i]
			}
		}
		return nil
	}
	var checks []report.Check
	for _, sink := range writeSinks {
		for _, w := range writers {
			name := scenarioName(sink.name, w)
			b, s := find(name, targetBatched), find(name, targetSingle)
			switch {
			case sink.name == "valkey":
				if rb := find(name, targetRedisBenchmark); b != nil && rb != nil {
					checks = append(checks, atLeast(name+": batched ÷ redis-benchmark -P 16", written(b), rb.Throughput, minRedisShare))
				}
			case b != nil && s != nil:
				checks = append(checks, atLeast(name+": batched ÷ single", written(b), written(s), minBatchedGain))
			}
		}
		lone := scenarioName(sink.name, loneWriters)
		loneB, loneS := find(lone, targetBatched), find(lone, targetSingle)
		if loneB == nil || loneS == nil {
			continue
		}
		for _, w := range writers {
			name := scenarioName(sink.name, w)
			b := find(name, targetBatched)
			if b == nil {
				continue
			}
			p99 := writtenLatency(b).P99
			checks = append(checks, addedP99(name+": added p99 (p99 − lone p50)", p99, writtenLatency(loneB).P50, writtenLatency(loneS).P50))
			if s := find(name, targetSingle); s != nil {
				checks = append(checks, addedP99(name+": added p99 over single (p99 − single p99)", p99, writtenLatency(s).P99, writtenLatency(loneS).P50))
			}
		}
	}
	return checks
}

// written is a row's rate of writes that were made: its answers per
// second, less the answers other than 2xx, which wrote nothing. A row
// without status counts (redis-benchmark's) keeps its own rate.
func written(row *report.Row) float64 {
	if row.Status == nil || row.Served == 0 {
		return row.Throughput
	}
	return row.Throughput * float64(row.Status["2xx"]) / float64(row.Served)
}

// writtenLatency is a row's latencies over its 2xx answers, the writes
// that were made: an error may come back at once and pull a p99 down. A
// row that did not measure them apart keeps its latencies over all.
func writtenLatency(row *report.Row) report.Latency {
	if row.Latency2xx != nil && row.Status["2xx"] > 0 {
		return *row.Latency2xx
	}
	return row.Latency
}

// atLeast checks that a ÷ b ≥ floor.
func atLeast(criterion string, a, b, floor float64) report.Check {
	ratio := 0.0
	if b > 0 {
		ratio = a / b
	}
	return report.Check{
		Criterion: criterion,
		Measured:  strconv.FormatFloat(ratio, 'f', 2, 64) + "x",
		Limit:     "≥ " + strconv.FormatFloat(floor, 'g', -1, 64) + "x",
		Pass:      ratio >= floor,
	}
}

// addedP99 checks that batched p99 − base ≤ max_wait + one flush, all in
// milliseconds.
func addedP99(criterion string, p99, base, flush float64) report.Check {
	added := p99 - base
	wait := float64(batchMaxWait.Microseconds()) / 1000
	limit := wait + flush
	return report.Check{
		Criterion: criterion,
		Measured:  fmt.Sprintf("%s − %s = %s", report.Millis(p99), report.Millis(base), signedMillis(added)),
		Limit:     fmt.Sprintf("≤ %s + %s = %s", report.Millis(wait), report.Millis(flush), report.Millis(limit)),
		Pass:      added <= limit,
	}
}

// signedMillis is report.Millis for a figure that may be negative.
func signedMillis(v float64) string {
	if v < 0 {
		return "-" + report.Millis(-v)
	}
	return report.Millis(v)
}
