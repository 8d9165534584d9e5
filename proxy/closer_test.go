package proxy

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/cachelayer"
)

// pipeConns returns n countedConns of l, each one end of a net.Pipe,
// and the other ends, whose Read ends when the countedConn is closed.
func pipeConns(l *limitListener, n int) ([]*countedConn, []net.Conn) {
	conns, peers := make([]*countedConn, n), make([]net.Conn, n)
	for i := range conns {
		a, b := net.Pipe()
		conns[i], peers[i] = &countedConn{Conn: a, l: l}, b
		conns[i].closeLater.Store(true)
		l.open.Add(1)
	}
	return conns, peers
}

// closedBy reports, after at most wait, whether peer has seen its other
// end closed.
func closedBy(peer net.Conn, wait time.Duration) bool {
	_ = peer.SetReadDeadline(time.Now().Add(wait))
	_, err := peer.Read(make([]byte, 1))
	return err == io.EOF
}

// TestCloserClosesOnce: Close counts the connection out of its listener
// at once, and once however many times it is called; the connection is
// closed shortly after.
func TestCloserClosesOnce(t *testing.T) {
	l := &limitListener{max: 10, closer: newCloser()}
	conns, peers := pipeConns(l, 2)
	for range 3 {
		if err := conns[0].Close(); err != nil {
			t.Fatal(err)
		}
	}
	if n := l.open.Load(); n != 1 {
		t.Fatalf("%d connections counted open after one of two was closed, want 1", n)
	}
	if !closedBy(peers[0], 5*time.Second) {
		t.Fatal("the connection was not closed")
	}
	if closedBy(peers[1], 10*time.Millisecond) {
		t.Fatal("a connection never closed was closed")
	}
}

// TestCloserWaitsForABurstToEnd: while closes keep coming, none is made
// until they stop for the quiet time; then every one is.
func TestCloserWaitsForABurstToEnd(t *testing.T) {
	l := &limitListener{max: 1000, closer: closer{quiet: 200 * time.Millisecond, maxWait: time.Minute, maxPending: 1000}}
	conns, peers := pipeConns(l, 100)
	var early atomic.Int64
	go func() {
		if closedBy(peers[0], 450*time.Millisecond) {
			early.Add(1)
		}
	}()
	for _, c := range conns { // 500 ms of closes, one every 5 ms
		c.Close()
		time.Sleep(5 * time.Millisecond)
	}
	if early.Load() != 0 {
		t.Fatal("the first connection was closed while closes kept coming")
	}
	for i, p := range peers[1:] {
		if !closedBy(p, 5*time.Second) {
			t.Fatalf("connection %d was not closed after the burst", i+1)
		}
	}
}

// TestCloserBoundsTheWait: under closes that never stop, a connection is
// still closed within maxWait; past maxPending, Close closes them itself.
func TestCloserBoundsTheWait(t *testing.T) {
	l := &limitListener{max: 1000, closer: closer{quiet: time.Minute, maxWait: 50 * time.Millisecond, maxPending: 1000}}
	conns, peers := pipeConns(l, 400)
	stop := make(chan struct{})
	go func() { // closes every millisecond, never quiet for a minute
		defer close(stop)
		for _, c := range conns[1:] {
			c.Close()
			time.Sleep(time.Millisecond)
		}
	}()
	conns[0].Close()
	start := time.Now()
	if !closedBy(peers[0], 5*time.Second) {
		t.Fatal("the first connection was not closed under a steady stream of closes")
	}
	select {
	case <-stop:
		t.Fatalf("the first connection was closed only when the stream ended, after %v", time.Since(start))
	default:
	}

	full := &limitListener{max: 10, closer: closer{quiet: time.Minute, maxWait: time.Minute, maxPending: 3}}
	conns, peers = pipeConns(full, 3)
	for _, c := range conns {
		c.Close()
	}
	for i, p := range peers {
		if !closedBy(p, time.Second) {
			t.Fatalf("connection %d of maxPending was left open", i)
		}
	}
	if n := full.open.Load(); n != 0 {
		t.Fatalf("%d connections counted open, want 0", n)
	}
}

// TestOnlyHerdWaitersCloseLater: a connection marked by closeAfterBurst
// (a herd's waiter's) waits for its listener's closer; any other is
// closed by Close itself.
func TestOnlyHerdWaitersCloseLater(t *testing.T) {
	l := &limitListener{max: 10, closer: closer{quiet: time.Minute, maxWait: time.Minute, maxPending: 100}}
	a, peerA := net.Pipe()
	b, peerB := net.Pipe()
	waiter, other := &countedConn{Conn: a, l: l}, &countedConn{Conn: b, l: l}
	l.open.Add(2)
	var ctx fasthttp.RequestCtx
	ctx.Init2(waiter, nil, false)
	closeAfterBurst(&ctx)

	waiter.Close()
	other.Close()
	if !closedBy(peerB, time.Second) {
		t.Fatal("a connection not marked was not closed by Close")
	}
	if closedBy(peerA, 50*time.Millisecond) {
		t.Fatal("a herd waiter's connection was closed at once, not by the closer")
	}
	if n := l.open.Load(); n != 0 {
		t.Fatalf("%d connections counted open after both closed, want 0", n)
	}
	l.closer.mu.Lock()
	pending := len(l.closer.pending)
	l.closer.mu.Unlock()
	if pending != 1 {
		t.Fatalf("%d connections waiting in the closer, want the waiter's", pending)
	}
}

// TestOnlyStoredAnswersCloseLater: a waiter handed an answer that was
// stored is a herd's, and its connection waits for the closer; one handed
// an answer not stored (a 5xx, shared by every request while the app
// fails) is not, or a steady stream of failing requests would all close
// late (from a review: 18.0k-18.7k req/s with p99 6.9-14.3 ms against
// 19.5k-23.7k and 4.3-5.3 ms, on a hot key answering 503).
func TestOnlyStoredAnswersCloseLater(t *testing.T) {
	_, originAddr := startOrigin(t)
	p, err := New(cacheConfig(t, originAddr, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	rt := p.router.routes[0]
	l := &limitListener{max: 10}
	for _, stored := range []bool{true, false} {
		a, _ := net.Pipe()
		c := &countedConn{Conn: a, l: l}
		var ctx fasthttp.RequestCtx
		ctx.Init2(c, nil, false)
		status := fasthttp.StatusOK
		if !stored {
			status = fasthttp.StatusServiceUnavailable
		}
		e := &cachelayer.Entry{Status: status, Body: []byte(`{}`)}
		p.answerFetched(&ctx, rt, &fetched{entry: e, stored: stored, shareable: true}, false)
		if got := c.closeLater.Load(); got != stored {
			t.Errorf("waiter handed a %d answer (stored %v): closes later %v, want %v", status, stored, got, stored)
		}
	}
}
