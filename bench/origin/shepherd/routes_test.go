package shepherd

import (
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// shape checks an answer's body.
type shape func(t *testing.T, resp *fasthttp.Response)

// wrapped: the envelope, with data an object holding keys.
func wrapped(keys ...string) shape {
	return func(t *testing.T, resp *fasthttp.Response) {
		t.Helper()
		d, isObject := data(t, resp).(map[string]any)
		if !isObject {
			t.Fatalf("data is not an object: %s", resp.Body())
		}
		hasKeys(t, d, keys, resp)
	}
}

// wrappedList: the envelope, with data an array whose first row holds keys.
func wrappedList(nonEmpty bool, keys ...string) shape {
	return func(t *testing.T, resp *fasthttp.Response) {
		t.Helper()
		rows, isArray := data(t, resp).([]any)
		if !isArray {
			t.Fatalf("data is not an array: %s", resp.Body())
		}
		if nonEmpty && len(rows) == 0 {
			t.Fatalf("no rows: %s", resp.Body())
		}
		for _, r := range rows {
			hasKeys(t, r.(map[string]any), keys, resp)
		}
	}
}

// flat: no envelope, the keys plus requestId and timestamp at the top.
func flat(keys ...string) shape {
	return func(t *testing.T, resp *fasthttp.Response) {
		t.Helper()
		v := decode(t, resp)
		if _, wrapped := v["data"]; wrapped && !slices.Contains(keys, "data") {
			t.Fatalf("flat answer was wrapped: %s", resp.Body())
		}
		hasKeys(t, v, append(keys, "requestId", "timestamp"), resp)
	}
}

// vultrErr: {"error":"msg", requestId, timestamp}.
func vultrErr(msg string) shape {
	return func(t *testing.T, resp *fasthttp.Response) {
		t.Helper()
		v := decode(t, resp)
		if v["error"] != msg {
			t.Fatalf("error = %v, want %q", v["error"], msg)
		}
		hasKeys(t, v, []string{"requestId", "timestamp"}, resp)
	}
}

// invalid: a VALIDATION_ERROR naming the fields.
func invalid(fields ...string) shape {
	return func(t *testing.T, resp *fasthttp.Response) {
		t.Helper()
		e, _ := decode(t, resp)["error"].(map[string]any)
		if e["code"] != "VALIDATION_ERROR" || e["statusCode"] != 400.0 {
			t.Fatalf("not a validation error: %s", resp.Body())
		}
		var got []string
		for _, f := range e["details"].(map[string]any)["fields"].([]any) {
			got = append(got, f.(map[string]any)["field"].(string))
		}
		if !slices.Equal(got, fields) {
			t.Fatalf("fields = %q, want %q", got, fields)
		}
	}
}

func hasKeys(t *testing.T, v map[string]any, keys []string, resp *fasthttp.Response) {
	t.Helper()
	for _, k := range keys {
		if _, ok := v[k]; !ok {
			t.Fatalf("missing %q in %s", k, resp.Body())
		}
	}
}

func noBody(t *testing.T, resp *fasthttp.Response) {
	t.Helper()
	if len(resp.Body()) != 0 {
		t.Fatalf("body = %q, want none", resp.Body())
	}
}

const (
	vultr    = "/api/vultr"
	raindrop = "/api/raindrop"
)

var (
	profileKeys = []string{"user_id", "email", "first_name", "last_name", "preferences", "body_measurements", "created_at", "updated_at"}
	productKeys = []string{"id", "name", "description", "price", "category", "brand", "color", "style", "sizes", "stock", "image_url", "rating", "reviews_count", "created_at", "updated_at", "embedding", "popularity", "return_risk"}
	orderKeys   = []string{"order_id", "user_id", "items", "total_amount", "status", "created_at"}
	returnKeys  = []string{"return_id", "order_id", "product_id", "user_id", "reason", "status", "created_at"}
)

// TestEveryRoute walks every route of API.md, in an order where reads
// follow the writes they need, and checks the status, the body's shape
// and that the request was counted under the route's name.
func TestEveryRoute(t *testing.T) {
	app := New(Config{Now: fixedClock})
	seededOrder := app.pg.byUser["user_1"][0].orderID
	cases := []struct {
		name, method, path, body string
		route                    string
		status                   int
		check                    shape
	}{
		{"postgres health", "GET", vultr + "/postgres/health", "", "postgres.health", 200, wrapped("status", "latency", "poolStats")},
		{"products", "GET", vultr + "/postgres/products?category=shoes&limit=3", "", "products", 200, wrappedList(true, productKeys...)},
		{"profile", "GET", vultr + "/postgres/users/user_1/profile", "", "profile.get", 200, wrapped(profileKeys...)},
		{"profile unknown", "GET", vultr + "/postgres/users/nobody/profile", "", "profile.get", 404, vultrErr("User not found")},
		{"save profile", "POST", vultr + "/postgres/users/user_1/profile", `{"preferences":{"colors":["navy"]},"bodyMeasurements":{"height_cm":170}}`, "profile.post", 200, flat("success")},
		{"save profile of unknown user", "POST", vultr + "/postgres/users/nobody/profile", `{}`, "profile.post", 500, vultrErr("Failed to save user profile")},
		{"orders", "GET", vultr + "/postgres/users/user_1/orders?limit=5", "", "orders.list", 200, wrappedList(true, orderKeys...)},
		{"create order", "POST", vultr + "/postgres/orders", `{"user_id":"user_2","items":[{"product_id":"prod_0001","quantity":1,"price":29.99,"size":"M"}],"total_amount":29.99}`, "orders.create", 200, wrapped("orderId", "user_id", "items", "total_amount")},
		{"create order without user", "POST", vultr + "/postgres/orders", `{"items":[],"total_amount":1}`, "orders.create", 500, vultrErr("Failed to create order")},
		{"returns", "GET", vultr + "/postgres/returns", "", "returns.list", 200, wrappedList(true, returnKeys...)},
		{"returns filtered", "GET", vultr + "/postgres/returns?userId=nobody&productId=prod_0001", "", "returns.list", 200, wrappedList(false, returnKeys...)},
		{"record return", "POST", vultr + "/postgres/returns", `{"order_id":"{order}","product_id":"prod_0001","user_id":"user_1","reason":"Too small"}`, "returns.create", 200, wrapped("returnId", "order_id", "product_id", "user_id", "reason")},
		{"record return of unknown order", "POST", vultr + "/postgres/returns", `{"order_id":"order_0_x","product_id":"p","user_id":"user_1"}`, "returns.create", 500, vultrErr("Failed to record return")},
		{"postgres stats", "GET", vultr + "/postgres/stats", "", "postgres.stats", 200, wrapped("totalCount", "idleCount", "waitingCount", "health")},
		{"postgres batch", "POST", vultr + "/postgres/batch", `{"queries":[{"text":"SELECT 1"},{"text":"SELECT 2","params":[]}]}`, "postgres.batch", 200, wrapped("results")},
		{"postgres batch without queries", "POST", vultr + "/postgres/batch", `{}`, "postgres.batch", 400, vultrErr("queries must be an array")},

		{"valkey health", "GET", vultr + "/valkey/health", "", "valkey.health", 200, wrapped("status", "latency", "connectionStatus", "serverInfo")},
		{"set session", "POST", vultr + "/valkey/session/s1", `{"userId":"user_1","sessionId":"s1","createdAt":"2026-01-01T00:00:00.000Z","lastAccessed":"2026-01-01T00:00:00.000Z"}`, "session.set", 200, flat("success")},
		{"get session", "GET", vultr + "/valkey/session/s1", "", "session.get", 200, wrapped("userId", "sessionId", "createdAt", "lastAccessed")},
		{"touch session", "POST", vultr + "/valkey/session/s1/touch", "", "session.touch", 200, flat("success")},
		{"delete session", "DELETE", vultr + "/valkey/session/s1", "", "session.delete", 200, flat("success")},
		{"deleted session", "GET", vultr + "/valkey/session/s1", "", "session.get", 404, vultrErr("Session not found")},
		{"cache conversation", "POST", vultr + "/valkey/cache/conversation/user_1", `{"context":[{"role":"user","text":"hi"}]}`, "conversation.set", 200, flat("success")},
		{"get conversation", "GET", vultr + "/valkey/cache/conversation/user_1", "", "conversation.get", 200, wrapped("context")},
		{"no conversation", "GET", vultr + "/valkey/cache/conversation/nobody", "", "conversation.get", 404, vultrErr("Conversation not found")},
		{"cache recommendations", "POST", vultr + "/valkey/cache/recommendations/user_1", `{"recommendations":["prod_0001"],"ttl":60}`, "recommendations.set", 200, flat("success")},
		{"get recommendations", "GET", vultr + "/valkey/cache/recommendations/user_1", "", "recommendations.get", 200, wrapped("recommendations")},
		{"no recommendations", "GET", vultr + "/valkey/cache/recommendations/nobody", "", "recommendations.get", 404, vultrErr("Recommendations not found")},
		{"cache preferences", "POST", vultr + "/valkey/cache/preferences/user_1", `{"preferences":{"fit":"relaxed"}}`, "preferences.set", 200, flat("success")},
		{"get preferences", "GET", vultr + "/valkey/cache/preferences/user_1", "", "preferences.get", 200, wrapped("preferences")},
		{"no preferences", "GET", vultr + "/valkey/cache/preferences/nobody", "", "preferences.get", 404, vultrErr("Preferences not found")},
		{"set cache key", "POST", vultr + "/valkey/cache/greeting", `{"value":"hello","ttl":60}`, "cache.set", 200, flat("success")},
		{"get cache key", "GET", vultr + "/valkey/cache/greeting", "", "cache.get", 200, wrapped("value")},
		{"delete cache key", "DELETE", vultr + "/valkey/cache/greeting", "", "cache.delete", 200, flat("success")},
		{"deleted cache key", "GET", vultr + "/valkey/cache/greeting", "", "cache.get", 404, vultrErr("Cache key not found")},
		{"set cache bad ttl", "POST", vultr + "/valkey/cache/k", `{"value":1,"ttl":1.5}`, "cache.set", 500, vultrErr("Failed to set cache")},
		{"valkey metrics", "GET", vultr + "/valkey/metrics", "", "valkey.metrics", 200, wrapped("status", "connected", "health", "hitRate", "missRate", "averageLatency", "totalRequests")},
		{"valkey batch", "POST", vultr + "/valkey/batch", `{"operations":[{"type":"set","key":"b","value":{"n":1}},{"type":"get","key":"b"},{"type":"delete","key":"b"}]}`, "valkey.batch", 200, wrapped("results")},
		{"valkey batch without operations", "POST", vultr + "/valkey/batch", `{"operations":{}}`, "valkey.batch", 400, vultrErr("operations must be an array")},

		{"vultr health", "GET", vultr + "/health", "", "vultr.health", 200, wrapped("postgres", "valkey", "inference", "overall")},
		{"vultr stats", "GET", vultr + "/stats", "", "vultr.stats", 200, wrapped("postgres", "valkey")},
		{"vultr test", "POST", vultr + "/test", "", "vultr.test", 200, flat("success", "results")},
		{"management account", "GET", vultr + "/management/account", "", "management", 503, vultrErr("Vultr Management API is not available. Set VULTR_API_KEY or VULTR_MANAGEMENT_API_KEY.")},
		{"management databases", "GET", vultr + "/management/databases", "", "management", 503, vultrErr("Vultr Management API is not available")},
		{"management database", "GET", vultr + "/management/databases/db1", "", "management", 503, vultrErr("Vultr Management API is not available")},
		{"management database health", "GET", vultr + "/management/databases/db1/health", "", "management", 503, vultrErr("Vultr Management API is not available")},
		{"management valkey", "GET", vultr + "/management/valkey", "", "management", 503, vultrErr("Vultr Management API is not available")},
		{"management instances", "GET", vultr + "/management/instances", "", "management", 503, vultrErr("Vultr Management API is not available")},
		{"management summary", "GET", vultr + "/management/summary", "", "management", 503, vultrErr("Vultr Management API is not available")},

		{"store memory", "POST", raindrop + "/store-memory", `{"text":"Prefers linen in summer"}`, "memory.store", 200, flat("success", "source", "entry", "results")},
		{"store memory without text", "POST", raindrop + "/store-memory", `{}`, "memory.store", 400, invalid("text")},
		{"batch store", "POST", raindrop + "/batch-store-memory", `{"memories":[{"text":"a"},{"text":"b","type":"episodic"}]}`, "memory.batch", 200, flat("success", "results")},
		{"batch store empty", "POST", raindrop + "/batch-store-memory", `{"memories":[]}`, "memory.batch", 400, invalid("memories")},
		{"search memory", "POST", raindrop + "/search-memory", `{"q":"linen"}`, "memory.search", 200, flat("success", "source", "results")},
		{"delete memory", "POST", raindrop + "/delete-memory", `{"id":"nope"}`, "memory.delete", 200, flat("success", "source", "deleted")},
		{"update unknown memory", "POST", raindrop + "/update-memory", `{"id":"nope","text":"x"}`, "memory.update", 404, flat("success", "message")},
		{"memory stats", "GET", raindrop + "/memory-stats", "", "memory.stats", 200, flat("success", "stats")},
		{"export memory", "GET", raindrop + "/export-memory?userId=demo_user", "", "memory.export", 200, wrapped("exportedAt", "userId", "count", "memories")},
		{"clear memory", "POST", raindrop + "/clear-memory", `{}`, "memory.clear", 200, flat("success", "deleted", "total")},

		{"app health", "GET", "/health", "", "app.health", 200, wrapped("status", "services", "timestamp")},
		{"app index", "GET", "/", "", "app.index", 200, wrapped("name", "version", "status", "endpoints")},
		{"preflight", "OPTIONS", vultr + "/postgres/products", "", "preflight", 204, noBody},
		{"unknown route", "GET", "/api/vultr/postgres/nothing", "", "notfound", 404, vultrErr("Route not found")},
		{"wrong method", "PUT", vultr + "/postgres/products", "", "notfound", 404, vultrErr("Route not found")},
		{"echo", "POST", "/__origin/echo", "hi", "echo", 200, func(t *testing.T, resp *fasthttp.Response) {
			if string(resp.Body()) != "hi" {
				t.Fatalf("echo body = %q", resp.Body())
			}
		}},
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := app.Stats().Routes[tc.route]
			body := strings.ReplaceAll(tc.body, "{order}", seededOrder)
			resp := call(t, app, tc.method, tc.path, body, "Origin", "http://localhost:5173")
			if resp.StatusCode() != tc.status {
				t.Fatalf("%s %s = %d, want %d: %s", tc.method, tc.path, resp.StatusCode(), tc.status, resp.Body())
			}
			tc.check(t, resp)
			if got := app.Stats().Routes[tc.route]; got != before+1 {
				t.Errorf("counter %q went %d -> %d, want +1", tc.route, before, got)
			}
			if tc.route != "echo" {
				if got := header(resp, "X-Frame-Options"); got != "SAMEORIGIN" {
					t.Errorf("X-Frame-Options = %q", got)
				}
				if got := header(resp, "Access-Control-Allow-Origin"); got != "http://localhost:5173" {
					t.Errorf("Access-Control-Allow-Origin = %q", got)
				}
			}
			seen[tc.route] = true
		})
	}
	for _, name := range app.Routes() {
		if !seen[name] {
			t.Errorf("route %q has no case", name)
		}
	}
}

