package shepherd

import (
	"bufio"
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// fixedNow is the clock most tests use, so timestamps are exact.
var fixedNow = time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.UTC)

func fixedClock() time.Time { return fixedNow }

// newRequest builds a request; hdr is name, value pairs, and a body
// without a Content-Type is sent as JSON.
func newRequest(method, uri, body string, hdr ...string) *fasthttp.Request {
	req := &fasthttp.Request{}
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	if body != "" {
		if len(req.Header.ContentType()) == 0 {
			req.Header.SetContentType("application/json")
		}
		req.SetBodyString(body)
		req.Header.SetContentLength(len(body))
	}
	return req
}

// testAddr is the client address requests come from.
var testAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}

// call runs one request through the Handler directly, without a
// connection. hdr is name, value pairs.
func call(t *testing.T, app *App, method, uri, body string, hdr ...string) *fasthttp.Response {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Init(newRequest(method, uri, body, hdr...), testAddr, nil)
	app.Handler(&ctx)
	resp := &fasthttp.Response{}
	ctx.Response.CopyTo(resp)
	return resp
}

// header returns a response header's first value, matching the name
// case-insensitively: the app writes names in its own spelling
// (X-DNS-Prefetch-Control, ETag), which Peek's normalised lookup misses
// until the response has crossed a connection.
func header(resp *fasthttp.Response, name string) string {
	for k, v := range resp.Header.All() {
		if strings.EqualFold(string(k), name) {
			return string(v)
		}
	}
	return ""
}

// decode parses a JSON answer into generic values.
func decode(t *testing.T, resp *fasthttp.Response) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(resp.Body(), &v); err != nil {
		t.Fatalf("answer is not a JSON object: %v\n%s", err, resp.Body())
	}
	return v
}

// data returns the envelope's data after checking the envelope.
func data(t *testing.T, resp *fasthttp.Response) any {
	t.Helper()
	v := decode(t, resp)
	if v["success"] != true {
		t.Fatalf("not a success envelope: %s", resp.Body())
	}
	d, ok := v["data"]
	if !ok {
		t.Fatalf("no data in envelope: %s", resp.Body())
	}
	return d
}

// served is an App serving an in-memory listener, closed when the test ends.
type served struct {
	app *App
	ln  *fasthttputil.InmemoryListener
}

func serve(t *testing.T, cfg Config) *served {
	t.Helper()
	s := &served{app: New(cfg), ln: fasthttputil.NewInmemoryListener()}
	done := make(chan error, 1)
	go func() { done <- s.app.Serve(s.ln) }()
	t.Cleanup(func() {
		if err := s.app.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

// raw sends the request bytes on a new connection and reads one answer;
// head says the request was HEAD, so no body follows.
func (s *served) raw(t *testing.T, request string, head bool) *fasthttp.Response {
	t.Helper()
	conn, err := s.ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	written := make(chan struct{})
	go func() {
		defer close(written)
		conn.Write([]byte(request)) // fails only once the answer is in and conn is closed
	}()
	resp := &fasthttp.Response{}
	resp.SkipBody = head
	err = resp.Read(bufio.NewReaderSize(conn, 1<<16))
	conn.Close()
	<-written
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	return resp
}

// rawRequest builds an HTTP/1.1 request with a body and headers.
func rawRequest(method, uri, body string, hdr ...string) string {
	var b strings.Builder
	b.WriteString(method + " " + uri + " HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n")
	for i := 0; i+1 < len(hdr); i += 2 {
		b.WriteString(hdr[i] + ": " + hdr[i+1] + "\r\n")
	}
	if body != "" || method == "POST" || method == "PUT" {
		b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	return b.String()
}
