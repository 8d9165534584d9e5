package main

import (
	"slices"
	"testing"
	"time"
)

func TestParseRedisBenchmark(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		rate      float64
		p50       time.Duration
		bad       bool
	}{
		{name: "7.0 with progress lines",
			out:  "SET b:rb:__rand_int__ v EX 60: rps=0.0 (overall: nan) avg_msec=nan (overall: nan)\r                                  \rSET b:rb:__rand_int__ v EX 60: 990099.00 requests per second, p50=0.823 msec\n",
			rate: 990099, p50: 823 * time.Microsecond},
		{name: "6.0, no p50", out: "SET: 123456.79 requests per second\n\n", rate: 123456.79},
		{name: "p50 unreadable", out: "SET: 5000.00 requests per second, p50=? msec", rate: 5000},
		{name: "error", out: "Could not connect to Redis at 127.0.0.1:1: Connection refused\n", bad: true},
		{name: "empty", out: "", bad: true},
		{name: "no number", out: "SET: requests per second\n", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := parseRedisBenchmark(tc.out)
			if tc.bad {
				if err == nil {
					t.Fatalf("parsed %+v, want an error", res)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Throughput != tc.rate || res.P50 != tc.p50 {
				t.Errorf("got %v/s p50 %v, want %v/s p50 %v", res.Throughput, res.P50, tc.rate, tc.p50)
			}
		})
	}
}

func TestRedisBenchmarkArgs(t *testing.T) {
	r := redisBenchmark{addr: "127.0.0.1:6379", pipeline: 16, clients: 64, requests: 1000,
		keyPrefix: "sheepdog-bench-7", value: `{"n":1}`, ttl: 60}
	want := []string{"-h", "127.0.0.1", "-p", "6379", "-P", "16", "-c", "64", "-n", "1000", "-r", "1000", "-q",
		"SET", "sheepdog-bench-7:rb:__rand_int__", `{"n":1}`, "EX", "60"}
	if got := r.args(); !slices.Equal(got, want) {
		t.Errorf("args\n got %q\nwant %q", got, want)
	}
}
