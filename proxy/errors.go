package proxy

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/coalesce"
	"github.com/style-shepherd/sheepdog/upstream"
)

// Error codes in Sheepdog's own JSON answers: {"error":{"code","message"}}.
const (
	codeUpstreamUnreachable = "upstream_unreachable"
	codeUpstreamTooLong     = "upstream_too_long"
	codeUpstreamBadAnswer   = "upstream_bad_answer"
	codeInternal            = "internal"
	codeUpstreamTimeout     = "upstream_timeout"
	codeBodyTooLarge        = "body_too_large"
	codeHeadersTooLarge     = "headers_too_large"
	codeBadRequest          = "bad_request"
	codeRequestTimeout      = "request_timeout"
	codeNoRoute             = "no_route"
	codeQueueFull           = "queue_full"
	codeShuttingDown        = "shutting_down"
	codeStoreUnavailable    = "store_unavailable"
	codeWriteRejected       = "write_rejected"
	codeBatchFailed         = "batch_failed"
	codeUpstreamBusy        = "upstream_busy"
)

// errBodyTooLarge is returned by the body limit while a request body is
// streamed upstream.
var errBodyTooLarge = errors.New("request body over the limit")

// statusFor maps an error to the status and code Sheepdog answers with.
// It is the one place where failures become HTTP statuses.
func statusFor(err error) (status int, code, msg string) {
	var ue *upstream.Error
	var missing *errMissingValue
	var badField *errBadField
	var pgErr *pgconn.PgError
	var batch *errBatch
	var se *upstream.StatusError
	switch {
	case errors.Is(err, errInternal):
		return fasthttp.StatusInternalServerError, codeInternal, "internal error"
	case errors.As(err, &missing):
		return fasthttp.StatusBadRequest, codeBadRequest, missing.Error()
	case errors.As(err, &badField):
		return fasthttp.StatusBadRequest, codeBadRequest, badField.Error()
	case errors.Is(err, errBadBody):
		return fasthttp.StatusBadRequest, codeBadRequest, err.Error()
	case errors.Is(err, coalesce.ErrQueueFull):
		return fasthttp.StatusServiceUnavailable, codeQueueFull, "too many writes waiting on this route; retry shortly"
	case errors.Is(err, coalesce.ErrClosed):
		return fasthttp.StatusServiceUnavailable, codeShuttingDown, "shutting down; retry shortly"
	case errors.Is(err, upstream.ErrUnavailable):
		return fasthttp.StatusServiceUnavailable, codeStoreUnavailable, "the store behind this route is unavailable"
	case errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23")):
		// A data exception or a broken constraint: this item alone (the
		// batcher split its batch down to it), so the client's to fix.
		return fasthttp.StatusUnprocessableEntity, codeWriteRejected, "the store refused this write (" + pgErr.Code + ")"
	case errors.Is(err, errBodyTooLarge):
		return fasthttp.StatusRequestEntityTooLarge, codeBodyTooLarge, "request body too large"
	case errors.Is(err, upstream.ErrBodyTooLong):
		return fasthttp.StatusBadGateway, codeUpstreamTooLong, "the app's answer is too long to send this client whole"
	case errors.As(err, &ue) && ue.Kind == upstream.Timeout:
		return fasthttp.StatusGatewayTimeout, codeUpstreamTimeout, "upstream did not answer in time"
	case errors.As(err, &ue) && ue.Kind == upstream.BadAnswer:
		return fasthttp.StatusBadGateway, codeUpstreamBadAnswer, "the app's answer could not be read (its headers are over 32 KB)"
	case errors.Is(err, upstream.ErrClientBody), errors.As(err, &ue) && ue.Kind == upstream.RequestBody:
		// The client's body is malformed (a bad chunk) or cut short,
		// whether read whole here or streamed upstream.
		return fasthttp.StatusBadRequest, codeBadRequest, "request body could not be read"
	case errors.Is(err, context.DeadlineExceeded):
		return fasthttp.StatusGatewayTimeout, codeUpstreamTimeout, "the write was not answered in time"
	case errors.As(err, &se) && se.Throttled():
		return fasthttp.StatusServiceUnavailable, codeUpstreamBusy, "the app is turning writes away for now; retry shortly"
	case errors.As(err, &batch):
		return fasthttp.StatusBadGateway, codeBatchFailed, "the batched write failed"
	default:
		return fasthttp.StatusBadGateway, codeUpstreamUnreachable, "upstream unreachable"
	}
}

// serverErrorStatus maps an error met while fasthttp read a request,
// before any handler ran.
func serverErrorStatus(err error) (status int, code, msg string) {
	var small *fasthttp.ErrSmallBuffer
	var ne *net.OpError
	switch {
	case errors.As(err, &small):
		return fasthttp.StatusRequestHeaderFieldsTooLarge, codeHeadersTooLarge, "request headers too large"
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return fasthttp.StatusRequestEntityTooLarge, codeBodyTooLarge, "request body too large"
	case errors.As(err, &ne) && ne.Timeout():
		return fasthttp.StatusRequestTimeout, codeRequestTimeout, "request not received in time"
	default:
		return fasthttp.StatusBadRequest, codeBadRequest, "malformed request"
	}
}

var contentTypeJSON = []byte("application/json; charset=utf-8")

// writeError answers with Sheepdog's JSON error shape.
func writeError(ctx *fasthttp.RequestCtx, status int, code, msg string) {
	writeErrorCause(ctx, status, code, msg, nil)
}

// writeErrorCause is writeError with the error behind the answer, which
// the log gives and the client is never shown.
func writeErrorCause(ctx *fasthttp.RequestCtx, status int, code, msg string, cause error) {
	note := errorNote{status: status, code: code, msg: msg}
	if cause != nil {
		note.cause = cause.Error()
	}
	ctx.SetUserValue(errorNoteKey{}, note) // for /stats, the status page and the log
	ctx.Response.Reset()
	ctx.Response.Header.SetNoDefaultContentType(true)
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentTypeBytes(contentTypeJSON)
	var buf [256]byte
	b := append(buf[:0], `{"error":{"code":`...)
	// A message may quote the request (a path, a method); its bytes are
	// made valid UTF-8 and escaped as JSON, never as Go would quote them.
	b = upstream.AppendJSString(b, code)
	b = append(b, `,"message":`...)
	b = upstream.AppendJSString(b, strings.ToValidUTF8(msg, "\uFFFD"))
	b = append(b, "}}\n"...)
	ctx.SetBody(b)
}

// fail answers err as JSON, with the status statusFor gives it.
func fail(ctx *fasthttp.RequestCtx, err error) {
	status, code, msg := statusFor(err)
	writeErrorCause(ctx, status, code, msg, err)
}
