package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/bench/origin/shepherd"
	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

// exchange is one request sent the same way to the app and through Sheepdog.
type exchange struct {
	name    string
	method  string
	uri     string
	headers [][2]string
	body    []byte
	chunked bool // send the body with Transfer-Encoding: chunked
}

func binaryBody(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func (x exchange) do(t *testing.T, c *fasthttp.HostClient) *fasthttp.Response {
	t.Helper()
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.Header.SetMethod(x.method)
	req.SetRequestURI(x.uri)
	req.Header.SetHost("styleshepherd.test")
	for _, h := range x.headers {
		req.Header.Add(h[0], h[1])
	}
	switch {
	case x.chunked:
		req.SetBodyStream(bytes.NewReader(x.body), -1)
	case x.body != nil:
		req.SetBody(x.body)
	}
	resp := fasthttp.AcquireResponse()
	if err := c.Do(req, resp); err != nil {
		t.Fatalf("%s %s: %v", x.method, x.uri, err)
	}
	return resp
}

// headerLines renders a response's status line and headers, Date left out:
// it is the only header that may differ between two answers a moment apart.
func headerLines(resp *fasthttp.Response) string {
	var out []string
	for _, line := range strings.Split(resp.Header.String(), "\r\n") {
		if !strings.HasPrefix(line, "Date: ") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// TestTransparency sends each request straight to the simulated app and
// through Sheepdog: status, headers and body bytes must be the same.
func TestTransparency(t *testing.T) {
	_, originAddr := startOrigin(t)
	_, proxyAddr, _ := startProxy(t, testConfig(t, originAddr, ""))
	direct, via := rawClient(originAddr), rawClient(proxyAddr)

	json5MB := append(append([]byte(`{"blob":"`), bytes.Repeat([]byte("x"), 5<<20)...), `"}`...)
	cases := []exchange{
		{name: "GET", method: "GET", uri: "/__origin/echo"},
		{name: "HEAD", method: "HEAD", uri: "/__origin/echo?size=1000"},
		{name: "POST json", method: "POST", uri: "/__origin/echo?status=201", body: []byte(`{"a":1}`),
			headers: [][2]string{{"Content-Type", "application/json"}}},
		{name: "PUT binary", method: "PUT", uri: "/__origin/echo", body: binaryBody(4096),
			headers: [][2]string{{"Content-Type", "application/octet-stream"}}},
		{name: "PATCH empty body", method: "PATCH", uri: "/__origin/echo", body: []byte{}},
		{name: "DELETE 204", method: "DELETE", uri: "/__origin/echo?status=204"},
		{name: "encoded query", method: "GET",
			uri: "/__origin/echo?q=a%20b&path=%2Fx%3Fy&u=caf%C3%A9&z=1&z=2&plus=a+b&empty=&bare"},
		{name: "encoded path", method: "GET", uri: "/__origin/echo/a%2Fb/caf%C3%A9"},
		{name: "5 MB request body", method: "POST", uri: "/__origin/echo", body: json5MB,
			headers: [][2]string{{"Content-Type", "application/json"}}},
		{name: "5 MB binary response", method: "GET", uri: "/__origin/echo?size=5242880"},
		{name: "chunked binary request", method: "POST", uri: "/__origin/echo", body: binaryBody(1 << 20), chunked: true},
		{name: "multi-valued headers", method: "GET", uri: "/__origin/echo?cookies=1",
			headers: [][2]string{{"X-Test-Multi", "a"}, {"X-Test-Multi", "b"}, {"X-Test-One", "c, d"}}},
		{name: "301", method: "GET", uri: "/__origin/echo?status=301"},
		{name: "404", method: "GET", uri: "/__origin/echo?status=404"},
		{name: "500", method: "POST", uri: "/__origin/echo?status=500", body: []byte("boom")},
		{name: "app gzip read", method: "GET", uri: "/api/vultr/postgres/products?category=tops&limit=20",
			headers: [][2]string{{"Accept-Encoding", "gzip, deflate"}, {"X-Request-Id", "req-1"}}},
		{name: "app 404", method: "GET", uri: "/api/vultr/postgres/nope",
			headers: [][2]string{{"X-Request-Id", "req-2"}}},
		{name: "app validation error", method: "POST", uri: "/api/raindrop/store-memory", body: []byte(`{}`),
			headers: [][2]string{{"Content-Type", "application/json"}, {"X-Request-Id", "req-3"}}},
	}
	for _, x := range cases {
		t.Run(x.name, func(t *testing.T) {
			want, got := x.do(t, direct), x.do(t, via)
			defer fasthttp.ReleaseResponse(want)
			defer fasthttp.ReleaseResponse(got)
			if w, g := headerLines(want), headerLines(got); w != g {
				t.Errorf("headers differ\nstraight:\n%s\nthrough Sheepdog:\n%s", w, g)
			}
			if !bytes.Equal(want.Body(), got.Body()) {
				t.Errorf("body differs: straight %d bytes, through Sheepdog %d bytes", len(want.Body()), len(got.Body()))
			}
			if len(x.body) > 0 && want.StatusCode() < 300 && string(got.Header.Peek("X-Echo-Body-Len")) != "" &&
				string(got.Header.Peek("X-Echo-Body-Len")) != itoa(len(x.body)) {
				t.Errorf("origin saw %s body bytes, sent %d", got.Header.Peek("X-Echo-Body-Len"), len(x.body))
			}
		})
	}
}

func itoa(n int) string { return string(fasthttp.AppendUint(nil, n)) }

// recordingOrigin answers 200 and keeps the last request's headers, for
// checking what Sheepdog forwards.
type recordingOrigin struct {
	addr string
	mu   sync.Mutex
	last fasthttp.RequestHeader
	resp func(ctx *fasthttp.RequestCtx)
}

func startRecordingOrigin(t *testing.T, resp func(ctx *fasthttp.RequestCtx)) (*recordingOrigin, string) {
	t.Helper()
	o := &recordingOrigin{resp: resp}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.addr = ln.Addr().String()
	srv := &fasthttp.Server{NoDefaultServerHeader: true, NoDefaultContentType: true, NoDefaultDate: true, Handler: func(ctx *fasthttp.RequestCtx) {
		o.mu.Lock()
		ctx.Request.Header.CopyTo(&o.last)
		o.mu.Unlock()
		if o.resp != nil {
			o.resp(ctx)
		}
	}}
	go srv.Serve(ln) //nolint:errcheck // stopped below
	t.Cleanup(func() { srv.Shutdown() })
	return o, ln.Addr().String()
}

func (o *recordingOrigin) header(name string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var vals []string
	for _, v := range o.last.PeekAll(name) {
		vals = append(vals, string(v))
	}
	return vals
}

func TestForwardedHeaders(t *testing.T) {
	origin, originAddr := startRecordingOrigin(t, func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Connection", "X-Hop")
		ctx.Response.Header.Set("X-Hop", "1")
		ctx.Response.Header.Set("Keep-Alive", "timeout=5")
		ctx.Response.Header.Set("X-End", "kept")
	})
	_, proxyAddr, _ := startProxy(t, testConfig(t, originAddr, ""))
	c := rawClient(proxyAddr)

	tests := []struct {
		name    string
		headers [][2]string
		check   func(t *testing.T)
	}{
		{"request id generated", nil, func(t *testing.T) {
			ids := origin.header("X-Request-Id")
			if len(ids) != 1 || len(ids[0]) != 36 || ids[0][14] != '4' {
				t.Errorf("X-Request-Id = %q, want one generated UUIDv4", ids)
			}
		}},
		{"request id kept", [][2]string{{"X-Request-Id", "abc-123"}}, func(t *testing.T) {
			if ids := origin.header("X-Request-Id"); len(ids) != 1 || ids[0] != "abc-123" {
				t.Errorf("X-Request-Id = %q, want [abc-123]", ids)
			}
		}},
		{"forwarded for appended", [][2]string{{"X-Forwarded-For", "203.0.113.9"}, {"X-Forwarded-For", "198.51.100.2"}},
			func(t *testing.T) {
				if got := origin.header("X-Forwarded-For"); len(got) != 1 || got[0] != "203.0.113.9, 198.51.100.2, 127.0.0.1" {
					t.Errorf("X-Forwarded-For = %q", got)
				}
			}},
		{"repeated lines keep their order past hop-by-hop removal",
			[][2]string{{"Te", "trailers"}, {"Accept", "text/html"}, {"Keep-Alive", "timeout=5"}, {"X-Forwarded-For", "203.0.113.7"},
				{"Accept", "application/json"}, {"X-Forwarded-For", "10.0.0.2"}},
			func(t *testing.T) {
				if got := origin.header("X-Forwarded-For"); len(got) != 1 || got[0] != "203.0.113.7, 10.0.0.2, 127.0.0.1" {
					t.Errorf("X-Forwarded-For = %q, want the client's lines in order, then its address", got)
				}
				if got := origin.header("Accept"); !slices.Equal(got, []string{"text/html", "application/json"}) {
					t.Errorf("Accept = %q, want the client's two lines in order", got)
				}
			}},
		{"forwarded proto set", nil, func(t *testing.T) {
			if got := origin.header("X-Forwarded-Proto"); len(got) != 1 || got[0] != "http" {
				t.Errorf("X-Forwarded-Proto = %q", got)
			}
		}},
		{"forwarded proto from the edge kept", [][2]string{{"X-Forwarded-Proto", "https"}}, func(t *testing.T) {
			if got := origin.header("X-Forwarded-Proto"); len(got) != 1 || got[0] != "https" {
				t.Errorf("X-Forwarded-Proto = %q", got)
			}
		}},
		{"traceparent forwarded", [][2]string{{"Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
			func(t *testing.T) {
				if got := origin.header("Traceparent"); len(got) != 1 || got[0] != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
					t.Errorf("traceparent = %q", got)
				}
			}},
		{"hop-by-hop removed", [][2]string{{"Connection", "X-Private, keep-alive"}, {"X-Private", "secret"},
			{"Keep-Alive", "timeout=5"}, {"Te", "trailers"}, {"Proxy-Authorization", "Basic eA=="}, {"Upgrade", "websocket"}},
			func(t *testing.T) {
				for _, h := range []string{"X-Private", "Keep-Alive", "Te", "Proxy-Authorization", "Upgrade"} {
					if got := origin.header(h); len(got) != 0 {
						t.Errorf("%s forwarded: %q", h, got)
					}
				}
				if got := origin.header("Connection"); len(got) > 0 && got[0] != "keep-alive" {
					t.Errorf("Connection forwarded: %q", got)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := exchange{method: "GET", uri: "/api/anything", headers: tt.headers}.do(t, c)
			defer fasthttp.ReleaseResponse(resp)
			if resp.StatusCode() != 200 {
				t.Fatalf("status %d", resp.StatusCode())
			}
			tt.check(t)
			if got := string(resp.Header.Peek("X-Hop")); got != "" {
				t.Errorf("response header named by Connection forwarded: X-Hop=%q", got)
			}
			if got := string(resp.Header.Peek("Keep-Alive")); got != "" {
				t.Errorf("response Keep-Alive forwarded: %q", got)
			}
			if got := string(resp.Header.Peek("X-End")); got != "kept" {
				t.Errorf("end-to-end response header lost: X-End=%q", got)
			}
		})
	}
}

// TestRawRequestHeaders: requests a client library would not send as
// such, sent raw, reach the app as a proxy should pass them.
func TestRawRequestHeaders(t *testing.T) {
	origin, originAddr := startRecordingOrigin(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") })
	_, proxyAddr, _ := startProxy(t, testConfig(t, originAddr, ""))

	t.Run("Connection on two lines", func(t *testing.T) {
		head := rawHead(t, proxyAddr, "GET /api/x HTTP/1.1\r\nHost: t\r\nConnection: X-A\r\nConnection: X-B\r\n"+
			"X-A: 1\r\nX-B: 2\r\nX-C: 3\r\n\r\n")
		if !strings.HasPrefix(head, "HTTP/1.1 200") {
			t.Fatalf("answer %q", head)
		}
		for _, h := range []string{"X-A", "X-B"} {
			if got := origin.header(h); len(got) != 0 {
				t.Errorf("%s, named by a Connection line, reached the app: %q", h, got)
			}
		}
		if got := origin.header("X-C"); len(got) != 1 {
			t.Errorf("end-to-end X-C lost: %q", got)
		}
	})
	t.Run("HTTP/1.0 without Host", func(t *testing.T) {
		head := rawHead(t, proxyAddr, "GET /api/x HTTP/1.0\r\n\r\n")
		if !strings.HasPrefix(head, "HTTP/1.1 200") && !strings.HasPrefix(head, "HTTP/1.0 200") {
			t.Fatalf("answer %q, want the app's 200", head)
		}
		if got := origin.header("Host"); len(got) != 1 || got[0] != originAddr {
			t.Errorf("Host at the app %q, want %q", got, originAddr)
		}
	})
	t.Run("body without Content-Type", func(t *testing.T) {
		head := rawHead(t, proxyAddr, "POST /api/x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
		if !strings.HasPrefix(head, "HTTP/1.1 200") {
			t.Fatalf("answer %q", head)
		}
		if got := origin.header("Content-Type"); len(got) != 0 {
			t.Errorf("Content-Type %q reached the app; the client sent none", got)
		}
	})
}

// rawHead sends one raw HTTP/1.1 request and returns the answer's status
// line and headers exactly as they came over the wire; a client library
// would fill in defaults of its own (fasthttp's adds a Content-Type).
func rawHead(t *testing.T, addr, request string) string {
	t.Helper()
	c := dialRaw(t, addr)
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	var head []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(head, []byte("\r\n\r\n")) {
		n, err := c.Read(buf)
		head = append(head, buf[:n]...)
		if err != nil {
			break
		}
	}
	end := bytes.Index(head, []byte("\r\n\r\n"))
	if end < 0 {
		t.Fatalf("no complete header in %q", head)
	}
	return string(head[:end])
}

// TestAddsNoHeader: an answer the app sent with nothing but a body comes
// back from Sheepdog with no Server and no Content-Type of Sheepdog's own.
func TestAddsNoHeader(t *testing.T) {
	_, originAddr := startRecordingOrigin(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetBodyString("plain")
	})
	_, proxyAddr, _ := startProxy(t, testConfig(t, originAddr, ""))
	head := rawHead(t, proxyAddr, "GET /api/x HTTP/1.1\r\nHost: t\r\n\r\n")
	lines := strings.Split(head, "\r\n")
	if lines[0] != "HTTP/1.1 200 OK" {
		t.Errorf("status line %q", lines[0])
	}
	for _, l := range lines[1:] {
		name, _, _ := strings.Cut(l, ":")
		switch strings.ToLower(name) {
		case "content-length", "date":
		default:
			t.Errorf("unexpected header %q in\n%s", l, head)
		}
	}
}

// errorBody checks a Sheepdog error answer: status and JSON shape.
func errorBody(t *testing.T, resp *fasthttp.Response, status int, code string) {
	t.Helper()
	if resp.StatusCode() != status {
		t.Errorf("status %d, want %d (body %s)", resp.StatusCode(), status, resp.Body())
	}
	if ct := string(resp.Header.ContentType()); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want JSON", ct)
	}
	var body struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(resp.Body(), &body); err != nil {
		t.Fatalf("body %q is not JSON: %v", resp.Body(), err)
	}
	if body.Error.Code != code || body.Error.Message == "" {
		t.Errorf("error %+v, want code %q and a message", body.Error, code)
	}
}

func TestUpstreamFailures(t *testing.T) {
	t.Run("refused is 502", func(t *testing.T) {
		closed := servicetest.FreeAddr(t)
		_, proxyAddr, _ := startProxy(t, testConfig(t, closed, ""))
		resp := exchange{method: "GET", uri: "/api/vultr/stats"}.do(t, rawClient(proxyAddr))
		errorBody(t, resp, 502, codeUpstreamUnreachable)
	})
	t.Run("reset is 502", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}
		}()
		_, proxyAddr, _ := startProxy(t, testConfig(t, ln.Addr().String(), ""))
		resp := exchange{method: "POST", uri: "/api/vultr/test", body: []byte("{}")}.do(t, rawClient(proxyAddr))
		errorBody(t, resp, 502, codeUpstreamUnreachable)
	})
	t.Run("slow is 504", func(t *testing.T) {
		app, originAddr := startOrigin(t)
		app.SetLatency("echo", 3*time.Second)
		cfg := testConfig(t, originAddr, "")
		cfg.Upstream.Timeout = 200 * time.Millisecond
		_, proxyAddr, _ := startProxy(t, cfg)
		start := time.Now()
		resp := exchange{method: "GET", uri: "/__origin/echo"}.do(t, rawClient(proxyAddr))
		errorBody(t, resp, 504, codeUpstreamTimeout)
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("504 took %v; the timeout is 200ms", took)
		}
	})
}

