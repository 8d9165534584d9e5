package cachelayer

import (
	"context"
	"testing"
	"time"

	"github.com/style-shepherd/sheepdog/configs"
	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

// Several addresses make L2 a cluster client: tag versions are read with
// one GET each (their keys live in different slots), bumped with one
// script each, and pub/sub still reaches every replica.
func TestCacheOnACluster(t *testing.T) {
	servicetest.CheckGoroutines(t)
	addrs := servicetest.StartRedisCluster(t, 3)
	replica := func() *Cache {
		c, err := New(configs.Cache{
			L1: configs.L1{MaxBytes: 1 << 20},
			L2: configs.L2{Addrs: addrs, KeyPrefix: "sheepdog:", Timeout: 200 * time.Millisecond},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	a, b := replica(), replica()
	if !a.l2.cluster {
		t.Fatal("three addresses did not make a cluster client")
	}
	ctx := context.Background()
	tags := []string{"products", "user:1", "user:2", "user:3", "orders:9"}

	if err := a.Invalidate(ctx, "user:2", "orders:9"); err != nil {
		t.Fatalf("Invalidate across slots: %v", err)
	}
	stored := fill(a, Key{1}, "/api/vultr/postgres/products", tags...)
	e, tier, cur := b.Lookup(ctx, Key{1}, tags, nil)
	if e == nil || tier != TierL2 || string(e.Body) != string(stored.Body) {
		t.Fatalf("b: %v from %v; want an L2 hit", e, tier)
	}
	if len(cur) != len(tags) || cur[0] != 0 || cur[2] == 0 || cur[4] == 0 {
		t.Fatalf("versions %v: want 0 for never-bumped tags, more for user:2 and orders:9", cur)
	}

	b.WaitForTest()
	if err := a.Invalidate(ctx, "user:3"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "heard on b", func() bool { return b.Stats().InvalidationsReceived == 2 })
	if e, tier, _ := b.Lookup(ctx, Key{1}, tags, nil); e != nil {
		t.Fatalf("b still answers from %v after the invalidation", tier)
	}

	if err := a.Ban(ctx, "/api/"); err != nil {
		t.Fatalf("Ban: %v", err)
	}
	if err := a.Delete(ctx, Key{1}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	eventually(t, "ban and delete heard on b", func() bool {
		s := b.Stats()
		return s.BansReceived == 1 && s.DeletesReceived == 1
	})
	if s := a.Stats().L2; s.Errors != 0 {
		t.Fatalf("L2 errors on the cluster: %+v", s)
	}
}
