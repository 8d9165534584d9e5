package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/style-shepherd/sheepdog/bench/compare"
	"github.com/style-shepherd/sheepdog/bench/load"
	"github.com/style-shepherd/sheepdog/bench/report"
	"github.com/style-shepherd/sheepdog/bench/scenario"
)

// stopGrace is how long a child gets to exit on SIGTERM before SIGKILL:
// short, so that a Ctrl-C ends the whole run within two seconds.
const stopGrace = time.Second

// target is one server the scenarios run against.
type target struct {
	name  string // the row's target: "origin", "sheepdog", "nginx", "varnish"
	addr  string // 127.0.0.1:PORT
	admin string // Sheepdog's admin address, for its batch counters; "" elsewhere
	cache bool   // nginx or Varnish: read scenarios only
	l2    bool   // Sheepdog with the bench's Valkey as its L2: the failover stops it
}

// suite is one bench run: what it started, and what it measured.
type suite struct {
	opts *options
	out  *progress
	dir  string // the run's own directory: configs, logs, cache files

	origin    *origin
	valkey    *valkey            // nil when no target uses one
	children  []*compare.Process // Sheepdog and the caches
	targets   []*target
	scenarios []*scenario.Scenario

	report        report.Report
	batchesUnseen bool // Sheepdog's /stats had no batch counters

	writes   *writeBench    // -writes: its stores and Sheepdogs
	cleanups []func() error // run by close, after every child has stopped
}

func newSuite(opts *options, out *progress, command string) (*suite, error) {
	dir, err := os.MkdirTemp("", "sheepdog-bench-")
	if err != nil {
		return nil, err
	}
	return &suite{opts: opts, out: out, dir: dir,
		report: report.Report{Title: "Sheepdog bench", Command: command}}, nil
}

