package upstream

import (
	"context"
	"errors"
	"fmt"

	"github.com/style-shepherd/sheepdog/coalesce"
)

// ErrUnavailable marks a batch that failed because its store could not be
// reached or could not take writes (refused, reset, shut down, loading),
// not because of what the batch held. The proxy answers such a batch's
// callers 503, and splitting the batch would not help it.
var ErrUnavailable = errors.New("store unavailable")

// storeError wraps a batch error with what failed, marking it
// ErrUnavailable unless it is the caller's own cancellation or deadline,
// which the proxy maps on its own.
func storeError(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: %w: %w", what, ErrUnavailable, err)
}

// ErrNotReached marks a batch that never reached its store (no
// connection could be had, refused or timed out): nothing of it was
// written, so its items may be sent elsewhere.
var ErrNotReached = errors.New("store not reached")

// ErrAnswerUnreadable marks a batch that its store or endpoint took (a 2xx
// answer, a committed statement) but whose answer cannot be read or
// matched to its items: cut short, too long, not JSON, or miscounted.
// The batch may well be written, so it is neither retried nor split;
// like coalesce.ErrResultCount, which it wraps, it fails every item.
var ErrAnswerUnreadable = fmt.Errorf("batch taken but its answer unreadable: %w", coalesce.ErrResultCount)

// answerError marks err as ErrAnswerUnreadable, with what failed.
func answerError(what string, err error) error {
	return fmt.Errorf("%s: %w: %w", what, ErrAnswerUnreadable, err)
}
