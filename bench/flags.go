package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/style-shepherd/sheepdog/bench/compare"
	"github.com/style-shepherd/sheepdog/bench/scenario"
)

// options are the bench's flags, after -quick and validation.
type options struct {
	scenarios []string
	targets   []string // "origin", "sheepdog"
	compare   []string // "nginx", "varnish"

	config      string // Sheepdog's config file
	sheepdogBin string // a Sheepdog binary to run instead of building one

	clients  int
	rate     float64 // > 0: the open loop
	duration time.Duration
	requests int
	herd     int
	timeout  time.Duration
	seed     uint64

	originLatency time.Duration
	routeLatency  routeLatency
	originWorkers int

	jsonPath, htmlPath string
	keep               bool
	quick              bool

	// -writes: the write-batching bench instead of the scenarios.
	writes     bool
	writers    []int    // concurrent writers of each measured row
	sinks      []string // the sinks measured: postgres, store-memory, valkey
	pgDSN      string   // the PostgreSQL the postgres sink writes to
	valkeyAddr string   // the Valkey the valkey sink and redis-benchmark write to
}

// The defaults of a full run, and of -quick where it differs.
const (
	defaultClients   = 32
	defaultDuration  = 10 * time.Second
	defaultRequests  = 1_000_000
	defaultHerd      = 200
	quickClients     = 8
	quickDuration    = 1500 * time.Millisecond
	quickHerd        = 50
	defaultConfig    = "configs/sheepdog.yaml"
	defaultLatency   = 5 * time.Millisecond
	defaultRouteLags = "products=20ms"

	defaultWriters       = "64,256"
	defaultWritesFor     = 5 * time.Second // each -writes row
	quickWritesFor       = time.Second
	defaultWritesLatency = 10 * time.Millisecond
	defaultPostgresDSN   = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	defaultValkeyAddr    = "127.0.0.1:6379"
)

// rowTargets are the targets -targets may name; -compare adds the caches.
var rowTargets = []string{"origin", "sheepdog"}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{routeLatency: routeLatency{}}
	if err := o.routeLatency.Set(defaultRouteLags); err != nil {
		return nil, err
	}
	o.routeLatency.fromDefault = true

	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(fs) }
	scenarios := fs.String("scenarios", strings.Join(scenario.Names(), ","), "scenarios to run, in order: "+strings.Join(scenario.Names(), ", "))
	targets := fs.String("targets", strings.Join(rowTargets, ","), "rows to measure besides -compare's: origin (straight to the app), sheepdog")
	cmp := fs.String("compare", "", "caches to compare on the read scenarios, where installed: nginx, varnish")
	fs.StringVar(&o.config, "config", defaultConfig, "Sheepdog's config; listen, admin.listen, upstream.url and cache.l2.addrs are pointed at the bench's own")
	fs.StringVar(&o.sheepdogBin, "sheepdog-bin", "", "run this Sheepdog binary instead of building one from the module")
	fs.IntVar(&o.clients, "clients", defaultClients, "closed loop: clients sending at once; open loop: most requests in flight")
	fs.Float64Var(&o.rate, "rate", 0, "requests per second: the open loop (0: the closed loop)")
	fs.DurationVar(&o.duration, "duration", defaultDuration, "how long each row sends")
	fs.IntVar(&o.requests, "requests", defaultRequests, "most requests each row sends")
	fs.IntVar(&o.herd, "herd", defaultHerd, "herd: clients that ask for the cold key at once")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "bound on each request")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the requests' randomness")
	fs.DurationVar(&o.originLatency, "origin-latency", defaultLatency, "latency the simulated app adds to every request")
	fs.Var(&o.routeLatency, "route-latency", "per-route latency of the simulated app, in its route names, e.g. products=20ms,profile.get=5ms")
	fs.IntVar(&o.originWorkers, "origin-workers", 0, "requests the simulated app serves at once, the rest queue (0: no limit)")
	fs.StringVar(&o.jsonPath, "json", "", "also write the report as JSON to this file")
	fs.StringVar(&o.htmlPath, "html", "", "also write the report as a self-contained HTML page to this file")
	fs.BoolVar(&o.keep, "keep", false, "keep the run's directory (configs, logs) instead of removing it")
	fs.BoolVar(&o.writes, "writes", false, "the write-batching bench: each batch route batched against one write per call, and Valkey against redis-benchmark, at each -writers; rows "+defaultWritesFor.String()+" unless -duration, origin latency "+defaultWritesLatency.String()+" unless -origin-latency")
	writers := fs.String("writers", defaultWriters, "-writes: concurrent writers of each row, a comma list")
	sinks := fs.String("sinks", strings.Join(writeSinkNames(), ","), "-writes: the sinks to measure: "+strings.Join(writeSinkNames(), ", "))
	fs.StringVar(&o.pgDSN, "pg-dsn", postgresDSN(), "-writes: the PostgreSQL the postgres sink writes to, in a schema of the run's own, dropped at the end")
	fs.StringVar(&o.valkeyAddr, "valkey-addr", defaultValkeyAddr, "-writes: the Valkey the valkey sink and redis-benchmark write to; keys start with the run's prefix and are deleted at the end")
	fs.BoolVar(&o.quick, "quick", false, "a smoke run: every scenario, "+quickDuration.String()+" rows, fewer clients; flags given explicitly still win")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.writes {
		if !set["duration"] {
			o.duration = defaultWritesFor
			if o.quick {
				o.duration = quickWritesFor
			}
		}
		if !set["origin-latency"] {
			o.originLatency = defaultWritesLatency
		}
		if !set["route-latency"] {
			o.routeLatency = routeLatency{}
		}
	}
	if o.quick {
		if !set["clients"] {
			o.clients = quickClients
		}
		if !set["duration"] && !o.writes {
			o.duration = quickDuration
		}
		if !set["herd"] {
			o.herd = quickHerd
		}
	}
	var err error
	if o.writers, err = counts("-writers", *writers); err != nil {
		return nil, err
	}
	if o.sinks, err = words("-sinks", *sinks, writeSinkNames()); err != nil {
		return nil, err
	}
	if o.scenarios, err = words("-scenarios", *scenarios, scenario.Names()); err != nil {
		return nil, err
	}
	if o.targets, err = words("-targets", *targets, rowTargets); err != nil {
		return nil, err
	}
	var caches []string
	for _, c := range compare.Caches() {
		caches = append(caches, c.Name)
	}
	if o.compare, err = words("-compare", *cmp, caches); err != nil {
		return nil, err
	}
	return o, o.check()
}

