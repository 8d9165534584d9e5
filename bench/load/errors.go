package load

import (
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/valyala/fasthttp"
)

// ErrorKind sorts failed requests by what a reader of the results needs to
// tell apart: a slow server, a server that is not there, and one that hung up.
type ErrorKind int

// The error kinds, in report order.
const (
	// Timeout: no full answer within Config.Timeout (or the dial timed out).
	Timeout ErrorKind = iota
	// Refused: nothing listens on the target.
	Refused
	// Reset: the server reset or closed the connection before answering.
	Reset
	// Other: anything else, such as a malformed answer.
	Other

	numErrorKinds = iota
)

var errorKindNames = [numErrorKinds]string{"timeout", "refused", "reset", "other"}

// String is the kind's name as reports print it.
func (k ErrorKind) String() string {
	if k < 0 || k >= numErrorKinds {
		return "unknown"
	}
	return errorKindNames[k]
}

// ErrorKinds lists every kind, in report order.
func ErrorKinds() []ErrorKind { return []ErrorKind{Timeout, Refused, Reset, Other} }

// Classify sorts a request's error into its kind.
func Classify(err error) ErrorKind {
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.As(err, &netErr) && netErr.Timeout():
		return Timeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, fasthttp.ErrConnectionClosed), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return Reset
	default:
		return Other
	}
}

// ErrorCounts counts failed requests by kind; index it with an ErrorKind.
type ErrorCounts [numErrorKinds]uint64

// Total is the number of failed requests of every kind.
func (c ErrorCounts) Total() uint64 { return sum(c[:]) }

// ByName maps each kind with a non-zero count to its count, for reports.
func (c ErrorCounts) ByName() map[string]uint64 {
	m := make(map[string]uint64)
	for k, v := range c {
		if v != 0 {
			m[ErrorKind(k).String()] = v
		}
	}
	return m
}
