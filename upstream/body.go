package upstream

import (
	"errors"
	"io"

	"github.com/valyala/fasthttp"
)

// errNotDrained closes an upstream connection whose body was not read to
// its end, so its leftover bytes are never read as the next answer.
var errNotDrained = errors.New("upstream body not read to the end")

// Body is an upstream response body being streamed to a client. It owns
// the upstream response: closing it releases the response and returns the
// connection to the pool only when the body was read to its end.
type Body struct {
	resp   *fasthttp.Response
	stream io.Reader
	eof    bool
}

// NewBody takes ownership of resp, whose BodyStream must not be nil.
func NewBody(resp *fasthttp.Response) *Body {
	return &Body{resp: resp, stream: resp.BodyStream()}
}

// Streamed reports whether resp's body is still arriving: longer than the
// client reads whole, or chunked. Otherwise resp.Body() is already in
// memory and reading it returns the connection to the pool at once.
func Streamed(resp *fasthttp.Response) bool {
	if resp.BodyStream() == nil {
		return false
	}
	n := resp.Header.ContentLength()
	return n < 0 || n > streamThreshold
}

func (b *Body) Read(p []byte) (int, error) {
	n, err := b.stream.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// CloseWithError is called by fasthttp once the body was written to the
// client, with the write error if there was one.
func (b *Body) CloseWithError(err error) error {
	if err == nil && !b.eof {
		err = errNotDrained
	}
	closeStream(b.stream, err)
	fasthttp.ReleaseResponse(b.resp)
	return nil
}

var _ fasthttp.ReadCloserWithError = (*Body)(nil)

func closeStream(r io.Reader, err error) {
	if c, ok := r.(fasthttp.ReadCloserWithError); ok {
		c.CloseWithError(err) //nolint:errcheck // the closer only releases
	}
}
