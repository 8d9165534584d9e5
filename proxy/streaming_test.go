package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// startStreamingOrigin serves handler with request bodies streamed.
func startStreamingOrigin(t *testing.T, handler fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: handler, StreamRequestBody: true}
	go srv.Serve(ln) //nolint:errcheck // stopped at cleanup
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// rawExchange sends a hand-written request on a connection of its own and
// returns all that comes back until the server closes it.
func rawExchange(t *testing.T, addr, request string) []byte {
	t.Helper()
	c := dialRaw(t, addr)
	fmt.Fprint(c, request)
	raw, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// dialRaw opens a bare TCP connection for hand-written HTTP, closed and
// bounded in time by the test.
func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(4 * time.Second))
	return c
}

// TestResponseStreamed: the app sends half a body and then waits until the
// client has seen bytes of it. A proxy that held the whole body would
// deadlock here.
func TestResponseStreamed(t *testing.T) {
	const half = 512 << 10
	clientSaw := make(chan struct{})
	originAddr := startStreamingOrigin(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			w.Write(bytes.Repeat([]byte("a"), half))
			w.Flush()
			select {
			case <-clientSaw:
			case <-time.After(5 * time.Second):
			}
			w.Write(bytes.Repeat([]byte("b"), half))
		})
	})
	_, proxyAddr, _ := startProxy(t, testConfig(t, originAddr, ""))

	c := dialRaw(t, proxyAddr)
	fmt.Fprintf(c, "GET /api/stream HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
	r := bufio.NewReader(c)
	var got bytes.Buffer
	buf := make([]byte, 64<<10)
	// The answer is chunked, so the a's arrive between chunk-size lines.
	for bytes.Count(got.Bytes(), []byte("a")) < 64<<10 {
		n, err := r.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			t.Fatalf("no body bytes before the app finished (the answer was held whole?): %v", err)
		}
	}
	close(clientSaw)
	rest, _ := io.ReadAll(r)
	if !bytes.Contains(rest, []byte("b")) {
		t.Errorf("second half never arrived")
	}
}

// TestRequestStreamed: the client sends half a body and then waits until
// the app has read bytes of it. A proxy that buffered the body would
// deadlock here.
func TestRequestStreamed(t *testing.T) {
	const half = 512 << 10
	appSaw := make(chan struct{})
	originAddr := startStreamingOrigin(t, func(ctx *fasthttp.RequestCtx) {
		body := ctx.RequestBodyStream()
		buf := make([]byte, 64<<10)
		total, signalled := 0, false
		for {
			n, err := body.Read(buf)
			total += n
			if total >= 64<<10 && !signalled {
				close(appSaw)
				signalled = true
			}
			if err != nil {
				break
			}
		}
		fmt.Fprintf(ctx, "read %d", total)
	})
	_, proxyAddr, _ := startProxy(t, testConfig(t, originAddr, ""))

	c := dialRaw(t, proxyAddr)
	fmt.Fprintf(c, "POST /api/upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", 2*half)
	c.Write(bytes.Repeat([]byte("a"), half))
	select {
	case <-appSaw:
	case <-time.After(3 * time.Second):
		t.Fatal("the app saw nothing of the body before the client finished sending (buffered whole?)")
	}
	c.Write(bytes.Repeat([]byte("b"), half))
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	if err := resp.Read(bufio.NewReader(c)); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("read %d", 2*half); string(resp.Body()) != want {
		t.Errorf("app answered %q, want %q", resp.Body(), want)
	}
}

// TestHTTP10Client: an HTTP/1.0 client is sent a chunked answer of the app
// whole, with its length, since it cannot read chunks (RFC 9112 §6.1), and
// the app is spoken to in HTTP/1.1, the proxy's own version.
func TestHTTP10Client(t *testing.T) {
	protocols := make(chan string, 1)
	originAddr := startStreamingOrigin(t, func(ctx *fasthttp.RequestCtx) {
		protocols <- string(ctx.Request.Header.Protocol())
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) { // chunked
			w.WriteString(`{"part":1,`)
			w.Flush()
			w.WriteString(`"part2":2}`)
		})
	})
	_, proxyAddr, _ := startProxy(t, testConfig(t, originAddr, ""))
	raw := rawExchange(t, proxyAddr, "GET /api/old HTTP/1.0\r\nHost: t\r\n\r\n")
	head, body, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	if bytes.Contains(bytes.ToLower(head), []byte("transfer-encoding")) || !bytes.Contains(head, []byte("Content-Length: 20")) {
		t.Errorf("answer head %q: want a Content-Length and no Transfer-Encoding", head)
	}
	if string(body) != `{"part":1,"part2":2}` {
		t.Errorf("body %q, want the app's whole body without chunk framing", body)
	}
	if p := <-protocols; p != "HTTP/1.1" {
		t.Errorf("the app was spoken to in %s, want HTTP/1.1", p)
	}
}
