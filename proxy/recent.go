package proxy

import (
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// recentCap is how many errors /stats keeps: enough to see what went
// wrong lately on the status page, small enough to copy on every poll.
const recentCap = 20

// recentPathMax bounds the path an entry keeps: a client's path is its
// own to make long, and the ring must stay small.
const recentPathMax = 200

// RecentError is one error Sheepdog answered with its JSON error shape,
// as /stats lists it under recent_errors, newest first.
type RecentError struct {
	Time    time.Time `json:"time"`
	Route   string    `json:"route"` // the route the path matches now; empty if none
	Method  string    `json:"method"`
	Path    string    `json:"path"` // without the query, which may carry secrets
	Status  int       `json:"status"`
	Code    string    `json:"code"`
	Message string    `json:"message"`
}

// errorRing is a bounded ring of the last errors answered. Recording
// takes a short lock and never allocates more than the entry's copies of
// method and path, and errors are off the hot path.
type errorRing struct {
	mu   sync.Mutex // protects buf, next and n
	buf  [recentCap]RecentError
	next int // where the next entry goes
	n    int // entries held, at most recentCap
}

// errorNote is the error writeError answered, left in the request's user
// values for its Proxy to record: writeError is called from places that
// have the RequestCtx and not the Proxy. Only requests that fail carry
// one, so the hot path pays a lookup of an absent key.
type errorNote struct {
	status    int
	code, msg string
	cause     string // the error behind it, for the log; empty if none
}

type errorNoteKey struct{}

// noteError records in p's ring the error ctx was answered with, if any.
// A 5xx is also logged, once (errlog.go).
func (p *Proxy) noteError(ctx *fasthttp.RequestCtx) {
	if n, ok := ctx.UserValue(errorNoteKey{}).(errorNote); ok {
		e := p.errors.record(ctx, n.status, n.code, n.msg)
		if n.status >= 500 {
			route := ""
			var params Params
			if rt := p.router.match(ctx.Method(), ctx.Path(), &params); rt != nil {
				route = rt.name
			}
			p.logAnswered(route, e.Method, e.Path, n)
		}
	}
}

// record copies what it keeps out of ctx: its bytes are fasthttp's and
// are reused after the handler returns.
func (r *errorRing) record(ctx *fasthttp.RequestCtx, status int, code, msg string) RecentError {
	path := ctx.Path()
	if len(path) > recentPathMax {
		path = path[:recentPathMax]
	}
	e := RecentError{
		Time: time.Now().UTC(), Method: string(ctx.Method()), Path: string(path),
		Status: status, Code: code, Message: msg,
	}
	r.mu.Lock()
	r.buf[r.next] = e
	r.next = (r.next + 1) % recentCap
	r.n = min(r.n+1, recentCap)
	r.mu.Unlock()
	return e
}

// snapshot returns the entries held, newest first.
func (r *errorRing) snapshot() []RecentError {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]RecentError, 0, r.n)
	for i := 1; i <= r.n; i++ {
		out = append(out, r.buf[(r.next-i+recentCap)%recentCap])
	}
	return out
}
