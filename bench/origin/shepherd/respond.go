package shepherd

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

const (
	jsonType = "application/json; charset=utf-8"
	// compressThreshold is the compression middleware's default, 1kb:
	// smaller bodies go out as they are.
	compressThreshold = 1024
)

// helmetHeaders are the headers helmet() sets on every response, with
// their exact spelling (fasthttp would otherwise write X-Xss-Protection).
var helmetHeaders = [][2]string{
	{"Content-Security-Policy", "default-src 'self';base-uri 'self';font-src 'self' https: data:;form-action 'self';frame-ancestors 'self';img-src 'self' data:;object-src 'none';script-src 'self';script-src-attr 'none';style-src 'self' https: 'unsafe-inline';upgrade-insecure-requests"},
	{"Cross-Origin-Opener-Policy", "same-origin"},
	{"Cross-Origin-Resource-Policy", "same-origin"},
	{"Origin-Agent-Cluster", "?1"},
	{"Referrer-Policy", "no-referrer"},
	{"Strict-Transport-Security", "max-age=31536000; includeSubDomains"},
	{"X-Content-Type-Options", "nosniff"},
	{"X-DNS-Prefetch-Control", "off"},
	{"X-Download-Options", "noopen"},
	{"X-Frame-Options", "SAMEORIGIN"},
	{"X-Permitted-Cross-Domain-Policies", "none"},
	{"X-XSS-Protection", "0"},
}

// setAppHeaders sets what helmet and cors add before any route runs: the
// security headers, and CORS reflecting the request's Origin with
// credentials allowed.
func setAppHeaders(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	for _, kv := range helmetHeaders {
		h.SetCanonical([]byte(kv[0]), []byte(kv[1]))
	}
	if origin := ctx.Request.Header.Peek("Origin"); len(origin) > 0 {
		h.SetCanonical([]byte("Access-Control-Allow-Origin"), origin)
	}
	h.SetCanonical([]byte("Access-Control-Allow-Credentials"), []byte("true"))
}

// requestID is the incoming X-Request-Id (Node joins repeated headers
// with ", "), or a random UUID.
func requestID(ctx *fasthttp.RequestCtx) string {
	vals := ctx.Request.Header.PeekAll("X-Request-Id")
	var b []byte
	for i, v := range vals {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, v...)
	}
	if len(b) > 0 {
		return string(b)
	}
	return newUUID()
}

// newUUID returns a random (version 4) UUID, as crypto.randomUUID does.
func newUUID() string {
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:], u[10:])
	return string(s[:])
}

// isoTime is Date#toISOString.
func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// envelope applies the app's response wrapper: a body without a
// top-level success or error key becomes {success, data, requestId,
// timestamp}; one with either goes out flat with requestId and timestamp
// added when missing.
func envelope(v any, requestID string, now time.Time) any {
	if o, ok := v.(*object); ok && (o.has("success") || o.has("error")) {
		flat := &object{members: append(make([]member, 0, len(o.members)+2), o.members...)}
		if id, ok := flat.get("requestId"); !truthy(id, ok) && requestID != "" {
			flat.set("requestId", requestID)
		}
		if ts, ok := flat.get("timestamp"); !truthy(ts, ok) {
			flat.set("timestamp", isoTime(now))
		}
		return flat
	}
	return newObject("success", true, "data", v, "requestId", requestID, "timestamp", isoTime(now))
}

// appError is the error handler's shape for an AppError:
// {"error":{code, message, statusCode, details?, timestamp}}.
func appError(status int, code, message string, now time.Time) answer {
	return appErrorDetails(status, code, message, nil, now)
}

func appErrorDetails(status int, code, message string, details any, now time.Time) answer {
	e := newObject("code", code, "message", message, "statusCode", float64(status))
	if details != nil {
		e.set("details", details)
	}
	e.set("timestamp", isoTime(now))
	return answer{status, newObject("error", e)}
}

var bodyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// respond is res.status(s).json(body) through the wrapper.
func (a *App) respond(rq *request, ans answer) {
	bp := bodyBufs.Get().(*[]byte)
	body := appendJSON((*bp)[:0], envelope(ans.body, rq.requestID, rq.now))
	send(rq.ctx, ans.status, jsonType, body)
	if cap(body) <= maxPooledBody {
		*bp = body
		bodyBufs.Put(bp)
	}
}

// maxPooledBody keeps a rare large answer (a full export) from pinning
// its buffer in the pool.
const maxPooledBody = 256 << 10

// send is Express's res.send with the compression middleware around it:
// a weak ETag, a 304 when the request's validators match, and gzip (or
// deflate) for bodies of 1 KB and more when the client accepts it. The
// body is copied; the caller may reuse it.
func send(ctx *fasthttp.RequestCtx, status int, contentType string, body []byte) {
	h := &ctx.Response.Header
	ctx.SetStatusCode(status)
	etag := weakETag(body)
	h.SetCanonical([]byte("ETag"), etag)
	if fresh(ctx, status, etag) {
		// Express strips the body and its headers; with no Content-Type
		// the compression filter never runs, so no Accept-Encoding in Vary.
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		h.SetCanonical([]byte("Vary"), []byte("Origin"))
		ctx.Response.ResetBody()
		return
	}
	h.SetContentType(contentType)
	h.SetCanonical([]byte("Vary"), []byte("Origin, Accept-Encoding"))
	if len(body) >= compressThreshold && !ctx.IsHead() {
		switch negotiateEncoding(ctx.Request.Header.Peek("Accept-Encoding")) {
		case "gzip":
			h.SetContentEncoding("gzip")
			ctx.Response.ResetBody()
			compress(&gzipWriters, ctx.Response.BodyWriter(), body)
			return
		case "deflate":
			h.SetContentEncoding("deflate")
			ctx.Response.ResetBody()
			compress(&zlibWriters, ctx.Response.BodyWriter(), body)
			return
		}
	}
	ctx.SetBody(body)
}

