package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/configs"
	"github.com/style-shepherd/sheepdog/internal/jsonscan"
	"github.com/style-shepherd/sheepdog/upstream"
)

// errBadField is a value the request carries that a batch item cannot
// take (a ttl that is not a number, a body that is not an object): a 400
// before anything is queued.
type errBadField struct{ field, problem string }

func (e *errBadField) Error() string { return e.field + ": " + e.problem }

// errBatch wraps a write's failure that has no status of its own (a
// command Valkey refused, a miscounted answer): a 502.
type errBatch struct{ err error }

func (e *errBatch) Error() string { return "batch write: " + e.err.Error() }
func (e *errBatch) Unwrap() error { return e.err }

// successAnswer is the app's answer to a write that went: {"success":true},
// with the requestId and timestamp it adds to every body.
func successAnswer(ctx *fasthttp.RequestCtx) []byte {
	return append(upstream.AppendRequestStamp([]byte(`{"success":true`), appRequestID(ctx), time.Now()), '\n')
}

// serveBatch reads and checks the whole request, resolves every template
// of its item, hands the item to the route's Batcher, waits for that
// item's own result and answers with it. Nothing is queued for a request
// that would fail on its own (malformed JSON, a missing value), so a
// bad request never costs its batch-mates a split. After a write
// succeeds, the route's invalidates tags are dropped before the answer,
// as on pass routes.
func (p *Proxy) serveBatch(ctx *fasthttp.RequestCtx, rt *route, rv *requestValues, b *batchRoute) {
	if h := &ctx.Request.Header; b.passThrough.Load() || (h.ContentLength() != 0 && !appReadsJSON(h)) || connectionStripsSent(h) {
		// Also a body express.json() would not read, or a request
		// whose Connection names a header it carries (see
		// cacheRule.ambiguous): the app answers it as it would.
		p.passRoute(ctx, rt, rv)
		return
	}
	if err := readBody(ctx, p.maxBody); err != nil {
		fail(ctx, err)
		return
	}
	if appReadsOtherwise(ctx.Request.Body()) {
		// JSON the app refuses (a bare string or number) or reads
		// otherwise (after a byte order mark): its answer, as it would.
		p.passRoute(ctx, rt, rv)
		return
	}
	wellFormedBody(&ctx.Request)
	body := ctx.Request.Body()
	// A body must be JSON, unless none came and nothing reads one (a
	// DELETE, an expire): the app takes those.
	if needed := !b.bodyless || rt.invBody; (len(body) > 0 || needed) && !json.Valid(body) {
		// Decoded only to say why: json names the problem and its
		// offset; the body itself is never echoed.
		var raw json.RawMessage
		fail(ctx, fmt.Errorf("%w: %v", errBadBody, json.Unmarshal(body, &raw)))
		return
	}
	var fields []field // postgres: the body's members, for the answer
	if b.sink == configs.SinkPostgres {
		var err error
		if fields, err = objectFields(body); err != nil {
			fail(ctx, err)
			return
		}
		rv.setTop(fields) // the templates read these, not a second decode
	}
	tags, err := rv.evalTags(nil, rt.invalidates)
	if err != nil {
		fail(ctx, err)
		return
	}

	// The wait is bounded on its own context, not the RequestCtx: that
	// one ends when the server shuts down, and Shutdown wants every
	// queued item flushed and answered, not abandoned. An item waits for
	// a flush for up to twice the upstream timeout; past it, an item still
	// queued gets a 504 and is never written. One already in a flush waits
	// for that flush's own result (Submit: each flush, and each part of a
	// split one, is bounded by the timeout), so a write that lands is
	// answered as landed and its tags are invalidated.
	from := context.Background()
	if parent := spanParent(ctx); parent != nil {
		from = parent // the flush span links to this request's
	}
	wctx, cancel := context.WithTimeout(from, 2*p.cfg.Upstream.Timeout)
	defer cancel()
	var status int
	switch b.sink {
	case configs.SinkHTTP:
		if status = p.batchHTTP(wctx, ctx, b, body); status == passedToApp {
			// Refused in the batch: the app's own route answered it,
			// and passRoute invalidated after a 2xx.
			p.passRoute(ctx, rt, rv)
			return
		}
	case configs.SinkValkey:
		if b.ops != nil {
			status = p.batchValkeyOps(wctx, ctx, b, tags)
			break
		}
		status = p.batchValkey(wctx, ctx, b, rv)
	case configs.SinkPostgres:
		status = p.batchPostgres(wctx, ctx, rt, b, rv, fields)
	}
	if status >= 200 && status < 300 && len(tags) > 0 {
		if err := p.cache.Invalidate(ctx, tags...); err != nil {
			p.invFailed.Add(1) // as in passRoute: counted, not logged
		}
	}
}