// TestRouteMatching checks Express's matching rules: case-insensitive,
// optional trailing slash, parameters decoded, HEAD on GET routes.
func TestRouteMatching(t *testing.T) {
	app := New(Config{Now: fixedClock})
	cases := []struct {
		name, method, path string
		route              string
		status             int
	}{
		{"trailing slash", "GET", vultr + "/postgres/products/", "products", 200},
		{"upper case", "GET", "/API/Vultr/Postgres/Products", "products", 200},
		{"two trailing slashes", "GET", vultr + "/postgres/products//", "notfound", 404},
		{"encoded literal", "GET", vultr + "/postgres/product%73", "notfound", 404},
		{"encoded parameter", "GET", vultr + "/postgres/users/user%5F1/profile", "profile.get", 200},
		{"bad escape in parameter", "GET", vultr + "/postgres/users/%E0%A4%A/profile", "profile.get", 400},
		{"parameter with slash", "GET", vultr + "/valkey/cache/a/b", "notfound", 404},
		{"empty parameter", "GET", vultr + "/postgres/users//profile", "notfound", 404},
		{"GET route, POST", "POST", vultr + "/postgres/products", "notfound", 404},
		{"POST route, GET", "GET", vultr + "/postgres/orders", "notfound", 404},
		{"HEAD on GET route", "HEAD", vultr + "/postgres/products", "products", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := app.Stats().Routes[tc.route]
			resp := call(t, app, tc.method, tc.path, "")
			if resp.StatusCode() != tc.status {
				t.Fatalf("status = %d, want %d: %s", resp.StatusCode(), tc.status, resp.Body())
			}
			if got := app.Stats().Routes[tc.route]; got != before+1 {
				t.Errorf("counted under %q? %d -> %d", tc.route, before, got)
			}
		})
	}
}

func TestPreflight(t *testing.T) {
	s := serve(t, Config{})
	resp := s.raw(t, rawRequest("OPTIONS", vultr+"/valkey/cache/x", "", "Origin", "https://app.example", "Access-Control-Request-Method", "POST"), false)
	want := map[string]string{
		"Access-Control-Allow-Origin":      "https://app.example",
		"Access-Control-Allow-Credentials": "true",
		"Access-Control-Allow-Methods":     "GET,POST,PUT,DELETE,OPTIONS",
		"Access-Control-Allow-Headers":     "Content-Type,Authorization",
		"Vary":                             "Origin",
		"X-Content-Type-Options":           "nosniff",
	}
	if resp.StatusCode() != 204 {
		t.Fatalf("status = %d", resp.StatusCode())
	}
	for k, v := range want {
		if got := header(resp, k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	for line := range strings.SplitSeq(strings.ToLower(string(resp.Header.Header())), "\r\n") {
		if strings.HasPrefix(line, "content-type:") || strings.HasPrefix(line, "server:") {
			t.Errorf("preflight carries %q", line)
		}
	}
}
