// Package upstream owns Sheepdog's side of the conversation with the
// Style Shepherd app: the origin HTTP client, its health probe, and (with
// the write path) the sinks that batches are flushed into.
package upstream

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/configs"
)

// streamThreshold is the largest response body read whole; larger bodies
// are streamed to the client as they arrive, so no answer is held whole in
// memory.
const streamThreshold = 64 << 10

// Client sends requests to the upstream app over a bounded pool of
// keep-alive connections.
type Client struct {
	hc         *fasthttp.HostClient
	probe      *fasthttp.HostClient // the health probe's own, so a full pool never reads as down
	timeout    time.Duration
	healthPath string
}

// New returns a client for cfg. The URL must be http:// with a host.
func New(cfg configs.Upstream) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("upstream url: %w", err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("upstream url %q: want http://host:port", cfg.URL)
	}
	if cfg.Timeout <= 0 || cfg.MaxConns <= 0 {
		return nil, errors.New("upstream: timeout and max_conns must be above zero")
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 4 * time.Second
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	return &Client{
		hc: &fasthttp.HostClient{
			Addr:                     addr,
			MaxConns:                 cfg.MaxConns,
			MaxConnWaitTimeout:       cfg.Timeout,
			StreamResponseBody:       true,
			MaxResponseBodySize:      streamThreshold,
			DisablePathNormalizing:   true,
			NoDefaultUserAgentHeader: true,
			// An idempotent request whose pooled connection turned out
			// to be closed by the app is retried on another; nothing else
			// is (fasthttp would retry any failed GET, an answer too
			// large to read included, five times).
			MaxIdemponentCallAttempts: 5,
			RetryIfErr:                retryStale,
			// Idle connections are dropped before the app drops them
			// (Node: 5s), so requests do not race its close.
			MaxIdleConnDuration: cfg.IdleTimeout,
			// An answer's headers must fit (Varnish's default for the
			// whole answer head is 32 KB, nginx's 4 to 8 KB); past it, a
			// 502 upstream_bad_answer.
			ReadBufferSize: maxAnswerHead,
		},
		probe: &fasthttp.HostClient{
			Addr:                      addr,
			MaxConns:                  2,
			MaxIdemponentCallAttempts: 1,
			NoDefaultUserAgentHeader:  true,
			MaxIdleConnDuration:       cfg.IdleTimeout,
			ReadBufferSize:            maxAnswerHead,
			MaxResponseBodySize:       streamThreshold,
			StreamResponseBody:        true,
		},
		timeout:    cfg.Timeout,
		healthPath: cfg.HealthPath,
	}, nil
}

// Do sends req and fills resp, bounded by the upstream timeout, which covers
// the whole exchange, a streamed body included. The request's URI and Host
// are sent as they are. When resp.BodyStream() is not nil the caller must
// close it (see Body) before releasing resp.
func (c *Client) Do(req *fasthttp.Request, resp *fasthttp.Response) error {
	if err := c.hc.DoTimeout(req, resp, c.timeout); err != nil {
		return &Error{Kind: classify(err), Err: err}
	}
	return nil
}

// Host is the app's address as requests to it name it in Host.
func (c *Client) Host() string { return c.hc.Addr }

// Probe sends GET health_path, bounded by timeout, and reports how long
// the answer took. Any
// HTTP answer means the app is reachable; its status is returned.
func (c *Client) Probe(timeout time.Duration) (status int, latency time.Duration, err error) {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	resp := fasthttp.AcquireResponse()
	req.SetRequestURI(c.healthPath)
	req.Header.SetHost(c.Host())
	start := time.Now()
	err = c.probe.DoTimeout(req, resp, min(timeout, c.timeout))
	latency = time.Since(start)
	if err != nil {
		fasthttp.ReleaseResponse(resp)
		err = &Error{Kind: classify(err), Err: err}
		return 0, latency, err
	}
	status = resp.StatusCode()
	if resp.BodyStream() == nil {
		fasthttp.ReleaseResponse(resp)
		return status, latency, nil
	}
	// Read a short body to its end so the connection is reused; a long
	// one is cut, and its connection dropped.
	body := NewBody(resp)
	io.Copy(io.Discard, io.LimitReader(body, streamThreshold)) //nolint:errcheck // only draining
	body.CloseWithError(nil)                                   //nolint:errcheck // only releases
	return status, latency, nil
}

// Kind says why an upstream exchange failed; the proxy maps it to a status.
type Kind int

// The ways an exchange fails.
const (
	// Unreachable: refused, reset, or closed before an answer (502).
	Unreachable Kind = iota
	// Timeout: no answer within the upstream timeout (504).
	Timeout
	// RequestBody: reading the client's body failed or passed its limit
	// while it was being sent upstream.
	RequestBody
	// BadAnswer: the answer could not be read: its head is over
	// maxAnswerHead (502).
	BadAnswer
)

// maxAnswerHead bounds an answer's status line and headers.
const maxAnswerHead = 32 << 10

// retryStale is the client's RetryIfErr: an idempotent request is sent
// again only when its connection was found closed or reset, which is how
// a pooled connection the app had dropped fails.
func retryStale(req *fasthttp.Request, _ int, err error) (resetTimeout, retry bool) {
	idempotent := req.Header.IsGet() || req.Header.IsHead() || req.Header.IsPut()
	stale := errors.Is(err, io.EOF) || errors.Is(err, fasthttp.ErrConnectionClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
	return false, idempotent && stale
}

// Error is a failed upstream exchange.
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string { return "upstream: " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ErrClientBody marks an error that came from reading the client's request
// body while streaming it upstream; wrap such errors with it.
var ErrClientBody = errors.New("client body")

func classify(err error) Kind {
	var ne net.Error
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, ErrClientBody):
		return RequestBody
	case errors.As(err, &small):
		return BadAnswer
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrNoFreeConns),
		errors.Is(err, fasthttp.ErrDialTimeout):
		return Timeout
	case errors.As(err, &ne) && ne.Timeout():
		return Timeout
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return Unreachable
	default:
		return Unreachable
	}
}
