package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

// tripCounter is a go-redis hook that counts pipelines, single commands,
// and writes to the socket: each write after the connection's hand-shake
// is one request the server answers, so writes count round trips.
type tripCounter struct {
	pipelines, commands, writes atomic.Int64
}

func (h *tripCounter) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countedConn{Conn: conn, writes: &h.writes}, nil
	}
}

func (h *tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.commands.Add(1)
		return next(ctx, cmd)
	}
}

func (h *tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.pipelines.Add(1)
		return next(ctx, cmds)
	}
}

func (h *tripCounter) reset() {
	h.pipelines.Store(0)
	h.commands.Store(0)
	h.writes.Store(0)
}

type countedConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countedConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// countedClient is a client of the shared test Redis on one connection,
// warmed up so that its hand-shake is not counted.
func countedClient(t *testing.T) (*redis.Client, *tripCounter) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: servicetest.RedisAddr(t), PoolSize: 1, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	h := &tripCounter{}
	c.AddHook(h)
	// go-redis v9.23 sends HELLO again before a connection's first
	// pipeline: warm that up too.
	ctx := context.Background()
	if _, err := c.Pipelined(ctx, func(p redis.Pipeliner) error { return p.Ping(ctx).Err() }); err != nil {
		t.Fatal(err)
	}
	h.reset()
	return c, h
}