func (o *options) check() error {
	switch {
	case o.writes && len(o.sinks) == 0:
		return errors.New("-sinks: name at least one")
	case len(o.scenarios) == 0:
		return errors.New("-scenarios: name at least one")
	case len(o.targets) == 0 && len(o.compare) == 0:
		return errors.New("-targets: name at least one")
	case o.clients < 1 || o.herd < 1 || o.requests < 1:
		return errors.New("-clients, -herd and -requests must be at least 1")
	case o.duration <= 0 || o.timeout <= 0:
		return errors.New("-duration and -timeout must be positive")
	case o.rate < 0:
		return errors.New("-rate must not be negative")
	case o.originLatency < 0 || o.originWorkers < 0:
		return errors.New("-origin-latency and -origin-workers must not be negative")
	}
	return nil
}

// postgresDSN is -pg-dsn's default: $DATABASE_URL, as Sheepdog's own
// config reads it, or the local test database.
func postgresDSN() string {
	if dsn := os.Getenv("DATABASE_URL"); dsn != "" {
		return dsn
	}
	return defaultPostgresDSN
}

// counts parses a comma list of positive integers, keeping the order given
// and dropping repeats.
func counts(flagName, list string) ([]int, error) {
	var out []int
	for w := range strings.SplitSeq(list, ",") {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		n, err := strconv.Atoi(w)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s: %q is not a positive whole number", flagName, w)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: name at least one", flagName)
	}
	return out, nil
}

func (o *options) has(target string) bool { return slices.Contains(o.targets, target) }

// words splits a comma list, checks every word against known, and drops
// repeats, keeping the order given.
func words(flagName, list string, known []string) ([]string, error) {
	var out []string
	for w := range strings.SplitSeq(list, ",") {
		w = strings.TrimSpace(w)
		if w == "" || slices.Contains(out, w) {
			continue
		}
		if !slices.Contains(known, w) {
			return nil, fmt.Errorf("%s: unknown %q; choose from %s", flagName, w, strings.Join(known, ", "))
		}
		out = append(out, w)
	}
	return out, nil
}

// routeLatency is the -route-latency flag: route=duration pairs, in the
// simulated app's route names. Given on the command line, it replaces the
// default rather than adding to it.
type routeLatency struct {
	byRoute     map[string]time.Duration
	fromDefault bool
}

func (r *routeLatency) String() string {
	if r == nil {
		return ""
	}
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(r.byRoute)) {
		parts = append(parts, name+"="+r.byRoute[name].String())
	}
	return strings.Join(parts, ",")
}

func (r *routeLatency) Set(v string) error {
	if r.fromDefault || r.byRoute == nil {
		r.byRoute, r.fromDefault = map[string]time.Duration{}, false
	}
	for pair := range strings.SplitSeq(v, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		name, dur, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || name == "" {
			return fmt.Errorf("want route=duration, got %q", pair)
		}
		d, err := time.ParseDuration(dur)
		if err != nil || d < 0 {
			return fmt.Errorf("route %s: bad duration %q", name, dur)
		}
		r.byRoute[name] = d
	}
	return nil
}

func usage(fs *flag.FlagSet) {
	out := fs.Output()
	fmt.Fprint(out, `Usage: go run ./bench [flags]

Runs Style Shepherd's traffic against the simulated app straight (the
"origin" row) and through Sheepdog, built from this module and run as its
own process, and, with -compare, through nginx and Varnish. All load goes to
127.0.0.1; every row is bounded by -duration and -requests. Prints a table;
-json and -html save the report. Exits 1 when a request failed or got an
answer other than 2xx (never because of speed), 130 when interrupted.

With -writes it runs the write-batching bench instead: for PostgreSQL
inserts (create-order, into a schema of its own), store-memory (to the
simulated app) and Valkey sets (cache-set), each at every -writers, a
Sheepdog that batches against one that writes an item a call, and for
Valkey redis-benchmark -P 16 too; then it judges the write path's
acceptance criteria, PASS or FAIL (never an exit code).

Scenarios:
`)
	for _, name := range scenario.Names() {
		fmt.Fprintf(out, "  %-12s %s\n", name, scenario.About(name))
	}
	fmt.Fprint(out, "\nFlags:\n")
	fs.PrintDefaults()
}
