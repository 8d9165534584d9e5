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

// Streamed reports whether resp's body is long enough to stream to a
// client as it arrives: longer than the client reads whole, or chunked.
// Otherwise read it whole with ReadWhole before answering.
func Streamed(resp *fasthttp.Response) bool {
	if resp.BodyStream() == nil {
		return false
	}
	n := resp.Header.ContentLength()
	return n < 0 || n > streamThreshold
}

// ErrBodyTooLong is ReadWhole's error for a body longer than its limit.
var ErrBodyTooLong = errors.New("upstream body longer than the limit")

// ReadWhole reads resp's body into memory, at most limit bytes, and
// releases resp. A body that breaks off or stalls is an *Error, never a
// shorter body: fasthttp's Response.Body would hand back the error's text
// in its place. A longer body is ErrBodyTooLong, and its connection is
// dropped.
func ReadWhole(resp *fasthttp.Response, limit int) ([]byte, error) {
	b, err := AppendWhole(nil, resp, limit)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// AppendWhole is ReadWhole appending to dst, so a caller can read into a
// buffer it reuses. On error, dst holds part of the body.
func AppendWhole(dst []byte, resp *fasthttp.Response, limit int) ([]byte, error) {
	if resp.BodyStream() == nil {
		b := resp.Body()
		var err error
		if len(b) > limit {
			err = ErrBodyTooLong
		} else {
			dst = append(dst, b...)
		}
		fasthttp.ReleaseResponse(resp)
		return dst, err
	}
	body := NewBody(resp)
	start := len(dst)
	var err error
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)] // room to read into
		}
		n, rerr := body.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if len(dst)-start > limit {
			err = ErrBodyTooLong
			break
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			err = &Error{Kind: classify(rerr), Err: rerr}
			break
		}
	}
	body.CloseWithError(err) //nolint:errcheck // only releases
	return dst, err
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