// compressor is a pooled gzip or zlib writer.
type compressor interface {
	io.WriteCloser
	Reset(w io.Writer)
}

var (
	gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(io.Discard) }}
	zlibWriters = sync.Pool{New: func() any { return zlib.NewWriter(io.Discard) }}
)

func compress(pool *sync.Pool, dst io.Writer, body []byte) {
	w := pool.Get().(compressor)
	w.Reset(dst)
	w.Write(body) // writes into memory: cannot fail
	w.Close()
	w.Reset(io.Discard)
	pool.Put(w)
}

// weakETag is Express's default ETag: W/"<length in hex>-<27 chars of
// the base64 SHA-1>".
func weakETag(body []byte) []byte {
	sum := sha1.Sum(body)
	var b64 [28]byte
	base64.StdEncoding.Encode(b64[:], sum[:])
	out := make([]byte, 0, 48)
	out = append(out, `W/"`...)
	out = strconv.AppendInt(out, int64(len(body)), 16)
	out = append(out, '-')
	out = append(out, b64[:27]...)
	return append(out, '"')
}

// fresh is Express's req.fresh: whether the client's cached copy, named
// by If-None-Match, is still this answer. These answers carry no
// Last-Modified, so If-Modified-Since alone never makes one fresh.
func fresh(ctx *fasthttp.RequestCtx, status int, etag []byte) bool {
	if !ctx.IsGet() && !ctx.IsHead() {
		return false
	}
	if (status < 200 || status >= 300) && status != fasthttp.StatusNotModified {
		return false
	}
	inm := ctx.Request.Header.Peek("If-None-Match")
	ims := ctx.Request.Header.Peek("If-Modified-Since")
	if len(inm) == 0 && len(ims) == 0 {
		return false
	}
	if hasToken(ctx.Request.Header.Peek("Cache-Control"), "no-cache") {
		return false
	}
	if len(inm) > 0 && string(inm) != "*" {
		match := false
		for _, t := range splitTokens(inm) {
			if bytes.Equal(t, etag) || (bytes.HasPrefix(etag, []byte("W/")) && bytes.Equal(t, etag[2:])) ||
				(bytes.HasPrefix(t, []byte("W/")) && bytes.Equal(t[2:], etag)) {
				match = true
				break
			}
		}
		if !match {
			return false
		}
	}
	return len(ims) == 0
}

// splitTokens splits a header list on commas and spaces.
func splitTokens(v []byte) [][]byte {
	return bytes.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
}

func hasToken(v []byte, token string) bool {
	for _, part := range bytes.Split(v, []byte(",")) {
		if bytes.EqualFold(bytes.TrimSpace(part), []byte(token)) {
			return true
		}
	}
	return false
}

// encodingPref is one entry of Accept-Encoding.
type encodingPref struct {
	name  string
	q     float64
	order int
}

// negotiateEncoding picks the compression the middleware would: the
// best-rated of gzip, deflate and identity (identity is implied at the
// lowest listed quality), preferring gzip over deflate whenever gzip is
// acceptable. It returns "" for no compression.
func negotiateEncoding(header []byte) string {
	if len(header) == 0 {
		return ""
	}
	var prefs []encodingPref
	minQ := 1.0
	hasIdentity := false
	for i, part := range bytes.Split(header, []byte(",")) {
		fields := bytes.Split(bytes.TrimSpace(part), []byte(";"))
		name := string(bytes.ToLower(bytes.TrimSpace(fields[0])))
		if name == "" {
			continue
		}
		q := 1.0
		for _, f := range fields[1:] {
			f = bytes.TrimSpace(f)
			if len(f) > 2 && (f[0] == 'q' || f[0] == 'Q') && f[1] == '=' {
				if v, err := strconv.ParseFloat(string(f[2:]), 64); err == nil {
					q = v
				}
			}
		}
		prefs = append(prefs, encodingPref{name, q, i})
		if name == "identity" || name == "*" {
			hasIdentity = true
		}
		minQ = min(minQ, q)
	}
	if !hasIdentity {
		prefs = append(prefs, encodingPref{"identity", minQ, len(prefs) + 1})
	}
	best := func(candidates ...string) string {
		pick, pickQ, pickSpec, pickOrder := "", 0.0, -1, 0
		for _, c := range candidates {
			q, spec, order := 0.0, -1, 0
			for _, p := range prefs {
				s := -1
				if p.name == c {
					s = 1
				} else if p.name == "*" {
					s = 0
				}
				if s < 0 {
					continue
				}
				if s > spec || (s == spec && p.q > q) {
					q, spec, order = p.q, s, p.order
				}
			}
			if spec < 0 || q <= 0 {
				continue
			}
			if pick == "" || q > pickQ || (q == pickQ && (spec > pickSpec || (spec == pickSpec && order < pickOrder))) {
				pick, pickQ, pickSpec, pickOrder = c, q, spec, order
			}
		}
		return pick
	}
	enc := best("gzip", "deflate", "identity")
	if enc == "deflate" && best("gzip") != "" {
		enc = best("gzip", "identity")
	}
	if enc == "identity" {
		return ""
	}
	return enc
}
