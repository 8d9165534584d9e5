package proxy

import (
	"strconv"

	"github.com/valyala/fasthttp"
)

// The answers' cache headers (RFC 9211 Cache-Status, and X-Cache for
// people and tools that read that instead).
var (
	hdrCacheStatus = []byte("Cache-Status")
	hdrXCache      = []byte("X-Cache")
	hdrAge         = []byte("Age")

	xHit    = []byte("HIT")
	xStale  = []byte("STALE")
	xMiss   = []byte("MISS")
	xBypass = []byte("BYPASS")

	csBypass    = []byte("sheepdog; fwd=bypass")
	csCollapsed = []byte("sheepdog; fwd=miss; collapsed")
	csMiss      = []byte("sheepdog; fwd=miss")
	csStored    = []byte("sheepdog; fwd=miss; stored")
)

// outcome is how a cache route answered.
type outcome uint8

const (
	outHit outcome = iota
	outStaleRevalidate
	outStaleError
	outMiss
	outMissStored
	outCollapsed
	outBypass
)

// setCacheStatus writes Cache-Status, after any entries the app's answer
// carried, and X-Cache for an outcome. ttl is
// the entry's remaining freshness in seconds (negative when stale);
// fwdStatus is the upstream's status behind a stale-if-error answer, 0 if
// it gave none.
func setCacheStatus(h *fasthttp.ResponseHeader, o outcome, ttl int64, fwdStatus int) {
	var buf [96]byte
	var cs, x []byte
	switch o {
	case outHit:
		cs = strconv.AppendInt(append(buf[:0], "sheepdog; hit; ttl="...), ttl, 10)
		x = xHit
	case outStaleRevalidate:
		cs = strconv.AppendInt(append(buf[:0], "sheepdog; hit; ttl="...), ttl, 10)
		cs = append(cs, "; detail=stale-while-revalidate"...)
		x = xStale
	case outStaleError:
		cs = append(buf[:0], "sheepdog; fwd=stale"...)
		if fwdStatus > 0 {
			cs = strconv.AppendInt(append(cs, "; fwd-status="...), int64(fwdStatus), 10)
		}
		cs = append(cs, "; detail=stale-if-error"...)
		x = xStale
	case outMiss:
		cs, x = csMiss, xMiss
	case outMissStored:
		cs, x = csStored, xMiss
	case outCollapsed:
		cs, x = csCollapsed, xMiss
	default:
		cs, x = csBypass, xBypass
	}
	if prior := h.PeekBytes(hdrCacheStatus); len(prior) > 0 {
		// The app's answer carries caches of its own: each adds its
		// entry, the one nearest the client last (RFC 9211 §2).
		cs = append(append(append(make([]byte, 0, len(prior)+2+len(cs)), prior...), ", "...), cs...)
	}
	h.SetBytesKV(hdrCacheStatus, cs)
	h.SetBytesKV(hdrXCache, x)
}
