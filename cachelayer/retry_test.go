package cachelayer

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

// failPublishes makes the first n PUBLISH commands fail without reaching
// Valkey, as a timeout under load would.
type failPublishes struct{ left atomic.Int64 }

func (h *failPublishes) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *failPublishes) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "publish" && h.left.Add(-1) >= 0 {
			err := errors.New("publish failed for the test")
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}
func (h *failPublishes) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestInvalidateRetries: an invalidation whose publish fails is sent
// again in the background, so the other replica stops answering from the
// entry the write replaced, instead of keeping it until it expires.
func TestInvalidateRetries(t *testing.T) {
	servicetest.CheckGoroutines(t)
	addr := servicetest.RedisAddr(t)
	prefix := servicetest.KeyPrefix(t)
	a := newReplica(t, addr, prefix, 1<<20)
	b := newReplica(t, addr, prefix, 1<<20)
	ctx := context.Background()
	tags := []string{"memory:u1"}
	fill(a, Key{7}, "/api/raindrop/search-memory", tags...)
	if _, tier, _ := a.Lookup(ctx, Key{7}, tags, nil); tier != TierL1 {
		t.Fatalf("A's entry is in %v, want L1", tier)
	}

	fails := &failPublishes{}
	fails.left.Store(2)
	b.l2.client.AddHook(fails)
	if err := b.Invalidate(ctx, tags...); err == nil {
		t.Fatal("Invalidate returned no error though its publish failed")
	}
	eventually(t, "A told of B's invalidation", func() bool {
		return a.Stats().InvalidationsReceived > 0
	})
	if e, _, _ := a.Lookup(ctx, Key{7}, tags, nil); e != nil {
		t.Fatal("A still answers from the entry B's write replaced")
	}
	if s := b.Stats(); s.InvalidationsRetried != 1 || s.InvalidationsLost != 0 {
		t.Fatalf("B retried %d tags and lost %d, want 1 and 0", s.InvalidationsRetried, s.InvalidationsLost)
	}
}

// TestRetryTagsKeepsLaterFailures: a tag that fails again after a retry
// began is kept for the next one, and one past retryFor is given up.
func TestRetryTagsKeepsLaterFailures(t *testing.T) {
	r := newRetryTags()
	r.add([]string{"a", "b"}, 100)
	tags, expired := r.due(200)
	if len(tags) != 2 || expired != 0 {
		t.Fatalf("due: %v, %d expired", tags, expired)
	}
	r.add([]string{"b"}, 300) // failed again while the retry was under way
	r.sent(tags, 200)
	if tags, _ := r.due(400); len(tags) != 1 || tags[0] != "b" {
		t.Fatalf("after the retry, due %v, want [b]", tags)
	}
	if tags, expired := r.due(100 + int64(retryFor) + 1); len(tags) != 0 || expired != 1 {
		t.Fatalf("past retryFor: due %v, %d expired; want none due, 1 expired", tags, expired)
	}
}
