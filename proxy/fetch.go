package proxy

import (
	"bytes"
	"context"
	"errors"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/cachelayer"
	"github.com/style-shepherd/sheepdog/upstream"
)

// unkeyed request headers that could change the app's answer without
// being part of the key: forwarding them on a cache route is how a shared
// cache gets poisoned, so they are dropped. Conditional and range headers
// go too: the cache stores whole answers.
var unkeyed = [][]byte{
	[]byte("X-Forwarded-Host"),
	[]byte("X-Forwarded-Server"),
	[]byte("X-Original-Url"),
	[]byte("X-Rewrite-Url"),
	[]byte("X-Http-Method-Override"),
	[]byte("X-Http-Method"),
	[]byte("X-Method-Override"),
	[]byte("Forwarded"),
	[]byte("If-None-Match"),
	[]byte("If-Modified-Since"),
	[]byte("If-Match"),
	[]byte("If-Unmodified-Since"),
	[]byte("If-Range"),
	[]byte("Range"),
}

var (
	hdrAcceptEncoding  = []byte("Accept-Encoding")
	hdrAuthorization   = []byte("Authorization")
	hdrCookie          = []byte("Cookie")
	hdrOrigin          = []byte("Origin")
	hdrContentEncoding = []byte("Content-Encoding")
	gzipToken          = []byte("gzip")
	identityToken      = []byte("identity")
)

// normaliseAcceptEncoding reduces the client's Accept-Encoding to what the
// cache stores: gzip, identity, or none sent. Both the key and the
// upstream request see the normalised value, so one variant serves every
// gzip client. A client that sent one refusing gzip (identity, gzip;q=0,
// or an empty value: no coding wanted) is said to want identity, never
// merged with one that sent none, to whom the app may send any coding
// (RFC 9110 §12.5.3).
func normaliseAcceptEncoding(h *fasthttp.RequestHeader) {
	ae := h.PeekBytes(hdrAcceptEncoding)
	switch {
	case len(ae) == 0 && len(h.PeekAll(fasthttp.HeaderAcceptEncoding)) == 0:
		// None sent.
	case len(ae) > 0 && acceptsGzip(ae):
		if !bytes.Equal(ae, gzipToken) {
			h.SetBytesKV(hdrAcceptEncoding, gzipToken)
		}
	case !bytes.Equal(ae, identityToken):
		h.SetBytesKV(hdrAcceptEncoding, identityToken)
	}
}

// acceptsGzip reads an Accept-Encoding value: gzip listed with a q above
// 0, or, when gzip is not named, * with a q above 0. A gzip;q=0 refuses
// gzip whatever * says (RFC 9110 §12.5.3).
func acceptsGzip(ae []byte) bool {
	gzip, star := -1, -1 // -1: not listed; 0: refused; 1: accepted
	for item := range bytes.SplitSeq(ae, []byte(",")) {
		coding, params, _ := bytes.Cut(item, []byte(";"))
		coding = bytes.TrimSpace(coding)
		accepted := 1
		for param := range bytes.SplitSeq(params, []byte(";")) {
			if q, ok := bytes.CutPrefix(bytes.TrimSpace(param), []byte("q=")); ok {
				if v, err := strconv.ParseFloat(string(bytes.TrimSpace(q)), 64); err == nil && v == 0 {
					accepted = 0
				}
			}
		}
		switch {
		case bytes.EqualFold(coding, gzipToken):
			gzip = accepted
		case string(coding) == "*":
			star = accepted
		}
	}
	if gzip >= 0 {
		return gzip == 1
	}
	return star == 1
}

