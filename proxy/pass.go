package proxy

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/upstream"
)

// passRoute passes a request through and, when the route names tags to
// invalidate, drops them once the app has taken the write (a 2xx), before
// the client gets its answer.
func (p *Proxy) passRoute(ctx *fasthttp.RequestCtx, rt *route, rv *requestValues) {
	if len(rt.invalidates) == 0 {
		p.pass(ctx, rt)
		return
	}
	if rt.invBody {
		if err := readBody(ctx, p.maxBody); err != nil {
			fail(ctx, err)
			return
		}
	}
	tags, err := rv.evalTags(nil, rt.invalidates)
	if h := &ctx.Request.Header; rt.invBody && h.ContentLength() != 0 && (!appReadsJSON(h) || connectionStripsSent(h)) {
		// The app reads this body otherwise than as JSON: not at all
		// (text/plain, or a Content-Type that Connection names and
		// Sheepdog does not forward: its defaults), or as a form.
		// Which user or key the write touched is not certain, so the
		// tags of every reading are dropped.
		tags, err = rv.otherReadings(tags, err, rt.invalidates)
	}
	if err != nil {
		fail(ctx, err)
		return
	}
	// The app's status, not the client's: a write the app took is
	// invalidated even when its answer broke off on the way.
	if status := p.pass(ctx, rt); status >= 200 && status < 300 {
		if err := p.cache.Invalidate(ctx, tags...); err != nil {
			// Dropped here; L2 or the other replicas may keep the old
			// answers until their TTL. Counted, not logged per request.
			p.invFailed.Add(1)
		}
	}
}

// pass forwards the request upstream, on behalf of rt, and streams the
// answer back. It returns the app's status, 0 if it gave none. Bodies of any size flow through; neither is held whole in
// memory.
func (p *Proxy) pass(ctx *fasthttp.RequestCtx, rt *route) (appStatus int) {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)

	ctx.Request.Header.CopyTo(&req.Header)
	// A proxy speaks its own version upstream (RFC 9110 §6.2), whatever
	// the client's.
	req.Header.SetProtocol("HTTP/1.1")
	prepareRequest(ctx, &req.Header)
	if len(req.Header.Host()) == 0 {
		// HTTP/1.0 may leave Host out, and a Connection header may name
		// it; the app still needs one.
		req.Header.SetHost(p.upstream.Host())
	}

	if n := ctx.Request.Header.ContentLength(); n > p.maxBody {
		// Refused before a byte of it is read: the connection is closed,
		// since the rest of the body is still on the wire.
		ctx.SetConnectionClose()
		fail(ctx, errBodyTooLarge)
		return 0
	} else if !ctx.Request.IsBodyStream() {
		// Read whole already, for a key, tag or invalidation.
		req.SetBodyRaw(ctx.Request.Body())
	} else if n > 0 || n == -1 {
		// -1: chunked, its size known only at the end.
		req.SetBodyStream(&limitedBody{r: ctx.RequestBodyStream(), left: int64(p.maxBody)}, n)
	}

	resp := fasthttp.AcquireResponse()
	var endSpan func(int, error)
	if parent := spanParent(ctx); parent != nil {
		endSpan = p.upstreamSpan(parent, req)
	}
	start := time.Now()
	err := p.upstream.Do(req, resp)
	p.metrics.observeUpstream(rt, time.Since(start))
	if endSpan != nil {
		status := 0
		if err == nil {
			status = resp.StatusCode()
		}
		endSpan(status, err)
	}
	if err != nil {
		fasthttp.ReleaseResponse(resp)
		if req.IsBodyStream() {
			// Part of the body may be unread; the connection cannot be reused.
			ctx.SetConnectionClose()
		}
		fail(ctx, err)
		return 0
	}
	return p.answer(ctx, resp)
}

var http11 = []byte("HTTP/1.1")

// answer copies the upstream response to the client, taking ownership of
// resp: a streamed body releases it once written, otherwise it is released
// here after its (short) body is read. It returns the app's status.
func (p *Proxy) answer(ctx *fasthttp.RequestCtx, resp *fasthttp.Response) (appStatus int) {
	appStatus = resp.StatusCode()
	resp.Header.CopyTo(&ctx.Response.Header)
	// CopyTo resets the flag that keeps fasthttp from inventing a
	// Content-Type when the app sent none, and copies the app's protocol:
	// Sheepdog speaks HTTP/1.1 to its clients whatever the app spoke (an
	// HTTP/1.0 status line over a chunked body is misread).
	ctx.Response.Header.SetNoDefaultContentType(true)
	ctx.Response.Header.SetProtocol(http11)
	if stripHopByHop(&ctx.Response.Header) {
		restoreOrder(&ctx.Response.Header, &resp.Header, responseLists(&resp.Header))
	}
	ctx.Response.Header.ResetConnectionClose()
	// An HTTP/1.0 client cannot read chunks (RFC 9112 §6.1), and fasthttp
	// chunks a body of unknown length: such a body reaches it whole.
	if upstream.Streamed(resp) && (ctx.Request.Header.IsHTTP11() || resp.Header.ContentLength() >= 0) {
		ctx.Response.SetBodyStream(upstream.NewBody(resp), resp.Header.ContentLength())
		return appStatus
	}
	buf := answerBuffers.Get().(*[]byte)
	body, err := upstream.AppendWhole((*buf)[:0], resp, maxEntryBody) // releases resp
	if err == nil && len(body) > 0 {
		ctx.Response.SetBody(body) // a copy, into the answer's own pooled buffer
	}
	if cap(body) <= maxPooledAnswer {
		*buf = body[:0]
		answerBuffers.Put(buf)
	}
	if err != nil {
		// Cut short or stalled before the answer's first byte went out:
		// a failed exchange, answered as one (fail resets the answer).
		fail(ctx, err)
	}
	return appStatus
}

// answerBuffers hold short answers while they are read whole; one that
// grew past maxPooledAnswer (an HTTP/1.0 client's long answer) is let go.
var answerBuffers = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledAnswer = 256 << 10

// limitedBody streams the client's request body upstream and fails once it
// passes the limit, for bodies whose size was not announced.
type limitedBody struct {
	r    io.Reader
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n, errBodyTooLarge
	}
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %w", upstream.ErrClientBody, err)
	}
	return n, err
}
