package configs

import (
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestExamplesLoad(t *testing.T) {
	for _, name := range ExampleNames() {
		t.Run(name, func(t *testing.T) {
			data, err := ExampleFile(name)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := ParseWithEnv(name, data, noEnv)
			if err != nil {
				t.Fatalf("embedded %s does not load:\n%v", name, err)
			}
			if cfg.Upstream.URL != "http://127.0.0.1:3001" {
				t.Errorf("upstream url = %q, want the ${SHEEPDOG_UPSTREAM:-...} default", cfg.Upstream.URL)
			}
			last := cfg.Routes[len(cfg.Routes)-1]
			if last.Match.PathPrefix != "/api/" || last.Action() != ActionPass {
				t.Errorf("last route = %+v, want the catch-all path_prefix /api/ pass", last)
			}
			// The file on disk is the one embedded, and Load reads it.
			if _, err := Load(filepath.Join(".", name)); err != nil {
				t.Errorf("Load(%s): %v", name, err)
			}
		})
	}
	if got := ExampleNames(); !slices.Equal(got, []string{"minimal.yaml", "sheepdog.yaml"}) {
		t.Errorf("ExampleNames() = %q", got)
	}
	if _, err := ExampleFile("nope.yaml"); err == nil {
		t.Error("ExampleFile(nope.yaml) gave no error")
	}
}

func TestExampleEnvironment(t *testing.T) {
	env := map[string]string{
		"SHEEPDOG_UPSTREAM":     "http://127.0.0.1:4100",
		"DATABASE_URL":          "postgres://u@127.0.0.1:5433/db",
		"VALKEY_ADDR":           "127.0.0.1:6380",
		"SHEEPDOG_ADMIN_TOKEN":  "t0ken",
		"VALKEY_PASSWORD":       "pw",
		"UNUSED_BY_THE_EXAMPLE": "x",
	}
	data, err := ExampleFile("sheepdog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseWithEnv("sheepdog.yaml", data, mapEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{cfg.Upstream.URL, cfg.Postgres.DSN, strings.Join(cfg.Cache.L2.Addrs, ","), cfg.Admin.Token, cfg.Cache.L2.Password}
	want := []string{"http://127.0.0.1:4100", "postgres://u@127.0.0.1:5433/db", "127.0.0.1:6380", "t0ken", "pw"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// apiRoutes is every method and path of /work/shared/API.md, with the action
// the example gives it and whether it must drop cached reads.
var apiRoutes = []struct {
	method, path string
	action       Action
	invalidates  bool
}{
	{"GET", "/api/vultr/postgres/health", ActionCache, false},
	{"GET", "/api/vultr/postgres/products", ActionCache, false},
	{"GET", "/api/vultr/postgres/users/{userId}/profile", ActionCache, false},
	{"POST", "/api/vultr/postgres/users/{userId}/profile", ActionPass, true},
	{"GET", "/api/vultr/postgres/users/{userId}/orders", ActionCache, false},
	{"POST", "/api/vultr/postgres/orders", ActionBatch, true},
	{"GET", "/api/vultr/postgres/returns", ActionCache, false},
	{"POST", "/api/vultr/postgres/returns", ActionBatch, true},
	{"GET", "/api/vultr/postgres/stats", ActionPass, false},
	{"POST", "/api/vultr/postgres/batch", ActionPass, true},
	{"GET", "/api/vultr/valkey/health", ActionCache, false},
	{"POST", "/api/vultr/valkey/session/{sessionId}", ActionBatch, true},
	{"GET", "/api/vultr/valkey/session/{sessionId}", ActionCache, false},
	{"POST", "/api/vultr/valkey/session/{sessionId}/touch", ActionPass, false},
	{"DELETE", "/api/vultr/valkey/session/{sessionId}", ActionPass, true},
	{"POST", "/api/vultr/valkey/cache/conversation/{userId}", ActionPass, true},
	{"GET", "/api/vultr/valkey/cache/conversation/{userId}", ActionCache, false},
	{"POST", "/api/vultr/valkey/cache/recommendations/{userId}", ActionPass, true},
	{"GET", "/api/vultr/valkey/cache/recommendations/{userId}", ActionCache, false},
	{"POST", "/api/vultr/valkey/cache/preferences/{userId}", ActionPass, true},
	{"GET", "/api/vultr/valkey/cache/preferences/{userId}", ActionCache, false},
	{"POST", "/api/vultr/valkey/cache/{key}", ActionBatch, true},
	{"GET", "/api/vultr/valkey/cache/{key}", ActionCache, false},
	{"DELETE", "/api/vultr/valkey/cache/{key}", ActionPass, true},
	{"GET", "/api/vultr/valkey/metrics", ActionCache, false},
	{"POST", "/api/vultr/valkey/batch", ActionBatch, true},
	{"GET", "/api/vultr/health", ActionCache, false},
	{"GET", "/api/vultr/stats", ActionPass, false},
	{"POST", "/api/vultr/test", ActionPass, false},
	{"GET", "/api/vultr/management/", ActionCache, false}, // a prefix: every /management/* read
	{"POST", "/api/raindrop/store-memory", ActionBatch, true},
	{"POST", "/api/raindrop/batch-store-memory", ActionPass, true},
	{"POST", "/api/raindrop/search-memory", ActionCache, false},
	{"POST", "/api/raindrop/delete-memory", ActionPass, true},
	{"POST", "/api/raindrop/update-memory", ActionPass, true},
	{"POST", "/api/raindrop/clear-memory", ActionPass, true},
	{"GET", "/api/raindrop/export-memory", ActionCache, false},
	{"GET", "/api/raindrop/memory-stats", ActionCache, false},
}

func loadExample(t *testing.T) *Config {
	t.Helper()
	data, err := ExampleFile("sheepdog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseWithEnv("sheepdog.yaml", data, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestExampleCoversAPI sends a request for every API route through the
// example's table, first match winning as in the proxy, and checks that it
// lands on the route written for it, not on an earlier one or the catch-all.
func TestExampleCoversAPI(t *testing.T) {
	cfg := loadExample(t)
	for _, api := range apiRoutes {
		t.Run(api.method+" "+api.path, func(t *testing.T) {
			reqPath := samplePath(t, api.path)
			if strings.HasSuffix(api.path, "/management/") {
				reqPath += "account/info"
			}
			r := firstMatch(t, cfg, api.method, reqPath)
			if r == nil {
				t.Fatalf("no route takes %s %s", api.method, reqPath)
			}
			if r.Match.Method != api.method || (r.Match.Path != api.path && r.Match.PathPrefix != api.path) {
				t.Fatalf("%s %s is taken by route %q (%s %s%s), not one written for %s",
					api.method, reqPath, r.Name, r.Match.Method, r.Match.Path, r.Match.PathPrefix, api.path)
			}
			if r.Action() != api.action {
				t.Errorf("route %q is a %s route, want %s", r.Name, r.Action(), api.action)
			}
			if got := len(r.Invalidates) > 0; got != api.invalidates {
				t.Errorf("route %q invalidates %q; want invalidates: %v", r.Name, r.Invalidates, api.invalidates)
			}
		})
	}
}

// samplePath fills each {param} of a template with "<param>-1".
func samplePath(t *testing.T, tmpl string) string {
	segs, err := ParsePath(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, s := range segs {
		b.WriteString("/" + s.Literal)
		if s.Param != "" {
			b.WriteString(s.Param + "-1")
		}
	}
	if strings.HasSuffix(tmpl, "/") {
		b.WriteString("/")
	}
	return b.String()
}

// firstMatch is the route table's matching rule, written out plainly: a
// method (empty takes any), then a prefix or the path template segment by
// segment, one trailing slash allowed.
func firstMatch(t *testing.T, cfg *Config, method, path string) *Route {
	t.Helper()
	got := strings.Split(strings.TrimSuffix(strings.TrimPrefix(path, "/"), "/"), "/")
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		if r.Match.Method != "" && r.Match.Method != method {
			continue
		}
		if r.Match.PathPrefix != "" {
			if strings.HasPrefix(path, r.Match.PathPrefix) {
				return r
			}
			continue
		}
		segs, err := ParsePath(r.Match.Path)
		if err != nil {
			t.Fatal(err)
		}
		if segmentsMatch(segs, got) {
			return r
		}
	}
	return nil
}

func segmentsMatch(segs []Segment, got []string) bool {
	if len(segs) != len(got) {
		return false
	}
	for i, s := range segs {
		if s.Literal != got[i] && (s.Param == "" || got[i] == "") {
			return false
		}
	}
	return true
}

// request is what a test-local evaluator reads templates from.
type request struct {
	method, path string
	query        url.Values
	body         map[string]string // flat: JSON paths to values
}

// TestExampleWritesDropTheirReads checks the example's tags end to end: a
// write's invalidates, filled from the write request, must hit a tag of
// each read it changes, and miss reads it does not change.
func TestExampleWritesDropTheirReads(t *testing.T) {
	cfg := loadExample(t)
	get := func(path string, query url.Values) request { return request{"GET", path, query, nil} }
	tests := []struct {
		name    string
		write   request
		dropped []request
		kept    []request
	}{
		{
			name:    "profile update",
			write:   request{"POST", "/api/vultr/postgres/users/u1/profile", nil, nil},
			dropped: []request{get("/api/vultr/postgres/users/u1/profile", nil)},
			kept:    []request{get("/api/vultr/postgres/users/u2/profile", nil)},
		},
		{
			name:    "new order",
			write:   request{"POST", "/api/vultr/postgres/orders", nil, map[string]string{"user_id": "u1"}},
			dropped: []request{get("/api/vultr/postgres/users/u1/orders", url.Values{"limit": {"5"}}), get("/api/vultr/postgres/users/u1/orders", nil)},
			kept:    []request{get("/api/vultr/postgres/users/u2/orders", nil), get("/api/vultr/postgres/products", nil)},
		},
		{
			name:  "new return",
			write: request{"POST", "/api/vultr/postgres/returns", nil, map[string]string{"user_id": "u1", "product_id": "p1"}},
			dropped: []request{
				get("/api/vultr/postgres/returns", nil),
				get("/api/vultr/postgres/returns", url.Values{"userId": {"u1"}}),
				get("/api/vultr/postgres/returns", url.Values{"productId": {"p1"}}),
				get("/api/vultr/postgres/returns", url.Values{"userId": {"u1"}, "productId": {"p1"}}),
			},
			kept: []request{
				get("/api/vultr/postgres/returns", url.Values{"userId": {"u2"}}),
				get("/api/vultr/postgres/returns", url.Values{"userId": {"u1"}, "productId": {"p2"}}),
			},
		},
		{
			name:    "arbitrary SQL",
			write:   request{"POST", "/api/vultr/postgres/batch", nil, nil},
			dropped: []request{get("/api/vultr/postgres/products", nil), get("/api/vultr/postgres/users/u9/orders", nil)},
		},
		{
			name:    "session delete",
			write:   request{"DELETE", "/api/vultr/valkey/session/s1", nil, nil},
			dropped: []request{get("/api/vultr/valkey/session/s1", nil), get("/api/vultr/valkey/cache/session:s1", nil)},
			kept:    []request{get("/api/vultr/valkey/session/s2", nil)},
		},
		{
			name:    "typed conversation write drops the raw key too",
			write:   request{"POST", "/api/vultr/valkey/cache/conversation/u1", nil, nil},
			dropped: []request{get("/api/vultr/valkey/cache/conversation/u1", nil), get("/api/vultr/valkey/cache/conversation:u1", nil)},
			kept:    []request{get("/api/vultr/valkey/cache/recommendations/u1", nil)},
		},
		{
			name:    "raw key write drops the typed read",
			write:   request{"POST", "/api/vultr/valkey/cache/preferences:u1", nil, map[string]string{"value": "x"}},
			dropped: []request{get("/api/vultr/valkey/cache/preferences/u1", nil), get("/api/vultr/valkey/cache/preferences:u1", nil)},
		},
		{
			name:    "valkey batch",
			write:   request{"POST", "/api/vultr/valkey/batch", nil, nil},
			dropped: []request{get("/api/vultr/valkey/cache/anything", nil)},
			kept:    []request{get("/api/vultr/postgres/products", nil)},
		},
		{
			name:  "store memory without userId is demo_user's",
			write: request{"POST", "/api/raindrop/store-memory", nil, map[string]string{"text": "hi"}},
			dropped: []request{
				{"POST", "/api/raindrop/search-memory", nil, map[string]string{"q": "x"}},
				get("/api/raindrop/memory-stats", url.Values{"userId": {"demo_user"}}),
				get("/api/raindrop/export-memory", nil),
			},
			kept: []request{{"POST", "/api/raindrop/search-memory", nil, map[string]string{"userId": "u2"}}},
		},
		{
			name:    "clear memory",
			write:   request{"POST", "/api/raindrop/clear-memory", nil, map[string]string{"userId": "u1"}},
			dropped: []request{get("/api/raindrop/memory-stats", url.Values{"userId": {"u1"}})},
			kept:    []request{get("/api/raindrop/memory-stats", nil)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := firstMatch(t, cfg, tt.write.method, tt.write.path)
			dropped := fill(t, w, w.Invalidates, tt.write)
			for i, read := range append(tt.dropped, tt.kept...) {
				want := i < len(tt.dropped)
				r := firstMatch(t, cfg, read.method, read.path)
				if r.Cache == nil {
					t.Fatalf("%s %s is not cached (route %q)", read.method, read.path, r.Name)
				}
				hit := slices.ContainsFunc(fill(t, r, r.Cache.Tags, read), func(tag string) bool { return slices.Contains(dropped, tag) })
				if hit != want {
					t.Errorf("%s %s %v (tags %q): dropped = %v, want %v (write drops %q)",
						read.method, read.path, read.query, r.Cache.Tags, hit, want, dropped)
				}
			}
		})
	}
}

// fill evaluates tag templates against a request, as the proxy will.
func fill(t *testing.T, r *Route, tmpls []string, req request) []string {
	t.Helper()
	segs, err := ParsePath(r.Match.Path)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimPrefix(req.path, "/"), "/")
	params := make(map[string]string)
	for i, s := range segs {
		if s.Param != "" {
			params[s.Param] = got[i]
		}
	}
	var tags []string
	for _, s := range tmpls {
		tmpl, err := ParseTemplate(s)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, p := range tmpl {
			var v string
			var ok bool
			switch p.Source {
			case "":
				v, ok = p.Literal, true
			case SourcePath:
				v, ok = params[p.Name]
			case SourceQuery:
				v, ok = req.query.Get(p.Name), req.query.Has(p.Name)
			case SourceBody:
				v, ok = req.body[p.Name]
			}
			if !ok && p.HasDefault {
				v, ok = p.Default, true
			}
			if !ok {
				t.Fatalf("route %q: %s has no value for %s.%s", r.Name, s, p.Source, p.Name)
			}
			b.WriteString(v)
		}
		tags = append(tags, b.String())
	}
	return tags
}
