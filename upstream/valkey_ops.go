package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/style-shepherd/sheepdog/configs"
	"github.com/style-shepherd/sheepdog/internal/jsonscan"
)

// The app's POST /api/vultr/valkey/batch takes
// {"operations":[{type:"set"|"get"|"delete", key, value?, ttl?}]} and
// runs the operations in order, one await each, answering
// {"results":[…]}: one result per set, get and delete, none for any other
// type. ValkeyOps is one such request, read the way the app reads it, and
// ValkeySink.FlushOps runs a batch of them in one pipeline.

// ErrOperationsNotArray is the app's 400 for a body whose operations is
// not an array; its text is the app's message.
var ErrOperationsNotArray = errors.New("operations must be an array")

// NullOperationMessage is the app's 500 message for a null operation:
// op.type throws, and reading op.key in its catch throws again. The
// operations before it have run by then.
const NullOperationMessage = "Cannot read properties of null (reading 'key')"

// cacheSetFailed is the message of the error the app's cache set throws,
// which a batch set's result carries.
const cacheSetFailed = "Failed to set cache value"

// The operation types the app answers.
const (
	opSet    = "set"
	opGet    = "get"
	opDelete = "delete"
)

// ValkeyOps is one request's operations, in order, with those of an
// unknown type already dropped (the app gives them no result).
type ValkeyOps struct {
	ops []valkeyOp
	// Threw is set when the operations array held a null: the app runs
	// the operations before it and then answers 500 with
	// NullOperationMessage. ops holds only those before it.
	Threw bool
}

// valkeyOp is one operation as the app sends it to Valkey.
type valkeyOp struct {
	typ string
	// key is the key as ioredis sends it: a string as it is, any other
	// value as JavaScript's String() writes it, a missing or null key as "".
	key string
	// keyJSON is the key as the result echoes it, JSON.stringify of the
	// operation's own key value; nil when the operation has none.
	keyJSON []byte
	text    string // set: what is stored (see appText)
	ttl     int64  // set: SETEX seconds; 0 is a SET that never expires
	refused bool   // set: a ttl Valkey would refuse; never sent
}

// ParseValkeyOps reads a POST /valkey/batch body as the app does. body
// must be valid JSON, which the proxy checks first. Its only error is
// ErrOperationsNotArray.
func ParseValkeyOps(body []byte) (*ValkeyOps, error) {
	var list []byte
	if !jsonscan.Members(body, func(key string, value []byte) {
		if key == "operations" {
			list = value // the last one, as JSON.parse keeps
		}
	}) {
		return nil, ErrOperationsNotArray // not an object: no operations
	}
	o := &ValkeyOps{}
	var err error
	if !jsonscan.Elements(list, func(raw []byte) {
		if err != nil || o.Threw {
			return
		}
		if string(raw) == "null" {
			o.Threw = true
			return
		}
		if op, ok, opErr := parseValkeyOp(raw); opErr != nil {
			err = opErr
		} else if ok {
			o.ops = append(o.ops, op)
		}
	}) {
		return nil, ErrOperationsNotArray
	}
	if err != nil {
		return nil, err
	}
	return o, nil
}

// parseValkeyOp reads one operation; ok is false for one the app gives no
// result: not an object, or no type it knows.
func parseValkeyOp(raw []byte) (op valkeyOp, ok bool, err error) {
	var typ, key, value, ttl []byte // the last of each, as JSON.parse keeps
	if !jsonscan.Members(raw, func(name string, v []byte) {
		switch name {
		case "type":
			typ = v
		case "key":
			key = v
		case "value":
			value = v
		case "ttl":
			ttl = v
		}
	}) || len(typ) == 0 || typ[0] != '"' {
		return op, false, nil // a number, string or array has no type; nor has a type not a string
	}
	op.typ, _ = jsonscan.Unquote(typ)
	switch op.typ {
	case opSet, opGet, opDelete:
	default:
		return op, false, nil
	}
	if key != nil {
		if op.keyJSON, err = appendNodeJSON(nil, key); err != nil {
			return op, false, err
		}
		if string(key) != "null" {
			op.key = JSString(key)
		}
	}
	if op.typ == opSet {
		if op.text, err = appText(value); err != nil {
			return op, false, err
		}
		op.ttl, op.refused = SetexTTL(ttl)
	}
	return op, true, nil
}

// Size is the request's weight against a batch's max_bytes.
func (o *ValkeyOps) Size() int {
	n := 0
	for _, op := range o.ops {
		n += len(op.key) + len(op.text) + 16
	}
	return n
}

