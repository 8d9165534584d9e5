package cachelayer

import (
	"context"
	"errors"
	"math"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

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
// began is kept for the next one, and none is ever given up: Valkey
// must take each, however long it is away.
func TestRetryTagsKeepsLaterFailures(t *testing.T) {
	r := newRetryTags()
	r.add([]string{"a", "b"}, 100)
	tags, owed := r.due()
	if len(tags) != 2 || owed != 0 {
		t.Fatalf("due: %v, ban owed %v", tags, owed)
	}
	r.add([]string{"b"}, 300) // failed again while the retry was under way
	r.sent(tags, 200)
	if tags, _ := r.due(); len(tags) != 1 || tags[0] != "b" {
		t.Fatalf("after the retry, due %v, want [b]", tags)
	}
}

// TestRetryTagsOweABanPastTheirBound: a tag past retryMaxTags is not
// held; a ban of everything is owed for it instead, forgotten only by a
// ban begun after the tag failed.
func TestRetryTagsOweABanPastTheirBound(t *testing.T) {
	r := newRetryTags()
	many := make([]string, retryMaxTags)
	for i := range many {
		many[i] = "t" + strconv.Itoa(i)
	}
	if dropped := r.add(many, 100); dropped != 0 {
		t.Fatalf("%d of %d tags dropped", dropped, retryMaxTags)
	}
	if dropped := r.add([]string{"one-more"}, 200); dropped != 1 {
		t.Fatalf("%d dropped past the bound, want 1", dropped)
	}
	if tags, owed := r.due(); len(tags) != retryMaxTags || owed != 200 {
		t.Fatalf("due %d tags, ban owed at %d; want %d, and at 200", len(tags), owed, retryMaxTags)
	}
	r.banSent(150) // a ban begun before the tag was dropped does not cover it
	if _, owed := r.due(); owed == 0 {
		t.Fatal("a ban begun before the drop forgave it")
	}
	r.banSent(250)
	if _, owed := r.due(); owed != 0 {
		t.Fatal("still owed after a ban that covers it")
	}
}

// TestInvalidationOutlastsAnOutage: Valkey is out of the writing
// replica's reach for longer than any retry window would be. The other
// replicas, the one that reaches Valkey and one that starts afterwards
// and reads L2, must not answer from the entry the write replaced once
// the writer reaches Valkey again. (They did for the entry's whole TTL
// when the writer gave up after 10 s: L2's version of the tag was never
// bumped, so L2's old entry stayed valid.)
func TestInvalidationOutlastsAnOutage(t *testing.T) {
	srv := servicetest.StartRedisServer(t)
	prefix := servicetest.KeyPrefix(t)
	link := newCutProxy(t, srv.Addr)
	a := newReplica(t, link.Addr(), prefix, 1<<20) // takes the write, through a link that breaks
	b := newReplica(t, srv.Addr, prefix, 1<<20)    // reaches Valkey directly
	ctx := context.Background()
	tags := []string{"user:42"}
	eventually(t, "b subscribed", func() bool {
		_ = a.Invalidate(ctx, "probe")
		return b.Stats().InvalidationsReceived > 0
	})
	old := fetched("/api/vultr/postgres/users/42/profile", time.Now().UnixNano(), 5*time.Minute, tags, b.VersionsFor(tags, nil))
	b.Store(Key{42}, old)
	b.WaitForTest()

	link.cut()
	if err := a.Invalidate(ctx, tags...); err == nil {
		t.Fatal("Invalidate with Valkey out of reach returned no error")
	}
	time.Sleep(11 * time.Second) // past the 10 s the retries used to give up after
	if e, _, _ := b.Lookup(ctx, Key{42}, tags, nil); e == nil {
		t.Fatal("b dropped the entry while a could not reach Valkey: the test proves nothing")
	}
	link.heal()
	eventually(t, "b told of a's invalidation", func() bool {
		e, _, _ := b.Lookup(ctx, Key{42}, tags, nil)
		return e == nil
	})
	c := newReplica(t, srv.Addr, prefix, 1<<20)
	if e, tier, _ := c.Lookup(ctx, Key{42}, tags, nil); e != nil {
		t.Fatalf("a replica started after the outage answers the pre-write entry from %v", tier)
	}
	if s := a.Stats(); s.InvalidationsRetried == 0 || s.InvalidationsLost != 0 {
		t.Errorf("a retried %d tags and lost %d, want some and 0", s.InvalidationsRetried, s.InvalidationsLost)
	}
}

// TestOwedBanVoidsOnlyWhatCameBefore: the ban owed for tags past
// retryMaxTags voids the entries stored before the overflow, not those
// stored during the rest of the outage: an entry stored after it, under a
// tag no write touched, survives. The ban used to be stamped when sent,
// and voided every entry of the outage on every replica.
func TestOwedBanVoidsOnlyWhatCameBefore(t *testing.T) {
	addr := servicetest.RedisAddr(t)
	prefix := servicetest.KeyPrefix(t)
	b := newReplica(t, addr, prefix, 1<<20)
	ctx := context.Background()
	fails := &failPublishes{}
	fails.left.Store(math.MaxInt64) // Valkey takes no publish until healed
	b.l2.client.AddHook(fails)
	many := make([]string, retryMaxTags+1)
	for i := range many {
		many[i] = "t" + strconv.Itoa(i)
	}
	if err := b.Invalidate(ctx, many...); err == nil {
		t.Fatal("no error")
	}
	if s := b.Stats(); s.InvalidationsLost != 1 {
		t.Fatalf("lost %d, want 1", s.InvalidationsLost)
	}
	time.Sleep(20 * time.Millisecond)
	tags := []string{"products"}
	fill(b, Key{9}, "/api/vultr/postgres/products", tags...) // stored after the overflow
	if e, _, _ := b.Lookup(ctx, Key{9}, tags, nil); e == nil {
		t.Fatal("the new entry is not there before the ban")
	}
	time.Sleep(300 * time.Millisecond) // the outage goes on
	fails.left.Store(0)
	eventually(t, "the owed ban sent", func() bool { return b.Stats().BansSent > 0 })
	time.Sleep(50 * time.Millisecond)
	if e, _, _ := b.Lookup(ctx, Key{9}, tags, nil); e == nil {
		t.Errorf("an entry stored %v after the overflow, under an untouched tag, was voided by the owed ban (BansSent=%d)", 300*time.Millisecond, b.Stats().BansSent)
	}
}
