package shepherd

import (
	"bytes"
	"net/url"
	"strings"
	"unicode/utf8"
)

// route is one entry of the app's route table.
type route struct {
	method  string   // GET also answers HEAD, as in Express
	pattern []string // path segments; ":x" is a parameter
	name    string   // stable name for counters and latency
	handle  func(*App, *request) answer
	pool    bool // holds a Postgres pool connection while it runs
}

// appRoutes is the app's route table (API.md), in Express's registration
// order. The names are a contract: tests and the bench set latency and
// read counters by them.
func appRoutes() []route {
	const (
		vultr    = "/api/vultr"
		raindrop = "/api/raindrop"
	)
	table := []struct {
		method, path, name string
		handle             func(*App, *request) answer
	}{
		{"GET", vultr + "/postgres/health", "postgres.health", (*App).postgresHealth},
		{"GET", vultr + "/postgres/products", "products", (*App).products},
		{"GET", vultr + "/postgres/users/:userId/profile", "profile.get", (*App).getProfile},
		{"POST", vultr + "/postgres/users/:userId/profile", "profile.post", (*App).saveProfile},
		{"GET", vultr + "/postgres/users/:userId/orders", "orders.list", (*App).listOrders},
		{"POST", vultr + "/postgres/orders", "orders.create", (*App).createOrder},
		{"GET", vultr + "/postgres/returns", "returns.list", (*App).listReturns},
		{"POST", vultr + "/postgres/returns", "returns.create", (*App).createReturn},

		{"GET", vultr + "/valkey/health", "valkey.health", (*App).valkeyHealth},
		{"POST", vultr + "/valkey/session/:sessionId", "session.set", (*App).setSession},
		{"GET", vultr + "/valkey/session/:sessionId", "session.get", (*App).getSession},
		{"POST", vultr + "/valkey/session/:sessionId/touch", "session.touch", (*App).touchSession},
		{"DELETE", vultr + "/valkey/session/:sessionId", "session.delete", (*App).deleteSession},
		{"POST", vultr + "/valkey/cache/conversation/:userId", "conversation.set", (*App).setConversation},
		{"GET", vultr + "/valkey/cache/conversation/:userId", "conversation.get", (*App).getConversation},
		{"POST", vultr + "/valkey/cache/recommendations/:userId", "recommendations.set", (*App).setRecommendations},
		{"GET", vultr + "/valkey/cache/recommendations/:userId", "recommendations.get", (*App).getRecommendations},
		{"POST", vultr + "/valkey/cache/preferences/:userId", "preferences.set", (*App).setPreferences},
		{"GET", vultr + "/valkey/cache/preferences/:userId", "preferences.get", (*App).getPreferences},
		{"POST", vultr + "/valkey/cache/:key", "cache.set", (*App).setCache},
		{"GET", vultr + "/valkey/cache/:key", "cache.get", (*App).getCache},
		{"DELETE", vultr + "/valkey/cache/:key", "cache.delete", (*App).deleteCache},
		{"GET", vultr + "/valkey/metrics", "valkey.metrics", (*App).valkeyMetrics},
		{"POST", vultr + "/valkey/batch", "valkey.batch", (*App).valkeyBatch},
		{"GET", vultr + "/postgres/stats", "postgres.stats", (*App).postgresStats},
		{"POST", vultr + "/postgres/batch", "postgres.batch", (*App).postgresBatch},

		{"GET", vultr + "/management/account", "management", (*App).managementAccount},
		{"GET", vultr + "/management/databases", "management", (*App).management},
		{"GET", vultr + "/management/databases/:databaseId", "management", (*App).management},
		{"GET", vultr + "/management/databases/:databaseId/health", "management", (*App).management},
		{"GET", vultr + "/management/valkey", "management", (*App).management},
		{"GET", vultr + "/management/instances", "management", (*App).management},
		{"GET", vultr + "/management/summary", "management", (*App).management},
		{"GET", vultr + "/health", "vultr.health", (*App).vultrHealth},
		{"GET", vultr + "/stats", "vultr.stats", (*App).vultrStats},
		{"POST", vultr + "/test", "vultr.test", (*App).vultrTest},

		{"POST", raindrop + "/store-memory", "memory.store", (*App).storeMemory},
		{"POST", raindrop + "/search-memory", "memory.search", (*App).searchMemory},
		{"POST", raindrop + "/delete-memory", "memory.delete", (*App).deleteMemory},
		{"GET", raindrop + "/export-memory", "memory.export", (*App).exportMemory},
		{"POST", raindrop + "/clear-memory", "memory.clear", (*App).clearMemory},
		{"POST", raindrop + "/batch-store-memory", "memory.batch", (*App).batchStoreMemory},
		{"POST", raindrop + "/update-memory", "memory.update", (*App).updateMemory},
		{"GET", raindrop + "/memory-stats", "memory.stats", (*App).memoryStats},

		{"GET", "/health", "app.health", (*App).appHealth},
		{"GET", "/", "app.index", (*App).appIndex},
	}
	routes := make([]route, len(table))
	for i, t := range table {
		routes[i] = route{t.method, splitPath(t.path), t.name, t.handle, strings.HasPrefix(t.path, vultr+"/postgres/")}
	}
	return routes
}

