package proxy

import (
	"testing"

	"github.com/style-shepherd/sheepdog/configs"
)

func testRoutes() []configs.Route {
	route := func(name, method, path, prefix string) configs.Route {
		return configs.Route{Name: name, Match: configs.Match{Method: method, Path: path, PathPrefix: prefix}, Pass: &configs.PassRule{}}
	}
	return []configs.Route{
		route("products", "GET", "/api/vultr/postgres/products", ""),
		route("profile", "GET", "/api/vultr/postgres/users/{userId}/profile", ""),
		route("profile-post", "POST", "/api/vultr/postgres/users/{userId}/profile", ""),
		route("conversation", "", "/api/vultr/valkey/cache/conversation/{userId}", ""),
		route("cache-key", "", "/api/vultr/valkey/cache/{key}", ""),
		route("session-touch", "POST", "/api/vultr/valkey/session/{sessionId}/touch", ""),
		route("two-params", "GET", "/a/{x}/b/{y}", ""),
		route("everything-else", "", "", "/api/"),
	}
}

func TestRouterMatch(t *testing.T) {
	r, err := newRouter(testRoutes())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, path string
		route        string // "" for no match
		params       map[string]string
	}{
		{"GET", "/api/vultr/postgres/products", "products", nil},
		{"HEAD", "/api/vultr/postgres/products", "products", nil},
		{"GET", "/api/vultr/postgres/products/", "products", nil},
		{"POST", "/api/vultr/postgres/products", "everything-else", nil},
		{"GET", "/api/vultr/postgres/productsX", "everything-else", nil},
		{"GET", "/api/vultr/postgres/users/u1/profile", "profile", map[string]string{"userId": "u1"}},
		{"POST", "/api/vultr/postgres/users/u1/profile", "profile-post", map[string]string{"userId": "u1"}},
		// Express's routes match whatever the case (caseSensitive false):
		// a write the app takes at .../Profile must invalidate as one at
		// .../profile does; a parameter keeps its own case.
		{"POST", "/api/vultr/postgres/users/U1/Profile", "profile-post", map[string]string{"userId": "U1"}},
		{"GET", "/API/Vultr/postgres/PRODUCTS", "products", nil},
		{"GET", "/api/vultr/postgres/users//profile", "everything-else", nil},
		{"GET", "/api/vultr/postgres/users/u1/profile/extra", "everything-else", nil},
		{"DELETE", "/api/vultr/valkey/cache/conversation/u7", "conversation", map[string]string{"userId": "u7"}},
		{"GET", "/api/vultr/valkey/cache/session:abc", "cache-key", map[string]string{"key": "session:abc"}},
		{"POST", "/api/vultr/valkey/session/s9/touch", "session-touch", map[string]string{"sessionId": "s9"}},
		{"GET", "/a/1/b/2", "two-params", map[string]string{"x": "1", "y": "2"}},
		{"GET", "/a/1/c/2", "", nil},
		{"GET", "/", "", nil},
		{"GET", "/apix", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			var p Params
			rt := r.match([]byte(tt.method), []byte(tt.path), &p)
			got := ""
			if rt != nil {
				got = rt.name
			}
			if got != tt.route {
				t.Fatalf("route %q, want %q", got, tt.route)
			}
			if p.n != len(tt.params) && rt != nil {
				t.Errorf("%d params, want %d", p.n, len(tt.params))
			}
			for k, v := range tt.params {
				if g := string(p.Get(k)); g != v {
					t.Errorf("param %s = %q, want %q", k, g, v)
				}
			}
		})
	}
}

func TestRouterMatchAllocs(t *testing.T) {
	r, err := newRouter(testRoutes())
	if err != nil {
		t.Fatal(err)
	}
	method, path := []byte("GET"), []byte("/api/vultr/valkey/cache/session:abc")
	allocs := testing.AllocsPerRun(1000, func() {
		var p Params
		if r.match(method, path, &p) == nil {
			t.Fatal("no match")
		}
	})
	if allocs != 0 {
		t.Errorf("match allocates %v times; want 0", allocs)
	}
}

// BenchmarkRouterMatch matches a path deep in the table: every route before
// it is tried first.
func BenchmarkRouterMatch(b *testing.B) {
	r, err := newRouter(testRoutes())
	if err != nil {
		b.Fatal(err)
	}
	method, path := []byte("GET"), []byte("/a/123/b/456")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var p Params
		for pb.Next() {
			if r.match(method, path, &p) == nil {
				b.Fatal("no match")
			}
		}
	})
}

// The route the validator once called "never matched" does take a request.
func TestSlashPathAfterPrefixMatches(t *testing.T) {
	r, err := newRouter([]configs.Route{
		{Name: "sub", Match: configs.Match{PathPrefix: "/api/x/"}, Pass: &configs.PassRule{}},
		{Name: "x", Match: configs.Match{Path: "/api/x/"}, Pass: &configs.PassRule{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var p Params
	if rt := r.match([]byte("GET"), []byte("/api/x"), &p); rt == nil || rt.name != "x" {
		t.Fatalf("GET /api/x matched %v, want route x", rt)
	}
}