func TestLimits(t *testing.T) {
	_, originAddr := startOrigin(t)
	_, proxyAddr, _ := startProxy(t, testConfig(t, originAddr, "max_body_size: 64KiB, max_header_size: 4KiB"))
	c := rawClient(proxyAddr)
	tests := []struct {
		name   string
		x      exchange
		status int
		code   string
	}{
		{"body over the limit", exchange{method: "POST", uri: "/__origin/echo", body: make([]byte, 64<<10+1)}, 413, codeBodyTooLarge},
		{"chunked body over the limit", exchange{method: "POST", uri: "/__origin/echo", body: make([]byte, 200<<10), chunked: true}, 413, codeBodyTooLarge},
		{"headers over the limit", exchange{method: "GET", uri: "/__origin/echo",
			headers: [][2]string{{"X-Big", strings.Repeat("a", 5000)}}}, 431, codeHeadersTooLarge},
		{"no route", exchange{method: "GET", uri: "/elsewhere"}, 404, codeNoRoute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := tt.x.do(t, c)
			defer fasthttp.ReleaseResponse(resp)
			errorBody(t, resp, tt.status, tt.code)
		})
	}
	t.Run("body at the limit passes", func(t *testing.T) {
		resp := exchange{method: "POST", uri: "/__origin/echo", body: binaryBody(64 << 10)}.do(t, c)
		defer fasthttp.ReleaseResponse(resp)
		if resp.StatusCode() != 200 || len(resp.Body()) != 64<<10 {
			t.Errorf("status %d, %d bytes", resp.StatusCode(), len(resp.Body()))
		}
	})
}

