// Command sheepdog is a sidecar caching proxy for the Style Shepherd app:
// it answers reads from memory, merges duplicate work, batches writes, and
// passes everything else through unchanged.
//
//	sheepdog -config sheepdog.yaml   run
//	sheepdog -check -config F        validate F and print its route table
//	sheepdog -demo                   run in front of a simulated Style Shepherd
//	sheepdog -version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/style-shepherd/sheepdog/bench/origin/shepherd"
	"github.com/style-shepherd/sheepdog/configs"
	"github.com/style-shepherd/sheepdog/proxy"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	// SIGHUP is taken from the first moment: its default action is to
	// exit, and a supervisor may send it while Sheepdog starts. serve
	// reloads on it; before that, and in -check or -version, it is dropped.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	flags := flag.NewFlagSet("sheepdog", flag.ContinueOnError)
	flags.SetOutput(stderr)
	configPath := flags.String("config", "", "the YAML config file")
	check := flags.Bool("check", false, "validate the config, print the route table, and exit")
	demo := flags.Bool("demo", false, "run in front of an in-process simulated Style Shepherd, with configs/sheepdog.yaml's routes")
	showVersion := flags.Bool("version", false, "print the version and exit")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	proxy.RouteLibraryLogs(log)
	usage := func(msg string) int {
		fmt.Fprintln(stderr, "sheepdog:", msg)
		flags.Usage()
		return 2
	}
	switch {
	case flags.NArg() > 0:
		return usage(fmt.Sprintf("unexpected argument %q (the config goes after -config)", flags.Arg(0)))
	case *demo && (*configPath != "" || *check):
		return usage("-demo runs its own config: leave out -config and -check")
	case *showVersion:
		fmt.Fprintf(stdout, "sheepdog %s (%s)\n", version, runtime.Version())
		return 0
	case *demo:
		return runDemo(stdout, stderr, log, hup)
	case *configPath == "":
		return usage("-config is required (or try -demo)")
	}
	cfg, err := configs.Load(*configPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *check {
		fmt.Fprint(stdout, cfg.RouteTable())
		return 0
	}
	return serve(cfg, log, func() (*configs.Config, error) { return configs.Load(*configPath) }, hup, nil)
}

// runDemo starts the simulated app on a free port and Sheepdog in front of
// it with the example config's routes.
func runDemo(stdout, stderr io.Writer, log *slog.Logger, hup <-chan os.Signal) int {
	app := shepherd.New(shepherd.Config{})
	addr, err := app.Start("127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(stderr, "demo origin:", err)
		return 1
	}
	defer app.Close()
	// The example's upstream is ${SHEEPDOG_UPSTREAM:-…}: point it at the
	// simulated app; every other variable reads the environment as usual.
	env := func(name string) (string, bool) {
		if name == "SHEEPDOG_UPSTREAM" {
			return "http://" + addr, true
		}
		return os.LookupEnv(name)
	}
	load := func() (*configs.Config, error) {
		data, err := configs.ExampleFile("sheepdog.yaml")
		if err != nil {
			return nil, err
		}
		return configs.ParseWithEnv("configs/sheepdog.yaml", data, env)
	}
	cfg, err := load()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return serve(cfg, log, load, hup, func() {
		fmt.Fprintf(stdout, "Sheepdog is in front of a simulated Style Shepherd at %s.\n"+
			"Try this twice: the first answer is fetched (X-Cache: MISS), the second comes from memory (HIT):\n\n"+
			"  curl -i 'http://%s/api/vultr/postgres/products?category=tops&limit=3'\n\n"+
			"Then what Sheepdog saw: curl -s http://%s/stats\n\nCtrl-C stops both.\n", addr, cfg.Listen, cfg.Admin.Listen)
	})
}

// serve runs the proxy until SIGINT or SIGTERM, then shuts down within the
// configured grace; a signal on hup reloads the config with load. ready, when set,
// is called once the listeners are open.
func serve(cfg *configs.Config, log *slog.Logger, load func() (*configs.Config, error), hup <-chan os.Signal, ready func()) int {
	p, err := proxy.New(cfg, log, proxy.WithVersion(version), proxy.WithReloader(load))
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		log.Error("listen", "err", err)
		return 1
	}
	adminLn, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		ln.Close()
		log.Error("admin listen", "err", err)
		return 1
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(ln, adminLn) }()
	if ready != nil {
		ready()
	}
	log.Info("serving", "listen", cfg.Listen, "admin", cfg.Admin.Listen, "upstream", cfg.Upstream.URL, "routes", len(cfg.Routes))
	// A server that fails ends Serve; the shutdown below still flushes
	// the batches and closes the stores before the exit status says so.
	var serveErr error
	stopped := false
wait:
	for {
		select {
		case serveErr = <-served:
			stopped = true
			log.Error("serve", "err", serveErr)
			break wait
		case <-hup:
			_ = p.Reload() // logged by Reload either way
		case <-ctx.Done():
			break wait
		}
	}
	log.Info("shutting down", "grace", cfg.Server.ShutdownGrace.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownGrace)
	defer cancel()
	if err := p.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Error("shutdown", "err", err)
	} else if err != nil {
		log.Warn("shutdown grace ran out; requests still in flight were cut", "grace", cfg.Server.ShutdownGrace.String())
	}
	if !stopped {
		if serveErr = <-served; serveErr != nil {
			log.Error("serve", "err", serveErr)
		}
	}
	if serveErr != nil {
		return 1
	}
	log.Info("stopped")
	return 0
}
