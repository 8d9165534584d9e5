package shepherd

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// request is one app request as a route handler sees it: Express's req
// after the middleware chain ran.
type request struct {
	ctx       *fasthttp.RequestCtx
	params    []string // route parameters, decoded, in pattern order
	query     queryArgs
	body      any // req.body: an *object ({} when nothing was parsed), or an array
	requestID string
	now       time.Time
}

// param returns the i-th route parameter.
func (rq *request) param(i int) string { return rq.params[i] }

// answer is what a handler gives res.json: a status and a JavaScript value.
type answer struct {
	status int
	body   any
}

func ok(body any) answer { return answer{fasthttp.StatusOK, body} }

// vultrError is the Vultr routes' error shape, {"error":"msg"}.
func vultrError(status int, msg string) answer {
	return answer{status, newObject("error", msg)}
}

// Handler answers one request, running the app's middleware in Express's
// order: helmet, compression, cors (which answers OPTIONS), the JSON and
// urlencoded body parsers, the /api/ rate limiter, the routers, the error
// handler and the 404 handler. Paths under /__origin/ are test aids that
// the real app does not have.
func (a *App) Handler(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Request.URI().PathOriginal()) // a copy: later URI calls may reuse the bytes
	if strings.HasPrefix(path, testAidPrefix) {
		a.serveTestAid(ctx)
		return
	}
	rq := &request{ctx: ctx, now: a.now(), requestID: requestID(ctx)}
	defer func() {
		// Express turns a throw in a handler into a 500 from its error
		// handler; this keeps the server up the same way.
		if p := recover(); p != nil {
			ctx.Response.Reset()
			setAppHeaders(ctx)
			a.respond(rq, appError(fasthttp.StatusInternalServerError, "INTERNAL_SERVER_ERROR", fmt.Sprint(p), rq.now))
		}
	}()
	setAppHeaders(ctx)

	if ctx.IsOptions() {
		a.count(routePreflight)
		preflight(ctx)
		return
	}

	rt, rawParams := a.match(string(ctx.Method()), path)
	name := routeNotFound
	if rt != nil {
		name = rt.name
		if rt.pool {
			defer a.pg.holdConn()()
		}
	}
	a.count(name)

	body, err := parseBody(ctx)
	if err != nil {
		a.respond(rq, err.answer(rq.now))
		return
	}
	rq.body = body

	if a.limiter != nil && hasPrefixFold(path, "/api/") && !a.limiter.admit(ctx, rq.now) {
		return
	}

	if rt == nil {
		a.respond(rq, vultrError(fasthttp.StatusNotFound, "Route not found"))
		return
	}
	params, perr := decodeParams(rawParams)
	if perr != nil {
		a.respond(rq, appError(fasthttp.StatusBadRequest, "INVALID_INPUT", perr.Error(), rq.now))
		return
	}
	rq.params = params
	rq.query = parseQuery(ctx.URI().QueryString())
	a.respond(rq, rt.handle(a, rq))
}

// preflight is the cors package's answer to OPTIONS.
func preflight(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	h.SetCanonical([]byte("Access-Control-Allow-Methods"), []byte("GET,POST,PUT,DELETE,OPTIONS"))
	h.SetCanonical([]byte("Access-Control-Allow-Headers"), []byte("Content-Type,Authorization"))
	h.SetCanonical([]byte("Vary"), []byte("Origin"))
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	ctx.Response.ResetBody()
	h.SetContentLength(0)
}

// requestError answers a request the server could not read. A body over
// the server's limit is, on the app's own paths, the app's 413 (what
// body-parser and the error handler answer); the other failures are
// Node's own bare answers, which close the connection.
func (a *App) requestError(ctx *fasthttp.RequestCtx, err error) {
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		path := string(ctx.Request.URI().PathOriginal())
		if strings.HasPrefix(path, testAidPrefix) {
			ctx.Error("request body over the echo limit", fasthttp.StatusRequestEntityTooLarge)
			return
		}
		rq := &request{ctx: ctx, now: a.now(), requestID: requestID(ctx)}
		setAppHeaders(ctx)
		name := routeNotFound
		if rt, _ := a.match(string(ctx.Method()), path); rt != nil {
			name = rt.name
		}
		a.count(name)
		a.respond(rq, tooLarge().answer(rq.now))
	case isSmallBuffer(err):
		ctx.SetStatusCode(fasthttp.StatusRequestHeaderFieldsTooLarge)
	case isTimeout(err):
		ctx.SetStatusCode(fasthttp.StatusRequestTimeout)
	default:
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
	}
}

func isSmallBuffer(err error) bool {
	var sb *fasthttp.ErrSmallBuffer
	return errors.As(err, &sb)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