// TestValkeySinkWritesAsTheAppDoes: one batch of every kind of item, in
// one round trip; then each key holds what the app's own write would
// leave (API.md: a string as its text, other values as JSON text, SETEX
// with a TTL, SET without), and only the bad items failed.
func TestValkeySinkWritesAsTheAppDoes(t *testing.T) {
	c, trips := countedClient(t)
	prefix := servicetest.KeyPrefix(t)
	ctx := context.Background()
	// Keys the del and expire items act on.
	for _, k := range []string{"gone", "touched", "persisted"} {
		if err := c.Set(ctx, prefix+k, "old", time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	trips.reset()

	const noKey, noExpiry = -2, -1 // what TTL answers
	tests := []struct {
		name    string
		item    ValkeyItem
		value   string // what GET answers afterwards
		ttl     [2]time.Duration
		wantErr string // in the item's error; "" for success
	}{
		{name: "string with ttl", item: ValkeyItem{Op: "set", Key: "s", Value: json.RawMessage(`"plain text"`), TTL: 60},
			value: "plain text", ttl: [2]time.Duration{50 * time.Second, 60 * time.Second}},
		{name: "object without ttl", item: ValkeyItem{Op: "set", Key: "o", Value: json.RawMessage(`{ "context" : {"mood":"calm", "n": 2.0} }`)},
			value: `{"context":{"mood":"calm","n":2}}`, ttl: [2]time.Duration{noExpiry, noExpiry}},
		{name: "number", item: ValkeyItem{Op: "set", Key: "n", Value: json.RawMessage(`1.0`), TTL: 5},
			value: "1", ttl: [2]time.Duration{time.Second, 5 * time.Second}},
		{name: "a string that looks like JSON", item: ValkeyItem{Op: "set", Key: "q", Value: json.RawMessage(`"{\"a\":1}"`)},
			value: `{"a":1}`, ttl: [2]time.Duration{noExpiry, noExpiry}},
		{name: "missing value", item: ValkeyItem{Op: "set", Key: "empty"},
			value: "", ttl: [2]time.Duration{noExpiry, noExpiry}},
		{name: "expiry Valkey refuses", item: ValkeyItem{Op: "set", Key: "huge", Value: json.RawMessage(`1`), TTL: 1 << 62},
			ttl: [2]time.Duration{noKey, noKey}, wantErr: "invalid expire time"},
		{name: "negative ttl", item: ValkeyItem{Op: "set", Key: "neg", Value: json.RawMessage(`1`), TTL: -1},
			ttl: [2]time.Duration{noKey, noKey}, wantErr: "negative ttl"},
		{name: "value not JSON", item: ValkeyItem{Op: "set", Key: "bad", Value: json.RawMessage(`{oops`)},
			ttl: [2]time.Duration{noKey, noKey}, wantErr: "valkey set value"},
		{name: "unknown op", item: ValkeyItem{Op: "incr", Key: "i"},
			ttl: [2]time.Duration{noKey, noKey}, wantErr: "unknown op"},
		{name: "del", item: ValkeyItem{Op: "del", Key: "gone"},
			ttl: [2]time.Duration{noKey, noKey}},
		{name: "expire", item: ValkeyItem{Op: "expire", Key: "touched", TTL: 30},
			value: "old", ttl: [2]time.Duration{20 * time.Second, 30 * time.Second}},
		{name: "expire without ttl persists", item: ValkeyItem{Op: "expire", Key: "persisted"},
			value: "old", ttl: [2]time.Duration{noExpiry, noExpiry}},
	}
	items := make([]ValkeyItem, len(tests))
	for i, tt := range tests {
		items[i] = tt.item
		items[i].Key = prefix + tt.item.Key
	}
	results, err := NewValkeySink(c).Flush(ctx, items)
	if err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if len(results) != len(items) {
		t.Fatalf("%d results for %d items", len(results), len(items))
	}
	if p, n, w := trips.pipelines.Load(), trips.commands.Load(), trips.writes.Load(); p != 1 || n != 0 || w != 1 {
		t.Errorf("%d pipelines, %d single commands, %d round trips; want 1, 0, 1", p, n, w)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := items[i].Key
			if err := results[i].Err; (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("item error %v, want %q", err, tt.wantErr)
			}
			ttl, err := c.TTL(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if ttl < 0 {
				ttl /= time.Nanosecond // go-redis answers -1 and -2 unscaled
			}
			if ttl < tt.ttl[0] || ttl > tt.ttl[1] {
				t.Errorf("TTL %v, want within %v", ttl, tt.ttl)
			}
			if ttl == noKey {
				return
			}
			if got, err := c.Get(ctx, key).Result(); err != nil || got != tt.value {
				t.Errorf("GET = %q, %v; want %q", got, err, tt.value)
			}
		})
	}
}

// TestValkeySinkExpireCenturies: an expire past time.Duration's range
// (9223372037 s, 292 years) is sent as whole seconds, so the key keeps
// that expiry rather than a negative one that would delete it.
func TestValkeySinkExpireCenturies(t *testing.T) {
	c, _ := countedClient(t)
	key := servicetest.KeyPrefix(t) + "centuries"
	ctx := context.Background()
	if err := c.Set(ctx, key, "old", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	const ttl = 9223372037
	results, err := NewValkeySink(c).Flush(ctx, []ValkeyItem{{Op: "expire", Key: key, TTL: ttl}})
	if err != nil || len(results) != 1 || results[0].Err != nil {
		t.Fatalf("Flush = %v, %v", results, err)
	}
	// TTL read raw: go-redis's Duration overflows here too.
	left, err := c.Do(ctx, "ttl", key).Int64()
	if err != nil || left < ttl-5 || left > ttl {
		t.Errorf("TTL %d s (%v), want about %d", left, err, int64(ttl))
	}
	if got, err := c.Get(ctx, key).Result(); err != nil || got != "old" {
		t.Errorf("GET = %q, %v; want the key kept", got, err)
	}
}

// TestValkeySinkOnePipelinePerBatch: a full batch of sets is still one
// round trip, and an empty one none.
func TestValkeySinkOnePipelinePerBatch(t *testing.T) {
	c, trips := countedClient(t)
	prefix := servicetest.KeyPrefix(t)
	sink := NewValkeySink(c)
	for _, n := range []int{0, 1, 100} {
		items := make([]ValkeyItem, n)
		for i := range items {
			items[i] = ValkeyItem{Op: "set", Key: prefix + strings.Repeat("k", i+1), Value: json.RawMessage(`{"i":1}`), TTL: 60}
		}
		trips.reset()
		results, err := sink.Flush(context.Background(), items)
		if err != nil || len(results) != n {
			t.Fatalf("batch of %d: %d results, %v", n, len(results), err)
		}
		want := int64(min(n, 1))
		if p, w := trips.pipelines.Load(), trips.writes.Load(); p != want || w != want {
			t.Errorf("batch of %d: %d pipelines, %d round trips; want %d", n, p, w, want)
		}
	}
}

// TestValkeySinkDown: a Valkey that cannot be reached fails the batch
// as a whole, marked ErrUnavailable, and leaves no goroutine behind.
func TestValkeySinkDown(t *testing.T) {
	servicetest.CheckGoroutines(t)
	srv := servicetest.StartRedisServer(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialerRetries: 1, DisableIdentity: true})
	defer c.Close()
	sink := NewValkeySink(c)
	items := []ValkeyItem{{Op: "set", Key: "k", Value: json.RawMessage(`"v"`)}, {Op: "del", Key: "k2"}}
	if _, err := sink.Flush(context.Background(), items); err != nil {
		t.Fatalf("Flush with Valkey up: %v", err)
	}
	srv.Stop()
	results, err := sink.Flush(context.Background(), items)
	if !errors.Is(err, ErrUnavailable) || results != nil {
		t.Fatalf("Flush with Valkey down = %v, %v; want no results and ErrUnavailable", results, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := sink.Flush(ctx, items); !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("Flush on a cancelled context: %v; want context.Canceled, not ErrUnavailable", err)
	}
}

// TestValkeySinkOutOfMemory: a Valkey out of memory refuses the batch's
// SETs but runs its DELs; each refused item fails with ErrUnavailable and
// each DEL that ran succeeds, rather than the whole batch failing.
func TestValkeySinkOutOfMemory(t *testing.T) {
	srv := servicetest.StartRedisServer(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DisableIdentity: true})
	defer c.Close()
	ctx := context.Background()
	c.Set(ctx, "gone", "x", 0)
	if err := c.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil { // below what it uses already
		t.Fatal(err)
	}
	sink := NewValkeySink(c)
	results, err := sink.Flush(ctx, []ValkeyItem{
		{Op: "set", Key: "new", Value: json.RawMessage(`"v"`)},
		{Op: "del", Key: "gone"},
	})
	if err != nil || len(results) != 2 {
		t.Fatalf("Flush = %v, %v; want a result per item", results, err)
	}
	if !errors.Is(results[0].Err, ErrUnavailable) || !strings.Contains(results[0].Err.Error(), "OOM") {
		t.Errorf("the refused SET: %v, want ErrUnavailable with Valkey's OOM", results[0].Err)
	}
	if results[1].Err != nil {
		t.Errorf("the DEL, which ran: %v", results[1].Err)
	}
	if n := c.Exists(ctx, "gone").Val(); n != 0 {
		t.Errorf("the DEL did not run")
	}
	results, err = sink.Flush(ctx, []ValkeyItem{{Op: "set", Key: "a", Value: json.RawMessage(`1`)}, {Op: "set", Key: "b", Value: json.RawMessage(`2`)}})
	if !errors.Is(err, ErrUnavailable) || results != nil {
		t.Errorf("a batch of SETs only, all refused: %v, %v; want the batch to fail with ErrUnavailable", results, err)
	}
}

func TestValkeySinkString(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer c.Close()
	if got := NewValkeySink(c).String(); got != "valkey 127.0.0.1:6379" {
		t.Errorf("String() = %q", got)
	}
}

// BenchmarkValkeySinkFlush: a batch of 100 session-sized sets, one round
// trip to the shared test Redis; ns/op is per batch.
func BenchmarkValkeySinkFlush(b *testing.B) {
	c := redis.NewClient(&redis.Options{Addr: servicetest.RedisAddr(b), DisableIdentity: true})
	defer c.Close()
	prefix := servicetest.KeyPrefix(b)
	items := make([]ValkeyItem, 100)
	for i := range items {
		items[i] = ValkeyItem{Op: "set", Key: fmt.Sprintf("%ssession:%d", prefix, i), TTL: 60,
			Value: json.RawMessage(`{"userId":"user_1","sessionId":"s1","preferences":{"sizes":["M","L"]},"createdAt":"2024-05-01T12:00:00.000Z"}`)}
	}
	sink := NewValkeySink(c)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sink.Flush(ctx, items); err != nil {
			b.Fatal(err)
		}
	}
}