// passedToApp is batchHTTP's word that the request goes to the app's own
// route instead.
const passedToApp = -1

// batchHTTP submits the request body itself as the item and answers with
// the item's own element of the batch answer. It returns the status sent,
// or passedToApp for an item the batch endpoint refused: nothing of it was
// written, and the app's own route answers it exactly as the app would
// (the batch endpoint's error names the field memories.0.text and carries
// the batch call's requestId).
func (p *Proxy) batchHTTP(wctx context.Context, ctx *fasthttp.RequestCtx, b *batchRoute, body []byte) int {
	// A copy: a caller that times out leaves its item to a flush that may
	// still read it after the handler, and so the RequestCtx, is done.
	item := json.RawMessage(bytes.Clone(body))
	res, err := b.http.Submit(wctx, item)
	if err != nil {
		var se *upstream.StatusError
		if errors.As(err, &se) && se.Status >= 400 && se.Status < 500 && !se.Throttled() {
			// The endpoint refused the item itself (the batcher split
			// the batch down to it).
			return passedToApp
		}
		return batchFail(ctx, err)
	}
	return writeBatchAnswer(ctx, res.Status, res.Body)
}

// batchValkey resolves the item's key, value and ttl, and answers as the
// app does, {"success":true}.
func (p *Proxy) batchValkey(wctx context.Context, ctx *fasthttp.RequestCtx, b *batchRoute, rv *requestValues) int {
	ev := batchEval{rv: rv}
	item := upstream.ValkeyItem{Op: b.op}
	var err error
	if item.Key, err = ev.text(b.key); err != nil {
		return batchFail(ctx, err)
	}
	if b.value != nil {
		if item.Value, err = ev.json(b.value); err != nil {
			return batchFail(ctx, err)
		}
	}
	if raw, ok := ev.bodyJSON(b.ttl); ok {
		// The body's own value, read as the app reads it: "0" is a
		// truthy string there, which SETEX then refuses.
		var refused bool
		if item.TTL, refused = upstream.SetexTTL(raw); refused {
			return batchFail(ctx, &errBadField{field: "ttl", problem: ttlProblem})
		}
		if item.TTL == 0 {
			item.TTL = b.ttlDefault
		}
	} else if b.ttl != nil {
		ttl, err := ev.jsText(b.ttl)
		if err != nil {
			return batchFail(ctx, err)
		}
		if configs.FalsyTTL(ttl) {
			// The app sets no expiry for these, or, given ttl_default,
			// that many seconds (its `ttl || 86400`).
			ttl = strconv.FormatInt(b.ttlDefault, 10)
		}
		var ok bool
		if item.TTL, ok = configs.TTLSeconds(ttl); !ok {
			return batchFail(ctx, &errBadField{field: "ttl", problem: ttlProblem})
		}
	} else if b.ttlDefault > 0 {
		item.TTL = b.ttlDefault
	}
	res, err := b.valkey.Submit(wctx, item)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return batchFail(ctx, err)
	}
	return writeBatchAnswer(ctx, fasthttp.StatusOK, successAnswer(ctx))
}

// ttlProblem is what a ttl must be: more than MaxTTLSeconds would pass
// Valkey's own limit, and past time.Duration's, and fail after queueing.
var ttlProblem = "want a whole number of seconds, 0 to " + strconv.FormatInt(configs.MaxTTLSeconds, 10)

// batchPostgres resolves one value per column and answers in the app's
// shape, {"success":true,"data":{...body, ...returning}}.
func (p *Proxy) batchPostgres(wctx context.Context, ctx *fasthttp.RequestCtx, rt *route, b *batchRoute, rv *requestValues, fields []field) int {
	ev := batchEval{rv: rv}
	var err error
	item := upstream.PostgresItem{Values: make([]any, len(b.columns))}
	for i, t := range b.columns {
		if item.Values[i], err = ev.column(t); err != nil {
			return batchFail(ctx, err)
		}
	}
	res, err := b.postgres.Submit(wctx, item)
	if errors.Is(err, errNoTable) || (errors.Is(err, upstream.ErrNotReached) && b.passWhenDown) {
		// The table is not there, or PostgreSQL could not be reached
		// and the route says to pass: nothing was written, and the app
		// writes it. The body was read whole and is sent as it came.
		p.pass(ctx, rt)
		return ctx.Response.StatusCode()
	}
	if err != nil {
		return batchFail(ctx, err)
	}
	answer, err := postgresAnswer(fields, b.returning, res.Returned, appRequestID(ctx), time.Now())
	if err != nil {
		return batchFail(ctx, &errBatch{err})
	}
	return writeBatchAnswer(ctx, fasthttp.StatusOK, answer)
}

