package cachelayer_test

import (
	"context"
	"fmt"
	"time"

	"github.com/style-shepherd/sheepdog/cachelayer"
	"github.com/style-shepherd/sheepdog/configs"
)

// The read path as the proxy drives it: build the key, look up, on a miss
// stamp the fill with the versions Lookup returned, store; a write then
// invalidates the tag on every replica.
func ExampleCache() {
	// No L2 addresses: L1 only. With cfg.L2.Addrs set, the same calls
	// reach Valkey and the other replicas.
	c, err := cachelayer.New(configs.Cache{L1: configs.L1{MaxBytes: 64 << 20}}, nil)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()

	kb := cachelayer.AcquireKeyBuilder()
	kb.Add("route", []byte("profile"))
	kb.Add("path.userId", []byte("42"))
	key := kb.Sum()
	cachelayer.ReleaseKeyBuilder(kb)

	tags := []string{"user:42"}
	versions := make([]uint64, 0, 4) // reused across requests

	e, tier, stamp := c.Lookup(ctx, key, tags, versions[:0])
	fmt.Println("first lookup:", e != nil, tier)

	start := time.Now().UnixNano() // the upstream fetch starts
	c.Store(key, &cachelayer.Entry{
		Status:      200,
		Body:        []byte(`{"success":true,"data":{"userId":"42"}}`),
		Stored:      start,
		FreshUntil:  start + int64(30*time.Second),
		SWRUntil:    start + int64(30*time.Second),
		SIEUntil:    start + int64(30*time.Second),
		Tags:        tags,
		TagVersions: stamp,
		Path:        "/api/vultr/postgres/users/42/profile",
	})
	c.WaitForTest() // L1 admits asynchronously; a test waits, the proxy need not

	e, tier, _ = c.Lookup(ctx, key, tags, versions[:0])
	fmt.Println("after the fill:", e.Status, tier)

	_ = c.Invalidate(ctx, "user:42") // a write to user 42 succeeded
	e, tier, _ = c.Lookup(ctx, key, tags, versions[:0])
	fmt.Println("after the write:", e != nil, tier)
	// Output:
	// first lookup: false none
	// after the fill: 200 l1
	// after the write: false none
}
