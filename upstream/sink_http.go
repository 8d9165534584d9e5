package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/valyala/fasthttp"
)

// maxBatchAnswer bounds the answer a batch endpoint may give: the app's own
// body limit, far above 100 items' worth.
const maxBatchAnswer = 10 << 20

// HTTPResult is one item's part of a batch endpoint's answer.
type HTTPResult struct {
	// Status is the item's own verdict, as the endpoint answers 200 for
	// the whole batch: 200 when its element's "success" is true or
	// absent, 422 when it is false.
	Status int
	// Body is the item's element of the answer's split array.
	Body json.RawMessage
}

// StatusError is a batch endpoint's answer other than 2xx: for the whole
// batch, so no item has a result of its own. A 4xx names something in
// the batch (the batcher splits it to find the item), unless it is
// Throttled; a 5xx was already retried once.
type StatusError struct {
	Status     int
	Body       []byte // the answer, for the caller or a log
	RetryAfter string // the answer's Retry-After, if it had one
}

// Throttled reports whether the app turned the batch away for its load
// (429 Too Many Requests, 408 Request Timeout), not for what it holds:
// no half of it would fare better, and its callers should come back.
func (e *StatusError) Throttled() bool {
	return e.Status == fasthttp.StatusTooManyRequests || e.Status == fasthttp.StatusRequestTimeout
}

// Error names the status; the answer's body is left to the caller.
func (e *StatusError) Error() string {
	return "batch endpoint answered " + strconv.Itoa(e.Status)
}

// HTTPSink sends batches of JSON items to one batch endpoint of the app,
// such as /api/raindrop/batch-store-memory. It holds no state of its own
// and is safe for concurrent use.
type HTTPSink struct {
	// Prepare, when set, is called on each batch request's headers
	// before it is sent, with the flush's context: the proxy puts the
	// flush span's traceparent there.
	Prepare func(ctx context.Context, h *fasthttp.RequestHeader)

	client *Client
	path   string
	wrap   string // the request field the items go under
	split  string // the answer field holding one element per item
}

// Flush has the shape coalesce.Batcher calls.
var _ func(context.Context, []json.RawMessage) ([]HTTPResult, error) = (*HTTPSink)(nil).Flush

// NewHTTPSink returns a sink that POSTs batches to path through client,
// as {"<wrap>":[item,...]}, and reads item i's result from element i of
// the answer's split array. An empty wrap or split takes the config's
// default ("items", "results").
func NewHTTPSink(client *Client, path, wrap, split string) *HTTPSink {
	if wrap == "" {
		wrap = "items"
	}
	if split == "" {
		split = "results"
	}
	return &HTTPSink{client: client, path: path, wrap: wrap, split: split}
}

// Flush sends items, each one JSON value, in one POST and returns one
// result per item, in order. A 5xx answer, or a request that provably
// never reached the app (the dial or the send failed, or the connection
// closed before the answer's first byte), is retried once; a timeout is
// not, as it has used the whole upstream timeout already. Any other
// failure is the batch's: an item that is not JSON, an answer other than
// 2xx (a *StatusError), or an answer that came but cannot be read or
// split into one element per item (ErrAnswerUnreadable: the app may have
// written the batch, so it is never sent again). ctx is checked
// before each attempt; an attempt itself is bounded by the upstream
// timeout, and given up when ctx ends first (a Close out of time): the
// batch may have landed, so that is the batch's error and never retried.
func (s *HTTPSink) Flush(ctx context.Context, items []json.RawMessage) ([]HTTPResult, error) {
	if len(items) == 0 {
		return []HTTPResult{}, nil
	}
	body, err := s.batchBody(items)
	if err != nil {
		return nil, err
	}
	req := fasthttp.AcquireRequest()
	abandoned := false // an attempt given up on still holds req
	defer func() {
		if !abandoned {
			fasthttp.ReleaseRequest(req)
		}
	}()
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(s.path)
	req.Header.SetHost(s.client.hc.Addr)
	req.Header.SetContentType("application/json")
	req.SetBodyRaw(body)
	if s.Prepare != nil {
		s.Prepare(ctx, &req.Header)
	}

	var a postAnswer
	for attempt := range 2 {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("batch %s: %w", s.path, err)
		}
		if a, abandoned = s.postCtx(ctx, req); abandoned {
			return nil, fmt.Errorf("batch %s: given up waiting for the answer: %w", s.path, ctx.Err())
		}
		if !retryable(a.status, a.err) || attempt == 1 {
			break
		}
	}
	switch {
	case a.err != nil:
		return nil, fmt.Errorf("batch %s: %w", s.path, a.err)
	case a.status < 200 || a.status > 299:
		return nil, &StatusError{Status: a.status, Body: a.body, RetryAfter: a.retryAfter}
	}
	return s.results(a.body, len(items))
}

