package proxy

import (
	"sync"
	"time"
)

// Closing a connection costs about as much as answering on it: the FIN,
// the socket's teardown and its removal from epoll. When a thousand
// clients that each sent Connection: close wait on one fetch, the closes
// were 39% of the CPU their answers took, each paid between one answer
// and the next. So the connection of a herd's waiter handed a stored
// answer goes to a closer, which closes it once closes stop coming for
// closeQuiet: after the answers of the burst are written. Each is still closed within
// closeMaxWait, and no more than closeMaxPending wait at once. Other
// connections close at once: under a steady stream of Connection: close
// requests, closing them all later served a third fewer, with five
// times the p99 (bench/RESULTS.md, "The eighth day").
const (
	closeQuiet      = 100 * time.Microsecond
	closeMaxWait    = 20 * time.Millisecond
	closeMaxPending = 1024
)

// closer closes connections a little later, in batches (above). Its zero
// value closes each connection at once; newCloser's waits as above.
type closer struct {
	quiet, maxWait time.Duration
	maxPending     int

	mu      sync.Mutex
	pending []*countedConn
	oldest  time.Time // when pending[0] came
	added   uint64    // connections handed over, ever
	running bool      // a goroutine is waiting to close pending
}

func newCloser() closer {
	return closer{quiet: closeQuiet, maxWait: closeMaxWait, maxPending: closeMaxPending}
}

// add hands c over to be closed. With maxPending waiting, the caller
// closes them all itself.
func (cl *closer) add(c *countedConn) {
	cl.mu.Lock()
	if len(cl.pending) == 0 {
		cl.oldest = time.Now()
	}
	cl.pending = append(cl.pending, c)
	cl.added++
	var full []*countedConn
	if len(cl.pending) >= cl.maxPending {
		full, cl.pending = cl.pending, nil
	}
	start := !cl.running && len(cl.pending) > 0
	if start {
		cl.running = true
	}
	seen := cl.added
	cl.mu.Unlock()
	closeAll(full)
	if start {
		go cl.run(seen)
	}
}

// run closes what is pending once no connection has come for quiet, or
// the oldest has waited maxWait; it returns when nothing is left. seen is
// the count of connections added when it began.
func (cl *closer) run(seen uint64) {
	wait := min(cl.quiet, cl.maxWait)
	for {
		time.Sleep(wait)
		cl.mu.Lock()
		left := cl.maxWait - time.Since(cl.oldest)
		if cl.added != seen && len(cl.pending) > 0 && left > 0 {
			seen, wait = cl.added, min(cl.quiet, left)
			cl.mu.Unlock()
			continue
		}
		wait = min(cl.quiet, cl.maxWait)
		batch := cl.pending
		cl.pending = nil
		if len(batch) == 0 {
			cl.running = false
			cl.mu.Unlock()
			return
		}
		seen = cl.added
		cl.mu.Unlock()
		closeAll(batch)
	}
}

func closeAll(conns []*countedConn) {
	for _, c := range conns {
		_ = c.Conn.Close()
	}
}
