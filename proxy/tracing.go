package proxy

import (
	"context"
	"net/url"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/style-shepherd/sheepdog/cachelayer"
	"github.com/style-shepherd/sheepdog/coalesce"
)

// Traces. With telemetry.traces none, p.tracer is nil and no request
// pays more than that nil check: the L1-hit path stays at 0 allocations.
// With a tracer, each request has a server span and, when the sampler
// keeps it, spans under it for the L1 and L2 lookups, the coalesced wait
// (leader or waiter), and the upstream call, a client span whose
// traceparent goes to the app. Each batch flush is a span of its own,
// linked to the span of every request in the batch.

const instrumentation = "github.com/style-shepherd/sheepdog/proxy"

// Span attributes of Sheepdog's own.
const (
	attrRoute        = attribute.Key("sheepdog.route")
	attrCache        = attribute.Key("sheepdog.cache")            // X-Cache: HIT, MISS, STALE, BYPASS
	attrHit          = attribute.Key("sheepdog.cache.hit")        // on the l1 and l2 spans
	attrRole         = attribute.Key("sheepdog.coalesce.role")    // leader or waiter
	attrWaiters      = attribute.Key("sheepdog.coalesce.waiters") // on the leader: callers that shared its fetch
	attrSink         = attribute.Key("sheepdog.batch.sink")
	attrBatchItems   = attribute.Key("sheepdog.batch.items")
	attrBatchBytes   = attribute.Key("sheepdog.batch.bytes")
	attrBatchWaitSec = attribute.Key("sheepdog.batch.wait_seconds")
)

// Span names.
const (
	spanL1       = "cache.l1"
	spanL2       = "cache.l2"
	spanCoalesce = "coalesce"
	spanFlush    = "batch.flush"
)

// spanKey holds, in a traced request's user values, the context that
// carries its server span.
type spanKey struct{}

func (p *Proxy) setTracer(tp trace.TracerProvider) {
	p.tracer = tp.Tracer(instrumentation)
	// W3C trace context only: a client's baggage header goes to the app
	// with its other headers, and reading it here would cost every request.
	p.propagator = propagation.TraceContext{}
}

// serverSpan is made once: options built per request would allocate.
var serverSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}

// methodName is the request's method as a span names it, without
// allocating: a known method, or "_OTHER" (OpenTelemetry's convention)
// for any other, so a client cannot mint span names at will.
func methodName(m []byte) string {
	for _, known := range [...]string{"GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"} {
		if string(m) == known {
			return known
		}
	}
	return "_OTHER"
}

// traced serves a request inside a server span that continues the
// client's trace, if it sent one.
func (p *Proxy) traced(ctx *fasthttp.RequestCtx) {
	parent := p.propagator.Extract(context.Background(), requestCarrier{&ctx.Request.Header})
	method := methodName(ctx.Method())
	sctx, span := p.tracer.Start(parent, method, serverSpan...)
	if !span.IsRecording() {
		// Not sampled: no child spans either, and the client's own trace
		// headers go to the app untouched.
		p.handle(ctx)
		span.End()
		return
	}
	ctx.SetUserValue(spanKey{}, sctx)
	rt := p.handle(ctx)
	ctx.RemoveUserValue(spanKey{})
	status := ctx.Response.StatusCode()
	attrs := []attribute.KeyValue{
		semconv.HTTPRequestMethodKey.String(method),
		semconv.URLPath(string(ctx.Path())),
		semconv.URLScheme("http"),
		semconv.ServerAddress(string(ctx.Host())),
		semconv.ClientAddress(ctx.RemoteIP().String()),
		semconv.UserAgentOriginal(string(ctx.UserAgent())),
		semconv.HTTPResponseStatusCode(status),
	}
	if rt != nil {
		route := rt.cfg.Match.Path + rt.cfg.Match.PathPrefix
		span.SetName(method + " " + route)
		attrs = append(attrs, semconv.HTTPRoute(route), attrRoute.String(rt.name))
	}
	if method == "_OTHER" {
		attrs = append(attrs, semconv.HTTPRequestMethodOriginal(string(ctx.Method())))
	}
	if x := ctx.Response.Header.PeekBytes(hdrXCache); len(x) > 0 {
		attrs = append(attrs, attrCache.String(string(x)))
	}
	span.SetAttributes(attrs...)
	if status >= 500 { // a server span's error is the server's own
		span.SetStatus(codes.Error, fasthttp.StatusMessage(status))
	}
	span.End()
}

// spanParent returns the context that carries the request's server span,
// or nil when the request is not traced or not sampled.
func spanParent(ctx *fasthttp.RequestCtx) context.Context {
	c, _ := ctx.UserValue(spanKey{}).(context.Context)
	return c
}

