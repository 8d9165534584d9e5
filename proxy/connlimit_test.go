package proxy

import (
	"context"
	"net"
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
