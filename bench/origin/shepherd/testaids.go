package shepherd

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// testAidPrefix is where the test aids live: outside /api, so they never
// collide with the app, and answered without the app's middleware.
const testAidPrefix = "/__origin/"

// serveTestAid answers /__origin/stats, /latency, /reset and /echo.
func (a *App) serveTestAid(ctx *fasthttp.RequestCtx) {
	switch string(ctx.Request.URI().PathOriginal()) {
	case testAidPrefix + "echo":
		a.count(routeEcho)
		echo(ctx)
	case testAidPrefix + "stats":
		if allow(ctx, fasthttp.MethodGet) {
			aidJSON(ctx, fasthttp.StatusOK, a.Stats())
		}
	case testAidPrefix + "reset":
		if allow(ctx, fasthttp.MethodPost) {
			a.ResetStats()
			aidJSON(ctx, fasthttp.StatusOK, map[string]bool{"reset": true})
		}
	case testAidPrefix + "latency":
		if allow(ctx, fasthttp.MethodPost) {
			a.setLatencyAid(ctx)
		}
	default:
		aidJSON(ctx, fasthttp.StatusNotFound, map[string]string{"error": "no such test aid"})
	}
}

func allow(ctx *fasthttp.RequestCtx, method string) bool {
	if string(ctx.Method()) == method || (method == fasthttp.MethodGet && ctx.IsHead()) {
		return true
	}
	ctx.Response.Header.Set("Allow", method)
	aidJSON(ctx, fasthttp.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
	return false
}

func aidJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, _ := json.Marshal(v) // maps and plain structs: cannot fail
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// setLatencyAid is POST /__origin/latency?route=NAME&ms=N. Route "*" is
// the default; a negative N returns a route to the default.
func (a *App) setLatencyAid(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	name := string(args.Peek("route"))
	ms, err := strconv.Atoi(string(args.Peek("ms")))
	if err != nil || (name == "*" && ms < 0) {
		aidJSON(ctx, fasthttp.StatusBadRequest, map[string]string{"error": "ms must be an integer number of milliseconds"})
		return
	}
	if _, known := a.state[name]; !known && name != "*" {
		aidJSON(ctx, fasthttp.StatusNotFound, map[string]any{"error": "unknown route " + strconv.Quote(name), "routes": a.Routes()})
		return
	}
	a.SetLatency(name, time.Duration(ms)*time.Millisecond)
	aidJSON(ctx, fasthttp.StatusOK, map[string]any{"route": name, "ms": ms})
}

// echo is ANY /__origin/echo, for transparency tests: it answers with
// status ?status=N (default 200) and the request body, or ?size=N bytes
// of EchoBytes, and describes the request in headers: X-Echo-Method,
// X-Echo-Uri (the request-URI exactly as received), X-Echo-Host,
// X-Echo-Body-Len, X-Echo-Body-Sha256, and every X-Test-* request header
// reflected with
// all its values. A 3xx carries Location (?location=, default
// /__origin/echo); ?cookies=1 adds two Set-Cookie headers. Each request
// header X-Echo-Set-Name: v becomes the response header Name: v, so cache
// tests can make any answer (Cache-Control: private, Vary: *). Like an
// app that builds absolute URLs from it, the echo repeats a received
// X-Forwarded-Host in X-Echo-Forwarded-Host: the classic poisoning vector.
func echo(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	status := fasthttp.StatusOK
	if s := args.Peek("status"); len(s) > 0 {
		n, err := strconv.Atoi(string(s))
		if err != nil || n < 200 || n > 599 {
			aidJSON(ctx, fasthttp.StatusBadRequest, map[string]string{"error": "status must be 200..599"})
			return
		}
		status = n
	}
	body := ctx.Request.Body()
	if s := args.Peek("size"); len(s) > 0 {
		n, err := strconv.Atoi(string(s))
		if err != nil || n < 0 || n > echoBodyLimit {
			aidJSON(ctx, fasthttp.StatusBadRequest, map[string]string{"error": "size must be 0..67108864"})
			return
		}
		body = EchoBytes(n)
	}

	sum := sha256.Sum256(ctx.Request.Body())
	h := &ctx.Response.Header
	h.Set("X-Echo-Method", string(ctx.Method()))
	h.Set("X-Echo-Uri", string(ctx.Request.Header.RequestURI()))
	h.Set("X-Echo-Host", string(ctx.Request.Header.Host()))
	h.Set("X-Echo-Body-Len", strconv.Itoa(len(ctx.Request.Body())))
	h.Set("X-Echo-Body-Sha256", hex.EncodeToString(sum[:]))
	for k, v := range ctx.Request.Header.All() {
		switch {
		case hasPrefixFold(string(k), "X-Echo-Set-"):
			h.Add(string(k[len("X-Echo-Set-"):]), string(v))
		case hasPrefixFold(string(k), "X-Test-"):
			h.Add(string(k), string(v))
		}
	}
	if fh := ctx.Request.Header.Peek("X-Forwarded-Host"); len(fh) > 0 {
		h.Set("X-Echo-Forwarded-Host", string(fh))
	}
	if status >= 300 && status < 400 {
		loc := "/__origin/echo"
		if l := args.Peek("location"); len(l) > 0 {
			loc = string(l)
		}
		h.Set("Location", loc)
	}
	if string(args.Peek("cookies")) == "1" {
		h.Add("Set-Cookie", "echo_a=1; Path=/")
		h.Add("Set-Cookie", "echo_b=2; Path=/; HttpOnly")
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/octet-stream")
	ctx.SetBody(body)
}

// EchoBytes returns the deterministic body the echo route sends for
// ?size=n. Every aligned run of 256 bytes is a permutation of all 256
// byte values (j*m+c with m odd), and no two runs in the first 8 MiB are
// alike, so a dropped, repeated or shifted block changes the bytes.
func EchoBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		run := i >> 8
		m := byte(run&127)<<1 | 1
		c := byte(run >> 7)
		b[i] = byte(i)*m + c
	}
	return b
}