// Writes reports whether the request sets or deletes anything.
func (o *ValkeyOps) Writes() bool {
	for _, op := range o.ops {
		if op.typ != opGet {
			return true
		}
	}
	return false
}

// SetexTTL is the app's reading of a set's ttl, raw JSON: a falsy one (missing,
// null, false, 0, "") means SET with no expiry; any other must read as a
// positive Valkey integer for SETEX, or the set fails without a write.
// An array is refused too: ioredis spreads it into extra arguments.
func SetexTTL(raw json.RawMessage) (seconds int64, refused bool) {
	raw = bytes.TrimSpace(raw)
	if !TruthyJSON(raw) {
		return 0, false
	}
	if raw[0] == '[' {
		return 0, true
	}
	n, ok := redisInteger(JSString(raw))
	if !ok || n <= 0 || n > configs.MaxTTLSeconds {
		return 0, true
	}
	return n, false
}

// TruthyJSON is JavaScript's truthiness of a JSON value; an empty raw is
// undefined.
func TruthyJSON(raw []byte) bool {
	if len(raw) == 0 {
		return false
	}
	switch raw[0] {
	case 'n', 'f':
		return false
	case '"':
		return len(raw) > 2
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		// Out of range is ±Inf (truthy) or 0 (falsy), as in JavaScript.
		f, _ := strconv.ParseFloat(string(raw), 64)
		return f != 0
	}
	return true
}

// JSString is String(v) of a JSON value in JavaScript: a string's text,
// a number in JavaScript's form (1e3 is "1000", 60.0 is "60"), an
// array's elements joined by commas (null as empty), an object
// "[object Object]". The app hands Valkey its arguments so, and the
// proxy reads a ttl with it, so that both batch paths agree.
func JSString(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "undefined"
	}
	switch c := raw[0]; {
	case c == '"':
		s, _ := jsonscan.Unquote(raw)
		return s
	case c == '[':
		var elems []json.RawMessage
		if json.Unmarshal(raw, &elems) != nil {
			return ""
		}
		parts := make([]string, len(elems))
		for i, e := range elems {
			if string(bytes.TrimSpace(e)) != "null" {
				parts[i] = JSString(e)
			}
		}
		return strings.Join(parts, ",")
	case c == '{':
		return "[object Object]"
	case c == '-' || (c >= '0' && c <= '9'):
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return string(raw)
		}
		switch {
		case math.IsInf(f, 1):
			return "Infinity"
		case math.IsInf(f, -1):
			return "-Infinity"
		}
		return string(appendJSNumber(nil, f))
	}
	return string(raw) // true, false, null
}

