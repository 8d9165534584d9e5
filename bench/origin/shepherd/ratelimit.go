package shepherd

import (
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// rateLimitMessage is the limiter's message, sent as text.
const rateLimitMessage = "Too many requests from this IP, please try again later."

// rateLimiter is express-rate-limit as the app configures it: a fixed
// window per client IP, starting at the client's first request. The app
// does not trust proxies, so the IP is the connection's.
type rateLimiter struct {
	max    int
	window time.Duration

	mu      sync.Mutex // protects clients and hits
	clients map[string]*rateWindow
	hits    int // since the last sweep of ended windows
}

type rateWindow struct {
	hits  int
	reset time.Time
}

func newRateLimiter(max int, window time.Duration) *rateLimiter {
	return &rateLimiter{max: max, window: window, clients: make(map[string]*rateWindow)}
}

// hit counts one request from ip and returns the window's count so far
// and when it ends.
func (l *rateLimiter) hit(ip string, now time.Time) (int, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hits++; l.hits >= 1024 {
		l.hits = 0
		for k, w := range l.clients {
			if !now.Before(w.reset) {
				delete(l.clients, k)
			}
		}
	}
	w, ok := l.clients[ip]
	if !ok || !now.Before(w.reset) {
		w = &rateWindow{reset: now.Add(l.window)}
		l.clients[ip] = w
	}
	w.hits++
	return w.hits, w.reset
}

// admit counts the request and sets the X-RateLimit headers; when the
// client is over its limit it answers 429 and returns false.
func (l *rateLimiter) admit(ctx *fasthttp.RequestCtx, now time.Time) bool {
	hits, reset := l.hit(ctx.RemoteIP().String(), now)
	h := &ctx.Response.Header
	h.SetCanonical([]byte("X-RateLimit-Limit"), strconv.AppendInt(nil, int64(l.max), 10))
	h.SetCanonical([]byte("X-RateLimit-Remaining"), strconv.AppendInt(nil, int64(max(l.max-hits, 0)), 10))
	h.SetCanonical([]byte("X-RateLimit-Reset"), strconv.AppendInt(nil, ceilDiv(reset.UnixMilli(), 1000), 10))
	if hits <= l.max {
		return true
	}
	h.SetCanonical([]byte("Retry-After"), strconv.AppendInt(nil, ceilDiv(reset.Sub(now).Milliseconds(), 1000), 10))
	send(ctx, fasthttp.StatusTooManyRequests, "text/html; charset=utf-8", []byte(rateLimitMessage))
	return false
}

func ceilDiv(a, b int64) int64 {
	if a <= 0 {
		return 0
	}
	return (a + b - 1) / b
}
