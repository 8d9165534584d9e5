package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/cachelayer"
	"github.com/style-shepherd/sheepdog/configs"
)

// cacheRule is a route's cache block compiled once: key fields sorted and
// labelled, tag templates parsed, statuses in a set.
type cacheRule struct {
	ttl, swr, sie time.Duration
	fields        []keyField
	tags          []configs.Template
	statuses      [600]bool
	keyedAuth     bool // Authorization is a key field: such requests may be stored
	cookies       bool // the key names cookies: requests with those may be stored
	cookieNames   []string
	needsBody     bool // a key field or tag reads the JSON body
	keyedBody     bool // a key field reads it: the body goes upstream
	keyedQuery    bool // a key field reads the query
	keyedHeader   bool // a key field reads a request header
}

// expressParameterLimit is how many '&'-separated parts of a query
// Express reads (qs's parameterLimit, node:querystring's maxKeys); it
// drops the rest, so a keyed value past them never reaches the app.
const expressParameterLimit = 1000

// ambiguous reports whether the request's keyed values may not be what
// the app reads, so that its answer may not be the key's; such requests
// bypass the cache:
//   - a keyed query parameter sent more than once or in a bracket form
//     (name[]=, name[k]=), which Express reads as an array or an object;
//   - a query of more parts than Express reads, when the key reads the
//     query;
//   - a keyed header sent on more than one line, which Node joins;
//   - a Connection that names a header the request carries, which the
//     app never receives (connectionStripsSent);
//   - a body the key or a tag reads that express.json() would not read
//     (not application/json, or content-encoded): the app sees no body.
func (cr *cacheRule) ambiguous(ctx *fasthttp.RequestCtx) bool {
	h := &ctx.Request.Header
	if cr.needsBody && h.ContentLength() != 0 && !appReadsJSON(h) {
		return true
	}
	if connectionStripsSent(h) {
		return true
	}
	if q := ctx.URI().QueryString(); cr.keyedQuery &&
		(bytes.Count(q, []byte("&")) >= expressParameterLimit || qsReadsOtherwise(q) || cr.ambiguousArgs(ctx.QueryArgs())) {
		return true
	}
	if cr.keyedHeader {
		for i := range cr.fields {
			if f := &cr.fields[i]; f.src == configs.SourceHeader && repeated(h, f.name) {
				return true
			}
		}
	}
	return false
}

// qsReadsOtherwise reports whether Express's query parser (qs) may read
// the raw query string q otherwise than fasthttp's Args do:
//   - brackets, as written or %5B/%5D (qs turns those into brackets
//     first): "[userId]=alice" is userId to qs, "a[b]" an object, and a
//     "]=" splits a part there rather than at its first "=";
//   - a "%" not followed by two hex digits: decodeURIComponent throws,
//     and qs keeps the whole key or value undecoded, where fasthttp
//     decodes the escapes it can.
func qsReadsOtherwise(q []byte) bool {
	for i, c := range q {
		switch c {
		case '[', ']':
			return true
		case '%':
			if i+2 >= len(q) || !isHex(q[i+1]) || !isHex(q[i+2]) {
				return true
			}
			if q[i+1] == '5' && (q[i+2]|0x20 == 'b' || q[i+2]|0x20 == 'd') {
				return true
			}
		}
	}
	return false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'f'
}

// ambiguousArgs reports whether a keyed query parameter comes more than
// once, in a bracket form, or with a value whose escapes are not UTF-8
// (decodeURIComponent throws on those, and qs keeps the value as sent).
func (cr *cacheRule) ambiguousArgs(args *fasthttp.Args) bool {
	for i := range cr.fields {
		f := &cr.fields[i]
		if f.src != configs.SourceQuery {
			continue
		}
		seen := 0
		for k, v := range args.All() {
			switch {
			case string(k) == f.name:
				seen++
				if !utf8.Valid(v) {
					return true
				}
			case len(k) > len(f.name) && k[len(f.name)] == '[' && string(k[:len(f.name)]) == f.name:
				return true
			}
		}
		if seen > 1 {
			return true
		}
	}
	return false
}