// batchFail answers err and returns its status. A 503 says when to come
// back: when the app said, if it turned the batch away; otherwise soon,
// as the queue drains, and a store restarts, within moments.
func batchFail(ctx *fasthttp.RequestCtx, err error) int {
	var missing *errMissingValue
	var bad *errBadField
	if !errors.As(err, &missing) && !errors.As(err, &bad) && !errors.Is(err, errBadBody) {
		err = &errBatch{err}
	}
	fail(ctx, err)
	status := ctx.Response.StatusCode()
	if status == fasthttp.StatusServiceUnavailable {
		retryAfter := "1"
		var se *upstream.StatusError
		if errors.As(err, &se) && se.RetryAfter != "" {
			retryAfter = se.RetryAfter
		}
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, retryAfter)
	}
	return status
}

func writeBatchAnswer(ctx *fasthttp.RequestCtx, status int, body []byte) int {
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentTypeBytes(contentTypeJSON)
	ctx.SetBody(body)
	return status
}

// field is one member of a JSON object, in the order it was written.
type field struct {
	key   string
	value json.RawMessage
}

// objectFields reads a JSON object's members in order, so that an answer
// that spreads the body keeps the client's key order, as the app's does.
// A repeated key keeps its first place and its last value, as in JS.
func objectFields(body []byte) ([]field, error) {
	// One copy for every value: they outlive the request's buffer when a
	// caller gives up and leaves its item to the flush.
	var fields []field
	ok := jsonscan.Members(bytes.Clone(body), func(key string, value []byte) {
		if i := fieldIndex(fields, key); i >= 0 {
			fields[i].value = value
			return
		}
		fields = append(fields, field{key: key, value: value})
	})
	if !ok {
		return nil, &errBadField{field: "body", problem: "want a JSON object"}
	}
	return fields, nil
}

func fieldIndex(fields []field, key string) int {
	for i, f := range fields {
		if f.key == key {
			return i
		}
	}
	return -1
}

// postgresAnswer is the app's answer to an insert: {orderId, ...body}, the
// returned columns first and the body's fields after them, a field of the
// same name replacing a returned one in its place, as a JS spread does
// (API.md). Wrapped as {"success":true,"data":…} with the app's requestId
// and timestamp, or, when it has a success or error key of its own, flat
// with them added, as the app sends every answer.
func postgresAnswer(body []field, returning []returnField, returned map[string]any, requestID string, now time.Time) ([]byte, error) {
	fields := make([]field, 0, len(returning)+len(body))
	for _, r := range returning {
		v, err := marshalJS(returned[r.column])
		if err != nil {
			return nil, fmt.Errorf("returned %s: %w", r.column, err)
		}
		fields = append(fields, field{key: r.field, value: v})
	}
	for _, f := range body {
		if i := fieldIndex(fields, f.key); i >= 0 {
			fields[i].value = f.value
		} else {
			fields = append(fields, f)
		}
	}
	size, flat := 2, false
	for _, f := range fields {
		size += len(f.key) + len(f.value) + 4 // quotes, colon, comma
		flat = flat || f.key == "success" || f.key == "error"
	}
	data := make([]byte, 0, size)
	data = append(data, '{')
	for i, f := range fields {
		if i > 0 {
			data = append(data, ',')
		}
		data = append(append(upstream.AppendJSString(data, f.key), ':'), f.value...)
	}
	data = append(data, '}')
	// As the app writes the object back: its key order (integer-like
	// keys first), JavaScript's numbers, JSON.stringify's escapes.
	const head, stamp = `{"success":true,"data":`, 100 // ,"requestId":"…","timestamp":"…"}\n
	out := make([]byte, 0, len(head)+len(data)+stamp+len(requestID))
	if !flat {
		out = append(out, head...)
	}
	out, err := upstream.AppendNodeJSON(out, data)
	if err != nil {
		return nil, err
	}
	if flat {
		out = out[:len(out)-1] // the stamp closes the answer itself
	}
	return append(upstream.AppendRequestStamp(out, requestID, now), '\n'), nil
}

// batchEval resolves a batch item's templates against one request. An
// {id:PREFIX} placeholder gives one id per prefix per item, so two columns
// naming the same prefix hold the same id.
type batchEval struct {
	rv  *requestValues
	ids map[string]string
}

