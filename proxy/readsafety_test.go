package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/configs"
)

// safetyConfig: one cache route keyed on a header and one on the body,
// in front of upstream.
func safetyConfig(t *testing.T, upstream string) *configs.Config {
	t.Helper()
	src := fmt.Sprintf(`
upstream: {url: "http://%s", timeout: 2s}
routes:
  - name: tenant
    match: {method: GET, path: /t}
    cache: {ttl: 60s, stale_while_revalidate: 30s, key: {header: [X-Tenant], query: [v]}}
  - name: search
    match: {method: POST, path: /s}
    cache: {ttl: 60s, key: {body: [userId=demo_user, q=, topK=20]}}
`, upstream)
	cfg, err := configs.Parse("safety.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// A second Cache-Control line saying private must keep the answer out of
// the shared cache (RFC 9110 §5.3: the lines are one list).
func TestCacheControlLinesAreOneList(t *testing.T) {
	addr, asked := startRawOrigin(t, "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nCache-Control: private\r\n"+
		"Content-Length: 7\r\n\r\nalice's", false)
	_, paddr, _ := startProxy(t, safetyConfig(t, addr))
	c := rawClient(paddr)
	for range 2 {
		fasthttp.ReleaseResponse(get(t, c, "GET", "/t?v=cc", "X-Tenant", "a"))
	}
	if n := asked.Load(); n != 2 {
		t.Errorf("a Cache-Control: private answer was stored and shared: app asked %d times for 2 requests", n)
	}
}

// Two X-Tenant lines: the app (Node) reads "a, b"; the key holds only "a".
func TestRepeatedKeyedHeaderBypasses(t *testing.T) {
	addr, _ := startRawOriginFunc(t, func(req *fasthttp.Request) (string, bool) {
		var vals []string
		for _, v := range req.Header.PeekAll("X-Tenant") {
			vals = append(vals, string(v))
		}
		body := strings.Join(vals, ", ") // what Node hands the app
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: %d\r\n\r\n%s", len(body), body), false
	})
	_, paddr, _ := startProxy(t, safetyConfig(t, addr))
	c := rawClient(paddr)
	fasthttp.ReleaseResponse(get(t, c, "GET", "/t?v=dup", "X-Tenant", "a", "X-Tenant", "b")) // attacker
	resp := get(t, c, "GET", "/t?v=dup", "X-Tenant", "a")                                    // victim
	defer fasthttp.ReleaseResponse(resp)
	if string(resp.Body()) != "a" {
		t.Errorf("tenant a got %q (%s): the answer built for X-Tenant \"a, b\"", resp.Body(), resp.Header.Peek("X-Cache"))
	}
}

// One stale key, answers without Vary: clients differing only in Origin
// must start one background refresh between them, not one each.
func TestOneRefreshWhateverTheOrigin(t *testing.T) {
	addr, asked := startRawOriginFunc(t, func(req *fasthttp.Request) (string, bool) {
		time.Sleep(300 * time.Millisecond)
		return "HTTP/1.1 200 OK\r\nCache-Control: max-age=1\r\nContent-Length: 2\r\n\r\n{}", false
	})
	_, paddr, _ := startProxy(t, safetyConfig(t, addr))
	c := rawClient(paddr)
	c.MaxConns = 10
	fasthttp.ReleaseResponse(get(t, c, "GET", "/t?v=o", "X-Tenant", "a"))
	time.Sleep(1100 * time.Millisecond) // stale, inside stale_while_revalidate
	for i := range 5 {
		resp := get(t, c, "GET", "/t?v=o", "X-Tenant", "a", "Origin", fmt.Sprintf("https://o%d.example", i))
		if x := string(resp.Header.Peek("X-Cache")); x != "STALE" {
			t.Fatalf("X-Cache %q", x)
		}
		fasthttp.ReleaseResponse(resp)
	}
	time.Sleep(400 * time.Millisecond)
	if n := asked.Load() - 1; n != 1 {
		t.Errorf("%d background refreshes of one key for 5 stale hits; want exactly 1", n)
	}
}

// Every answer on a cache route carries Cache-Status and X-Cache.
func TestCacheStatusOnBadBody(t *testing.T) {
	addr, _ := startRawOrigin(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", false)
	_, paddr, _ := startProxy(t, safetyConfig(t, addr))
	c := rawClient(paddr)
	resp := get(t, c, "POST", "/s", "Content-Type", "application/json", "body", `{"q":`)
	defer fasthttp.ReleaseResponse(resp)
	if len(resp.Header.Peek("Cache-Status")) == 0 || len(resp.Header.Peek("X-Cache")) == 0 {
		t.Errorf("%d answer on a cache route without Cache-Status/X-Cache:\n%s", resp.StatusCode(), resp.Header.Header())
	}
}

// Age on a hit is the answer's whole age (RFC 9111 §4.2.3): the app's Age
// plus Sheepdog's own holding, or a browser behind keeps it too long.
func TestAgeOnHitCountsUpstreamAge(t *testing.T) {
	addr, _ := startRawOrigin(t, "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nAge: 50\r\nContent-Length: 2\r\n\r\n{}", false)
	_, paddr, _ := startProxy(t, safetyConfig(t, addr))
	c := rawClient(paddr)
	fasthttp.ReleaseResponse(get(t, c, "GET", "/t?v=age", "X-Tenant", "a"))
	resp := get(t, c, "GET", "/t?v=age", "X-Tenant", "a")
	defer fasthttp.ReleaseResponse(resp)
	if age, _ := strconv.Atoi(string(resp.Header.Peek("Age"))); age < 50 {
		t.Errorf("hit with Cache-Control %q has Age %d; want at least 50", resp.Header.Peek("Cache-Control"), age)
	}
}

// TestPurgeURLOfHeaderKeyedRoute: on a route keyed on a header, a purge
// by URL names the header's value; one that names none is refused (it
// would purge the entry of a request without the header, not the one
// meant), never answered {"purged":true} for nothing.
func TestPurgeURLOfHeaderKeyedRoute(t *testing.T) {
	addr, asked := startRawOrigin(t, "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 2\r\n\r\n{}", false)
	cfg := safetyConfig(t, addr)
	cfg.Admin.Token = "tok"
	_, paddr, admin := startProxy(t, cfg)
	c, ac := rawClient(paddr), rawClient(admin)
	fasthttp.ReleaseResponse(get(t, c, "GET", "/t?v=p", "X-Tenant", "acme"))
	resp := get(t, ac, "POST", "/purge", "Authorization", "Bearer tok", "body", `{"url":"/t?v=p"}`)
	if resp.StatusCode() != 400 || !strings.Contains(string(resp.Body()), "headers") {
		t.Errorf("purge by URL without headers: %d %s, want 400 asking for them", resp.StatusCode(), resp.Body())
	}
	fasthttp.ReleaseResponse(resp)
	resp = get(t, ac, "POST", "/purge", "Authorization", "Bearer tok", "body", `{"url":"/t?v=p","headers":{"X-Tenant":"acme"}}`)
	if resp.StatusCode() != 200 {
		t.Errorf("purge by URL and header: %d %s", resp.StatusCode(), resp.Body())
	}
	fasthttp.ReleaseResponse(resp)
	fasthttp.ReleaseResponse(get(t, c, "GET", "/t?v=p", "X-Tenant", "acme"))
	if asked.Load() != 2 {
		t.Errorf("purged, yet the entry is still served (app asked %d times)", asked.Load())
	}
}

// Vary: Origin and two Origin lines: the variant is filed under the first
// Origin, but the app (Node joins the lines) reflected both.
func TestRepeatedVaryHeaderBypasses(t *testing.T) {
	addr, _ := startRawOriginFunc(t, func(req *fasthttp.Request) (string, bool) {
		var o []string
		for _, v := range req.Header.PeekAll("Origin") {
			o = append(o, string(v))
		}
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nVary: Origin\r\nAccess-Control-Allow-Origin: %s\r\n"+
			"Content-Length: 2\r\n\r\n{}", strings.Join(o, ", ")), false
	})
	_, paddr, _ := startProxy(t, safetyConfig(t, addr))
	c := rawClient(paddr)
	fasthttp.ReleaseResponse(get(t, c, "GET", "/t?v=vo", "X-Tenant", "a", "Origin", "https://app.example", "Origin", "https://evil.example"))
	resp := get(t, c, "GET", "/t?v=vo", "X-Tenant", "a", "Origin", "https://app.example")
	defer fasthttp.ReleaseResponse(resp)
	if got := string(resp.Header.Peek("Access-Control-Allow-Origin")); got != "https://app.example" {
		t.Errorf("browser at app.example got ACAO %q (%s)", got, resp.Header.Peek("X-Cache"))
	}
}

// expressQuery reads a query as Express does: the first 1000 '&' parts.
func expressQuery(raw []byte) map[string]string {
	q := map[string]string{}
	for i, part := range bytes.Split(raw, []byte("&")) {
		if i == expressParameterLimit {
			break
		}
		k, v, _ := bytes.Cut(part, []byte("="))
		if len(k) > 0 {
			q[string(k)] = string(v)
		}
	}
	return q
}

// TestQueryPastExpressLimitBypasses: a keyed parameter after 1000 others
// is one the app never reads; keyed on it, the app's answer for the
// default would be stored as Alice's. Such a query bypasses the cache.
func TestQueryPastExpressLimitBypasses(t *testing.T) {
	addr, _ := startRawOriginFunc(t, func(req *fasthttp.Request) (string, bool) {
		user := expressQuery(req.URI().QueryString())["userId"]
		if user == "" {
			user = "demo_user"
		}
		body := `{"userId":"` + user + `"}`
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: %d\r\n\r\n%s", len(body), body), false
	})
	cfg, err := configs.Parse("safety.yaml", []byte(fmt.Sprintf(`
upstream: {url: "http://%s", timeout: 2s}
routes:
  - {name: stats, match: {method: GET, path: /stats}, cache: {ttl: 60s, key: {query: [userId=demo_user]}}}
`, addr)))
	if err != nil {
		t.Fatal(err)
	}
	_, paddr, _ := startProxy(t, cfg)
	c := rawClient(paddr)
	first := get(t, c, "GET", "/stats?"+strings.Repeat("x&", 1000)+"userId=alice")
	if x := string(first.Header.Peek("X-Cache")); x != "BYPASS" {
		t.Errorf("a query of 1001 parts: X-Cache %q, want BYPASS", x)
	}
	fasthttp.ReleaseResponse(first)
	resp := get(t, c, "GET", "/stats?userId=alice")
	defer fasthttp.ReleaseResponse(resp)
	if string(resp.Body()) != `{"userId":"alice"}` {
		t.Errorf("alice was answered %s (%s)", resp.Body(), resp.Header.Peek("Cache-Status"))
	}
}

// TestBodyAppDoesNotReadBypasses: express.json() reads a body sent as
// application/json only, and inflates an encoded one. Keyed on a body
// the app did not read, its answer for the defaults would be stored as
// Alice's. Such requests bypass the cache.
func TestBodyAppDoesNotReadBypasses(t *testing.T) {
	addr, _ := startRawOriginFunc(t, func(req *fasthttp.Request) (string, bool) {
		user := "demo_user"
		if media, _, _ := mime.ParseMediaType(string(req.Header.ContentType())); media == "application/json" && len(req.Header.Peek("Content-Encoding")) == 0 {
			var b struct{ UserID string }
			if json.Unmarshal(req.Body(), &b) == nil && b.UserID != "" {
				user = b.UserID
			}
		}
		body := `{"memories of":"` + user + `"}`
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: %d\r\n\r\n%s", len(body), body), false
	})
	_, paddr, _ := startProxy(t, safetyConfig(t, addr))
	c := rawClient(paddr)
	const alice = `{"userId":"alice","q":"shoes"}`
	for _, headers := range [][]string{
		{"Content-Type", "text/plain"},
		{"Content-Type", ""},
		{"Content-Type", "application/json", "Content-Encoding", "gzip"},
		{"Content-Type", "application/vnd.api+json"},
	} {
		resp := get(t, c, "POST", "/s", append(headers, "body", alice)...)
		if x := string(resp.Header.Peek("X-Cache")); x != "BYPASS" {
			t.Errorf("%q: X-Cache %q, want BYPASS", headers, x)
		}
		fasthttp.ReleaseResponse(resp)
	}
	for _, ct := range []string{"application/json", "Application/JSON; charset=utf-8"} {
		resp := get(t, c, "POST", "/s", "Content-Type", ct, "body", alice)
		if string(resp.Body()) != `{"memories of":"alice"}` {
			t.Errorf("%s: alice's search answered %s (%s)", ct, resp.Body(), resp.Header.Peek("Cache-Status"))
		}
		fasthttp.ReleaseResponse(resp)
	}
}

// TestParseCacheControl: directives from every line; delta-seconds past
// 2^31 count as 2^31 (RFC 9111 §1.2.2), never wrapping around.
func TestParseCacheControl(t *testing.T) {
	cc := parseCacheControl([][]byte{[]byte("max-age=60"), []byte("private, s-maxage=99999999999999999999")})
	if !cc.private || cc.maxAge != time.Minute || cc.sMaxAge != (1<<31)*time.Second {
		t.Errorf("%+v", cc)
	}
	if cc := parseCacheControl([][]byte{[]byte("max-age=18446744074, s-maxage=-1, no-store")}); cc.maxAge != (1<<31)*time.Second || cc.sMaxAge != 0 || !cc.noStore {
		t.Errorf("%+v", cc)
	}
	// A directive given twice: the first counts (RFC 9111 §4.2.1), not the
	// last, which kept max-age=1 fresh for an hour.
	if cc := parseCacheControl([][]byte{[]byte("max-age=1"), []byte("max-age=3600")}); cc.maxAge != time.Second {
		t.Errorf("max-age=1 then 3600: %v, want 1s", cc.maxAge)
	}
	// A comma inside a quoted argument splits nothing (RFC 9110 §5.6.4).
	if cc := parseCacheControl([][]byte{[]byte(`max-age=1, ext="a, max-age=3600", x="q\", no-store"`)}); cc.maxAge != time.Second || cc.noStore {
		t.Errorf("quoted commas: max-age %v, no-store %v; want 1s, false", cc.maxAge, cc.noStore)
	}
}

// TestBodyKeyTypes: body values the app reads differently are different
// keys (null and "null", 20 and "20", an object and a string holding
// it); a value and the default the app would apply for it share one.
func TestBodyKeyTypes(t *testing.T) {
	addr, _ := startRawOrigin(t, "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 2\r\n\r\n{}", false)
	_, paddr, _ := startProxy(t, safetyConfig(t, addr))
	c := rawClient(paddr)
	xcache := func(body string) string {
		resp := get(t, c, "POST", "/s", "body", body)
		defer fasthttp.ReleaseResponse(resp)
		return string(resp.Header.Peek("X-Cache"))
	}
	for _, pair := range [][2]string{
		{`{"userId":null}`, `{"userId":"null"}`},
		{`{"topK":21}`, `{"topK":"21"}`},
		{`{"q":{"a":1}}`, `{"q":"{\"a\":1}"}`},
		{`{"q":true}`, `{"q":"true"}`},
	} {
		xcache(pair[0])
		if x := xcache(pair[1]); x != "MISS" {
			t.Errorf("%s after %s: X-Cache %q, want MISS", pair[1], pair[0], x)
		}
	}
	for _, pair := range [][2]string{
		{`{}`, `{"userId":"demo_user","topK":20,"q":""}`},
	} {
		xcache(pair[0])
		if x := xcache(pair[1]); x != "HIT" {
			t.Errorf("%s after %s: X-Cache %q, want HIT (the app's defaults)", pair[1], pair[0], x)
		}
	}
}

// TestExpiresCounts: without max-age, Expires bounds freshness (RFC 9111
// §4.2.1): past, or not a date, is already stale and not stored; ahead
// of the answer's Date, fresh until then (capped by the route's ttl).
func TestExpiresCounts(t *testing.T) {
	date := time.Now().UTC()
	for _, tc := range []struct {
		expires string
		hit     bool
	}{
		{"Thu, 01 Jan 1970 00:00:00 GMT", false},
		{"0", false},
		{date.Add(-time.Hour).Format(http.TimeFormat), false},
		{date.Add(time.Hour).Format(http.TimeFormat), true},
		{date.Add(time.Hour).Format(time.RFC850), true}, // the two older forms, read as well
		{date.Add(time.Hour).Format(time.ANSIC), true},
	} {
		addr, _ := startRawOrigin(t, "HTTP/1.1 200 OK\r\nDate: "+date.Format(http.TimeFormat)+"\r\nExpires: "+tc.expires+"\r\nContent-Length: 2\r\n\r\n{}", false)
		_, paddr, _ := startProxy(t, safetyConfig(t, addr))
		c := rawClient(paddr)
		fasthttp.ReleaseResponse(get(t, c, "GET", "/t?v=e", "X-Tenant", "a"))
		resp := get(t, c, "GET", "/t?v=e", "X-Tenant", "a")
		if hit := string(resp.Header.Peek("X-Cache")) == "HIT"; hit != tc.hit {
			t.Errorf("Expires %q: X-Cache %s, want a hit %v", tc.expires, resp.Header.Peek("X-Cache"), tc.hit)
		}
		fasthttp.ReleaseResponse(resp)
	}
}

// expressKeyConfig: the cache routes of configs/sheepdog.yaml that key the
// query or the body, copied as they are there.
func expressKeyConfig(t *testing.T, upstream string) *configs.Config {
	t.Helper()
	cfg, err := configs.Parse("express-key.yaml", []byte(fmt.Sprintf(`
upstream: {url: "http://%s", timeout: 2s}
routes:
  - name: products
    match: {method: GET, path: /api/vultr/postgres/products}
    cache:
      ttl: 60s
      stale_while_revalidate: 30s
      stale_if_error: 10m
      key: {query: [category, brand, minPrice, maxPrice, limit]}
      tags: [products, postgres]
  - name: user-orders
    match: {method: GET, path: "/api/vultr/postgres/users/{userId}/orders"}
    cache:
      ttl: 30s
      key: {query: [limit=50]}
      tags: ["orders:{path.userId}", postgres]
  - name: returns
    match: {method: GET, path: /api/vultr/postgres/returns}
    cache:
      ttl: 30s
      key: {query: [userId, productId]}
      tags: ["returns:{query.userId=any}:{query.productId=any}", postgres]
  - name: search-memory
    match: {method: POST, path: /api/raindrop/search-memory}
    cache:
      ttl: 2m
      key: {body: [userId=demo_user, q=, topK=20]}
      tags: ["memory:{body.userId=demo_user}", memory]
  - name: export-memory
    match: {method: GET, path: /api/raindrop/export-memory}
    cache:
      ttl: 1m
      key: {query: [userId=demo_user]}
      tags: ["memory:{query.userId=demo_user}", memory]
  - name: everything-else
    match: {path_prefix: /api/}
    pass: {}
`, upstream)))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// rawDo sends one raw request and reads the answer.
func rawDo(t *testing.T, addr, raw string) *fasthttp.Response {
	t.Helper()
	c := dialRaw(t, addr)
	fmt.Fprint(c, raw)
	resp := fasthttp.AcquireResponse()
	if err := resp.Read(bufio.NewReader(c)); err != nil {
		t.Fatal(err)
	}
	return resp
}

func rawGet(target string) string {
	return "GET " + target + " HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
}

func rawPostJSON(target, body string) string {
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", target, len(body), body)
}

// TestExpressReadingsNeverShareAKey: the app (a stand-in) answers with the
// request it was sent, target and body. Each pair is two requests that
// Express 4 (qs 6.16, JSON.parse) reads differently (its readings in the
// comments, from an Express echo app, as a review ran it); the second must
// get the app's answer to itself, never the first's. Before, each second
// request was a HIT on the first's entry: "[userId]=alice" stored Alice's
// memory export as demo_user's.
func TestExpressReadingsNeverShareAKey(t *testing.T) {
	for _, tc := range []struct{ name, first, second string }{
		// Express: query.userId "alice"  /  query.userId undefined (app: demo_user)
		{"leading-bracket key export-memory", rawGet("/api/raindrop/export-memory?[userId]=alice"), rawGet("/api/raindrop/export-memory")},
		{"encoded leading-bracket key", rawGet("/api/raindrop/export-memory?%5BuserId%5D=alice"), rawGet("/api/raindrop/export-memory?userId=demo_user")},
		// Express: query.category "Shoes"  /  no category
		{"leading-bracket key products", rawGet("/api/vultr/postgres/products?[category]=Shoes"), rawGet("/api/vultr/postgres/products")},
		// Express: query.limit "5"  /  no limit (app: 50)
		{"leading-bracket key orders", rawGet("/api/vultr/postgres/users/u1/orders?[limit]=5"), rawGet("/api/vultr/postgres/users/u1/orders")},
		// Express: userId "alice", productId "p1"  /  neither
		{"leading-bracket key returns", rawGet("/api/vultr/postgres/returns?[userId]=alice&[productId]=p1"), rawGet("/api/vultr/postgres/returns")},
		// Express: category ["Boots","Shoes"]  /  category "Boots"
		{"bracket key merges into array", rawGet("/api/vultr/postgres/products?category=Boots&[category]=Shoes"), rawGet("/api/vultr/postgres/products?category=Boots")},
		// Express: no category (key "category=a]")  /  category "a]=b"
		{"]= splits the key", rawGet("/api/vultr/postgres/products?category=a%5D=b"), rawGet("/api/vultr/postgres/products?category=a%5D%3Db")},
		// Express: "%31%30%30%" (undecodable, kept raw)  /  "100%"
		{"undecodable value kept raw", rawGet("/api/vultr/postgres/products?category=%31%30%30%"), rawGet("/api/vultr/postgres/products?category=100%25")},
		// Express: "%E2%82"  /  "%e2%82"
		{"invalid UTF-8 escapes kept raw", rawGet("/api/vultr/postgres/products?category=%E2%82"), rawGet("/api/vultr/postgres/products?category=%e2%82")},
		// Express (JSON.parse): userId "\ud800"  /  "\ufffd"
		{"lone surrogate in body", rawPostJSON("/api/raindrop/search-memory", `{"userId":"\ud800","q":"x"}`), rawPostJSON("/api/raindrop/search-memory", `{"userId":"\ufffd","q":"x"}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, _ := startRawOriginFunc(t, func(req *fasthttp.Request) (string, bool) {
				body := fmt.Sprintf("%s %s", req.RequestURI(), req.Body())
				return fmt.Sprintf("HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: %d\r\n\r\n%s", len(body), body), false
			})
			_, paddr, _ := startProxy(t, expressKeyConfig(t, addr))
			r1 := rawDo(t, paddr, tc.first)
			want1 := string(r1.Body())
			fasthttp.ReleaseResponse(r1)
			r2 := rawDo(t, paddr, tc.second)
			defer fasthttp.ReleaseResponse(r2)
			if string(r2.Body()) == want1 {
				t.Errorf("second request %q answered %q, X-Cache %s, Cache-Status %q: the first request's answer",
					firstLine(tc.second), r2.Body(), r2.Header.Peek("X-Cache"), r2.Header.Peek("Cache-Status"))
			}
		})
	}
}

func firstLine(raw string) string {
	for i := range raw {
		if raw[i] == '\r' {
			return raw[:i]
		}
	}
	return raw
}

// echoOrigin answers with what the app would read of the request: its
// X-Tenant lines joined as Node joins them, its lang cookie and its
// Content-Type, cacheable for a minute.
func echoOrigin(t *testing.T) string {
	t.Helper()
	addr, _ := startRawOriginFunc(t, func(req *fasthttp.Request) (string, bool) {
		var tenants []string
		for _, v := range req.Header.PeekAll("X-Tenant") {
			tenants = append(tenants, string(v))
		}
		body := fmt.Sprintf("tenant=%q lang=%q type=%q", strings.Join(tenants, ", "), req.Header.Cookie("lang"), req.Header.ContentType())
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nCache-Control: public, max-age=60\r\nContent-Length: %d\r\n\r\n%s", len(body), body), false
	})
	return addr
}

func echoConfig(t *testing.T, origin string) *configs.Config {
	t.Helper()
	cfg, err := configs.Parse("echo.yaml", []byte(fmt.Sprintf(`
upstream: {url: "http://%s", timeout: 2s}
routes:
  - {name: catalog, match: {method: GET, path: /catalog}, cache: {ttl: 60s, key: {header: [X-Tenant]}}}
  - {name: prefs, match: {method: GET, path: /prefs}, cache: {ttl: 60s, key: {cookie: [lang]}}}
  - {name: search, match: {method: POST, path: /search}, cache: {ttl: 60s, key: {header: [X-Tenant], body: [q=]}}}
`, origin)))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestConnectionNamingKeyedInput: a client may name in Connection a header
// the key holds (a keyed header, Cookie, Content-Type): Sheepdog forwards
// no header Connection names (RFC 9110 §7.6.1), so the app answers as if
// it were not sent. Such a request goes to the app uncached. Before, the
// answer made without the value was stored under the key of the value,
// and the next client who sent it was served that answer.
func TestConnectionNamingKeyedInput(t *testing.T) {
	_, paddr, _ := startProxy(t, echoConfig(t, echoOrigin(t)))
	const body = `{"q":"coats"}`
	post := func(extra string) string {
		return fmt.Sprintf("POST /search HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\nX-Tenant: acme\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s", extra, len(body), body)
	}
	for _, tc := range []struct{ name, attack, victim, want string }{
		{"keyed header",
			"GET /catalog HTTP/1.1\r\nHost: a.test\r\nX-Tenant: acme\r\nConnection: X-Tenant, close\r\n\r\n",
			"GET /catalog HTTP/1.1\r\nHost: a.test\r\nX-Tenant: acme\r\nConnection: close\r\n\r\n", `tenant="acme"`},
		{"keyed cookie",
			"GET /prefs HTTP/1.1\r\nHost: a.test\r\nCookie: lang=fr\r\nConnection: Cookie, close\r\n\r\n",
			"GET /prefs HTTP/1.1\r\nHost: a.test\r\nCookie: lang=fr\r\nConnection: close\r\n\r\n", `lang="fr"`},
		{"Content-Type of a keyed body", post("Connection: Content-Type\r\n"), post(""), `type="application/json"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fasthttp.ReleaseResponse(rawDo(t, paddr, tc.attack))
			r := rawDo(t, paddr, tc.victim)
			defer fasthttp.ReleaseResponse(r)
			if !strings.Contains(string(r.Body()), tc.want) {
				t.Errorf("the client who sent %s was answered %q (X-Cache %s): the answer made without it", tc.want, r.Body(), r.Header.Peek("X-Cache"))
			}
		})
	}
}

// TestTrailersNeverBecomeHeaders: a chunked request's trailer fields are
// not sent to the app as header fields when Sheepdog reads the body whole
// (RFC 9110 §6.5.1), past the checks made on the header section. Before,
// "X-Tenant: evil" in a trailer reached the app beside the header's
// "X-Tenant: acme" (Node read "acme, evil"), and that answer was stored
// under acme's key.
func TestTrailersNeverBecomeHeaders(t *testing.T) {
	_, paddr, _ := startProxy(t, echoConfig(t, echoOrigin(t)))
	const body = `{"q":"coats"}`
	attack := fmt.Sprintf("POST /search HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\nContent-Type: application/json\r\nX-Tenant: acme\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\nX-Tenant: evil\r\n\r\n", len(body), body)
	victim := fmt.Sprintf("POST /search HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\nContent-Type: application/json\r\nX-Tenant: acme\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	a := rawDo(t, paddr, attack)
	if strings.Contains(string(a.Body()), "evil") {
		t.Errorf("the trailer reached the app as a header: %q", a.Body())
	}
	fasthttp.ReleaseResponse(a)
	v := rawDo(t, paddr, victim)
	defer fasthttp.ReleaseResponse(v)
	if want := `tenant="acme"`; !strings.Contains(string(v.Body()), want) {
		t.Errorf("acme's request was answered %q (X-Cache %s)", v.Body(), v.Header.Peek("X-Cache"))
	}
}

// TestInvalidationReadsTheBodyAsTheAppMay: a write whose invalidation
// names body values, sent with a body the app does not read as JSON (a
// form, which Express's urlencoded parser reads; text/plain, which it
// ignores, so its defaults apply), drops the tags of each reading. Before,
// only the JSON reading counted: a form's userId=alice dropped
// memory:demo_user, and a text/plain {"userId":"alice"} that cleared
// demo_user's memories dropped memory:alice; the cached stats stayed.
func TestInvalidationReadsTheBodyAsTheAppMay(t *testing.T) {
	var mu sync.Mutex
	version := map[string]int{}
	addr, _ := startRawOriginFunc(t, func(req *fasthttp.Request) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		if req.Header.IsPost() {
			user := "demo_user" // text/plain, or none: req.body stays empty
			if media, _, _ := mime.ParseMediaType(string(req.Header.ContentType())); media == "application/x-www-form-urlencoded" {
				var form fasthttp.Args
				form.ParseBytes(req.Body())
				user = string(form.Peek("userId"))
			}
			version[user]++
			return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
		}
		user := string(req.URI().QueryArgs().Peek("userId"))
		if user == "" {
			user = "demo_user"
		}
		body := fmt.Sprintf("%s v%d", user, version[user])
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: %d\r\n\r\n%s", len(body), body), false
	})
	cfg, err := configs.Parse("inv.yaml", []byte(fmt.Sprintf(`
upstream: {url: "http://%s", timeout: 2s}
routes:
  - {name: stats, match: {method: GET, path: /stats}, cache: {ttl: 60s, key: {query: [userId=demo_user]}, tags: ["memory:{query.userId||demo_user}"]}}
  - {name: clear, match: {method: POST, path: /clear}, pass: {}, invalidates: ["memory:{body.userId=demo_user}"]}
`, addr)))
	if err != nil {
		t.Fatal(err)
	}
	_, paddr, _ := startProxy(t, cfg)
	stats := func(query string) string {
		r := rawDo(t, paddr, getWith("/stats"+query))
		defer fasthttp.ReleaseResponse(r)
		return string(r.Body())
	}
	write := func(ctype, body string) {
		conn := "close"
		if ctype == "application/json" {
			conn = "Content-Type, close" // the app is sent no Content-Type
		}
		r := rawDo(t, paddr, fmt.Sprintf("POST /clear HTTP/1.1\r\nHost: a.test\r\nConnection: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s", conn, ctype, len(body), body))
		if r.StatusCode() != 200 {
			t.Fatalf("write: %d %s", r.StatusCode(), r.Body())
		}
		fasthttp.ReleaseResponse(r)
	}
	for _, tc := range []struct{ query, ctype, body, want string }{
		{"?userId=alice", "application/x-www-form-urlencoded", "userId=alice", "alice v1"},
		{"", "text/plain", `{"userId":"alice"}`, "demo_user v1"},
		{"?userId=carol", "Application/X-WWW-Form-Urlencoded", "userId=carol", "carol v1"}, // media types ignore case
		{"", "application/json", `{"userId":"bob"}`, "demo_user v2"},                       // Connection: Content-Type
	} {
		stats(tc.query)
		stats(tc.query) // cached
		write(tc.ctype, tc.body)
		if got := stats(tc.query); got != tc.want {
			t.Errorf("after a %s write of %s: stats%s answered %q, want %q", tc.ctype, tc.body, tc.query, got, tc.want)
		}
	}
}
