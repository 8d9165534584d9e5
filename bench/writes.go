package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/style-shepherd/sheepdog/bench/load"
	"github.com/style-shepherd/sheepdog/bench/report"
)

// The targets of the write-batching bench's rows. The report compares
// every row with its sink's single row.
const (
	targetBatched        = string(batched)
	targetSingle         = string(single)
	targetRedisBenchmark = "redis-benchmark"
	// loneWriters is the concurrency of the rows that measure a lone write.
	loneWriters = 1
)

// redisPipeline is redis-benchmark's -P: the yardstick is half its rate.
const redisPipeline = 16

// writeBench is the state of a -writes run: where it writes, and its two
// Sheepdogs, one batching, one writing an item a call.
type writeBench struct {
	stores    writeStores
	schema    string // the run's PostgreSQL schema, dropped at the end
	keyPrefix string // starts every Valkey key the run writes, deleted at the end
	sheepdogs map[writeMode]*target
}

// startWrites brings up what a -writes run needs: the simulated app with
// its latency, a schema of the run's own in PostgreSQL, the Valkey, and two
// Sheepdogs built from the module, batched and single.
func (s *suite) startWrites(ctx context.Context) error {
	o := s.opts
	var err error
	s.origin, err = startOrigin(originConfig{latency: o.originLatency, routeLatency: o.routeLatency.byRoute, workers: o.originWorkers})
	if err != nil {
		return err
	}
	pid := os.Getpid()
	w := &writeBench{
		schema:    fmt.Sprintf("bench_%d", pid),
		keyPrefix: fmt.Sprintf("sheepdog-bench-%d", pid),
		sheepdogs: map[writeMode]*target{},
	}
	w.stores = writeStores{postgresDSN: o.pgDSN, ordersTable: w.schema + ".orders", valkeyAddr: o.valkeyAddr}
	s.writes = w
	s.report.Title = "Sheepdog write-batching bench"
	s.report.Baseline = targetSingle

	if err := createOrdersTable(ctx, o.pgDSN, w.schema); err != nil {
		return err
	}
	s.cleanups = append(s.cleanups, func() error { return dropSchema(o.pgDSN, w.schema) })
	if err := ping(ctx, o.valkeyAddr); err != nil {
		return fmt.Errorf("valkey %s: %w", o.valkeyAddr, err)
	}
	s.cleanups = append(s.cleanups, func() error {
		n, err := deleteKeys(o.valkeyAddr, w.keyPrefix)
		s.report.Note("valkey: deleted the run's %d keys %s:*", n, w.keyPrefix)
		return err
	})

	bin, _, err := s.sheepdogBinary(ctx)
	if err != nil {
		return err
	}
	for _, mode := range []writeMode{batched, single} {
		t, err := s.startWriteSheepdog(ctx, bin, mode)
		if err != nil {
			return err
		}
		w.sheepdogs[mode] = t
	}
	s.noteWrites()
	return nil
}

// startWriteSheepdog runs one Sheepdog of the write-batching bench, with
// its config and log in a directory of its own.
func (s *suite) startWriteSheepdog(ctx context.Context, bin string, mode writeMode) (*target, error) {
	dir := filepath.Join(s.dir, string(mode))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	place := sheepdogPlace{upstream: s.origin.addr}
	var err error
	if place.listen, err = freeAddr(); err != nil {
		return nil, err
	}
	if place.admin, err = freeAddr(); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "sheepdog.yaml")
	if err := os.WriteFile(path, writesConfig(mode, place, s.writes.stores), 0o644); err != nil {
		return nil, err
	}
	s.out.logf("starting sheepdog (%s) on %s (admin %s), config %s", mode, place.listen, place.admin, path)
	proc, err := startSheepdog(ctx, bin, path, dir, place)
	if err != nil {
		return nil, fmt.Errorf("sheepdog (%s): %w", mode, err)
	}
	s.children = append(s.children, proc)
	return &target{name: string(mode), addr: place.listen, admin: place.admin}, nil
}

func (s *suite) noteWrites() {
	o, w := s.opts, s.writes
	s.report.Note("batched: Sheepdog with configs/sheepdog.yaml's write routes, max_items %d, max_wait %v; single: the same with max_items 1, and store-memory passed to the app's own route",
		batchMaxItems, batchMaxWait)
	s.report.Note("origin: the simulated Style Shepherd, in the bench's process; latency %v a call%s",
		o.originLatency, workersNote(o.originWorkers))
	s.report.Note("postgres: %s into %s (created for the run, dropped at the end); valkey: %s, keys %s:*",
		redactDSN(o.pgDSN), w.stores.ordersTable, o.valkeyAddr, w.keyPrefix)
	s.report.Note("load: closed loop, each row %v; NAME/lone is one writer, NAME/N is N writers at once", o.duration)
	s.report.Note("machine: %d CPUs shared by the load generator, the origin, both Sheepdogs, PostgreSQL, Valkey and anything else running: compare rows of one run",
		runtime.NumCPU())
}

func workersNote(n int) string {
	if n == 0 {
		return ", any number of calls at once (like a Node server awaiting I/O)"
	}
	return fmt.Sprintf(", %d calls at a time, the rest queue", n)
}