// cacheRequest builds the upstream request of a cache route: a GET (HEAD
// is fetched as GET, so the answer can be stored), unkeyed headers gone,
// only the cookies the key names, and a body only where the key reads it.
// Host is not in the key, so it names the app (host), as nginx's
// proxy_pass does, rather than whatever the client sent.
func cacheRequest(ctx *fasthttp.RequestCtx, cr *cacheRule, host string) *fasthttp.Request {
	req := fasthttp.AcquireRequest()
	ctx.Request.Header.CopyTo(&req.Header)
	prepareRequest(ctx, &req.Header)
	req.Header.SetHost(host)
	// An absolute-form target (GET http://other/...) would name the Host
	// fasthttp sends; the app's name is what goes.
	req.UseHostHeader = true
	if bytes.Equal(req.Header.Method(), methodHead) {
		req.Header.SetMethodBytes(methodGet)
	}
	for _, h := range unkeyed {
		req.Header.DelBytes(h)
	}
	restoreOrder(&req.Header, &ctx.Request.Header, requestLists(ctx.Request.Header.RawHeaders()))
	if len(req.Header.PeekBytes(hdrCookie)) > 0 {
		req.Header.DelAllCookies()
		for _, name := range cr.cookieNames {
			if v := ctx.Request.Header.Cookie(name); v != nil {
				req.Header.SetCookieBytesKV([]byte(name), v)
			}
		}
	}
	if cr.keyedBody {
		// Read whole, within max_body_size, and keyed. Any other body on a
		// cache route is not forwarded, a body only a tag reads included:
		// the answer would depend on input outside the key.
		req.SetBody(ctx.Request.Body())
	} else {
		req.Header.SetContentLength(0) // the client's length no longer applies
	}
	return req
}

// fetched is the outcome of one upstream fetch for a cache route, shared
// by the flight's leader and its waiters.
type fetched struct {
	entry     *cachelayer.Entry // the answer; nil when err is set or the body was too large
	err       error             // the upstream failed (no answer)
	stored    bool              // entry went into the cache
	shareable bool              // waiters may be given entry
	fromCache bool              // found by the second look inside the flight
	tier      cachelayer.Tier   // where, when fromCache
}

// maxEntryBody bounds an answer the cache reads whole; a larger one is
// passed through, not stored.
const maxEntryBody = 8 << 20

// fetch asks the upstream for one cache route's answer and stores it when
// it may be. It runs inside the flight, on the flight's context, and owns
// req. A refresh passes the stored time of the copy it replaces as
// newerThan; a miss passes 0.
func (p *Proxy) fetch(fctx context.Context, rt *route, req *fasthttp.Request, key cachelayer.Key, tags []string, versions []uint64, path string, newerThan int64) *fetched {
	defer fasthttp.ReleaseRequest(req)
	cr := rt.cache

	// Look again inside the flight: a fill may have landed between this
	// request's lookup and the flight's start (another flight that just
	// ended), and fetching again would break "one fetch per key". An early
	// refresh finds its own still-fresh copy here: only a newer one counts.
	if e, tier, _ := p.cache.Lookup(fctx, key, tags, nil); e != nil && !e.IsStub() && e.Fresh(time.Now().UnixNano()) && e.Stored > newerThan {
		return &fetched{entry: e, shareable: true, fromCache: true, tier: tier}
	}

	start := time.Now()
	resp := fasthttp.AcquireResponse()
	var endSpan func(int, error)
	if p.tracer != nil {
		endSpan = p.upstreamSpan(fctx, req)
	}
	err := p.upstream.Do(req, resp)
	p.metrics.observeUpstream(rt, time.Since(start))
	if err != nil {
		fasthttp.ReleaseResponse(resp)
		if endSpan != nil {
			endSpan(0, err)
		}
		return &fetched{err: err}
	}
	if endSpan != nil {
		endSpan(resp.StatusCode(), nil)
	}
	rt.fetchTime.Store(int64(time.Since(start)))

	now := start.UnixNano()
	e := &cachelayer.Entry{Status: resp.StatusCode(), Stored: now, Path: path}
	e.Header = keptHeaders(&resp.Header)
	cc := parseCacheControl(resp.Header.PeekAll("Cache-Control")) // before the next PeekAll reuses its slice
	if exp := resp.Header.Peek("Expires"); len(exp) > 0 && cc.maxAge < 0 && cc.sMaxAge < 0 {
		cc.maxAge = expiresIn(exp, resp.Header.Peek("Date"), start)
	}
	age := upstreamAge(resp.Header.Peek("Age"))
	varyAll, vary := parseVary(resp.Header.PeekAll("Vary"))
	hasCookie := len(resp.Header.PeekAll("Set-Cookie")) > 0
	body, err := upstream.ReadWhole(resp, maxEntryBody) // releases resp
	switch {
	case errors.Is(err, upstream.ErrBodyTooLong):
		return &fetched{} // everyone passes through
	case err != nil:
		return &fetched{err: err} // cut short: an upstream failure, never an answer
	}
	e.Body = body
	e.UpstreamAge = int64(age / time.Second)

	// fasthttp reads any three-digit status; the list covers 0..599.
	listed := e.Status < len(cr.statuses) && cr.statuses[e.Status]
	// An answer caches before the app have held a while has spent as much
	// of its max-age (RFC 9111 §4.2.3); the route's ttl caps what is left.
	fresh := cc.freshFor(cr.ttl, age)
	reusable := !cc.noStore && !cc.private && !cc.noCache && !hasCookie && !varyAll
	// Waiters are handed what is about the resource, not one client: an
	// answer the route may store and reuse (RFC 9111 §4: a collapsed
	// request takes only what the cache could reuse, so not no-cache, nor
	// stale on arrival), or a 5xx (sent to each waiter's own fetch, a
	// failing app would meet a herd); never a 429 or 401 one client
	// earned, nor what the app said not to keep or to keep private.
	f := &fetched{entry: e, shareable: ((listed && fresh > 0) || e.Status >= 500) && reusable && varyWithin(vary)}
	storable := listed && reusable && fresh > 0
	if !storable {
		return f
	}
	e.FreshUntil = later(now, fresh)
	e.SWRUntil = later(e.FreshUntil, cr.swr)
	e.SIEUntil = later(e.FreshUntil, cr.sie)
	e.Tags, e.TagVersions = tags, versions
	if len(vary) > 0 && anyRepeated(&req.Header, vary) {
		return f // the app read the lines joined; a variant holds one value
	}
	if len(vary) > 0 {
		// The primary key holds a stub naming the Vary headers; the
		// answer lives under the variant key of this request's values.
		e.Vary, e.Variant = vary, true
		stub := &cachelayer.Entry{Stored: e.Stored, FreshUntil: e.FreshUntil, SWRUntil: e.SWRUntil, SIEUntil: e.SIEUntil,
			Tags: tags, TagVersions: versions, Path: path, Vary: vary}
		p.cache.Store(key, stub)
		kb := cachelayer.AcquireKeyBuilder()
		primary := key
		key = variantKey(kb, &primary, vary, &req.Header)
		cachelayer.ReleaseKeyBuilder(kb)
	}
	p.cache.Store(key, e)
	f.stored = true
	return f
}

