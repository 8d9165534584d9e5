package proxy

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/coalesce"
	"github.com/style-shepherd/sheepdog/configs"
	"github.com/style-shepherd/sheepdog/upstream"
)

// A valkey route with op: batch serves the app's POST /valkey/batch
// itself: the body's operations run as one pipeline (shared with the
// requests that arrive while one runs, in order), and the answer is the
// app's own, envelope included.

// buildValkeyOps makes the route's Batcher: its items are whole requests.
func (p *Proxy) buildValkeyOps(b *batchRoute, rule *configs.BatchRule, cfg coalesce.BatcherConfig) error {
	client, err := p.valkeyClient(rule)
	if err != nil {
		return err
	}
	sink := upstream.NewValkeySink(client)
	b.ops, err = coalesce.NewBatcher(cfg, (*upstream.ValkeyOps).Size, sink.FlushOps)
	return err
}

// batchValkeyOps runs the request's operations and answers as the app
// does. It returns the status sent. The app answers a null operation with
// a 500 after running the operations before it: those are run too, and
// their writes invalidate tags here, since serveBatch invalidates on a
// 2xx only.
func (p *Proxy) batchValkeyOps(wctx context.Context, ctx *fasthttp.RequestCtx, b *batchRoute, tags []string) int {
	ops, err := upstream.ParseValkeyOps(ctx.Request.Body())
	if errors.Is(err, upstream.ErrOperationsNotArray) {
		return writeBatchAnswer(ctx, fasthttp.StatusBadRequest,
			upstream.AppendAppError(nil, err.Error(), appRequestID(ctx), time.Now()))
	}
	if err != nil {
		return batchFail(ctx, &errBadField{field: "operations", problem: err.Error()})
	}
	res, err := b.ops.Submit(wctx, ops)
	if err != nil {
		return batchFail(ctx, err)
	}
	if ops.Threw {
		if ops.Writes() && len(tags) > 0 {
			if err := p.cache.Invalidate(ctx, tags...); err != nil {
				p.invFailed.Add(1) // as in passRoute: counted, not logged
			}
		}
		return writeBatchAnswer(ctx, fasthttp.StatusInternalServerError,
			upstream.AppendAppError(nil, upstream.NullOperationMessage, appRequestID(ctx), time.Now()))
	}
	return writeBatchAnswer(ctx, fasthttp.StatusOK, ops.AppendAnswer(nil, res, appRequestID(ctx), time.Now()))
}

// appRequestID is the requestId the app would answer with: the request's
// X-Request-Id (repeated lines joined with ", ", as Node joins them), or
// a new random UUID. When Sheepdog passes a request instead, prepareRequest
// sends the app such a UUID.
func appRequestID(ctx *fasthttp.RequestCtx) string {
	if vals := ctx.Request.Header.PeekAll(string(hdrRequestID)); len(vals) > 0 {
		if id := bytes.Join(vals, []byte(", ")); len(id) > 0 {
			return string(id)
		}
	}
	var id [36]byte
	return string(newRequestID(&id))
}
