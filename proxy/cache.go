package proxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/style-shepherd/sheepdog/cachelayer"
)

// s2b views a string as bytes without copying; the bytes must not be
// changed.
func s2b(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// b2s views bytes as a string without copying; the bytes must not change
// while the string is in use.
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// lookupScratch holds one request's tag strings and versions between its
// lookup and its fill, reused so that a hit allocates nothing.
type lookupScratch struct {
	key      cachelayer.Key // the primary key, kept here so hashing it needs no copy on the heap
	tagBuf   []byte
	tags     []string // views into tagBuf: valid until the scratch is reused
	versions []uint64
}

var scratchPool = sync.Pool{New: func() any { return new(lookupScratch) }}

// keyTagPrefix starts the tag every entry carries for its own primary key,
// so a purge by key drops the stub and every variant at once.
const keyTagPrefix = "k:"

// evalTags evaluates the route's tags and the entry's own key tag into the
// scratch, without allocating once the scratch has grown.
func (s *lookupScratch) evalTags(cr *cacheRule, rv *requestValues, key cachelayer.Key) error {
	s.tagBuf, s.tags = s.tagBuf[:0], s.tags[:0]
	var bounds [16]int
	ends := bounds[:0]
	for _, t := range cr.tags {
		var err error
		if s.tagBuf, err = rv.appendTemplate(s.tagBuf, t); err != nil {
			return err
		}
		ends = append(ends, len(s.tagBuf))
	}
	s.tagBuf = append(s.tagBuf, keyTagPrefix...)
	s.tagBuf = appendHex(s.tagBuf, key[:])
	ends = append(ends, len(s.tagBuf))
	// Views are taken only now: appending may have moved tagBuf.
	start := 0
	for _, end := range ends {
		s.tags = append(s.tags, b2s(s.tagBuf[start:end]))
		start = end
	}
	return nil
}

func appendHex(dst, b []byte) []byte {
	for _, c := range b {
		dst = append(dst, hexDigits[c>>4], hexDigits[c&0x0f])
	}
	return dst
}

// ownTags copies the scratch's tag views into strings an entry may keep.
func (s *lookupScratch) ownTags() ([]string, []uint64) {
	tags := make([]string, len(s.tags))
	for i, t := range s.tags {
		tags[i] = strings.Clone(t) // t views the pooled tagBuf
	}
	return tags, append([]uint64(nil), s.versions...)
}

// serveCache answers a request on a cache route: from L1 or L2 when fresh,
// stale while one background refresh runs, or through one upstream fetch
// shared by every request for the key that arrives meanwhile.
func (p *Proxy) serveCache(ctx *fasthttp.RequestCtx, rt *route, rv *requestValues) {
	cr := rt.cache
	h := &ctx.Request.Header
	// A shared cache never stores what credentials may have changed,
	// unless the key holds them; nor answers a write from the cache: only
	// GET and HEAD are read from it, or the one method a route names (a
	// search sent as POST, keyed on its body); nor one whose keyed values
	// the app may read otherwise (see ambiguous).
	if (len(h.PeekBytes(hdrAuthorization)) > 0 && !cr.keyedAuth) || (len(h.PeekBytes(hdrCookie)) > 0 && !cr.cookies) ||
		!cacheableMethod(rt, ctx.Method()) || cr.ambiguous(ctx) {
		p.bypass(ctx, rt)
		return
	}
	if cr.needsBody {
		err := readBody(ctx, p.maxBody)
		if err == nil && (appReadsOtherwise(ctx.Request.Body()) || surrogateEscape(ctx.Request.Body())) {
			p.bypass(ctx, rt) // JSON the app refuses or reads otherwise
			return
		}
		if err == nil {
			wellFormedBody(&ctx.Request)
			// A body the key reads must be JSON: refused here, never
			// keyed as if it were empty.
			_, err = parseJSONBody(ctx.Request.Body())
		}
		if err != nil {
			fail(ctx, err)
			setCacheStatus(&ctx.Response.Header, outBypass, 0, 0) // refused before the cache was asked
			return
		}
	}
	normaliseAcceptEncoding(h)

	kb := cachelayer.AcquireKeyBuilder()
	key := cr.buildKey(kb, rt.name, ctx.Method(), rv)
	scratch := scratchPool.Get().(*lookupScratch)
	defer scratchPool.Put(scratch)
	if err := scratch.evalTags(cr, rv, key); err != nil {
		cachelayer.ReleaseKeyBuilder(kb)
		fail(ctx, err)
		setCacheStatus(&ctx.Response.Header, outBypass, 0, 0)
		return
	}

	e, tier := p.lookup(ctx, key, scratch)
	entryKey := key
	if e != nil && e.IsStub() {
		if anyRepeated(h, e.Vary) {
			// Node joins the lines; the variant would hold the first.
			cachelayer.ReleaseKeyBuilder(kb)
			p.bypass(ctx, rt)
			return
		}
		scratch.key = key
		entryKey = variantKey(kb, &scratch.key, e.Vary, h)
		e, tier = p.lookup(ctx, entryKey, scratch)
		if e != nil && e.IsStub() {
			e = nil // a stub where a variant belongs: treat as a miss
		}
	}
	cachelayer.ReleaseKeyBuilder(kb)

	now := ctx.Time().UnixNano() // taken by fasthttp as the request arrived
	var stale *cachelayer.Entry
	if e != nil {
		switch {
		case e.Fresh(now):
			rt.stats.hit(tier)
			if tier == cachelayer.TierL1 {
				render(e)
			}
			writeEntry(ctx, e, now, outHit, 0)
			if refreshEarly(time.Duration(e.FreshUntil-now), time.Duration(rt.fetchTime.Load())) {
				p.refresh(ctx, rt, key, scratch, e)
			}
			return
		case now < e.SWRUntil:
			rt.stats.stale.Add(1)
			writeEntry(ctx, e, now, outStaleRevalidate, 0)
			p.refresh(ctx, rt, key, scratch, e)
			return
		case now < e.SIEUntil:
			stale = e // kept for stale-if-error
		}
	}
	if repeated(h, "Origin") || repeated(h, "Accept-Encoding") {
		// The flight key holds one value of each: waiters with one
		// line could be handed an answer made for two.
		p.bypass(ctx, rt)
		return
	}
	p.miss(ctx, rt, key, scratch, stale, now)
}

// bypass sends a cache route's request upstream without the cache.
func (p *Proxy) bypass(ctx *fasthttp.RequestCtx, rt *route) {
	rt.stats.bypassed.Add(1)
	p.pass(ctx, rt)
	setCacheStatus(&ctx.Response.Header, outBypass, 0, 0)
}

// cacheableMethod reports whether a request with method may be answered
// from rt's cache.
func cacheableMethod(rt *route, method []byte) bool {
	if len(rt.method) > 0 {
		return true // the route matched this method by name
	}
	return bytes.Equal(method, methodGet) || bytes.Equal(method, methodHead)
}

// lookup looks key up in the cache with the scratch's tags, keeping their
// current versions in the scratch; a traced request records the tiers it
// asked as spans.
func (p *Proxy) lookup(ctx *fasthttp.RequestCtx, key cachelayer.Key, scratch *lookupScratch) (*cachelayer.Entry, cachelayer.Tier) {
	if p.tracer == nil {
		e, tier, cur := p.cache.Lookup(ctx, key, scratch.tags, scratch.versions[:0])
		scratch.versions = cur
		return e, tier
	}
	var lt cachelayer.LookupTrace
	start := time.Now()
	e, tier, cur := p.cache.LookupTraced(ctx, key, scratch.tags, scratch.versions[:0], &lt)
	scratch.versions = cur
	if parent := spanParent(ctx); parent != nil {
		p.traceLookup(parent, start, &lt, tier)
	}
	return e, tier
}

// miss fetches through the flight: one upstream request per key, however
// many clients wait, each bounded by the upstream timeout.
func (p *Proxy) miss(ctx *fasthttp.RequestCtx, rt *route, key cachelayer.Key, scratch *lookupScratch, stale *cachelayer.Entry, now int64) {
	rt.stats.misses.Add(1)
	req := cacheRequest(ctx, rt.cache, p.upstream.Host())
	tags, versions := scratch.ownTags()
	path := string(ctx.Path())
	// Not the RequestCtx: fasthttp ends it when shutdown begins, and a
	// request in flight is to be finished, not answered 504.
	waitFrom := context.Background()
	var span trace.Span
	if parent := spanParent(ctx); parent != nil {
		// The flight's fetch keeps this context's values: its upstream
		// span goes under the leader's coalesce span.
		waitFrom, span = p.tracer.Start(parent, spanCoalesce)
	}
	wait, cancel := context.WithTimeout(waitFrom, p.cfg.Upstream.Timeout)
	defer cancel()
	r := p.flight.Do(wait, flightKey(key, &ctx.Request.Header, versions), func(fctx context.Context) (*fetched, error) {
		return p.fetchSafely(func() *fetched { return p.fetch(fctx, rt, req, key, tags, versions, path, 0) }), nil
	})
	if span != nil {
		endCoalesce(span, r.Leader, r.Waiters, r.Err)
	}
	if !r.Leader && r.Err == nil {
		fasthttp.ReleaseRequest(req) // the leader's request was used; after a timeout, the GC takes it
	}
	f := r.Value
	switch {
	case r.Err != nil: // this client's own wait ran out; the fetch goes on
		if stale != nil {
			rt.stats.stale.Add(1)
			writeEntry(ctx, stale, time.Now().UnixNano(), outStaleError, 0)
			return
		}
		rt.stats.missAnswers.Add(1)
		writeError(ctx, fasthttp.StatusGatewayTimeout, codeUpstreamTimeout, "upstream did not answer in time")
		setCacheStatus(&ctx.Response.Header, outMiss, 0, 0)
	case f.err != nil || (f.entry != nil && f.entry.Status >= 500):
		if stale != nil {
			rt.stats.stale.Add(1)
			fwd := 0
			if f.entry != nil {
				fwd = f.entry.Status
			}
			writeEntry(ctx, stale, time.Now().UnixNano(), outStaleError, fwd)
			return
		}
		if f.err != nil {
			rt.stats.missAnswers.Add(1)
			fail(ctx, f.err)
			setCacheStatus(&ctx.Response.Header, outMiss, 0, 0)
			return
		}
		if !r.Leader && !f.shareable {
			// An error page meant for the leader alone.
			rt.stats.bypassed.Add(1)
			p.pass(ctx, rt)
			setCacheStatus(&ctx.Response.Header, outMiss, 0, 0)
			return
		}
		p.answerFetched(ctx, rt, f, r.Leader)
	case f.entry == nil, !r.Leader && !f.shareable:
		// Too large to hold, or not for sharing: this client asks itself.
		rt.stats.bypassed.Add(1)
		p.pass(ctx, rt)
		setCacheStatus(&ctx.Response.Header, outMiss, 0, 0)
	default:
		p.answerFetched(ctx, rt, f, r.Leader)
	}
}

func (p *Proxy) answerFetched(ctx *fasthttp.RequestCtx, rt *route, f *fetched, leader bool) {
	o := outMiss
	switch {
	case f.fromCache:
		o = outHit
		rt.stats.hit(f.tier)
	case !leader:
		o = outCollapsed
		rt.stats.coalesced.Add(1)
		render(f.entry) // a herd's waiters all write this one entry
		if f.stored {
			// A burst: the requests after it hit. An answer not
			// stored (a 5xx) is shared by every request while the
			// app fails, and those connections close at once.
			closeAfterBurst(ctx)
		}
	case f.stored:
		o = outMissStored
		rt.stats.missAnswers.Add(1)
	default:
		rt.stats.missAnswers.Add(1)
	}
	writeEntry(ctx, f.entry, time.Now().UnixNano(), o, 0)
}

// flightKey adds to the key the request values a Vary'd answer may depend
// on (the normalised Accept-Encoding and the Origin), so waiters are only
// ever handed an answer made for a request like theirs, and the versions
// of its tags the lookup saw: a read that comes after a write's
// invalidation never joins a fetch begun before it.
func flightKey(key cachelayer.Key, h *fasthttp.RequestHeader, versions []uint64) string {
	var buf [256]byte
	b := append(buf[:0], key[:]...)
	b = append(append(b, 0), h.PeekBytes(hdrAcceptEncoding)...)
	b = append(append(b, 0), h.PeekBytes(hdrOrigin)...)
	b = append(b, 0)
	for _, v := range versions {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return string(b)
}

// refreshKey names the entry a refresh renews: the key, and for a variant
// the request's values of the headers it varies on. Other headers do not
// matter, so clients that differ only in them share one refresh.
func refreshKey(key cachelayer.Key, old *cachelayer.Entry, h *fasthttp.RequestHeader) string {
	var buf [256]byte
	b := append(append(buf[:0], "refresh"...), key[:]...)
	if old.Variant {
		for _, name := range old.Vary {
			b = append(append(b, 0), h.Peek(name)...)
		}
	}
	return string(b)
}

// refresh starts one background fetch for key unless one is under way. It
// runs on its own context; Shutdown waits for it.
func (p *Proxy) refresh(ctx *fasthttp.RequestCtx, rt *route, key cachelayer.Key, scratch *lookupScratch, old *cachelayer.Entry) {
	fk := refreshKey(key, old, &ctx.Request.Header)
	if _, busy := p.refreshing.LoadOrStore(fk, struct{}{}); busy {
		return
	}
	req := cacheRequest(ctx, rt.cache, p.upstream.Host())
	tags, versions := scratch.ownTags()
	path := string(ctx.Path())
	newerThan := old.Stored
	// A traced refresh is a span of the request that started it.
	from := context.Background()
	if parent := spanParent(ctx); parent != nil {
		from = parent
	}
	p.background.Add(1)
	go func() {
		defer p.background.Done()
		defer p.refreshing.Delete(fk)
		r := p.flight.Do(from, fk, func(fctx context.Context) (*fetched, error) {
			return p.fetchSafely(func() *fetched { return p.fetch(fctx, rt, req, key, tags, versions, path, newerThan) }), nil
		})
		if !r.Leader {
			fasthttp.ReleaseRequest(req)
		}
		rt.stats.refreshes.Add(1)
	}()
}

// writeEntry answers from a cached (or just fetched) entry. The body is
// the entry's own bytes, never copied: entries are immutable.
func writeEntry(ctx *fasthttp.RequestCtx, e *cachelayer.Entry, now int64, o outcome, fwdStatus int) {
	resp := &ctx.Response
	resp.Reset()
	if h, ok := e.Rendered().(*fasthttp.ResponseHeader); ok {
		h.CopyTo(&resp.Header)
		resp.Header.SetNoDefaultContentType(true) // CopyTo resets it
	} else {
		appendHeader(&resp.Header, e)
	}
	ttl := (e.FreshUntil - now) / int64(time.Second)
	if e.FreshUntil-now < 0 && ttl == 0 {
		ttl = -1 // stale, if by less than a second
	}
	setCacheStatus(&resp.Header, o, ttl, fwdStatus)
	// The answer's whole age: what the app said it had, and the time since
	// (RFC 9111 §4.2.3). Every answer from the cache has one; a miss passes
	// on the app's own, so a browser does not keep it longer than its
	// max-age allows (§5.1).
	if age := e.UpstreamAge + max(0, (now-e.Stored)/int64(time.Second)); age > 0 || (o != outMiss && o != outMissStored && o != outCollapsed) {
		var buf [20]byte
		resp.Header.SetBytesKV(hdrAge, strconv.AppendInt(buf[:0], age, 10))
	}
	if len(e.Body) > 0 {
		resp.SetBodyRaw(e.Body)
	}
}

// appendHeader writes the entry's status and headers field by field, into
// a pooled response whose buffers are already grown.
func appendHeader(h *fasthttp.ResponseHeader, e *cachelayer.Entry) {
	h.SetNoDefaultContentType(true)
	h.SetStatusCode(e.Status)
	for i := range e.Header {
		h.AddBytesKV(e.Header[i].Name, e.Header[i].Value)
	}
}

// render builds the entry's header once and keeps it with the entry, for
// entries answered from L1: copying a ready header on every hit is several
// times cheaper than adding each field, which fasthttp normalises and
// validates anew. Entries fresh from L2 or the app are written field by
// field; most are answered once before L1 has them.
func render(e *cachelayer.Entry) {
	if e.Rendered() != nil {
		return
	}
	h := new(fasthttp.ResponseHeader)
	appendHeader(h, e)
	e.SetRendered(h)
}

// errInternal marks a failure that is Sheepdog's own fault: a 500.
var errInternal = errors.New("internal error")

// fetchSafely runs a fetch, which runs on the flight's goroutine, not the
// request's: a panic there would end the process. It becomes a failed
// fetch (a 500 for its clients) and a logged stack.
func (p *Proxy) fetchSafely(fetch func() *fetched) (f *fetched) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("panic in an upstream fetch; its clients answered 500", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			f = &fetched{err: fmt.Errorf("%w: %v", errInternal, r)}
		}
	}()
	return fetch()
}