// start brings up the origin, learns its seed, builds the scenarios, and
// starts every target's server.
func (s *suite) start(ctx context.Context) error {
	if s.opts.writes {
		return s.startWrites(ctx)
	}
	var err error
	s.origin, err = startOrigin(originConfig{latency: s.opts.originLatency,
		routeLatency: s.opts.routeLatency.byRoute, workers: s.opts.originWorkers})
	if err != nil {
		return err
	}
	if s.opts.has("origin") {
		s.targets = append(s.targets, &target{name: "origin", addr: s.origin.addr})
	}
	seed, err := scenario.Discover(ctx, "http://"+s.origin.addr, seededUsers)
	if err != nil {
		return err
	}
	reads := false
	for _, name := range s.opts.scenarios {
		sc, err := scenario.New(name, seed)
		if err != nil {
			return err
		}
		s.scenarios = append(s.scenarios, sc)
		reads = reads || sc.Reads
	}
	s.noteSetup()
	if s.opts.has("sheepdog") {
		if err := s.startSheepdog(ctx); err != nil {
			return err
		}
	}
	for _, name := range s.opts.compare {
		if !reads {
			s.report.Note("%s: no read scenario in this run, row missing", name)
			continue
		}
		if err := s.startCache(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

func (s *suite) noteSetup() {
	o := s.opts
	origin := fmt.Sprintf("origin: the simulated Style Shepherd, in the bench's process; latency %v", o.originLatency)
	if lags := o.routeLatency.String(); lags != "" {
		origin += ", " + lags
	}
	if o.originWorkers > 0 {
		origin += fmt.Sprintf(", %d requests at a time", o.originWorkers)
	}
	s.report.Note("%s", origin)
	loop := fmt.Sprintf("closed loop, %d clients", o.clients)
	if o.rate > 0 {
		loop = fmt.Sprintf("open loop at %g requests/s, at most %d in flight", o.rate, o.clients)
	}
	s.report.Note("load: %s; each row at most %v and %d requests; herd: %d clients at once on one cold key",
		loop, o.duration, o.requests, o.herd)
	s.report.Note("machine: %d CPUs shared by the load generator, the origin and the server measured: compare rows of one run, not figures across runs",
		runtime.NumCPU())
	s.report.Note("upstream: requests that reached the origin during the row, by the origin's own counter")
}

// startSheepdog builds Sheepdog (unless -sheepdog-bin names one), starts
// the bench's Valkey when the config has an L2, and runs Sheepdog with its
// config pointed at both.
func (s *suite) startSheepdog(ctx context.Context) error {
	bin, root, err := s.sheepdogBinary(ctx)
	if err != nil {
		return err
	}
	name, data, err := sheepdogConfig(s.opts.config, root)
	if err != nil {
		return fmt.Errorf("-config: %w", err)
	}
	place := sheepdogPlace{upstream: s.origin.addr, valkey: "127.0.0.1:6379"}
	if place.listen, err = freeAddr(); err != nil {
		return err
	}
	if place.admin, err = freeAddr(); err != nil {
		return err
	}
	l2, err := hasL2(name, data, place)
	if err != nil {
		return err
	}
	place.valkey = ""
	if l2 {
		if s.valkey, err = newValkey(s.dir); err != nil {
			return err
		}
		s.out.logf("starting redis-server on %s as Sheepdog's L2", s.valkey.addr)
		if err := s.valkey.start(ctx); err != nil {
			return err
		}
		place.valkey = s.valkey.addr
		s.report.Note("sheepdog: %s, pointed at the origin; L2: the bench's own redis-server", name)
	} else {
		s.report.Note("sheepdog: %s, pointed at the origin; it has no cache.l2, so it runs on L1 alone and the failover has no Valkey to stop", name)
	}
	placed, err := placeConfig(data, place)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	path := filepath.Join(s.dir, "sheepdog.yaml")
	if err := os.WriteFile(path, placed, 0o644); err != nil {
		return err
	}
	s.out.logf("starting sheepdog on %s (admin %s), config %s", place.listen, place.admin, path)
	proc, err := startSheepdog(ctx, bin, path, s.dir, place)
	if err != nil {
		return err
	}
	s.children = append(s.children, proc)
	s.targets = append(s.targets, &target{name: "sheepdog", addr: place.listen, admin: place.admin, l2: l2})
	return nil
}

// sheepdogBinary is -sheepdog-bin, or Sheepdog built from the module
// into the run's directory; root is the module's root, "" when it is not
// found and -sheepdog-bin is given.
func (s *suite) sheepdogBinary(ctx context.Context) (bin, root string, err error) {
	root, rootErr := moduleRoot(ctx)
	if s.opts.sheepdogBin != "" {
		return s.opts.sheepdogBin, root, nil
	}
	if rootErr != nil {
		return "", "", rootErr
	}
	s.out.logf("building sheepdog: go build -o %s .", filepath.Join(s.dir, "sheepdog"))
	bin, err = buildSheepdog(ctx, root, s.dir)
	return bin, root, err
}

// startCache starts nginx or Varnish in front of the origin, or notes
// that it is not installed.
func (s *suite) startCache(ctx context.Context, name string) error {
	c, _ := compare.Lookup(name)
	bin, ok := c.Installed()
	if !ok {
		s.report.Note("%s: not installed, row missing", name)
		s.out.logf("%s: not installed (%s is not on PATH), row missing", name, c.Binary)
		return nil
	}
	listen, err := freeAddr()
	if err != nil {
		return err
	}
	s.out.logf("starting %s on %s", name, listen)
	p, err := c.Start(ctx, bin, compare.Setup{Dir: filepath.Join(s.dir, name), Listen: listen, Origin: s.origin.addr})
	if err != nil {
		return err
	}
	s.children = append(s.children, p)
	s.targets = append(s.targets, &target{name: name, addr: listen, cache: true})
	s.report.Note("%s", c.Caveat)
	return nil
}

// measure runs every scenario against every target it applies to, one
// row at a time, so that no two rows share the machine.
func (s *suite) measure(ctx context.Context) error {
	if s.opts.writes {
		return s.measureWrites(ctx)
	}
	for _, sc := range s.scenarios {
		for _, t := range s.targets {
			if t.cache && !sc.Reads {
				continue
			}
			row, err := s.row(ctx, sc, t)
			if err != nil {
				return err
			}
			s.report.Add(row)
			if err := s.childrenAlive(); err != nil {
				return err
			}
		}
	}
	if s.batchesUnseen {
		s.report.Note("sheepdog: its admin /stats shows no batch counters (yet), so batches show as -")
	}
	return nil
}

// row runs one scenario against one target.
func (s *suite) row(ctx context.Context, sc *scenario.Scenario, t *target) (report.Row, error) {
	label := sc.Name + " · " + t.name
	cfg := load.Config{
		Target:   "http://" + t.addr,
		Source:   sc.NewSource(),
		Requests: s.opts.requests,
		Duration: s.opts.duration,
		Rate:     s.opts.rate,
		Clients:  s.opts.clients,
		Timeout:  s.opts.timeout,
		Seed:     s.opts.seed,
		Progress: func(p load.Progress) { s.out.update(label, p) },
	}
	if sc.Burst {
		cfg.Rate, cfg.Clients, cfg.Requests = 0, s.opts.herd, s.opts.herd
	}
	upstreamBefore := s.origin.upstream()
	batchesBefore, batched := s.batches(ctx, t)

	var outage *outage
	if sc.Outage != nil && t.l2 && s.valkey != nil {
		outage = startOutage(ctx, s.valkey, *sc.Outage, cfg.Duration, s.out, label)
	}
	res, err := load.Run(ctx, cfg)
	if outage != nil {
		err = errors.Join(err, outage.finish())
	}
	if err != nil {
		return report.Row{}, err
	}
	row := report.NewRow(t.name, sc.Name, res)
	row.Upstream = report.Count(s.origin.upstream() - upstreamBefore)
	if batchesAfter, ok := s.batches(ctx, t); batched && ok {
		row.Batches = batchesAfter.batches - batchesBefore.batches
		row.BatchedItems = batchesAfter.items - batchesBefore.items
	}
	if outage != nil {
		s.report.Note("%s", outage.timeline(res))
	}
	if note := unexpectedAnswers(label, res); note != "" {
		s.report.Note("%s", note)
	}
	s.out.logf("%s: %d served in %.1fs (%.0f/s), p50 %s, p99 %s, upstream %d, errors %s",
		label, row.Served, row.Seconds, row.Throughput, report.Millis(row.Latency.P50),
		report.Millis(row.Latency.P99), *row.Upstream, problems(row))
	return row, nil
}

// batches reads Sheepdog's batch counters; ok is false for other targets
// and when /stats has none.
func (s *suite) batches(ctx context.Context, t *target) (batchCount, bool) {
	if t.admin == "" {
		return batchCount{}, false
	}
	stats, err := adminStats(ctx, t.admin)
	if err != nil {
		return batchCount{}, false
	}
	c, ok := batchTotals(stats)
	if !ok {
		s.batchesUnseen = true
	}
	return c, ok
}

// childrenAlive fails when a server the bench started has exited: the
// rows after it would measure nothing.
func (s *suite) childrenAlive() error {
	for _, p := range s.children {
		select {
		case <-p.Exited():
			return fmt.Errorf("%s exited during the run (%v); its log:\n%s", p.Name(), p.Err(), p.LogTail(15))
		default:
		}
	}
	return nil
}

// close stops every child, all at once, and the origin. It keeps the run's
// directory when asked to, or when keep is set because something failed.
func (s *suite) close(keep bool) error {
	var wg sync.WaitGroup
	for _, p := range s.children {
		wg.Go(func() { p.Stop(stopGrace) })
	}
	if s.valkey != nil {
		wg.Go(s.valkey.stop)
	}
	wg.Wait()
	var err error
	for _, clean := range s.cleanups {
		err = errors.Join(err, clean())
	}
	if s.origin != nil {
		err = errors.Join(err, s.origin.close())
	}
	if keep || s.opts.keep {
		s.out.logf("the run's configs and logs are in %s", s.dir)
		return err
	}
	return errors.Join(err, os.RemoveAll(s.dir))
}

// problems lists a row's failed requests and non-2xx answers: "5xx=3
// timeout=1", or "-" when there are none.
func problems(row report.Row) string {
	var parts []string
	for _, class := range slices.Sorted(maps.Keys(row.Status)) {
		if class != "2xx" {
			parts = append(parts, fmt.Sprintf("%s=%d", class, row.Status[class]))
		}
	}
	for _, kind := range slices.Sorted(maps.Keys(row.Errors)) {
		parts = append(parts, fmt.Sprintf("%s=%d", kind, row.Errors[kind]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// unexpectedAnswers names the answers other than 2xx in a row, by kind
// of request, since the table's errors column counts only requests that
// got no answer: "write-burst · sheepdog: answers other than 2xx:
// create-order 5xx=3, store-memory 5xx=4". Every request a scenario sends
// is one the app accepts, so any such answer is worth a look.
func unexpectedAnswers(label string, res *load.Result) string {
	var parts []string
	for _, k := range res.Kinds {
		for class, n := range k.Status.ByClass() {
			if class != "2xx" {
				parts = append(parts, fmt.Sprintf("%s %s=%d", k.Kind, class, n))
			}
		}
	}
	if len(parts) == 0 {
		return ""
	}
	slices.Sort(parts)
	return label + ": answers other than 2xx: " + strings.Join(parts, ", ")
}

// failures names every row with failed requests or non-2xx answers, such
// as "failover/sheepdog: 5xx=3 timeout=1".
func failures(rows []report.Row) []string {
	var out []string
	for _, row := range rows {
		if p := problems(row); p != "-" {
			out = append(out, row.Scenario+"/"+row.Target+": "+p)
		}
	}
	return out
}
