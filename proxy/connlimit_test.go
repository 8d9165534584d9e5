package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// emfileListener fails every Accept with EMFILE until it is closed, as a
// process out of file descriptors sees.
type emfileListener struct {
	net.Listener
	closed atomic.Bool
	fails  atomic.Int64
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.closed.Load() {
		return l.Listener.Accept() // use of closed network connection
	}
	l.fails.Add(1)
	return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
}

func (l *emfileListener) Close() error { l.closed.Store(true); return l.Listener.Close() }

// TestShutdownDuringAcceptBackoff: a listener waiting out its backoff after
// EMFILE does not hold up Shutdown. fasthttp's Shutdown waits for its
// accept loop, which used to sleep out the rest of a wait of up to 1 s: a
// shutdown with nothing in flight took 0.8 s, and a 500 ms grace ran out.
func TestShutdownDuringAcceptBackoff(t *testing.T) {
	_, originAddr := startOrigin(t)
	p, err := New(cacheConfig(t, originAddr, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, adminLn := &emfileListener{Listener: listen(t)}, &emfileListener{Listener: listen(t)}
	done := make(chan error, 1)
	go func() { done <- p.Serve(ln, adminLn) }()
	time.Sleep(2500 * time.Millisecond) // the backoff has grown to 1 s
	if ln.fails.Load() < 5 {
		t.Fatalf("%d accept failures: the backoff never grew, the test proves nothing", ln.fails.Load())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = p.Shutdown(ctx)
	took := time.Since(start)
	if serveErr := <-done; err != nil || serveErr != nil || took > 300*time.Millisecond {
		t.Errorf("Shutdown with nothing in flight took %v (err %v, Serve %v); want well under the 500 ms grace, no error", took, err, serveErr)
	}
}

// TestMaxConnsFreedBeforeTheClose: with max_conns 1, a client that asks
// with Connection: close, reads to the end of the connection and connects
// again is never refused: the place is free before the client sees the
// close. A connection counted out after its close (as a deferred closer
// once did) had 92 of 100 refused with the JSON 503.
func TestMaxConnsFreedBeforeTheClose(t *testing.T) {
	_, originAddr := startOrigin(t)
	_, addr, _, _ := serveProxy(t, testConfig(t, originAddr, "max_conns: 1"))
	refused := 0
	const n = 100
	for i := range n {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET /__origin/echo?size=10 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, br) // the rest of the answer, to the close
		resp.Body.Close()
		c.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			refused++
		}
	}
	if refused > 0 {
		t.Errorf("%d of %d requests made one after another refused at max_conns 1", refused, n)
	}
}