// text evaluates t as text: strings as their text, other JSON values as
// their JSON.
func (e *batchEval) text(t configs.Template) (string, error) {
	var buf []byte
	for _, part := range t {
		if part.Source == configs.SourceID {
			buf = append(buf, e.id(part.IDPrefix)...)
			continue
		}
		var err error
		if buf, err = e.rv.appendTemplate(buf, configs.Template{part}); err != nil {
			return "", err
		}
	}
	return string(buf), nil
}

// jsText evaluates t as the app's String() of it: a template that is one
// body placeholder gives its JSON value in JavaScript's form (1e3 is
// "1000", 60.0 is "60"), as the op: batch path reads it; anything else
// is its text.
func (e *batchEval) jsText(t configs.Template) (string, error) {
	if raw, ok := e.bodyJSON(t); ok {
		return upstream.JSString(raw), nil
	}
	return e.text(t)
}

// json evaluates t as a JSON value: a template that is one body
// placeholder gives the request's own JSON for it, byte for byte (so an
// object keeps its key order, and a string stays a string); anything
// else is the JSON string of its text.
func (e *batchEval) json(t configs.Template) (json.RawMessage, error) {
	if raw, ok := e.bodyJSON(t); ok {
		return raw, nil
	}
	s, err := e.text(t)
	if err != nil {
		return nil, err
	}
	return json.Marshal(s)
}

// column evaluates t as a value for PostgreSQL to cast to its column: a
// JSON string as its text, null as NULL, any other JSON value as its
// JSON text (for JSONB and NUMERIC columns), and text otherwise.
func (e *batchEval) column(t configs.Template) (any, error) {
	raw, ok := e.bodyJSON(t)
	if !ok {
		return e.text(t)
	}
	// As node-postgres sends the app's values: a number as JavaScript's
	// String() writes it (1.0 is "1"), an object or array as
	// JSON.stringify writes it, a string as it is (to a json column, as
	// the JSON string JSON.stringify makes of it: the sink sees to that).
	switch c := raw[0]; {
	case string(raw) == "null":
		return nil, nil
	case c == '"':
		s, ok := jsonscan.Unquote(raw)
		if !ok {
			return nil, fmt.Errorf("%w: bad string %.40s", errBadBody, raw)
		}
		return s, nil
	case c == '-' || (c >= '0' && c <= '9'):
		// JSON still, for a json column; text for any other.
		return json.RawMessage(upstream.JSString(raw)), nil
	case c == '{' || c == '[':
		js, err := upstream.AppendNodeJSON(nil, raw)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errBadBody, err)
		}
		return json.RawMessage(js), nil
	}
	return raw, nil
}

// bodyJSON returns the raw JSON that t names when t is exactly one body
// placeholder and the body has that value.
func (e *batchEval) bodyJSON(t configs.Template) (json.RawMessage, bool) {
	if len(t) != 1 || t[0].Source != configs.SourceBody {
		return nil, false
	}
	raw, ok := e.rv.rawBodyValue(t[0].JSONPath())
	if ok && t[0].OrDefault && !upstream.TruthyJSON(raw) {
		return nil, false // the default, as text
	}
	return raw, ok
}

func (e *batchEval) id(prefix string) string {
	if id, ok := e.ids[prefix]; ok {
		return id
	}
	if e.ids == nil {
		e.ids = make(map[string]string, 1)
	}
	id := newID(prefix, time.Now())
	e.ids[prefix] = id
	return id
}

const base36 = "0123456789abcdefghijklmnopqrstuvwxyz"

// newID makes an id as the app does for its rows,
// `${prefix}${Date.now()}_${Math.random().toString(36).substr(2, 9)}`:
// order_1764072000000_k3j9x0a1b. 9 random base36 characters (46 bits)
// per millisecond keep ids apart across replicas.
func newID(prefix string, now time.Time) string {
	var r [9]byte
	for i := range r {
		r[i] = base36[rand.IntN(len(base36))]
	}
	b := make([]byte, 0, len(prefix)+24)
	b = append(b, prefix...)
	b = strconv.AppendInt(b, now.UnixMilli(), 10)
	b = append(b, '_')
	return string(append(b, r[:]...))
}

// marshalJS is json.Marshal without the HTML escapes (\u003c for <) that
// JSON.stringify does not write, so answers read as the app's do.
func marshalJS(v any) ([]byte, error) {
	if s, ok := v.(string); ok {
		return upstream.AppendJSString(nil, s), nil
	}
	return encodeJS(v)
}

func encodeJS(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
