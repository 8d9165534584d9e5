package cachelayer

import (
	"context"
	"testing"
	"time"

	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

// TestFillAcrossResubscribe: a fetch that began before the subscription
// dropped and stores after it is back (and after the reconnect flush) is
// stamped with versions that miss an invalidation sent while this replica
// was deaf. It must not be served: not from L1, whose versions never
// heard of the invalidation, and not from L2, which checks its own.
func TestFillAcrossResubscribe(t *testing.T) {
	srv := servicetest.StartRedisServer(t)
	const prefix = "sheepdog-resub-fill:"
	a := newReplica(t, srv.Addr, prefix, 1<<20)
	b := newReplica(t, srv.Addr, prefix, 1<<20)
	raw := rawClient(t, srv.Addr)
	ctx := context.Background()
	tags := []string{"products"}
	eventually(t, "a subscribed", func() bool {
		_ = b.Invalidate(ctx, "probe")
		return a.Stats().InvalidationsReceived > 0
	})

	// The proxy's miss: Lookup stamps, the upstream fetch starts.
	_, _, cur := a.Lookup(ctx, Key{7}, tags, nil)
	fetchStart := time.Now().UnixNano()

	// a's subscription drops and cannot settle again for a while (its
	// bans cannot be read), so it hears nothing.
	base := a.Stats().L1Flushes
	raw.Set(ctx, prefix+"bans", "x", 0)
	raw.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub")
	eventually(t, "a noticed the loss", func() bool { return a.Stats().L1Flushes > base })

	// The write lands and b invalidates; a does not hear it.
	if err := b.Invalidate(ctx, "products"); err != nil {
		t.Fatal(err)
	}
	// a is back: subscribed, bans read, L1 flushed.
	raw.Del(ctx, prefix+"bans")
	n := a.Stats().InvalidationsReceived
	eventually(t, "a resubscribed", func() bool {
		_ = b.Invalidate(ctx, "probe")
		return a.Stats().InvalidationsReceived > n
	})

	// The fetch begun before the write ends now, with the old answer.
	old := fetched("/api/products", fetchStart, time.Minute, tags, cur)
	a.Store(Key{7}, old)
	a.WaitForTest()
	if e, tier, _ := a.Lookup(ctx, Key{7}, tags, nil); e != nil {
		t.Fatalf("a serves the pre-invalidation entry from %v (stamped %v)", tier, e.TagVersions)
	}
}
