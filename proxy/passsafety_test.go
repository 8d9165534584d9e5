package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/trace"
)

// TestClientSpanMethodBounded: the server span names an unknown
// method "_OTHER" so that a client cannot mint span names; the client span
// of the call to the app must not undo that.
func TestClientSpanMethodBounded(t *testing.T) {
	originAddr, _ := startRawOrigin(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", false)
	opt, exp := recordSpans(t)
	_, proxyAddr, _ := startProxy(t, testConfig(t, originAddr, ""), opt)
	for _, m := range []string{"XQZ1", "XQZ2", "XQZ3"} {
		raw := rawExchange(t, proxyAddr, m+" /api/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(string(raw), "HTTP/1.1 200") {
			t.Fatalf("%s: %q", m, raw)
		}
	}
	for _, s := range exp.GetSpans() {
		if s.SpanKind == trace.SpanKindClient && strings.HasPrefix(s.Name, "XQZ") {
			t.Errorf("client span named %q, from the client's method: want _OTHER (or a bounded name)", s.Name)
		}
	}
}

// TestRepeatedLinesKeepOrder: Node's answers always carry
// Connection and Keep-Alive, so hop-by-hop removal always runs; with two
// repeated headers, the lines of the first must keep the app's order.
// Same for a browser's request (Connection: keep-alive).
func TestRepeatedLinesKeepOrder(t *testing.T) {
	seen := make(chan string, 1)
	originAddr, _ := startRawOriginFunc(t, func(req *fasthttp.Request) (string, bool) {
		seen <- string(req.Header.RawHeaders())
		return "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n" +
			"Link: <1>; rel=a\r\nX-A: 1\r\nLink: <2>; rel=b\r\nX-A: 2\r\nContent-Length: 2\r\n\r\n{}", false
	})
	_, proxyAddr, _ := startProxy(t, testConfig(t, originAddr, ""))
	raw := string(rawExchange(t, proxyAddr, "GET /api/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"+
		"X-Dup: 1\r\nAccept: a\r\nX-Dup: 2\r\nAccept: b\r\n\r\n"))
	if i, j := strings.Index(raw, "Link: <1>"), strings.Index(raw, "Link: <2>"); i < 0 || j < i {
		t.Errorf("answer's Link lines out of the app's order:\n%s", raw)
	}
	app := <-seen
	if i, j := strings.Index(app, "X-Dup: 1"), strings.Index(app, "X-Dup: 2"); i < 0 || j < i {
		t.Errorf("request's X-Dup lines out of the client's order at the app:\n%s", app)
	}
}

// TestLargeAnswerHeader: an answer whose headers pass 16 KB (a few
// chunked session cookies, a long CSP) is the app's answer; one past
// 32 KB is a 502 upstream_bad_answer. Either way one GET from the client
// is one GET at the app.
func TestLargeAnswerHeader(t *testing.T) {
	for _, tc := range []struct {
		size   int
		status string
	}{{20 << 10, "HTTP/1.1 200"}, {40 << 10, "HTTP/1.1 502"}} {
		big := strings.Repeat("a", tc.size)
		originAddr, asked := startRawOrigin(t, "HTTP/1.1 200 OK\r\nContent-Security-Policy: "+big+
			"\r\nContent-Length: 2\r\n\r\n{}", false)
		_, proxyAddr, _ := startProxy(t, testConfig(t, originAddr, ""))
		raw := string(rawExchange(t, proxyAddr, "GET /api/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
		if !strings.HasPrefix(raw, tc.status) || (tc.status == "HTTP/1.1 502" && !strings.Contains(raw, codeUpstreamBadAnswer)) {
			t.Errorf("%d KB of headers: answer %.120q, want %s", tc.size>>10, raw, tc.status)
		}
		if n := asked.Load(); n != 1 {
			t.Errorf("%d KB of headers: the app was sent the GET %d times for one request", tc.size>>10, n)
		}
	}
}

// TestHTTP10AppAnswerFraming: an app that answers in HTTP/1.0 with
// a close-delimited body. Sheepdog re-frames the body as chunks, so it must
// speak HTTP/1.1 on the status line: an HTTP/1.0 message with
// Transfer-Encoding has faulty framing (RFC 9112 §6.1), and Go's client,
// for one, then reads the chunk framing as the body.
func TestHTTP10AppAnswerFraming(t *testing.T) {
	originAddr, _ := startRawOrigin(t, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello world", true)
	_, proxyAddr, _ := startProxy(t, testConfig(t, originAddr, ""))
	resp, err := http.Get("http://" + proxyAddr + "/api/x")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "hello world" {
		t.Errorf("client read body %q (status line %s, Transfer-Encoding %q), want %q",
			body, resp.Proto, resp.TransferEncoding, "hello world")
	}
}

// TestOneTraceparentUpstream: a client that sends traceparent twice
// still has one reach the app, Sheepdog's.
func TestOneTraceparentUpstream(t *testing.T) {
	seen := make(chan []string, 1)
	originAddr, _ := startRawOriginFunc(t, func(req *fasthttp.Request) (string, bool) {
		var tps []string
		for _, v := range req.Header.PeekAll("traceparent") {
			tps = append(tps, string(v))
		}
		seen <- tps
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", false
	})
	opt, _ := recordSpans(t)
	_, proxyAddr, _ := startProxy(t, testConfig(t, originAddr, ""), opt)
	const a, b = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01"
	rawExchange(t, proxyAddr, "GET /api/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\ntraceparent: "+a+"\r\ntraceparent: "+b+"\r\n\r\n")
	if tps := <-seen; len(tps) != 1 || !strings.HasPrefix(tps[0], "00-0af7651916cd43dd8448eb211c80319c-") {
		t.Errorf("the app got traceparent %q; want one, in the client's first trace", tps)
	}
}
