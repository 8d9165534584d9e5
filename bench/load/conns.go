package load

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// errStopped refuses new connections once the run is stopping.
var errStopped = errors.New("load: run stopped")

// connSet dials the target and keeps every open connection, so that a stop
// can close them all: fasthttp's client takes no context, and closing the
// connection is what makes a request in flight return at once.
type connSet struct {
	ctx    context.Context // the run's; its end stops dials in progress
	addr   string
	dialer net.Dialer

	mu     sync.Mutex // protects conns and closed
	conns  map[*trackedConn]struct{}
	closed bool
}

func newConnSet(ctx context.Context, addr string, timeout time.Duration) *connSet {
	return &connSet{
		ctx:    ctx,
		addr:   addr,
		dialer: net.Dialer{Timeout: timeout},
		conns:  make(map[*trackedConn]struct{}),
	}
}

// dial is the client's DialFunc. It ignores the address it is given and
// dials the run's own loopback target.
func (s *connSet) dial(string) (net.Conn, error) {
	conn, err := s.dialer.DialContext(s.ctx, "tcp", s.addr)
	if err != nil {
		return nil, err
	}
	c := &trackedConn{Conn: conn, set: s}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		conn.Close()
		return nil, errStopped
	}
	s.conns[c] = struct{}{}
	return c, nil
}

// closeOnDone closes every connection when the run's context ends, or
// returns when finished is closed.
func (s *connSet) closeOnDone(finished <-chan struct{}) {
	select {
	case <-s.ctx.Done():
		s.closeAll()
	case <-finished:
	}
}

// closeAll closes every connection and refuses new ones.
func (s *connSet) closeAll() {
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = make(map[*trackedConn]struct{})
	s.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
}

// trackedConn leaves its set when closed.
type trackedConn struct {
	net.Conn
	set *connSet
}

func (c *trackedConn) Close() error {
	c.set.mu.Lock()
	delete(c.set.conns, c)
	c.set.mu.Unlock()
	return c.Conn.Close()
}