// keptHeaders copies the response headers an entry keeps: all but the
// hop-by-hop ones and those fasthttp writes itself. Set-Cookie is kept for
// the client that asked: an answer that sets a cookie is neither stored
// nor shared (see fetch).
func keptHeaders(h *fasthttp.ResponseHeader) []cachelayer.HeaderField {
	var buf [256]byte
	hop := connectionNames(buf[:0], h)
	h.SetNoDefaultContentType(true) // All would invent one otherwise
	var out []cachelayer.HeaderField
	for k, v := range h.All() {
		switch string(k) {
		case "Content-Length", "Date", "Age", "Transfer-Encoding", "Connection":
			continue
		}
		if isHopByHop(k, hop) {
			continue
		}
		out = append(out, cachelayer.HeaderField{Name: append([]byte(nil), k...), Value: append([]byte(nil), v...)})
	}
	return out
}

// parseVary lists the Vary header names, lower-cased and sorted; all is
// true for "Vary: *", which is never stored.
func parseVary(values [][]byte) (all bool, names []string) {
	for _, v := range values {
		for _, name := range bytes.Split(v, []byte(",")) {
			name = bytes.TrimSpace(name)
			switch {
			case len(name) == 0:
			case bytes.Equal(name, []byte("*")):
				return true, nil
			default:
				names = append(names, string(bytes.ToLower(name)))
			}
		}
	}
	slices.Sort(names)
	return false, slices.Compact(names)
}

// varyWithin reports whether every Vary header is one the flight key
// already holds (Accept-Encoding, Origin): only then may waiters be handed
// the leader's answer.
func varyWithin(vary []string) bool {
	for _, name := range vary {
		if name != "accept-encoding" && name != "origin" {
			return false
		}
	}
	return true
}

// later is t plus d in Unix nanoseconds, held at the far future where the
// sum would overflow: a ttl and stale windows of a few centuries together
// pass int64's 292 years and would wrap into the past.
func later(t int64, d time.Duration) int64 {
	if d > 0 && t > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return t + int64(d)
}
