package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/style-shepherd/sheepdog/configs"
)

func TestPlaceConfigPointsSheepdogAtTheBench(t *testing.T) {
	example, err := configs.ExampleFile("sheepdog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	place := sheepdogPlace{listen: "127.0.0.1:4101", admin: "127.0.0.1:4102", upstream: "127.0.0.1:4103", valkey: "127.0.0.1:4104"}
	tests := []struct {
		name   string
		config string
		place  sheepdogPlace
		wantL2 []string
	}{
		{"the example file", string(example), place, []string{place.valkey}},
		{"flow mappings", "listen: 127.0.0.1:8080\nadmin: {listen: 127.0.0.1:9901}\nupstream: {url: http://127.0.0.1:1}\n" +
			"cache: {l2: {addrs: [10.0.0.1:6379, 10.0.0.2:6379]}}\nroutes:\n  - {name: all, match: {path_prefix: /api/}, pass: {}}\n",
			place, []string{place.valkey}},
		{"keys missing are added", "upstream: {url: http://127.0.0.1:1}\nroutes:\n  - {name: all, match: {path_prefix: /api/}, pass: {}}\n",
			place, []string{place.valkey}},
		{"no L2 stays without one", "upstream:\n  url: ${SHEEPDOG_UPSTREAM}\nroutes:\n  - {name: all, match: {path_prefix: /api/}, pass: {}}\n",
			sheepdogPlace{listen: place.listen, admin: place.admin, upstream: place.upstream}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			placed, err := placeConfig([]byte(tt.config), tt.place)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := configs.ParseWithEnv("placed.yaml", placed, tt.place.lookup)
			if err != nil {
				t.Fatalf("the placed config does not load: %v\n%s", err, placed)
			}
			if cfg.Listen != tt.place.listen || cfg.Admin.Listen != tt.place.admin || cfg.Upstream.URL != "http://"+tt.place.upstream {
				t.Errorf("listen %s, admin %s, upstream %s", cfg.Listen, cfg.Admin.Listen, cfg.Upstream.URL)
			}
			if strings.Join(cfg.Cache.L2.Addrs, ",") != strings.Join(tt.wantL2, ",") {
				t.Errorf("l2 addrs %v, want %v", cfg.Cache.L2.Addrs, tt.wantL2)
			}
		})
	}
}

func TestPlaceConfigKeepsTheRoutes(t *testing.T) {
	example, _ := configs.ExampleFile("sheepdog.yaml")
	place := sheepdogPlace{listen: "127.0.0.1:4101", admin: "127.0.0.1:4102", upstream: "127.0.0.1:4103", valkey: "127.0.0.1:4104"}
	before, err := configs.ParseWithEnv("example", example, place.lookup)
	if err != nil {
		t.Fatal(err)
	}
	placed, err := placeConfig(example, place)
	if err != nil {
		t.Fatal(err)
	}
	after, err := configs.ParseWithEnv("placed", placed, place.lookup)
	if err != nil {
		t.Fatal(err)
	}
	// The table's first line names the addresses, which were replaced.
	routes := func(c *configs.Config) string { _, table, _ := strings.Cut(c.RouteTable(), "\n"); return table }
	if routes(before) != routes(after) || len(after.Routes) < 10 {
		t.Errorf("the routes changed:\n%s\nbecame\n%s", routes(before), routes(after))
	}
}

func TestPlaceConfigRefusesWhatItCannotPlace(t *testing.T) {
	for _, config := range []string{"- a list\n", "listen: x\nadmin: 7\n", "listen: [unclosed\n"} {
		if _, err := placeConfig([]byte(config), sheepdogPlace{listen: "a", admin: "b", upstream: "c"}); err == nil {
			t.Errorf("placeConfig(%q) gave no error", config)
		}
	}
}

func TestSheepdogConfigIsFoundFromAnywhereInTheModule(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "configs"), 0o755); err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(root, "configs", "sheepdog.yaml")
	if err := os.WriteFile(mine, []byte("listen: 127.0.0.1:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, root string
		wantName         string
		wantErr          bool
	}{
		{"in the module root", defaultConfig, root, mine, false},
		{"embedded without a module", defaultConfig, "", defaultConfig + " (embedded)", false},
		{"absolute", mine, "", mine, false},
		{"another missing file", "nope.yaml", root, "nope.yaml", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, data, err := sheepdogConfig(tt.path, tt.root)
			if (err != nil) != tt.wantErr || name != tt.wantName {
				t.Fatalf("sheepdogConfig = %q, %v; want %q, error %v", name, err, tt.wantName, tt.wantErr)
			}
			if !tt.wantErr && len(data) == 0 {
				t.Error("no data")
			}
		})
	}
}

func TestBatchTotals(t *testing.T) {
	tests := []struct {
		name      string
		stats     string
		want      batchCount
		wantFound bool
	}{
		{"today's /stats", `{"uptime_seconds":3,"routes":[{"name":"products","action":"cache","requests":9}]}`, batchCount{}, false},
		{"per route", `{"routes":[{"name":"store-memory","batch":{"batches":3,"items":40}},
			{"name":"create-order","batch":{"batches":2,"items":10}},{"name":"products"}]}`, batchCount{5, 50}, true},
		{"other names", `{"sinks":{"http":{"flushes":4,"batched_items":9}}}`, batchCount{4, 9}, true},
		{"a counted object is not counted twice", `{"batch":{"batches":1,"items":2,"last":{"batches":1,"items":2}}}`, batchCount{1, 2}, true},
		{"half a pair is not a pair", `{"batches":7,"size":3}`, batchCount{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stats any
			if err := json.Unmarshal([]byte(tt.stats), &stats); err != nil {
				t.Fatal(err)
			}
			got, found := batchTotals(stats)
			if got != tt.want || found != tt.wantFound {
				t.Errorf("batchTotals = %+v, %v; want %+v, %v", got, found, tt.want, tt.wantFound)
			}
		})
	}
}
