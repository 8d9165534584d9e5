package proxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// Over server.max_conns a new connection is answered with Sheepdog's JSON
// 503 and closed. fasthttp's own limit (Server.Concurrency) answers in
// plain text, so the limit is kept here, in the listener, and fasthttp's
// is set a little above it, never to be reached.

// concurrencySlack is how far above max_conns fasthttp's own limit sits:
// a connection counted out here may not yet be out of fasthttp's count.
const concurrencySlack = 64

// fasthttpConcurrency is fasthttp's limit for a max_conns (0: its default).
func fasthttpConcurrency(maxConns int) int {
	if maxConns <= 0 {
		return 0
	}
	return maxConns + concurrencySlack
}

// overLimitAnswer is the whole answer to a connection over the limit.
var overLimitAnswer = []byte("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n" +
	"Content-Type: application/json\r\nRetry-After: 1\r\nContent-Length: 90\r\n\r\n" +
	`{"error":{"code":"too_many_connections","message":"too many connections; retry shortly"}}` + "\n")

// steadyListener keeps accepting through errors that pass: out of file
// descriptors (the process's or the system's), out of buffers, or a
// connection reset before it was taken. fasthttp's Serve ends on any
// accept error but a timeout, which would take the whole proxy down
// with it. Each failure in a row waits longer, from 5ms to 1s, as
// net/http's server does, so that connections closing can free what
// the next accept needs.
type steadyListener struct {
	net.Listener
	failed func(error) // told of each passing error

	closeOnce sync.Once
	closed    chan struct{} // closed by Close: a wait ends at once
}

func newSteadyListener(ln net.Listener, failed func(error)) *steadyListener {
	return &steadyListener{Listener: ln, failed: failed, closed: make(chan struct{})}
}

func (l *steadyListener) Accept() (net.Conn, error) {
	var wait time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil || !passing(err) {
			return c, err
		}
		if l.failed != nil {
			l.failed(err)
		}
		wait = min(max(2*wait, 5*time.Millisecond), time.Second)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-l.closed:
			// fasthttp's Shutdown waits for its accept loop: it must
			// not wait out the backoff.
			t.Stop()
			return nil, net.ErrClosed
		}
	}
}

// Close closes the listener and ends a backoff under way.
func (l *steadyListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// passing reports whether an accept error goes away by itself.
func passing(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// limitListener accepts at most max open connections, and closes a
// herd's waiters' through its closer.
type limitListener struct {
	net.Listener
	max       int64
	open      atomic.Int64
	lingering atomic.Int64 // refusals being answered
	closer    closer
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &countedConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		if l.lingering.Add(1) > maxLingering {
			// A flood: no goroutine or descriptor held for it.
			l.lingering.Add(-1)
			_ = c.Close()
			continue
		}
		go func() {
			defer l.lingering.Add(-1)
			refuse(c)
		}()
	}
}

// maxLingering bounds the refused connections answered at once; past it,
// a refused connection is closed without an answer, so a flood over the
// limit cannot hold more descriptors than this.
const maxLingering = 64

// refuse answers a connection over the limit and closes it, without
// holding up Accept. The close lingers: the client's request, unread,
// would otherwise make the kernel reset the connection, and the client
// could lose the answer before reading it.
func refuse(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write(overLimitAnswer); err != nil {
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10)) // until the client closes, or the deadline
}

// countedConn counts itself out of its listener once, on Close.
type countedConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
	// closeLater is set when the connection answered a herd's waiter:
	// its close goes to the listener's closer (closer.go).
	closeLater atomic.Bool
}

// Close counts the connection out, then closes it, or hands it to the
// closer; later calls do nothing. It is counted out first, so a client
// that sees it closed and connects again finds its place free.
func (c *countedConn) Close() (err error) {
	c.once.Do(func() {
		c.l.open.Add(-1)
		if c.closeLater.Load() {
			c.l.closer.add(c)
			return
		}
		err = c.Conn.Close()
	})
	return err
}

// closeAfterBurst marks the connection that ctx is served on to be closed
// by its listener's closer, if it is to be closed.
func closeAfterBurst(ctx *fasthttp.RequestCtx) {
	if c, ok := ctx.Conn().(*countedConn); ok {
		c.closeLater.Store(true)
	}
}