// TestUpstreamIdleClose: the app closes idle keep-alive connections (Node
// after 5s; here after 300ms). Writes after pauses just past that must not
// go out on connections the app has closed: POSTs are not retried, so
// upstream.idle_timeout below the app's is what protects them.
func TestUpstreamIdleClose(t *testing.T) {
	app := shepherd.New(shepherd.Config{IdleTimeout: 300 * time.Millisecond})
	originAddr, err := app.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	cfg := testConfig(t, originAddr, "")
	cfg.Upstream.IdleTimeout = 200 * time.Millisecond
	_, addr, _ := startProxy(t, cfg)
	c := rawClient(addr)
	failed := 0
	for round := range 3 {
		results := make(chan int, 8)
		for range 8 {
			go func() {
				resp := get(t, c, "POST", "/api/raindrop/store-memory", "Content-Type", "application/json",
					"body", `{"userId":"user_1","text":"linen shirt"}`)
				results <- resp.StatusCode()
				fasthttp.ReleaseResponse(resp)
			}()
		}
		for range 8 {
			if s := <-results; s != 200 {
				failed++
				t.Logf("round %d: status %d", round, s)
			}
		}
		time.Sleep(350 * time.Millisecond) // just past the app's idle close
	}
	if failed > 0 {
		t.Errorf("%d of 24 writes failed after pauses", failed)
	}
}

