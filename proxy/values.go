package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/configs"
	"github.com/style-shepherd/sheepdog/internal/jsonscan"
	"github.com/style-shepherd/sheepdog/upstream"
)

// requestValues reads the values that keys and templates name, from one
// request: path parameters, query arguments, headers, cookies and the JSON
// body (parsed once, on first use).
type requestValues struct {
	ctx    *fasthttp.RequestCtx
	params Params // a value, not a pointer: a hit keeps it on the stack

	bodyRead bool
	top      map[string]json.RawMessage // the body's members, when it is an object
	bodyErr  error
}

// errMissingValue is a placeholder or key field without a default naming a
// value the request does not carry: a 400, never an empty key.
type errMissingValue struct{ what string }

func (e *errMissingValue) Error() string { return "the request has no " + e.what }

// errBadBody is a JSON body that a template or key needs but cannot read.
var errBadBody = errors.New("request body is not valid JSON")

// value returns the named value and whether the request has it.
func (rv *requestValues) value(src configs.Source, name string) ([]byte, bool) {
	switch src {
	case configs.SourcePath:
		v := rv.params.Get(name)
		return v, v != nil
	case configs.SourceQuery:
		args := rv.ctx.QueryArgs()
		return args.Peek(name), args.Has(name)
	case configs.SourceHeader:
		v := rv.ctx.Request.Header.Peek(name)
		return v, len(v) > 0
	case configs.SourceBody:
		return rv.bodyValue(name)
	case sourceCookie:
		v := rv.ctx.Request.Header.Cookie(name)
		return v, v != nil
	}
	return nil, false
}

// sourceCookie is a key field source: cookies are keys, never templates.
const sourceCookie configs.Source = "cookie"

// bodyValue reads a dotted JSON path of the request body. Strings give
// their text, numbers JavaScript's String() of them, other values their
// compact JSON, so {"topK":20}, {"topK":20.0} and the default "topK=20"
// name the same value, and {"user_id":1.0} the tag orders:1.
func (rv *requestValues) bodyValue(path string) ([]byte, bool) {
	v, _, ok := rv.typedBodyValue(path)
	return v, ok
}

// typedBodyValue is bodyValue that also tells whether the value is a
// JSON string.
func (rv *requestValues) typedBodyValue(path string) (v []byte, isString, ok bool) {
	var steps []string // {body}: the whole of it
	if path != "" {
		steps = strings.Split(path, ".")
	}
	raw, ok := rv.rawBodyValue(steps)
	if !ok {
		return nil, false, false
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, false, false
		}
		return []byte(s), true, true
	case '{', '[':
		v, err := parseJSONBody(raw)
		if err != nil {
			return nil, false, false
		}
		b, _ := json.Marshal(v)
		return b, false, true
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		// As the app's String() writes it: 1.0 is "1", 1e21 "1e+21".
		return []byte(upstream.JSString(raw)), false, true
	default: // true, false, null
		return raw, false, true
	}
}

// bodyKeyValue is bodyValue as a key holds it: a string's text marked as
// a string, anything else as JSON, so that "null" and null, "20" and 20,
// or a string holding an object and the object itself, which the app
// reads differently, are different keys.
func (rv *requestValues) bodyKeyValue(path string) ([]byte, bool) {
	v, isString, ok := rv.typedBodyValue(path)
	if !ok {
		return nil, false
	}
	kind := byte('j')
	if isString {
		kind = 's'
	}
	return append([]byte{kind}, v...), true
}

// rawBodyValue returns the value at path in the JSON body, its bytes as
// written (an object keeps its key order). The body's top-level members
// are decoded once per request, for every key field and template.
func (rv *requestValues) rawBodyValue(path []string) (json.RawMessage, bool) {
	if !rv.bodyRead {
		rv.bodyRead = true
		rv.top, rv.bodyErr = decodeTop(rv.ctx.Request.Body())
	}
	if rv.bodyErr != nil {
		return nil, false
	}
	if len(path) == 0 { // {body}: the whole of it
		body := bytes.TrimSpace(rv.ctx.Request.Body())
		return json.RawMessage(body), len(body) > 0
	}
	if rv.top == nil { // empty, or JSON that is not an object
		return rawJSONAt(rv.ctx.Request.Body(), path)
	}
	v, ok := rv.top[path[0]]
	if !ok {
		return nil, false
	}
	return rawJSONAt(v, path[1:])
}

// setTop gives rv the body's top-level members, already read in order
// (objectFields), so that templates need not decode the body again.
func (rv *requestValues) setTop(fields []field) {
	top := make(map[string]json.RawMessage, len(fields))
	for _, f := range fields {
		top[f.key] = f.value
	}
	rv.top, rv.bodyErr, rv.bodyRead = top, nil, true
}

// otherReadings adds to tags (those of the body read as JSON, or err if
// that failed) the invalidation tags of the body read as the app may read
// a body that is not JSON: as none (its defaults), and as a form's fields.
// A reading that cannot give every tag is left out; err stands only if
// none can.
func (rv *requestValues) otherReadings(tags []string, err error, invalidates []configs.Template) ([]string, error) {
	readings := [][]field{nil}
	if media, _, err := mime.ParseMediaType(string(rv.ctx.Request.Header.ContentType())); err == nil && media == "application/x-www-form-urlencoded" {
		var form fasthttp.Args
		form.ParseBytes(rv.ctx.Request.Body())
		var fields []field
		for k, v := range form.All() {
			if bytes.ContainsAny(k, "[]") {
				continue // qs reads it as an object or array
			}
			fields = append(fields, field{key: string(k), value: upstream.AppendJSString(nil, v)})
		}
		readings = append(readings, fields)
	}
	for _, fields := range readings {
		rv.setTop(fields)
		more, e := rv.evalTags(nil, invalidates)
		if e != nil {
			continue
		}
		tags, err = append(tags, more...), nil
	}
	return tags, err
}

