package proxy

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/style-shepherd/sheepdog/configs"
	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

// recordSpans returns an option that traces every request into an
// in-memory exporter, and the exporter.
func recordSpans(t *testing.T) (Option, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() { tp.Shutdown(t.Context()) })
	return WithTracerProvider(tp), exp
}

func attr(s tracetest.SpanStub, key attribute.Key) attribute.Value {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// spansNamed returns the ended spans of that name.
func spansNamed(exp *tracetest.InMemoryExporter, name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// TestTraceHerd: a herd of 100 on one cold key makes one upstream client
// span and 100 coalesce spans, 99 of them waiters; the leader's says 99
// waited. Each request's spans hang under its own server span.
func TestTraceHerd(t *testing.T) {
	app, origin := startOrigin(t)
	app.SetLatency("products", 200*time.Millisecond)
	opt, exp := recordSpans(t)
	_, addr, _ := startProxy(t, cacheConfig(t, origin, ""), opt)
	c := rawClient(addr)
	c.MaxConns = 200
	const n = 100
	burst(n, func(int) {
		fasthttp.ReleaseResponse(get(t, c, "GET", "/api/vultr/postgres/products?category=tops"))
	})

	servers := map[trace.SpanID]bool{}
	for _, s := range exp.GetSpans() {
		if s.SpanKind == trace.SpanKindServer {
			servers[s.SpanContext.SpanID()] = true
			if s.Name != "GET /api/vultr/postgres/products" || attr(s, attrRoute).AsString() != "products" {
				t.Errorf("server span %q, route %q", s.Name, attr(s, attrRoute).AsString())
			}
		}
	}
	var clients []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.SpanKind == trace.SpanKindClient && s.Name == "GET" {
			clients = append(clients, s)
		}
	}
	coalesced := spansNamed(exp, spanCoalesce)
	waiters, leaders := 0, 0
	var leader tracetest.SpanStub
	for _, s := range coalesced {
		switch attr(s, attrRole).AsString() {
		case "waiter":
			waiters++
		case "leader":
			leaders++
			leader = s
		}
		if !servers[s.Parent.SpanID()] {
			t.Errorf("a coalesce span's parent is not a server span")
		}
	}
	if len(servers) != n || len(clients) != 1 || len(coalesced) != n || waiters != n-1 || leaders != 1 {
		t.Fatalf("%d server spans, %d upstream spans, %d coalesce spans (%d waiters, %d leaders); want %d, 1, %d (%d, 1)",
			len(servers), len(clients), len(coalesced), waiters, leaders, n, n, n-1)
	}
	if got := attr(leader, attrWaiters).AsInt64(); got != n-1 {
		t.Errorf("the leader counts %d waiters, want %d", got, n-1)
	}
	if clients[0].Parent.SpanID() != leader.SpanContext.SpanID() {
		t.Errorf("the upstream span is not under the leader's coalesce span")
	}
	if l1 := spansNamed(exp, spanL1); len(l1) != n {
		t.Errorf("%d l1 spans, want one per request (%d)", len(l1), n)
	}

	// A hit now: l1 spans (the app's Vary makes two lookups: the
	// primary key's stub, then the variant), the last marked hit, and no
	// coalesce or upstream span.
	exp.Reset()
	fasthttp.ReleaseResponse(get(t, c, "GET", "/api/vultr/postgres/products?category=tops"))
	l1 := spansNamed(exp, spanL1)
	if len(l1) == 0 || !attr(l1[len(l1)-1], attrHit).AsBool() || len(spansNamed(exp, spanCoalesce)) != 0 {
		t.Errorf("a hit made spans %v", spanNames(exp))
	}
}

func spanNames(exp *tracetest.InMemoryExporter) []string {
	var names []string
	for _, s := range exp.GetSpans() {
		names = append(names, s.Name)
	}
	return names
}

// TestTraceBatchFlush: a batch of 50 writes is one flush span with 50
// links, one to each writer's server span, carrying sink, items and bytes.
func TestTraceBatchFlush(t *testing.T) {
	app, origin := startOrigin(t)
	app.SetLatency("memory.batch", 100*time.Millisecond)
	cfg, err := configs.Parse("flush.yaml", []byte(fmt.Sprintf(`
upstream: {url: "http://%s", timeout: 2s}
routes:
  - name: store-memory
    match: {method: POST, path: /api/raindrop/store-memory}
    batch: {sink: http, url: /api/raindrop/batch-store-memory, wrap: memories, split: results, max_items: 50, max_wait: 2s}
`, origin)))
	if err != nil {
		t.Fatal(err)
	}
	opt, exp := recordSpans(t)
	_, addr, _ := startProxy(t, cfg, opt)
	c := rawClient(addr)
	c.MaxConns = 100
	store := func(i int) {
		resp := get(t, c, "POST", "/api/raindrop/store-memory", "Content-Type", "application/json",
			"body", fmt.Sprintf(`{"userId":"u","text":"note %d"}`, i))
		if resp.StatusCode() != 200 {
			t.Errorf("store %d: %d %s", i, resp.StatusCode(), resp.Body())
		}
		fasthttp.ReleaseResponse(resp)
	}
	// The first write goes alone and holds the endpoint for 100 ms; the
	// next 50 gather meanwhile and go together when the 50th arrives.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); store(-1) }()
	time.Sleep(30 * time.Millisecond)
	burst(50, store)
	wg.Wait()

	servers := map[trace.SpanID]bool{}
	for _, s := range exp.GetSpans() {
		if s.SpanKind == trace.SpanKindServer {
			servers[s.SpanContext.SpanID()] = true
		}
	}
	flushes := spansNamed(exp, spanFlush+" store-memory")
	sizes := map[int64]int{}
	for _, f := range flushes {
		items := attr(f, attrBatchItems).AsInt64()
		sizes[items]++
		if int64(len(f.Links)) != items || attr(f, attrSink).AsString() != "http" || attr(f, attrBatchBytes).AsInt64() == 0 {
			t.Errorf("flush of %d items: %d links, sink %q, %d bytes", items, len(f.Links), attr(f, attrSink).AsString(), attr(f, attrBatchBytes).AsInt64())
		}
		for _, l := range f.Links {
			if !servers[l.SpanContext.SpanID()] {
				t.Errorf("a flush links to a span that is no request's")
			}
		}
	}
	if len(flushes) != 2 || sizes[1] != 1 || sizes[50] != 1 {
		t.Errorf("flush spans by items: %v; want one of 1 and one of 50", sizes)
	}
}

// TestTraceContinuesToUpstream: a request that carries a traceparent
// continues that trace, and the app receives the trace with Sheepdog's
// upstream span as the parent; on a pass route and on a cache miss.
func TestTraceContinuesToUpstream(t *testing.T) {
	app, seen := traceparents(t, `{}`)
	opt, exp := recordSpans(t)
	_, addr, _ := startProxy(t, cacheConfig(t, app, ""), opt)
	c := rawClient(addr)

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	const incoming = "00-" + traceID + "-00f067aa0ba902b7-01"
	for _, path := range []string{"/api/vultr/stats", "/api/vultr/postgres/products?category=shoes"} {
		exp.Reset()
		fasthttp.ReleaseResponse(get(t, c, "GET", path, "traceparent", incoming))
		var server, client tracetest.SpanStub
		for _, s := range exp.GetSpans() {
			switch s.SpanKind {
			case trace.SpanKindServer:
				server = s
			case trace.SpanKindClient:
				client = s
			}
		}
		got := seen()
		sent := got[len(got)-1]
		want := fmt.Sprintf("00-%s-%s-01", traceID, client.SpanContext.SpanID())
		if server.SpanContext.TraceID().String() != traceID || server.Parent.SpanID().String() != "00f067aa0ba902b7" {
			t.Errorf("%s: server span in trace %s under %s; want the client's", path, server.SpanContext.TraceID(), server.Parent.SpanID())
		}
		if !client.SpanContext.IsValid() || sent != want {
			t.Errorf("%s: the app got traceparent %q, want %q", path, sent, want)
		}
	}
}

// TestTraceTiersAndErrors: with Valkey as L2, a miss asks both tiers (an
// l2 span, marked a miss); an app that refuses connections leaves its
// error on the upstream span and a 502 on the server span.
func TestTraceTiersAndErrors(t *testing.T) {
	redisAddr := servicetest.RedisAddr(t)
	closed := servicetest.FreeAddr(t)
	opt, exp := recordSpans(t)
	_, addr, _ := startProxy(t, cacheConfig(t, closed, l2Block(redisAddr, servicetest.KeyPrefix(t))), opt)
	c := rawClient(addr)
	resp := get(t, c, "GET", "/api/vultr/postgres/products?category=hats")
	if resp.StatusCode() != 502 {
		t.Fatalf("status %d, want 502", resp.StatusCode())
	}
	fasthttp.ReleaseResponse(resp)
	l2 := spansNamed(exp, spanL2)
	if len(l2) != 1 || attr(l2[0], attrHit).AsBool() || l2[0].Status.Code == codes.Error {
		t.Errorf("l2 spans %+v: want one clean miss", l2)
	}
	for _, s := range exp.GetSpans() {
		switch s.SpanKind {
		case trace.SpanKindClient:
			if s.Name == "GET" && (s.Status.Code != codes.Error || len(s.Events) == 0) {
				t.Errorf("upstream span: status %v, %d events; want the error recorded", s.Status, len(s.Events))
			}
		case trace.SpanKindServer:
			if s.Status.Code != codes.Error || attr(s, "http.response.status_code").AsInt64() != 502 {
				t.Errorf("server span: status %v, code %v; want an error and 502", s.Status, attr(s, "http.response.status_code"))
			}
		}
	}
}

// TestTraceFlushToEndpoint: an http sink's call to its batch endpoint
// carries the flush span's traceparent.
func TestTraceFlushToEndpoint(t *testing.T) {
	app, seen := traceparents(t, `{"success":true,"results":[{"success":true,"id":"m1"}]}`)
	cfg, err := configs.Parse("flush.yaml", []byte(fmt.Sprintf(`
upstream: {url: "http://%s", timeout: 2s}
routes:
  - name: store-memory
    match: {method: POST, path: /api/raindrop/store-memory}
    batch: {sink: http, url: /api/raindrop/batch-store-memory, wrap: memories, split: results}
`, app)))
	if err != nil {
		t.Fatal(err)
	}
	opt, exp := recordSpans(t)
	_, addr, _ := startProxy(t, cfg, opt)
	resp := get(t, rawClient(addr), "POST", "/api/raindrop/store-memory", "Content-Type", "application/json", "body", `{"text":"a"}`)
	if resp.StatusCode() != 200 {
		t.Fatalf("store: %d %s", resp.StatusCode(), resp.Body())
	}
	fasthttp.ReleaseResponse(resp)
	flushes := spansNamed(exp, spanFlush+" store-memory")
	got := seen()
	if len(flushes) != 1 || len(got) != 1 {
		t.Fatalf("%d flush spans, %d endpoint calls; want 1 and 1", len(flushes), len(got))
	}
	sc := flushes[0].SpanContext
	if want := fmt.Sprintf("00-%s-%s-01", sc.TraceID(), sc.SpanID()); got[0] != want {
		t.Errorf("the endpoint got traceparent %q, want the flush span's %q", got[0], want)
	}
}

// traceparents starts a stand-in for the app that answers every request
// with the JSON body and keeps the traceparent each one carried.
func traceparents(t *testing.T, body string) (addr string, seen func() []string) {
	t.Helper()
	var mu sync.Mutex
	var got []string
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		mu.Lock()
		got = append(got, string(ctx.Request.Header.Peek("traceparent")))
		mu.Unlock()
		ctx.SetContentType("application/json")
		ctx.SetBodyString(body)
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

// TestTraceOddMethod: a method outside HTTP's own is named _OTHER in the
// span, so a client cannot mint span names; the attribute keeps it.
func TestTraceOddMethod(t *testing.T) {
	_, originAddr := startOrigin(t)
	opt, exp := recordSpans(t)
	_, addr, _ := startProxy(t, testConfig(t, originAddr, ""), opt)
	fasthttp.ReleaseResponse(get(t, rawClient(addr), "BREW", "/api/anything"))
	spans := exp.GetSpans()
	if len(spans) == 0 {
		t.Fatal("no span")
	}
	for _, s := range spans {
		if s.SpanKind != trace.SpanKindServer {
			continue
		}
		if !strings.HasPrefix(s.Name, "_OTHER") || strings.Contains(s.Name, "BREW") {
			t.Errorf("server span named %q, want _OTHER", s.Name)
		}
		if got := attr(s, "http.request.method_original").AsString(); got != "BREW" {
			t.Errorf("http.request.method_original %q, want BREW", got)
		}
	}
}
