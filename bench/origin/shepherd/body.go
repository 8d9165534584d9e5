package shepherd

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"mime"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// bodyError is a request body that express.json or express.urlencoded
// refuses. The app's error handler answers it with the body-parser's
// status and its error type as the code.
type bodyError struct {
	status int
	code   string
	msg    string
}

func (e *bodyError) answer(now time.Time) answer {
	return appError(e.status, e.code, e.msg, now)
}

func tooLarge() *bodyError {
	return &bodyError{fasthttp.StatusRequestEntityTooLarge, "ENTITY_TOO_LARGE", "request entity too large"}
}

// parseBody is the app's two body parsers. It returns req.body: {} when
// the request has no body or a type neither parser reads, else the
// parsed JSON (an object or an array) or the urlencoded fields.
func parseBody(ctx *fasthttp.RequestCtx) (any, *bodyError) {
	h := &ctx.Request.Header
	if h.ContentLength() != -1 && len(h.Peek(fasthttp.HeaderContentLength)) == 0 {
		return &object{}, nil // no body at all
	}
	mediaType, params, err := mime.ParseMediaType(string(h.ContentType()))
	if err != nil || (mediaType != "application/json" && mediaType != "application/x-www-form-urlencoded") {
		return &object{}, nil
	}
	if cs, ok := params["charset"]; ok {
		cs = strings.ToLower(cs)
		if !strings.HasPrefix(cs, "utf-") && !(mediaType != "application/json" && cs == "iso-8859-1") {
			return nil, &bodyError{fasthttp.StatusUnsupportedMediaType, "CHARSET_UNSUPPORTED", `unsupported charset "` + strings.ToUpper(cs) + `"`}
		}
	}
	raw, berr := decodedBody(ctx)
	if berr != nil {
		return nil, berr
	}
	if mediaType == "application/x-www-form-urlencoded" {
		return parseForm(raw), nil
	}
	raw = bytes.TrimPrefix(raw, []byte("\xEF\xBB\xBF"))
	if len(raw) == 0 {
		return &object{}, nil
	}
	// body-parser's strict mode: only an object or an array at the top.
	first := bytes.TrimLeft(raw, " \t\n\r")
	if len(first) > 0 && first[0] != '{' && first[0] != '[' {
		p := jsonParser{b: first}
		return nil, &bodyError{fasthttp.StatusBadRequest, "ENTITY_PARSE_FAILED", p.unexpected().Error()}
	}
	v, err := parseJSON(raw)
	if err != nil {
		return nil, &bodyError{fasthttp.StatusBadRequest, "ENTITY_PARSE_FAILED", err.Error()}
	}
	return v, nil
}

// decodedBody undoes Content-Encoding (body-parser inflates gzip and
// deflate) and applies the 10 MB limit to the decoded bytes.
func decodedBody(ctx *fasthttp.RequestCtx) ([]byte, *bodyError) {
	raw := ctx.Request.Body()
	enc := strings.ToLower(strings.TrimSpace(string(ctx.Request.Header.ContentEncoding())))
	var r io.Reader
	switch enc {
	case "", "identity":
		if len(raw) > appBodyLimit {
			return nil, tooLarge()
		}
		return raw, nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, &bodyError{fasthttp.StatusBadRequest, "ENTITY_VERIFY_FAILED", err.Error()}
		}
		r = zr
	case "deflate":
		zr, err := zlib.NewReader(bytes.NewReader(raw))
		if err != nil {
			// Node's inflate also takes raw deflate data.
			r = flate.NewReader(bytes.NewReader(raw))
		} else {
			r = zr
		}
	default:
		return nil, &bodyError{fasthttp.StatusUnsupportedMediaType, "ENCODING_UNSUPPORTED", `unsupported content encoding "` + enc + `"`}
	}
	out, err := io.ReadAll(io.LimitReader(r, appBodyLimit+1))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, &bodyError{fasthttp.StatusBadRequest, "ENTITY_VERIFY_FAILED", err.Error()}
	}
	if len(out) > appBodyLimit {
		return nil, tooLarge()
	}
	return out, nil
}

// parseForm reads an urlencoded body into an object of strings (a
// repeated key becomes an array). Bracket keys (a[b]=c), which qs would
// nest, stay flat here.
func parseForm(raw []byte) *object {
	return argsObject(parseQuery(raw))
}

// argsObject is how qs presents parsed pairs: a key once is a string, a
// key repeated is an array of its values.
func argsObject(args queryArgs) *object {
	o := &object{}
	for _, a := range args {
		switch prev := mustGet(o, a.key).(type) {
		case nil:
			o.set(a.key, a.value)
		case string:
			o.set(a.key, []any{prev, a.value})
		case []any:
			o.set(a.key, append(prev, a.value))
		}
	}
	return o
}