// decodeTop decodes a body's top-level members; nil, without an error,
// when the body is empty or JSON other than an object. A function of its
// own so that the map, not the requestValues (which stays on the stack of
// a cache hit), is what escapes.
func decodeTop(body []byte) (map[string]json.RawMessage, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	var top map[string]json.RawMessage
	err := json.NewDecoder(bytes.NewReader(body)).Decode(&top)
	var notObject *json.UnmarshalTypeError
	switch {
	case errors.As(err, &notObject):
		return nil, nil
	case err != nil:
		return nil, errBadBody
	}
	return top, nil
}

// rawJSONAt walks path into a JSON document, keeping each value's bytes
// as written. As in JS, the last of repeated keys wins.
func rawJSONAt(doc []byte, path []string) (json.RawMessage, bool) {
	cur := json.RawMessage(bytes.TrimSpace(doc))
	for _, step := range path {
		switch {
		case len(cur) > 0 && cur[0] == '{':
			var obj map[string]json.RawMessage
			if json.Unmarshal(cur, &obj) != nil {
				return nil, false
			}
			next, ok := obj[step]
			if !ok {
				return nil, false
			}
			cur = next
		case len(cur) > 0 && cur[0] == '[':
			var arr []json.RawMessage
			i, err := strconv.Atoi(step)
			if err != nil || json.Unmarshal(cur, &arr) != nil || i < 0 || i >= len(arr) {
				return nil, false
			}
			cur = arr[i]
		default:
			return nil, false
		}
	}
	return cur, len(cur) > 0
}

// parseJSONBody decodes a request body, numbers kept as written. It is a
// function of its own so that the decoded value, not the requestValues
// (which stays on the stack of a cache hit), is what escapes.
func parseJSONBody(body []byte) (any, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return nil, errBadBody
	}
	return v, nil
}

// appendTemplate appends t evaluated against the request. A placeholder
// with no value and no default fails the request.
func (rv *requestValues) appendTemplate(dst []byte, t configs.Template) ([]byte, error) {
	for _, p := range t {
		if p.IsLiteral() {
			dst = append(dst, p.Literal...)
			continue
		}
		v, ok := rv.value(p.Source, p.Name)
		if ok && p.OrDefault && rv.falsy(p, v) {
			ok = false
		}
		switch {
		case ok:
			dst = append(dst, v...)
		case p.HasDefault:
			dst = append(dst, p.Default...)
		case p.Source == configs.SourceBody && rv.bodyErr != nil:
			return dst, rv.bodyErr
		default:
			return dst, &errMissingValue{what: fmt.Sprintf("%s.%s", p.Source, p.Name)}
		}
	}
	return dst, nil
}

// falsy reports whether a value p read (v, as value gives it) is falsy in
// JavaScript: a body's null, false, 0 or "", or any other empty value.
func (rv *requestValues) falsy(p configs.Part, v []byte) bool {
	if p.Source != configs.SourceBody {
		return len(v) == 0
	}
	raw, ok := rv.rawBodyValue(p.JSONPath())
	return !ok || !upstream.TruthyJSON(raw)
}

// evalTags evaluates tag templates into strings.
func (rv *requestValues) evalTags(dst []string, tags []configs.Template) ([]string, error) {
	var buf []byte
	for _, t := range tags {
		var err error
		if buf, err = rv.appendTemplate(buf[:0], t); err != nil {
			return dst, err
		}
		dst = append(dst, string(buf))
	}
	return dst, nil
}

// wellFormedBody makes a JSON body the app reads the text express.json()
// decodes from it, where it is not valid UTF-8 (jsonscan.AppendWellFormed:
// one U+FFFD for each ill-formed part, as Node decodes): keys, templates
// and sinks then read what the app reads, and the app reads the same text
// from the body sent on. Go's decoders would read one U+FFFD a byte, so
// two bodies the app reads apart could share a key.
func wellFormedBody(req *fasthttp.Request) {
	if body := req.Body(); !utf8.Valid(body) {
		req.SetBodyRaw(jsonscan.AppendWellFormed(make([]byte, 0, len(body)+8), body))
	}
}

// readBody reads a request body whole, for the routes whose keys, tags or
// invalidations name body values; bodies past max are refused, not read.
func readBody(ctx *fasthttp.RequestCtx, max int) error {
	n := ctx.Request.Header.ContentLength()
	if n > max {
		return errBodyTooLarge
	}
	stream := ctx.RequestBodyStream()
	if n == 0 || n == -2 || stream == nil {
		return nil // none, or read already (a batch route that passes it on)
	}
	body, err := io.ReadAll(&limitedBody{r: stream, left: int64(max)})
	if err != nil {
		return err
	}
	ctx.Request.SetBodyRaw(body)
	dropTrailers(&ctx.Request.Header)
	return nil
}

// dropTrailers removes the fields a chunked body's trailer brought, and
// any of the same name: the body goes on with a length, and fasthttp would
// write them into the header section (RFC 9110 §6.5.1 forbids merging),
// past the checks made on it, where the app would read them beside the
// header's own (Node joins "X-Tenant: acme" and a trailer's "evil"). The
// key, the tags and the app then all read the same header.
func dropTrailers(h *fasthttp.RequestHeader) {
	keys := h.PeekTrailerKeys()
	if len(keys) == 0 {
		return
	}
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = string(k) // Del may reuse what PeekTrailerKeys viewed
	}
	for _, name := range names {
		h.Del(name)
	}
	h.Del(fasthttp.HeaderTrailer)
}
