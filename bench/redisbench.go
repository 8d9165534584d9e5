package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// redisBenchmark is one run of redis-benchmark's SET, pipelined, the
// yardstick for Sheepdog's valkey sink.
type redisBenchmark struct {
	addr      string // host:port of the Valkey
	pipeline  int    // -P
	clients   int    // -c
	requests  int    // -n
	keyPrefix string // the run's own keys: PREFIX:rb:NNNNNNNNNNNN
	value     string // the value SET writes, the same bytes the sink writes
	ttl       int    // seconds, as the sink's SETEX
}

// redisBenchmarkResult is what redis-benchmark -q reports.
type redisBenchmarkResult struct {
	Throughput float64       // SETs per second
	P50        time.Duration // of a pipeline's round trip; 0 when not printed
}

// args are redis-benchmark's arguments. The SET is given as a command of
// its own rather than -t set, so that the keys carry the run's prefix (and
// are deleted afterwards) and the command is the sink's: SET with EX.
func (r redisBenchmark) args() []string {
	host, port, _ := net.SplitHostPort(r.addr)
	return []string{"-h", host, "-p", port, "-P", strconv.Itoa(r.pipeline), "-c", strconv.Itoa(r.clients),
		"-n", strconv.Itoa(r.requests), "-r", strconv.Itoa(valkeyKeys), "-q",
		"SET", r.keyPrefix + ":rb:__rand_int__", r.value, "EX", strconv.Itoa(r.ttl)}
}

// command is the run as a user would type it, for the report.
func (r redisBenchmark) command() string {
	args := r.args()
	for i, a := range args {
		if strings.ContainsAny(a, " \"{}") {
			args[i] = "'" + a + "'"
		}
	}
	return "redis-benchmark " + strings.Join(args, " ")
}

// run runs redis-benchmark, bounded by ctx and timeout.
func (r redisBenchmark) run(ctx context.Context, timeout time.Duration) (redisBenchmarkResult, error) {
	bin, err := exec.LookPath("redis-benchmark")
	if err != nil {
		return redisBenchmarkResult{}, errors.New("redis-benchmark is not on PATH (Debian: apt-get install redis-tools)")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, r.args()...).CombinedOutput()
	if err != nil {
		return redisBenchmarkResult{}, fmt.Errorf("redis-benchmark: %v: %s", err, lastLine(string(out)))
	}
	return parseRedisBenchmark(string(out))
}

// parseRedisBenchmark reads the rate from redis-benchmark -q's output,
// whose last line (after progress lines ended by carriage returns) is
//
//	SET key:__rand_int__ value EX 60: 990099.00 requests per second, p50=0.823 msec
//
// or, in versions before 6.2, the same without the p50.
func parseRedisBenchmark(out string) (redisBenchmarkResult, error) {
	line := lastLine(out)
	head, tail, ok := strings.Cut(line, " requests per second")
	if !ok {
		return redisBenchmarkResult{}, fmt.Errorf("redis-benchmark: no rate in %q", line)
	}
	var res redisBenchmarkResult
	fields := strings.Fields(head)
	if len(fields) == 0 {
		return redisBenchmarkResult{}, fmt.Errorf("redis-benchmark: no rate in %q", line)
	}
	rate, err := strconv.ParseFloat(fields[len(fields)-1], 64)
	if err != nil || rate <= 0 {
		return redisBenchmarkResult{}, fmt.Errorf("redis-benchmark: no rate in %q", line)
	}
	res.Throughput = rate
	if _, p50, ok := strings.Cut(tail, "p50="); ok {
		ms, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(p50), "msec")), 64)
		if err == nil {
			res.P50 = time.Duration(ms * float64(time.Millisecond))
		}
	}
	return res, nil
}

// lastLine is the last non-blank line of out, lines ended by \n or \r.
func lastLine(out string) string {
	lines := strings.FieldsFunc(out, func(r rune) bool { return r == '\n' || r == '\r' })
	for i := len(lines) - 1; i >= 0; i-- {
		if s := strings.TrimSpace(lines[i]); s != "" {
			return s
		}
	}
	return ""
}
