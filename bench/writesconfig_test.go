package main

import (
	"testing"

	"github.com/style-shepherd/sheepdog/configs"
)

func TestWritesConfig(t *testing.T) {
	p := sheepdogPlace{listen: "127.0.0.1:18080", admin: "127.0.0.1:19901", upstream: "127.0.0.1:13001"}
	st := writeStores{postgresDSN: "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
		ordersTable: "bench_42.orders", valkeyAddr: "127.0.0.1:6379"}
	for _, tc := range []struct {
		mode     writeMode
		maxItems int
		memory   string // store-memory's action
	}{
		{batched, batchMaxItems, "batch"},
		{single, 1, "pass"},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			data := writesConfig(tc.mode, p, st)
			cfg, err := configs.Parse("writes.yaml", data)
			if err != nil {
				t.Fatalf("%v\n%s", err, data)
			}
			if cfg.Listen != p.listen || cfg.Admin.Listen != p.admin || cfg.Upstream.URL != "http://"+p.upstream {
				t.Errorf("placed at %s, %s, %s", cfg.Listen, cfg.Admin.Listen, cfg.Upstream.URL)
			}
			if len(cfg.Cache.L2.Addrs) != 0 {
				t.Errorf("L2 %v, want none", cfg.Cache.L2.Addrs)
			}
			routes := map[string]configs.Route{}
			for _, r := range cfg.Routes {
				routes[r.Name] = r
			}
			order := routes["create-order"].Batch
			if order == nil || order.Sink != "postgres" || order.Table != st.ordersTable ||
				order.MaxItems != tc.maxItems || order.MaxWait != batchMaxWait {
				t.Errorf("create-order: %+v", order)
			}
			set := routes["cache-set"].Batch
			if set == nil || set.Sink != "valkey" || set.MaxItems != tc.maxItems ||
				len(set.Addrs) != 1 || set.Addrs[0] != st.valkeyAddr {
				t.Errorf("cache-set: %+v", set)
			}
			memory := routes["store-memory"]
			switch tc.memory {
			case "batch":
				if b := memory.Batch; b == nil || b.Sink != "http" || b.URL != "/api/raindrop/batch-store-memory" ||
					b.Wrap != "memories" || b.Split != "results" || b.MaxItems != batchMaxItems {
					t.Errorf("store-memory: %+v", b)
				}
			case "pass":
				if memory.Pass == nil || memory.Batch != nil {
					t.Errorf("store-memory: want pass, got %+v", memory)
				}
			}
		})
	}
}