// measureWrites measures, sink by sink: a lone write through each
// Sheepdog, then each -writers through each, then, for Valkey,
// redis-benchmark at the same concurrency. Then it judges the criteria.
func (s *suite) measureWrites(ctx context.Context) error {
	w := s.writes
	for _, sink := range writeSinks {
		if !slices.Contains(s.opts.sinks, sink.name) {
			continue
		}
		for _, mode := range []writeMode{batched, single} {
			if err := s.writeRow(ctx, sink, w.sheepdogs[mode], loneWriters); err != nil {
				return err
			}
		}
		for _, writers := range s.opts.writers {
			for _, mode := range []writeMode{batched, single} {
				if err := s.writeRow(ctx, sink, w.sheepdogs[mode], writers); err != nil {
					return err
				}
			}
			if sink.name == "valkey" {
				if err := s.redisBenchmarkRow(ctx, writers); err != nil {
					return err
				}
			}
		}
	}
	if slices.Contains(s.opts.sinks, "postgres") {
		if n, err := countRows(ctx, s.opts.pgDSN, w.schema); err == nil {
			s.report.Note("postgres: %d rows in %s; %d create-order answers were 2xx",
				n, w.stores.ordersTable, answered2xx(s.report.Rows, "postgres"))
		}
	}
	for _, c := range writeChecks(s.report.Rows, s.opts.writers) {
		s.report.AddCheck(c)
	}
	s.report.Note("one flush: the p50 of a lone write through the single route (max_items 1; for store-memory, the app's own route), since /stats has no flush durations")
	for _, n := range flushNotes(s.report.Rows) {
		s.report.Note("%s", n)
	}
	s.report.Note("redis-benchmark rows: its own figures, the rate and the p50 of one pipeline of %d; p99 not measured", redisPipeline)
	return nil
}

// scenarioName is a row's scenario column: "postgres/64", "valkey/lone".
func scenarioName(sink string, writers int) string {
	if writers == loneWriters {
		return sink + "/lone"
	}
	return fmt.Sprintf("%s/%d", sink, writers)
}

// writeRow sends sink's writes through one Sheepdog with writers at once.
func (s *suite) writeRow(ctx context.Context, sink writeSink, t *target, writers int) error {
	name := scenarioName(sink.name, writers)
	label := name + " · " + t.name
	cfg := load.Config{
		Target:   "http://" + t.addr,
		Source:   sink.next(s.writes.keyPrefix),
		Requests: s.opts.requests,
		Duration: s.opts.duration,
		Clients:  writers,
		Timeout:  s.opts.timeout,
		Seed:     s.opts.seed,
		Progress: func(p load.Progress) { s.out.update(label, p) },
	}
	upstreamBefore := s.origin.upstream()
	before, counted := s.batches(ctx, t)
	res, err := load.Run(ctx, cfg)
	if err != nil {
		return err
	}
	row := report.NewRow(t.name, name, res)
	row.Upstream = report.Count(s.origin.upstream() - upstreamBefore)
	if after, ok := s.batches(ctx, t); counted && ok {
		row.Batches, row.BatchedItems = after.batches-before.batches, after.items-before.items
	}
	if note := unexpectedAnswers(label, res); note != "" {
		s.report.Note("%s", note)
	}
	s.report.Add(row)
	s.out.logf("%s: %d served in %.1fs (%.0f/s), p50 %s, p99 %s, batches %d (mean %.1f), errors %s",
		label, row.Served, row.Seconds, row.Throughput, report.Millis(row.Latency.P50),
		report.Millis(row.Latency.P99), row.Batches, row.MeanBatch(), problems(row))
	return s.childrenAlive()
}

// redisBenchmarkRow runs redis-benchmark's pipelined SET with writers
// clients against the Valkey the sink writes to.
func (s *suite) redisBenchmarkRow(ctx context.Context, writers int) error {
	rb := redisBenchmark{addr: s.opts.valkeyAddr, pipeline: redisPipeline, clients: writers,
		requests: redisRequests(s.opts.duration), keyPrefix: s.writes.keyPrefix, value: valkeyValue, ttl: valkeyTTL}
	name := scenarioName("valkey", writers)
	s.out.logf("%s · %s: %s", name, targetRedisBenchmark, rb.command())
	start := time.Now()
	res, err := rb.run(ctx, 10*s.opts.duration+30*time.Second)
	if err != nil {
		return err
	}
	row := report.Row{Target: targetRedisBenchmark, Scenario: name, Mode: load.ModeClosed,
		Seconds: time.Since(start).Seconds(), Served: uint64(rb.requests), Throughput: res.Throughput,
		Latency: report.Latency{P50: float64(res.P50) / float64(time.Millisecond)}}
	s.report.Add(row)
	s.out.logf("%s · %s: %.0f SET/s, p50 %s", name, targetRedisBenchmark, res.Throughput, report.Millis(row.Latency.P50))
	return nil
}

// redisRequests is redis-benchmark's -n: about as long as a row at the
// million SETs a second it reaches on a small machine.
func redisRequests(d time.Duration) int {
	return max(100_000, int(d.Seconds()*1_000_000))
}

// answered2xx sums the 2xx answers of a sink's rows.
func answered2xx(rows []report.Row, sink string) uint64 {
	var n uint64
	for _, r := range rows {
		if r.Target != targetRedisBenchmark && len(r.Scenario) > len(sink) && r.Scenario[:len(sink)+1] == sink+"/" {
			n += r.Status["2xx"]
		}
	}
	return n
}