// batchBody is {"<wrap>":[item,...]}.
func (s *HTTPSink) batchBody(items []json.RawMessage) ([]byte, error) {
	n := len(s.wrap) + 8
	for i, it := range items {
		if !json.Valid(it) {
			return nil, fmt.Errorf("batch %s: item %d is not JSON", s.path, i)
		}
		n += len(it) + 1
	}
	body := make([]byte, 0, n)
	body = append(body, '{')
	body = AppendJSString(body, s.wrap)
	body = append(body, ":["...)
	for i, it := range items {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, it...)
	}
	return append(body, "]}"...), nil
}

// retryable reports whether an attempt failed in a way worth one more:
// the app answered 5xx, or the request never reached it: the dial or the
// send failed. A connection closed before the answer is not: the app may
// have read the whole batch and stored it before it went away, and a
// batch is never sent twice where it may have landed.
func retryable(status int, err error) bool {
	if err == nil {
		return status >= 500
	}
	var ue *Error
	if !errors.As(err, &ue) || ue.Kind != Unreachable {
		return false
	}
	var op *net.OpError
	return errors.As(err, &op) && (op.Op == "dial" || op.Op == "write")
}

// postCtx is post, given up when ctx ends first. fasthttp takes no
// context, so the exchange runs on to its own timeout; abandoned says
// req is still in its hands and must be neither reused nor released.
func (s *HTTPSink) postCtx(ctx context.Context, req *fasthttp.Request) (a postAnswer, abandoned bool) {
	done := make(chan postAnswer, 1)
	go func() {
		done <- s.post(req)
	}()
	select {
	case a = <-done:
		return a, false
	case <-ctx.Done():
		select {
		case a = <-done: // it came as ctx ended: the answer stands
			return a, false
		default:
			return postAnswer{}, true
		}
	}
}

// postAnswer is one exchange's answer: its status, body (read whole) and
// Retry-After, or the error that ended it.
type postAnswer struct {
	status     int
	body       []byte
	retryAfter string
	err        error
}

// post sends req and returns the answer.
func (s *HTTPSink) post(req *fasthttp.Request) postAnswer {
	resp := fasthttp.AcquireResponse()
	if err := s.client.Do(req, resp); err != nil {
		fasthttp.ReleaseResponse(resp)
		return postAnswer{err: err}
	}
	a := postAnswer{status: resp.StatusCode(), retryAfter: string(resp.Header.Peek(fasthttp.HeaderRetryAfter))}
	var err error
	a.body, err = ReadWhole(resp, maxBatchAnswer)
	if errors.Is(err, ErrBodyTooLong) {
		err = fmt.Errorf("answer over %d bytes", maxBatchAnswer)
	}
	if err != nil {
		return postAnswer{err: answerError("batch "+s.path+" answer", err)}
	}
	return a
}

// results cuts the answer's split array into one result per item.
func (s *HTTPSink) results(answer []byte, n int) ([]HTTPResult, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(answer, &fields); err != nil {
		return nil, answerError("batch "+s.path+" answer", err)
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(fields[s.split], &elems); err != nil || len(elems) != n {
		return nil, answerError("batch "+s.path+" answer",
			fmt.Errorf("want %q with %d elements, got %.80s", s.split, n, fields[s.split]))
	}
	results := make([]HTTPResult, n)
	for i, e := range elems {
		results[i] = HTTPResult{Status: itemStatus(e), Body: e}
	}
	return results, nil
}

// itemStatus is 422 for an element whose "success" is false, else 200.
func itemStatus(elem json.RawMessage) int {
	var verdict struct {
		Success *bool `json:"success"`
	}
	if json.Unmarshal(elem, &verdict) == nil && verdict.Success != nil && !*verdict.Success {
		return fasthttp.StatusUnprocessableEntity
	}
	return fasthttp.StatusOK
}

// String names the sink's target for logs.
func (s *HTTPSink) String() string {
	return "http " + s.client.hc.Addr + s.path
}