// traceLookup records a cache lookup that began at start as an l1 span
// and, if it asked Valkey, an l2 span.
func (p *Proxy) traceLookup(parent context.Context, start time.Time, lt *cachelayer.LookupTrace, tier cachelayer.Tier) {
	_, l1 := p.tracer.Start(parent, spanL1, trace.WithTimestamp(start),
		trace.WithAttributes(attrHit.Bool(tier == cachelayer.TierL1)))
	l1.End(trace.WithTimestamp(lt.L1End))
	if !lt.AskedL2 {
		return
	}
	_, l2 := p.tracer.Start(parent, spanL2, trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(lt.L1End),
		trace.WithAttributes(attrHit.Bool(tier == cachelayer.TierL2)))
	if lt.L2Err != nil {
		l2.RecordError(lt.L2Err)
		l2.SetStatus(codes.Error, lt.L2Err.Error())
	}
	l2.End(trace.WithTimestamp(lt.L2End))
}

// endCoalesce finishes a request's coalesce span with its part in the
// flight.
func endCoalesce(span trace.Span, leader bool, waiters int, err error) {
	if leader {
		span.SetAttributes(attrRole.String("leader"), attrWaiters.Int(waiters))
	} else {
		span.SetAttributes(attrRole.String("waiter"))
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// upstreamSpan starts the client span of a call to the app under the span
// in parent, and puts its traceparent (and tracestate) on req, replacing the
// client's. The function it returns ends the span with the answer's
// status, or the call's error.
func (p *Proxy) upstreamSpan(parent context.Context, req *fasthttp.Request) func(status int, err error) {
	// Named as the server span is: a client cannot mint span names.
	method := methodName(req.Header.Method())
	ctx, span := p.tracer.Start(parent, method, trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		span.SetAttributes(
			semconv.HTTPRequestMethodKey.String(method),
			semconv.URLFull(p.upstreamURL(req)),
			semconv.ServerAddress(p.upstreamHost),
			semconv.ServerPort(p.upstreamPort),
		)
		if method == "_OTHER" {
			span.SetAttributes(semconv.HTTPRequestMethodOriginal(string(req.Header.Method())))
		}
	}
	p.propagator.Inject(ctx, requestCarrier{&req.Header})
	return func(status int, err error) {
		switch {
		case err != nil:
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		case status >= 400: // a client span's error is any 4xx or 5xx
			span.SetStatus(codes.Error, fasthttp.StatusMessage(status))
		}
		if status > 0 {
			span.SetAttributes(semconv.HTTPResponseStatusCode(status))
		}
		span.End()
	}
}

func (p *Proxy) upstreamURL(req *fasthttp.Request) string {
	return p.cfg.Upstream.URL + string(req.Header.RequestURI())
}

// setUpstreamAddr keeps the app's host and port for client spans.
func (p *Proxy) setUpstreamAddr() {
	u, err := url.Parse(p.cfg.Upstream.URL)
	if err != nil {
		return
	}
	p.upstreamHost = u.Hostname()
	p.upstreamPort, _ = strconv.Atoi(u.Port())
	if p.upstreamPort == 0 {
		p.upstreamPort = 80
		if u.Scheme == "https" {
			p.upstreamPort = 443
		}
	}
}

// traceFlush makes each flush of a batch route a span, linked to the
// span of every request whose item it carries.
func (p *Proxy) traceFlush(route, sink string) func(context.Context, coalesce.FlushInfo) (context.Context, func(error)) {
	return func(ctx context.Context, f coalesce.FlushInfo) (context.Context, func(error)) {
		links := make([]trace.Link, 0, len(f.Submitters))
		for _, s := range f.Submitters {
			if sc := trace.SpanContextFromContext(s); sc.IsValid() {
				links = append(links, trace.Link{SpanContext: sc})
			}
		}
		ctx, span := p.tracer.Start(ctx, spanFlush+" "+route, trace.WithSpanKind(trace.SpanKindClient), trace.WithLinks(links...),
			trace.WithAttributes(attrRoute.String(route), attrSink.String(sink), attrBatchItems.Int(f.Items),
				attrBatchBytes.Int(f.Bytes), attrBatchWaitSec.Float64(f.Wait.Seconds())))
		return ctx, func(err error) {
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
		}
	}
}

// injectTrace puts the trace context of the span in ctx on h: a batch
// endpoint's call carries its flush span's traceparent.
func (p *Proxy) injectTrace(ctx context.Context, h *fasthttp.RequestHeader) {
	p.propagator.Inject(ctx, requestCarrier{h})
}

// requestCarrier reads and writes trace headers on a fasthttp request.
type requestCarrier struct{ h *fasthttp.RequestHeader }

func (c requestCarrier) Get(key string) string { return string(c.h.Peek(key)) }

// Set replaces every line of key: Set alone would replace only the first
// of a client's repeated traceparent lines.
func (c requestCarrier) Set(key, value string) {
	c.h.Del(key)
	c.h.Set(key, value)
}
func (c requestCarrier) Keys() []string {
	keys := make([]string, 0, c.h.Len())
	for k := range c.h.All() {
		keys = append(keys, string(k))
	}
	return keys
}
