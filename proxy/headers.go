package proxy

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"slices"

	"github.com/valyala/fasthttp"
)

// hopByHop are the headers that describe one connection, not the message
// (RFC 9110 §7.6.1); they are never forwarded, in either direction.
// Content-Length and Transfer-Encoding are managed by fasthttp itself.
var hopByHop = [][]byte{
	[]byte("Connection"),
	[]byte("Proxy-Connection"),
	[]byte("Keep-Alive"),
	[]byte("Proxy-Authenticate"),
	[]byte("Proxy-Authorization"),
	[]byte("Te"),
	[]byte("Trailer"),
	[]byte("Upgrade"),
}

var (
	hdrForwardedFor   = []byte("X-Forwarded-For")
	hdrSetCookie      = []byte("Set-Cookie")
	hdrForwardedProto = []byte("X-Forwarded-Proto")
	hdrRequestID      = []byte("X-Request-Id")
	protoHTTP         = []byte("http")
)

// header is what request and response headers share for hop-by-hop removal.
type header interface {
	PeekAll(key string) [][]byte
	PeekBytes(key []byte) []byte
	DelBytes(key []byte)
	AddBytesKV(key, value []byte)
}

// stripHopByHop removes the hop-by-hop headers and every header the
// Connection header names, in any of its lines (one list, RFC 9110 §5.3).
// It reports whether it removed any: fasthttp deletes a header by moving
// the last one into its place, so the lines of a repeated header may then
// need their order back (restoreOrder).
func stripHopByHop(h header) (removed bool) {
	var buf [256]byte
	names := connectionNames(buf[:0], h)
	del := func(name []byte) {
		if h.PeekBytes(name) != nil {
			h.DelBytes(name)
			removed = true
		}
	}
	for name := range bytes.SplitSeq(names, []byte(",")) {
		if name = bytes.TrimSpace(name); len(name) > 0 {
			del(name)
		}
	}
	for _, name := range hopByHop {
		del(name)
	}
	return removed
}

// connectionNames appends the names h's Connection lines list, comma
// separated. It copies: deleting headers may reuse what PeekAll viewed.
func connectionNames(dst []byte, h header) []byte {
	for _, line := range h.PeekAll("Connection") {
		dst = append(append(dst, line...), ',')
	}
	return dst
}

// connectionStripsSent reports whether the request's Connection lists a
// header it carries, beyond the fixed hop-by-hop ones: Sheepdog forwards
// no header Connection names (RFC 9110 §7.6.1), so the app reads the
// request without it, while the cache key and the checks, made on the
// client's header, would read it (Connection: Content-Type leaves a
// keyed JSON body unread by the app; Connection: X-Tenant, a keyed header
// unsent).
func connectionStripsSent(h *fasthttp.RequestHeader) bool {
	for _, line := range h.PeekAll(fasthttp.HeaderConnection) {
		for len(line) > 0 {
			name := line
			if i := bytes.IndexByte(line, ','); i >= 0 {
				name, line = line[:i], line[i+1:]
			} else {
				line = nil
			}
			name = bytes.TrimSpace(name)
			if len(name) == 0 || bytes.EqualFold(name, strClose) || isHopByHop(name, nil) {
				continue
			}
			if h.PeekBytes(name) != nil {
				return true
			}
		}
	}
	return false
}

var strClose = []byte("close")

// isHopByHop reports whether a header of this name describes one
// connection: a fixed hop-by-hop header, or one of names, the Connection
// header's list.
func isHopByHop(name, names []byte) bool {
	for _, h := range hopByHop {
		if bytes.EqualFold(name, h) {
			return true
		}
	}
	for n := range bytes.SplitSeq(names, []byte(",")) {
		if n = bytes.TrimSpace(n); len(n) > 0 && bytes.EqualFold(name, n) {
			return true
		}
	}
	return false
}

// restoreOrder puts the lines of each header in lists that h still holds
// back in orig's order, after deletions from h, a copy of orig, moved them.
func restoreOrder(h, orig header, lists [][]byte) {
	// Every listed header goes first, then each comes back at the end in
	// orig's order: deleting one after another was put back would move
	// the lines of that one again.
	var buf [32][]byte
	kept := buf[:0]
	for _, name := range lists {
		if h.PeekBytes(name) == nil {
			continue // removed: stays so
		}
		h.DelBytes(name)
		kept = append(kept, name)
	}
	for _, name := range kept {
		for _, v := range orig.PeekAll(string(name)) {
			h.AddBytesKV(name, v)
		}
	}
}