// redisInteger parses s as Valkey parses an integer argument: optional
// minus, no leading zeros, no spaces, within int64.
func redisInteger(s string) (int64, bool) {
	if s == "" || s == "-" || (len(s) > 1 && s[0] == '0') || (len(s) > 2 && s[0] == '-' && s[1] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && !(i == 0 && s[i] == '-') {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// ValkeyOpsResult is one request's outcome: one entry per operation.
type ValkeyOpsResult struct {
	results []opResult
}

type opResult struct {
	failed bool   // set or delete: Valkey refused it
	errMsg string // its message in the answer
	text   string // get: the stored text
	found  bool   // get: the key held a string
}

// FlushOps has the shape coalesce.Batcher calls.
var _ func(context.Context, []*ValkeyOps) ([]ValkeyOpsResult, error) = (*ValkeySink)(nil).FlushOps

// FlushOps runs every operation of every request in one pipeline, in
// order (a get sees the sets before it), and returns each request's
// results. As with Flush, the batch fails as a whole, with
// ErrUnavailable, only when Valkey could not be reached or takes no
// commands at all; a command Valkey refuses is its operation's result: a
// failed set or delete, a get that reads null (the app's get swallows its
// errors).
func (s *ValkeySink) FlushOps(ctx context.Context, reqs []*ValkeyOps) ([]ValkeyOpsResult, error) {
	out := make([]ValkeyOpsResult, len(reqs))
	cmds := make([][]redis.Cmder, len(reqs))
	pipe := s.client.Pipeline()
	sent := 0
	for i, r := range reqs {
		out[i].results = make([]opResult, len(r.ops))
		cmds[i] = make([]redis.Cmder, len(r.ops))
		for j, op := range r.ops {
			var cmd redis.Cmder
			switch {
			case op.typ == opSet && op.refused:
				out[i].results[j] = opResult{failed: true, errMsg: cacheSetFailed}
				continue
			case op.typ == opSet && op.ttl == 0:
				cmd = pipe.Set(ctx, op.key, op.text, 0)
			case op.typ == opSet:
				// SETEX, as the app sends it (see queueValkey).
				cmd = pipe.Do(ctx, "setex", op.key, op.ttl, op.text)
			case op.typ == opGet:
				cmd = pipe.Get(ctx, op.key)
			default:
				cmd = pipe.Del(ctx, op.key)
			}
			cmds[i][j] = cmd
			sent++
		}
	}
	if sent == 0 {
		return out, nil
	}
	// Exec's error is the first command's; each is read on its own below.
	// A store-wide refusal fails the whole batch only when no command ran
	// (see ValkeySink.Flush); otherwise it fails its operation alone.
	_, _ = pipe.Exec(ctx)
	refused := 0
	var storeErr error
	for i, rc := range cmds {
		for j, cmd := range rc {
			if cmd == nil {
				continue
			}
			err := cmd.Err()
			res := &out[i].results[j]
			if get, ok := cmd.(*redis.StringCmd); ok && err == nil {
				res.text, res.found = get.Val(), true
				continue
			}
			if err == nil || errors.Is(err, redis.Nil) {
				continue
			}
			if !itemError(err) {
				refused++
				storeErr = err
			}
			switch reqs[i].ops[j].typ {
			case opSet:
				res.failed, res.errMsg = true, cacheSetFailed
			case opDelete:
				res.failed, res.errMsg = true, err.Error()
			}
		}
	}
	if refused == sent {
		return nil, storeError("valkey pipeline", storeErr)
	}
	return out, nil
}

// AppendAnswer appends the app's whole answer to the request: its
// {results} wrapped as the app wraps a body without success or error,
// {"success":true,"data":{"results":[…]},"requestId":…,"timestamp":…}.
func (o *ValkeyOps) AppendAnswer(dst []byte, r ValkeyOpsResult, requestID string, now time.Time) []byte {
	dst = append(dst, `{"success":true,"data":{"results":[`...)
	for i, op := range o.ops {
		if i > 0 {
			dst = append(dst, ',')
		}
		var res opResult
		if i < len(r.results) {
			res = r.results[i]
		}
		if res.failed {
			dst = append(dst, `{"success":false`...)
		} else {
			dst = append(dst, `{"success":true`...)
		}
		if op.keyJSON != nil {
			dst = append(dst, `,"key":`...)
			dst = append(dst, op.keyJSON...)
		}
		switch {
		case res.failed:
			dst = append(dst, `,"error":`...)
			dst = AppendJSString(dst, res.errMsg)
		case op.typ == opGet:
			dst = append(dst, `,"value":`...)
			dst = appendStoredValue(dst, res.text, res.found)
		}
		dst = append(dst, '}')
	}
	dst = append(dst, `]}`...)
	return AppendRequestStamp(dst, requestID, now)
}

// appendStoredValue writes what the app's get returns for a stored text:
// null for a missing or empty value, JSON.parse of the text, or the text
// itself as a string when it is not JSON.
func appendStoredValue(dst []byte, text string, found bool) []byte {
	if !found || text == "" {
		return append(dst, "null"...)
	}
	if out, err := appendNodeJSON(dst, []byte(text)); err == nil {
		return out
	}
	if !utf8.ValidString(text) {
		// Not written by the app: ioredis decodes it as Node does.
		return AppendJSString(dst, jsonscan.AppendWellFormed(nil, []byte(text)))
	}
	return AppendJSString(dst, text)
}

// AppendAppError appends the app's error answer {"error":msg}, flat with
// requestId and timestamp added, as the app sends every Vultr error.
func AppendAppError(dst []byte, msg, requestID string, now time.Time) []byte {
	dst = append(dst, `{"error":`...)
	dst = AppendJSString(dst, msg)
	return AppendRequestStamp(dst, requestID, now)
}

// AppendRequestStamp ends an open answer object with the requestId and
// timestamp (Date#toISOString).
func AppendRequestStamp(dst []byte, requestID string, now time.Time) []byte {
	dst = append(dst, `,"requestId":`...)
	dst = AppendJSString(dst, requestID)
	dst = append(dst, `,"timestamp":"`...)
	dst = now.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z")
	return append(dst, `"}`...)
}