// TestCookiesPassUntouched: with hop-by-hop headers to remove both ways (as
// browsers and Node send), the app's Set-Cookie lines reach the client
// one by one, other repeated lines keep their order, and the client's
// Cookie header reaches the app byte for byte. Putting lines back in order
// once joined the Set-Cookie lines into one and rewrote Cookie.
func TestCookiesPassUntouched(t *testing.T) {
	originAddr, _ := startRawOrigin(t, "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n"+
		"Set-Cookie: a=1; Path=/\r\nLink: <1>; rel=a\r\nSet-Cookie: b=2; HttpOnly\r\nLink: <2>; rel=b\r\n"+
		"Content-Length: 2\r\n\r\n{}", false)
	_, proxyAddr, _ := startProxy(t, testConfig(t, originAddr, ""))
	head := string(rawExchange(t, proxyAddr, "GET /api/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
	for _, want := range []string{"\r\nSet-Cookie: a=1; Path=/\r\n", "\r\nSet-Cookie: b=2; HttpOnly\r\n"} {
		if !strings.Contains(head, want) {
			t.Errorf("answer lacks %q:\n%s", strings.TrimSpace(want), head)
		}
	}
	if i, j := strings.Index(head, "Link: <1>"), strings.Index(head, "Link: <2>"); i < 0 || j < i {
		t.Errorf("Link lines missing or out of order:\n%s", head)
	}

	rawHeaders := make(chan string, 1)
	appAddr := startStreamingOrigin(t, func(ctx *fasthttp.RequestCtx) {
		rawHeaders <- string(ctx.Request.Header.RawHeaders())
	})
	_, proxyAddr, _ = startProxy(t, testConfig(t, appAddr, ""))
	c := dialRaw(t, proxyAddr)
	const cookie = `Cookie: session="a\054b"; a="x"`
	fmt.Fprint(c, "GET /api/x HTTP/1.1\r\nHost: t\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n"+cookie+"\r\n\r\n")
	if got := <-rawHeaders; !strings.Contains(got, cookie+"\r\n") {
		t.Errorf("the app got headers\n%s\nwant the client's %s", got, cookie)
	}
}

// TestMaxConnsAnswersJSON: a connection over server.max_conns gets
// Sheepdog's JSON 503, not fasthttp's plain text, and the ones within the
// limit are served.
func TestMaxConnsAnswersJSON(t *testing.T) {
	_, originAddr := startOrigin(t)
	_, proxyAddr, _ := startProxy(t, testConfig(t, originAddr, "max_conns: 1"))
	first, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	time.Sleep(50 * time.Millisecond) // accepted and counted
	raw := string(rawExchange(t, proxyAddr, "GET /__origin/echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
	if !strings.HasPrefix(raw, "HTTP/1.1 503") || !strings.Contains(raw, `"code":"too_many_connections"`) ||
		!strings.Contains(raw, "Content-Type: application/json") {
		t.Errorf("over max_conns: %q", raw)
	}
	first.Close()
	time.Sleep(50 * time.Millisecond) // counted out
	if raw := string(rawExchange(t, proxyAddr, "GET /__origin/echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")); !strings.HasPrefix(raw, "HTTP/1.1 200") {
		t.Errorf("within max_conns again: %.80q", raw)
	}
}
