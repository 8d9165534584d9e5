package upstream

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/configs"
)

func TestNewRejectsBadURLs(t *testing.T) {
	for _, url := range []string{"https://a:1", "127.0.0.1:3001", "http://", "://x"} {
		if _, err := New(configs.Upstream{URL: url, Timeout: time.Second, MaxConns: 1}); err == nil {
			t.Errorf("New(%q) accepted", url)
		}
	}
	if _, err := New(configs.Upstream{URL: "http://127.0.0.1:3001", Timeout: time.Second, MaxConns: 1}); err != nil {
		t.Errorf("good url refused: %v", err)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want Kind
	}{
		{fasthttp.ErrTimeout, Timeout},
		{fasthttp.ErrDialTimeout, Timeout},
		{fasthttp.ErrNoFreeConns, Timeout},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, Unreachable},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, Unreachable},
		{fasthttp.ErrConnectionClosed, Unreachable},
		{fmt.Errorf("%w: %w", ErrClientBody, io.ErrUnexpectedEOF), RequestBody},
	}
	for _, tt := range tests {
		if got := classify(tt.err); got != tt.want {
			t.Errorf("classify(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

// countingOrigin serves a body of n bytes and counts the connections it
// accepted and the requests it served, to see whether the client reused a
// connection and whether it had to send a request twice.
func countingOrigin(t *testing.T, n int) (addr string, conns, requests *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns, requests = new(atomic.Int64), new(atomic.Int64)
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			requests.Add(1)
			ctx.SetBody(make([]byte, n))
		},
		ConnState: func(_ net.Conn, s fasthttp.ConnState) {
			if s == fasthttp.StateNew {
				conns.Add(1)
			}
		},
	}
	go srv.Serve(ln) //nolint:errcheck // stopped at cleanup
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String(), conns, requests
}

func get(t *testing.T, c *Client, addr string) *fasthttp.Response {
	t.Helper()
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI("/x")
	req.Header.SetHost(addr)
	resp := fasthttp.AcquireResponse()
	if err := c.Do(req, resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestBodyConnectionReuse: a streamed body read to its end gives its
// connection back to the pool; one closed half-read drops it, so its
// leftover bytes are never read as the next answer. (fasthttp 1.78 also
// refuses that connection on its own; Body's errNotDrained keeps the rule
// whatever fasthttp does.)
func TestBodyConnectionReuse(t *testing.T) {
	const size = 1 << 20 // over the stream threshold
	tests := []struct {
		name      string
		read      int64 // bytes read before closing; -1 reads to the end
		wantConns int64 // connections after two requests
	}{
		{"read to the end", -1, 1},
		{"closed half-read", size / 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, conns, requests := countingOrigin(t, size)
			c, err := New(configs.Upstream{URL: "http://" + addr, Timeout: 5 * time.Second, MaxConns: 4})
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				resp := get(t, c, addr)
				if !Streamed(resp) {
					t.Fatal("a 1 MB body was not streamed")
				}
				body := NewBody(resp)
				r := io.Reader(body)
				if tt.read >= 0 {
					r = io.LimitReader(body, tt.read)
				}
				n, _ := io.Copy(io.Discard, bufio.NewReader(r))
				if tt.read < 0 && n != size {
					t.Fatalf("read %d bytes, want %d", n, size)
				}
				body.CloseWithError(nil)
			}
			if got := conns.Load(); got != tt.wantConns {
				t.Errorf("%d connections, want %d", got, tt.wantConns)
			}
			// A dirty connection put back in the pool shows as a second
			// answer that does not parse, and a retry the app counts.
			if got := requests.Load(); got != 2 {
				t.Errorf("the app served %d requests for 2", got)
			}
		})
	}
}

func TestSmallBodyNotStreamed(t *testing.T) {
	addr, _, _ := countingOrigin(t, 2000)
	c, _ := New(configs.Upstream{URL: "http://" + addr, Timeout: 5 * time.Second, MaxConns: 4})
	resp := get(t, c, addr)
	defer fasthttp.ReleaseResponse(resp)
	if Streamed(resp) || len(resp.Body()) != 2000 {
		t.Errorf("streamed=%v body=%d; a 2 KB body is read whole", Streamed(resp), len(resp.Body()))
	}
}

func TestProbe(t *testing.T) {
	addr, _, _ := countingOrigin(t, 10)
	c, _ := New(configs.Upstream{URL: "http://" + addr, Timeout: 5 * time.Second, MaxConns: 4, HealthPath: "/"})
	status, latency, err := c.Probe(time.Second)
	if err != nil || status != 200 || latency <= 0 {
		t.Errorf("probe: status %d latency %v err %v", status, latency, err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	c, _ = New(configs.Upstream{URL: "http://" + closed, Timeout: 5 * time.Second, MaxConns: 4, HealthPath: "/"})
	_, _, err = c.Probe(time.Second)
	var ue *Error
	if !errors.As(err, &ue) || ue.Kind != Unreachable {
		t.Errorf("probe of a closed port: %v, want an Unreachable *Error", err)
	}
}