// repeated reports whether the request carries header name on more than
// one line.
func repeated(h *fasthttp.RequestHeader, name string) bool {
	return len(h.PeekAll(name)) > 1
}

// anyRepeated is repeated for any of names.
func anyRepeated(h *fasthttp.RequestHeader, names []string) bool {
	for _, name := range names {
		if repeated(h, name) {
			return true
		}
	}
	return false
}

// appReadsJSON reports whether express.json() reads a body sent with
// these headers as Sheepdog reads it: application/json, in UTF-8, not
// content-encoded. Otherwise the app ignores it (another type), inflates
// it, decodes it from another charset, or refuses it (415).
func appReadsJSON(h *fasthttp.RequestHeader) bool {
	// A malformed Content-Type, or one that repeats a parameter, is the
	// app's to read as it will.
	media, params, err := mime.ParseMediaType(string(h.ContentType()))
	if err != nil || media != "application/json" || encoded(h) {
		return false
	}
	// body-parser refuses any charset not starting "utf-" (utf8 included,
	// 415) and decodes the others: only UTF-8 is read here as there.
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8")
}

// appReadsOtherwise reports whether express.json() reads a non-empty
// body otherwise than Sheepdog would: one after a byte order mark (the app
// drops it), or valid JSON that is not an object or an array (the app's
// strict mode refuses it with a 400). The app answers such bodies itself.
func appReadsOtherwise(body []byte) bool {
	if bytes.HasPrefix(body, utf8BOM) {
		return true
	}
	t := bytes.TrimLeft(body, " \t\r\n")
	return len(t) > 0 && t[0] != '{' && t[0] != '[' && json.Valid(t)
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// surrogateEscape reports whether a JSON body holds a UTF-16 surrogate
// escape (\ud800 to \udfff). JSON.parse keeps a lone one in the string,
// where Go's decoders read U+FFFD, so "\ud800" and "\udc00" would share a
// key the app reads as two users. Paired ones are rare (JSON.stringify
// writes an emoji as it is); a body with any goes to the app uncached.
func surrogateEscape(body []byte) bool {
	for rest := body; ; {
		i := bytes.Index(rest, []byte(`\u`))
		if i < 0 || i+3 >= len(rest) {
			return false
		}
		if hi, lo := rest[i+2]|0x20, rest[i+3]|0x20; hi == 'd' && (lo >= '8' && lo <= '9' || lo >= 'a' && lo <= 'f') {
			return true
		}
		rest = rest[i+2:]
	}
}

// encoded reports whether the request body has a Content-Encoding other
// than identity: body-parser inflates it, Sheepdog would read the bytes.
func encoded(h *fasthttp.RequestHeader) bool {
	ce := bytes.TrimSpace(h.PeekBytes(hdrContentEncoding))
	return len(ce) > 0 && !bytes.EqualFold(ce, []byte("identity"))
}

// keyField is one allowlisted request value. label and absent are the
// names it is hashed under, precomputed so building a key allocates
// nothing: a missing value without a default is hashed as absent, which
// differs from present-and-empty.
type keyField struct {
	src           configs.Source
	name          string
	def           string
	hasDef        bool
	label, absent string
}

// bodyKeyDefault is a body field's default as bodyKeyValue writes a
// value: JSON when it reads as a number, true, false or null (the app's
// default topK=20 is the number), else a string.
func bodyKeyDefault(def string) string {
	var v any
	if json.Unmarshal([]byte(def), &v) == nil {
		switch v.(type) {
		case float64, bool, nil:
			return "j" + def
		}
	}
	return "s" + def
}

func compileCache(c *configs.CacheRule) (*cacheRule, error) {
	cr := &cacheRule{ttl: c.TTL, swr: c.StaleWhileRevalidate, sie: c.StaleIfError}
	for _, s := range c.Statuses {
		if s > 0 && s < len(cr.statuses) {
			cr.statuses[s] = true
		}
	}
	add := func(src configs.Source, list []string) error {
		for _, raw := range list {
			f, err := configs.ParseKeyField(raw)
			if err != nil {
				return err
			}
			label := string(src) + ":" + f.Name
			def := f.Default
			if src == configs.SourceBody && f.HasDefault {
				def = bodyKeyDefault(def)
			}
			cr.fields = append(cr.fields, keyField{src: src, name: f.Name, def: def, hasDef: f.HasDefault,
				label: label, absent: label + "!"})
			switch {
			case src == configs.SourceHeader && bytes.EqualFold([]byte(f.Name), []byte("Authorization")):
				cr.keyedAuth = true
			case src == sourceCookie:
				cr.cookies = true
				cr.cookieNames = append(cr.cookieNames, f.Name)
			case src == configs.SourceBody:
				cr.needsBody, cr.keyedBody = true, true
			case src == configs.SourceQuery:
				cr.keyedQuery = true
			}
			if src == configs.SourceHeader {
				cr.keyedHeader = true
			}
		}
		return nil
	}
	for _, group := range []struct {
		src  configs.Source
		list []string
	}{{configs.SourceQuery, c.Key.Query}, {configs.SourceHeader, c.Key.Header}, {configs.SourceBody, c.Key.Body}, {sourceCookie, c.Key.Cookie}} {
		if err := add(group.src, group.list); err != nil {
			return nil, err
		}
	}
	// The key must not depend on the order the file lists fields in.
	slices.SortFunc(cr.fields, func(a, b keyField) int { return cmpString(a.label, b.label) })
	for _, raw := range c.Tags {
		t, err := configs.ParseTemplate(raw)
		if err != nil {
			return nil, fmt.Errorf("tag %q: %w", raw, err)
		}
		for _, p := range t {
			if p.Source == configs.SourceBody {
				cr.needsBody = true
			}
		}
		cr.tags = append(cr.tags, t)
	}
	return cr, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// buildKey hashes what tells answers apart: the route, the method (HEAD
// shares GET's entries), the path and the allowlisted values, defaults
// applied. Nothing else of the request can reach the key.
//
// The path is the one the app receives, as the client sent it, not the
// one routing matched (percent-decoded, dot segments removed): otherwise
// /users/mallory/%2E%2E/alice/profile, which the app answers 404, would be
// stored as Alice's profile.
func (cr *cacheRule) buildKey(kb *cachelayer.KeyBuilder, routeName string, method []byte, rv *requestValues) cachelayer.Key {
	kb.Reset()
	kb.Add("route", s2b(routeName))
	if bytes.Equal(method, methodHead) {
		method = methodGet
	}
	kb.Add("method", method)
	kb.Add("path", rv.ctx.URI().PathOriginal())
	for i := range cr.fields {
		f := &cr.fields[i]
		var v []byte
		var ok bool
		if f.src == configs.SourceBody {
			v, ok = rv.bodyKeyValue(f.name)
		} else {
			v, ok = rv.value(f.src, f.name)
		}
		switch {
		case ok:
			kb.Add(f.label, v)
		case f.hasDef:
			kb.Add(f.label, s2b(f.def))
		default:
			kb.Add(f.absent, nil)
		}
	}
	return kb.Sum()
}

// variantKey is the key of one variant of a Vary'd answer: the primary key
// and the request's value of each Vary header (Accept-Encoding already
// normalised by the cache handler).
func variantKey(kb *cachelayer.KeyBuilder, primary *cachelayer.Key, vary []string, h *fasthttp.RequestHeader) cachelayer.Key {
	kb.Reset()
	kb.Add("primary", primary[:])
	for _, name := range vary {
		kb.Add(name, h.Peek(name))
	}
	return kb.Sum()
}
