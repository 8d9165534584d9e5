// Command bench is Sheepdog's load-test suite: Style Shepherd's traffic
// (package scenario) sent to the simulated app straight, through Sheepdog
// built from this module and run as its own process, and, with -compare,
// through nginx and Varnish, each measured the same way and side by side.
//
//	go run ./bench                       every scenario, 10 s a row
//	go run ./bench -quick                a smoke run, well under a minute
//	go run ./bench -compare nginx,varnish -json out.json -html out.html
//	go run ./bench -writes               write batching: batched against one
//	                                     write a call, and Valkey against
//	                                     redis-benchmark, at 64 and 256 writers
//
// All load goes to 127.0.0.1, every row is bounded in time and requests,
// and every process the bench starts is stopped before it exits, on
// Ctrl-C and SIGTERM too. It exits 1 when a request failed or got an
// answer other than 2xx (never because of speed), 2 on bad flags, and 130
// when interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, a second one ends the bench at once; the
	// children's parent-death signal takes them down with it.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// run is the whole bench: the table goes to stdout, progress and
// messages to stderr. It returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return exitUsage
	}
	out := newProgress(stderr)
	s, err := newSuite(opts, out, command(args))
	if err != nil {
		out.logf("bench: %v", err)
		return exitFailed
	}
	err = s.start(ctx)
	if err == nil {
		err = s.measure(ctx)
	}
	interrupted := ctx.Err() != nil
	if closeErr := s.close(err != nil && !interrupted); closeErr != nil && err == nil {
		err = closeErr
	}

	out.clear()
	if len(s.report.Rows) > 0 {
		if err := s.report.WriteTable(stdout); err != nil {
			out.logf("bench: %v", err)
		}
		if saveErr := s.report.Save(opts.jsonPath, opts.htmlPath); saveErr != nil && err == nil {
			err = saveErr
		}
	}
	switch {
	case interrupted:
		out.logf("bench: interrupted; every process it started is stopped")
		return exitInterrupted
	case err != nil:
		out.logf("bench: %v", err)
		return exitFailed
	}
	if failed := failures(s.report.Rows); len(failed) > 0 {
		out.logf("bench: requests failed or got answers other than 2xx:\n  %s", strings.Join(failed, "\n  "))
		return exitFailed
	}
	return exitOK
}

// command is the run as a user would type it, for the report.
func command(args []string) string {
	parts := []string{"go run ./bench"}
	for _, a := range args {
		if strings.ContainsAny(a, " \t'\"$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
