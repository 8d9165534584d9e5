package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/configs"
)

// requestValues reads the values that keys and templates name, from one
// request: path parameters, query arguments, headers, cookies and the JSON
// body (parsed once, on first use).
type requestValues struct {
	ctx    *fasthttp.RequestCtx
	params Params // a value, not a pointer: a hit keeps it on the stack

	bodyRead bool
	body     any
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

// bodyValue walks a dotted JSON path into the request body. Strings give
// their text, other values their compact JSON, so {"topK":20} and the
// default "topK=20" name the same value.
func (rv *requestValues) bodyValue(path string) ([]byte, bool) {
	if !rv.bodyRead {
		rv.bodyRead = true
		rv.body, rv.bodyErr = parseJSONBody(rv.ctx.Request.Body())
	}
	if rv.bodyErr != nil || rv.body == nil {
		return nil, false
	}
	v := rv.body
	for start := 0; start <= len(path); {
		end := start
		for end < len(path) && path[end] != '.' {
			end++
		}
		step := path[start:end]
		switch x := v.(type) {
		case map[string]any:
			next, ok := x[step]
			if !ok {
				return nil, false
			}
			v = next
		case []any:
			i, err := strconv.Atoi(step)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
		start = end + 1
	}
	switch x := v.(type) {
	case string:
		return []byte(x), true
	case json.Number:
		return []byte(x), true
	default:
		b, _ := json.Marshal(x)
		return b, true
	}
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

// readBody reads a request body whole, for the routes whose keys, tags or
// invalidations name body values; bodies past max are refused, not read.
func readBody(ctx *fasthttp.RequestCtx, max int) error {
	n := ctx.Request.Header.ContentLength()
	if n > max {
		return errBodyTooLarge
	}
	if n == 0 || n == -2 {
		return nil
	}
	body, err := io.ReadAll(&limitedBody{r: ctx.RequestBodyStream(), left: int64(max)})
	if err != nil {
		return err
	}
	ctx.Request.SetBodyRaw(body)
	return nil
}
