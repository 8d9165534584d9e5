package main

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(*options) string
	}{
		{"defaults", nil, func(o *options) string {
			if o.clients != defaultClients || o.duration != defaultDuration || o.herd != defaultHerd || o.rate != 0 {
				return "not the full run's defaults"
			}
			if !slices.Equal(o.scenarios, []string{"browse", "herd", "write-burst", "mixed", "failover"}) ||
				!slices.Equal(o.targets, []string{"origin", "sheepdog"}) || len(o.compare) != 0 {
				return "not every scenario against origin and sheepdog"
			}
			if o.routeLatency.String() != "products=20ms" {
				return "route latency " + o.routeLatency.String()
			}
			return ""
		}},
		{"quick shortens the run", []string{"-quick"}, func(o *options) string {
			if o.clients != quickClients || o.duration != quickDuration || o.herd != quickHerd || len(o.scenarios) != 5 {
				return "not the quick run's settings"
			}
			return ""
		}},
		{"explicit flags win over quick", []string{"-duration", "3s", "-quick", "-clients", "2"}, func(o *options) string {
			if o.duration != 3*time.Second || o.clients != 2 || o.herd != quickHerd {
				return "explicit values lost"
			}
			return ""
		}},
		{"route latency replaces the default", []string{"-route-latency", "profile.get=3ms", "-route-latency", "orders.list=1ms"}, func(o *options) string {
			if got := o.routeLatency.String(); got != "orders.list=1ms,profile.get=3ms" {
				return "route latency " + got
			}
			return ""
		}},
		{"lists keep order and drop repeats", []string{"-scenarios", "herd, browse,herd", "-compare", "varnish,nginx"}, func(o *options) string {
			if !slices.Equal(o.scenarios, []string{"herd", "browse"}) || !slices.Equal(o.compare, []string{"varnish", "nginx"}) {
				return "lists " + strings.Join(o.scenarios, ",") + " " + strings.Join(o.compare, ",")
			}
			return ""
		}},
		{"writes: its own defaults", []string{"-writes"}, func(o *options) string {
			if !o.writes || o.duration != defaultWritesFor || o.originLatency != defaultWritesLatency ||
				o.routeLatency.String() != "" || !slices.Equal(o.writers, []int{64, 256}) || o.valkeyAddr != defaultValkeyAddr {
				return "not the write bench's defaults"
			}
			return ""
		}},
		{"writes: quick, explicit flags win", []string{"-writes", "-quick", "-writers", "8, 2,8", "-origin-latency", "1ms"}, func(o *options) string {
			if o.duration != quickWritesFor || o.originLatency != time.Millisecond || !slices.Equal(o.writers, []int{8, 2}) {
				return "quick writes settings lost"
			}
			return ""
		}},
		{"open loop", []string{"-rate", "250", "-targets", "origin"}, func(o *options) string {
			if o.rate != 250 || !o.has("origin") || o.has("sheepdog") {
				return "rate or targets lost"
			}
			return ""
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if msg := tt.check(o); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func TestParseFlagsRefuses(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-scenarios", "stampede"}, `unknown "stampede"`},
		{[]string{"-compare", "squid"}, `unknown "squid"`},
		{[]string{"-targets", "nginx"}, `unknown "nginx"`},
		{[]string{"-scenarios", ","}, "name at least one"},
		{[]string{"-clients", "0"}, "at least 1"},
		{[]string{"-duration", "0s"}, "must be positive"},
		{[]string{"-rate", "-1"}, "must not be negative"},
		{[]string{"-route-latency", "products"}, "want route=duration"},
		{[]string{"-route-latency", "products=fast"}, "bad duration"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"-writers", "64,x"}, `"x" is not a positive whole number`},
		{[]string{"-writers", "0"}, "not a positive whole number"},
		{[]string{"-writers", ","}, "name at least one"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := parseFlags(tt.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseFlags: %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestCommandQuotesWhatTheShellWould(t *testing.T) {
	got := command([]string{"-quick", "-json", "my report.json", "-route-latency", "products=5ms"})
	want := "go run ./bench -quick -json 'my report.json' -route-latency products=5ms"
	if got != want {
		t.Errorf("command = %q, want %q", got, want)
	}
}