// splitPath splits a path into segments, dropping the one trailing slash
// Express's non-strict routing ignores.
func splitPath(p string) []string {
	if len(p) > 1 && p[len(p)-1] == '/' {
		p = p[:len(p)-1]
	}
	if p == "/" {
		return []string{""}
	}
	return strings.Split(p[1:], "/")
}

// match finds the route for method and the raw (still percent-encoded)
// path, as Express matches: case-insensitively, one trailing slash
// optional, a parameter one or more characters without a slash. It
// returns the raw parameter values.
func (a *App) match(method, rawPath string) (*route, []string) {
	if len(rawPath) == 0 || rawPath[0] != '/' {
		return nil, nil
	}
	segs := splitPath(rawPath)
	for i := range a.routes {
		r := &a.routes[i]
		if !methodMatches(r.method, method) || len(r.pattern) != len(segs) {
			continue
		}
		var params []string
		matched := true
		for k, p := range r.pattern {
			if strings.HasPrefix(p, ":") {
				if segs[k] == "" {
					matched = false
					break
				}
				params = append(params, segs[k])
			} else if !strings.EqualFold(p, segs[k]) {
				matched = false
				break
			}
		}
		if matched {
			return r, params
		}
	}
	return nil, nil
}

func methodMatches(routeMethod, method string) bool {
	return method == routeMethod || (routeMethod == "GET" && method == "HEAD")
}

// paramError is Express's answer to a parameter decodeURIComponent rejects.
type paramError struct{ raw string }

func (e *paramError) Error() string { return "Failed to decode param '" + e.raw + "'" }

// decodeParams applies decodeURIComponent to each parameter.
func decodeParams(raw []string) ([]string, error) {
	out := make([]string, len(raw))
	for i, r := range raw {
		d, ok := decodeURIComponent(r)
		if !ok {
			return nil, &paramError{r}
		}
		out[i] = d
	}
	return out, nil
}

// decodeURIComponent decodes %XX escapes (not '+'), failing as
// JavaScript's does on a malformed escape or invalid UTF-8.
func decodeURIComponent(s string) (string, bool) {
	if !strings.Contains(s, "%") {
		return s, true
	}
	d, err := url.PathUnescape(s)
	if err != nil || !utf8.ValidString(d) {
		return "", false
	}
	return d, true
}

// queryArgs is a parsed query string, in order, repeated keys kept.
type queryArgs []queryArg

type queryArg struct{ key, value string }

// parseQuery parses a raw query string as qs does for flat keys: '+' is
// a space, a malformed escape leaves the text as it was, a key without
// '=' has the empty value.
func parseQuery(raw []byte) queryArgs {
	var out queryArgs
	for part := range bytes.SplitSeq(raw, []byte("&")) {
		if len(part) == 0 {
			continue
		}
		k, v, _ := bytes.Cut(part, []byte("="))
		key := qsDecode(k)
		if key == "" {
			continue
		}
		out = append(out, queryArg{key, qsDecode(v)})
	}
	return out
}

func qsDecode(b []byte) string {
	s := strings.ReplaceAll(string(b), "+", " ")
	if d, ok := decodeURIComponent(s); ok {
		return d
	}
	return s
}

// get returns the first value of key and how many values it has; the
// app sees a repeated key as an array.
func (q queryArgs) get(key string) (string, int) {
	first, n := "", 0
	for _, a := range q {
		if a.key == key {
			if n == 0 {
				first = a.value
			}
			n++
		}
	}
	return first, n
}

// joined is String(req.query[key]): a repeated key's values joined by
// commas, which is what parseInt and parseFloat then read.
func (q queryArgs) joined(key string) (string, bool) {
	var vals []string
	for _, a := range q {
		if a.key == key {
			vals = append(vals, a.value)
		}
	}
	return strings.Join(vals, ","), len(vals) > 0
}
