package configs

import (
	"fmt"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	src := head + `  - {name: c, match: {path: /c}, cache: {ttl: 1s}}
  - {name: h, match: {method: POST, path: /h}, batch: {sink: http, url: /hb}}
  - {name: v, match: {method: POST, path: "/v/{k}"}, batch: {sink: valkey, key: "{path.k}", value: "{body.v}", addrs: ["127.0.0.1:6379"]}}
  - {name: empty, match: {path: /e}, pass: }
`
	cfg, err := ParseWithEnv("d.yaml", []byte(src), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	c, h, v := cfg.Routes[0].Cache, cfg.Routes[1].Batch, cfg.Routes[2].Batch
	tests := []struct {
		key       string
		got, want any
	}{
		{"listen", cfg.Listen, "127.0.0.1:8080"},
		{"admin.listen", cfg.Admin.Listen, "127.0.0.1:9901"},
		{"admin.token", cfg.Admin.Token, ""},
		{"upstream.timeout", cfg.Upstream.Timeout, 10 * time.Second},
		{"upstream.max_conns", cfg.Upstream.MaxConns, 512},
		{"upstream.health_path", cfg.Upstream.HealthPath, "/"},
		{"upstream.idle_timeout", cfg.Upstream.IdleTimeout, 4 * time.Second},
		{"server.max_body_size", cfg.Server.MaxBodySize, ByteSize(10 << 20)},
		{"server.max_header_size", cfg.Server.MaxHeaderSize, ByteSize(16 << 10)},
		{"server.read_timeout", cfg.Server.ReadTimeout, 60 * time.Second},
		{"server.write_timeout", cfg.Server.WriteTimeout, 60 * time.Second},
		{"server.idle_timeout", cfg.Server.IdleTimeout, 90 * time.Second},
		{"server.max_conns", cfg.Server.MaxConns, 10000},
		{"server.shutdown_grace", cfg.Server.ShutdownGrace, 10 * time.Second},
		{"cache.l1.max_bytes", cfg.Cache.L1.MaxBytes, ByteSize(256 << 20)},
		{"cache.l2.addrs", len(cfg.Cache.L2.Addrs), 0},
		{"cache.l2.key_prefix", cfg.Cache.L2.KeyPrefix, "sheepdog:"},
		{"cache.l2.timeout", cfg.Cache.L2.Timeout, 50 * time.Millisecond},
		{"telemetry.service_name", cfg.Telemetry.ServiceName, "sheepdog"},
		{"telemetry.traces", cfg.Telemetry.Traces, "none"},
		{"cache.statuses", fmt.Sprint(c.Statuses), "[200 203 204 300 301 404 410]"},
		{"cache.stale_while_revalidate", c.StaleWhileRevalidate, time.Duration(0)},
		{"batch.max_items", h.MaxItems, 100},
		{"batch.max_bytes", h.MaxBytes, ByteSize(1 << 20)},
		{"batch.max_wait", h.MaxWait, 2 * time.Millisecond},
		{"batch.queue", h.Queue, 10000},
		{"batch.max_in_flight", h.MaxInFlight, 4},
		{"postgres.max_conns", cfg.Postgres.MaxConns, 0},
		{"batch.wrap (http)", h.Wrap, "items"},
		{"batch.split (http)", h.Split, "results"},
		{"batch.op (http)", h.Op, ""},
		{"batch.op (valkey)", v.Op, "set"},
		{"batch.wrap (valkey)", v.Wrap, ""},
		{"an empty pass: is a pass route", cfg.Routes[3].Action(), ActionPass},
		{"source", cfg.Source, "d.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %#v, want %#v", tt.got, tt.want)
			}
		})
	}
	if Default().Cache.L1.MaxBytes != 256<<20 {
		t.Error("Default() does not hold the defaults")
	}
}

// TestDefaultsAreFresh guards against a default slice shared between
// configs: changing one config must not change the next.
func TestDefaultsAreFresh(t *testing.T) {
	src := []byte(head + "  - {name: c, match: {path: /c}, cache: {ttl: 1s}}\n")
	a, err := ParseWithEnv("a.yaml", src, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	a.Routes[0].Cache.Statuses[0] = 299
	b, err := ParseWithEnv("b.yaml", src, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if b.Routes[0].Cache.Statuses[0] != 200 {
		t.Fatalf("statuses of a second config = %v", b.Routes[0].Cache.Statuses)
	}
}