// requestLists names the headers a request's raw header has on more than
// one line, but Cookie, which fasthttp keeps apart, and X-Forwarded-For,
// which is joined into one. The names view raw.
func requestLists(raw []byte) [][]byte {
	var buf [32][]byte
	seen := buf[:0]
	var lists [][]byte
	for line := range bytes.SplitSeq(raw, []byte("\n")) {
		name, _, ok := bytes.Cut(line, []byte(":"))
		if name = bytes.TrimSpace(name); !ok || len(name) == 0 ||
			bytes.EqualFold(name, hdrCookie) || bytes.EqualFold(name, hdrForwardedFor) {
			continue
		}
		seen, lists = noteName(seen, lists, name)
	}
	return lists
}

// responseLists is requestLists for an answer, but Set-Cookie, which
// fasthttp keeps apart, in order.
func responseLists(h *fasthttp.ResponseHeader) [][]byte {
	var buf [32][]byte
	seen := buf[:0]
	var lists [][]byte
	for name := range h.All() {
		if !bytes.EqualFold(name, hdrSetCookie) {
			seen, lists = noteName(seen, lists, name)
		}
	}
	return lists
}

// noteName adds name to seen, or, met before, to lists (once).
func noteName(seen, lists [][]byte, name []byte) ([][]byte, [][]byte) {
	has := func(names [][]byte) bool {
		return slices.ContainsFunc(names, func(n []byte) bool { return bytes.EqualFold(n, name) })
	}
	switch {
	case !has(seen):
		seen = append(seen, name)
	case !has(lists):
		lists = append(lists, name)
	}
	return seen, lists
}

// prepareRequest turns the client's request header, already copied into
// out, into the one sent upstream: hop-by-hop headers gone, the client's
// address appended to X-Forwarded-For, X-Forwarded-Proto set unless a proxy
// in front already set it, and X-Request-Id kept or generated.
func prepareRequest(ctx *fasthttp.RequestCtx, out *fasthttp.RequestHeader) {
	moved := stripHopByHop(out)
	// The upstream connection is ours and kept alive whatever the client
	// asked of its own.
	out.ResetConnectionClose()
	// A body without Content-Type goes without one: fasthttp would name
	// it application/octet-stream.
	out.SetNoDefaultContentType(true)

	var ipBuf [64]byte
	client := appendClientIP(ipBuf[:0], ctx)
	if len(out.PeekBytes(hdrForwardedFor)) > 0 {
		// Several X-Forwarded-For lines are one list (RFC 9110 §5.3), in
		// the client's order: a deletion may have moved them in out.
		joined := bytes.Join(ctx.Request.Header.PeekAll(string(hdrForwardedFor)), []byte(", "))
		// Set replaces only the first of repeated lines: drop them all.
		out.DelBytes(hdrForwardedFor)
		out.SetBytesKV(hdrForwardedFor, append(append(joined, ", "...), client...))
		moved = true
	} else {
		out.SetBytesKV(hdrForwardedFor, client)
	}
	if len(out.PeekBytes(hdrForwardedProto)) == 0 {
		out.SetBytesKV(hdrForwardedProto, protoHTTP)
	}
	if len(out.PeekBytes(hdrRequestID)) == 0 {
		var id [36]byte
		out.SetBytesKV(hdrRequestID, newRequestID(&id))
	}
	if moved {
		restoreOrder(out, &ctx.Request.Header, requestLists(ctx.Request.Header.RawHeaders()))
	}
}

// appendClientIP appends the client's address, IPv4 in dotted form.
func appendClientIP(dst []byte, ctx *fasthttp.RequestCtx) []byte {
	addr, ok := netip.AddrFromSlice(ctx.RemoteIP())
	if !ok {
		return append(dst, "unknown"...)
	}
	return addr.Unmap().AppendTo(dst)
}

const hexDigits = "0123456789abcdef"

// newRequestID writes a random (version 4) UUID into id, the form the app
// itself generates when a request comes without one.
func newRequestID(id *[36]byte) []byte {
	var b [16]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	for i := 0; i < 8; i++ {
		b[i], b[8+i] = byte(hi>>(8*i)), byte(lo>>(8*i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	j := 0
	for i, v := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			id[j] = '-'
			j++
		}
		id[j], id[j+1] = hexDigits[v>>4], hexDigits[v&0x0f]
		j += 2
	}
	return id[:]
}
