package cachelayer

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/style-shepherd/sheepdog/configs"
	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

// testL2Timeout bounds L2 calls in tests that check what L2 does, not
// how fast: the production default of 50ms is tight for a two-core
// machine running the race detector and other packages' tests at once.
// Fault tests use faultL2Timeout, the default, since they measure it.
const (
	testL2Timeout  = time.Second
	faultL2Timeout = defaultL2Timeout
)

// newTestL2 returns an L2 on addr under prefix, closed when the test ends.
func newTestL2(t testing.TB, addr, prefix string) *L2 {
	t.Helper()
	return newTestL2Timeout(t, addr, prefix, testL2Timeout)
}

func newTestL2Timeout(t testing.TB, addr, prefix string, timeout time.Duration) *L2 {
	t.Helper()
	l, err := NewL2(configs.L2{Addrs: []string{addr}, KeyPrefix: prefix, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// rawClient is a plain go-redis client for looking behind L2's back.
func rawClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// sharedL2 returns an L2 on the shared test Valkey under a prefix of the
// test's own, and a plain client to the same Valkey.
func sharedL2(t *testing.T) (*L2, *redis.Client) {
	t.Helper()
	addr := servicetest.RedisAddr(t)
	return newTestL2(t, addr, servicetest.KeyPrefix(t)), rawClient(t, addr)
}

// eventually polls cond for up to three seconds.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after 3s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNewL2Validates(t *testing.T) {
	tests := []struct {
		name string
		cfg  configs.L2
	}{
		{"no address", configs.L2{}},
		{"negative timeout", configs.L2{Addrs: []string{"127.0.0.1:1"}, Timeout: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if l, err := NewL2(tt.cfg); err == nil {
				l.Close()
				t.Fatal("accepted")
			}
		})
	}
}

func TestL2RoundTrip(t *testing.T) {
	servicetest.CheckGoroutines(t)
	l, raw := sharedL2(t)
	ctx := context.Background()
	k := Key{0xab, 0xcd}
	tags := []string{"products", "user:42"}

	e, versions, err := l.Get(ctx, k, tags, []uint64{99})
	if err != nil || e != nil || !reflect.DeepEqual(versions, []uint64{99, 0, 0}) {
		t.Fatalf("cold Get = %v, %v, %v; want a miss with versions [99 0 0]", e, versions, err)
	}

	want := sampleEntry()
	now := time.Now().UnixNano()
	want.Stored, want.FreshUntil, want.SWRUntil, want.SIEUntil = now, now+int64(time.Minute), now+int64(time.Minute), now+int64(time.Minute)
	l.Set(k, want)
	l.Wait()
	bumped, err := l.bump(ctx, []string{"user:42"}, now, nil)
	if err != nil || len(bumped) != 1 || bumped[0] != versionFloor(now) {
		t.Fatalf("bump = %v, %v; want [%d]", bumped, err, versionFloor(now))
	}
	if again, _ := l.bump(ctx, []string{"user:42"}, now, nil); again[0] != bumped[0]+1 {
		t.Fatalf("a second bump in the same millisecond gave %v, want %d", again, bumped[0]+1)
	}

	e, versions, err = l.Get(ctx, k, tags, nil)
	if err != nil || !reflect.DeepEqual(e, want) || !reflect.DeepEqual(versions, []uint64{0, bumped[0] + 1}) {
		t.Fatalf("Get = %+v, %v, %v; want the entry and versions [0 %d]", e, versions, err, bumped[0]+1)
	}
	if n, _ := raw.Exists(ctx, l.prefix+"e:abcd0000000000000000000000000000").Result(); n != 1 {
		t.Fatal("the entry is not stored under prefix+\"e:\"+hex(key)")
	}
	if keys, _ := raw.Keys(ctx, l.prefix+"*").Result(); len(keys) != 2 {
		t.Fatalf("keys under the prefix: %v, want the entry and one tag version", keys)
	}

	if err := l.Del(ctx, k); err != nil {
		t.Fatal(err)
	}
	if e, _, _ := l.Get(ctx, k, nil, nil); e != nil {
		t.Fatal("hit after Del")
	}
	s := l.Stats()
	if s.Hits != 1 || s.Misses != 2 || s.WritesQueued != 1 || s.Written != 1 || s.Errors != 0 {
		t.Fatalf("Stats = %+v; want 1 hit, 2 misses, 1 written, 0 errors", s)
	}
	if h := l.Health(); h.State != StateOK || h.LastError != "" {
		t.Fatalf("Health = %+v, want ok", h)
	}
	l.Close()
	if h := l.Health(); h.State != StateDown {
		t.Fatalf("Health after Close = %+v, want down", h)
	}
}

func TestL2ExpiresEntries(t *testing.T) {
	l, raw := sharedL2(t)
	ctx := context.Background()

	now := time.Now().UnixNano()
	l.Set(Key{1}, fetched("/a", now, 200*time.Millisecond, nil, nil))
	l.Set(Key{2}, fetched("/b", now, -time.Millisecond, nil, nil))                                   // already gone
	l.Set(Key{3}, fetched("/c", now-int64(MaxKeep)+int64(time.Second), MaxKeep+time.Hour, nil, nil)) // capped by MaxKeep
	l.Wait()

	tests := []struct {
		k        Key
		min, max time.Duration
	}{
		{Key{1}, 100 * time.Millisecond, 200 * time.Millisecond},
		{Key{3}, 500 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		ttl, err := raw.PTTL(ctx, l.entryKey(tt.k)).Result()
		if err != nil || ttl < tt.min || ttl > tt.max {
			t.Errorf("PTTL of %v = %v, %v; want between %v and %v", tt.k, ttl, err, tt.min, tt.max)
		}
	}
	if n, _ := raw.Exists(ctx, l.entryKey(Key{2})).Result(); n != 0 {
		t.Error("an expired entry was written")
	}
	eventually(t, "expired in L2", func() bool {
		e, _, err := l.Get(ctx, Key{1}, nil, nil)
		return e == nil && err == nil
	})
}

func TestL2CorruptValues(t *testing.T) {
	l, raw := sharedL2(t)
	ctx := context.Background()

	good := sampleEntry().AppendEncode(nil)
	values := map[string]string{
		"garbage":        "not an entry",
		"truncated":      string(good[:len(good)/2]),
		"future version": string(append([]byte{codecVersion + 1}, good[1:]...)),
		"empty":          "",
	}
	var i byte
	for name, v := range values {
		i++
		t.Run(name, func(t *testing.T) {
			before := l.Stats()
			if err := raw.Set(ctx, l.entryKey(Key{i}), v, time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			e, _, err := l.Get(ctx, Key{i}, nil, nil)
			after := l.Stats()
			if e != nil || err != nil {
				t.Fatalf("Get = %v, %v; want a plain miss", e, err)
			}
			if after.Corrupt != before.Corrupt+1 || after.Misses != before.Misses+1 {
				t.Fatalf("Corrupt %d->%d, Misses %d->%d; want each +1", before.Corrupt, after.Corrupt, before.Misses, after.Misses)
			}
		})
	}

	t.Run("corrupt tag version", func(t *testing.T) {
		if err := raw.Set(ctx, l.tagKey("broken"), "seven", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		_, versions, err := l.Get(ctx, Key{99}, []string{"broken"}, []uint64{5})
		if err == nil || len(versions) != 1 {
			t.Fatalf("Get = %v, %v; want an error and the versions as given", versions, err)
		}
	})
}

// Writes never wait: with Valkey stuck, Set returns at once and what the
// queue cannot hold is dropped and counted.
func TestL2SetNeverBlocks(t *testing.T) {
	srv := servicetest.StartRedisServer(t)
	l := newTestL2Timeout(t, srv.Addr, "sheepdog-test:", faultL2Timeout)
	srv.Pause()
	defer srv.Resume()

	e := fetched("/a", time.Now().UnixNano(), time.Minute, nil, nil)
	const n = 2 * writeQueueSize
	start := time.Now()
	for i := range n {
		l.Set(Key{byte(i), byte(i >> 8)}, e)
	}
	// Were Set to wait for the writer, 64 pipelines of 128 would time out
	// one after the other: over three seconds.
	if d := time.Since(start); d > time.Second {
		t.Fatalf("%d Sets took %v with Valkey stuck", n, d)
	}
	s := l.Stats()
	if s.WritesDropped == 0 || s.WritesQueued+s.WritesDropped != n {
		t.Fatalf("queued %d + dropped %d, want %d with some dropped", s.WritesQueued, s.WritesDropped, n)
	}
}

// With Valkey stuck, each call costs at most the timeout until the breaker
// opens, then nothing, and one probe a second.
func TestL2BreakerBoundsAStuckValkey(t *testing.T) {
	servicetest.CheckGoroutines(t)
	srv := servicetest.StartRedisServer(t)
	l := newTestL2Timeout(t, srv.Addr, "sheepdog-test:", faultL2Timeout)
	ctx := context.Background()
	if _, _, err := l.Get(ctx, Key{1}, nil, nil); err != nil {
		t.Fatalf("before the fault: %v", err)
	}

	srv.Pause()
	for i := range breakerFailures {
		start := time.Now()
		_, _, err := l.Get(ctx, Key{1}, nil, nil)
		// Bounded by the timeout (with slack for a loaded machine), not
		// by go-redis's own defaults of seconds.
		if d := time.Since(start); err == nil || d > 10*faultL2Timeout {
			t.Fatalf("call %d on a stuck Valkey: %v after %v; want an error within the timeout", i, err, d)
		}
	}
	const calls = 1000
	start := time.Now()
	for range calls {
		if _, _, err := l.Get(ctx, Key{1}, []string{"t"}, nil); !errors.Is(err, ErrL2Unavailable) {
			t.Fatalf("with the breaker open: %v, want ErrL2Unavailable", err)
		}
	}
	perCall := time.Since(start) / calls
	t.Logf("breaker open: %v per call", perCall)
	if perCall > 20*time.Microsecond {
		t.Fatalf("a call with the breaker open costs %v", perCall)
	}
	s := l.Stats()
	if s.BreakerOpens != 1 || s.Skipped != calls || s.Errors != breakerFailures {
		t.Fatalf("Stats = %+v; want 1 open, %d skipped, %d errors", s, calls, breakerFailures)
	}
	if h := l.Health(); h.State != StateDegraded || h.LastError == "" {
		t.Fatalf("Health = %+v, want degraded with the error", h)
	}

	srv.Resume()
	time.Sleep(breakerCooldown)
	if _, _, err := l.Get(ctx, Key{1}, nil, nil); err != nil {
		t.Fatalf("the probe after the cooldown: %v", err)
	}
	if h := l.Health(); h.State != StateOK {
		t.Fatalf("Health after recovery = %+v, want ok", h)
	}
}

// Health pings an idle L2, so the admin endpoint sees an outage and a
// recovery with no traffic at all.
func TestL2HealthPingsWhenIdle(t *testing.T) {
	srv := servicetest.StartRedisServer(t)
	l := newTestL2(t, srv.Addr, "sheepdog-test:")
	if h := l.Health(); h.State != StateOK || h.LatencyMS <= 0 {
		t.Fatalf("Health = %+v, want ok with a latency", h)
	}
	srv.Stop()
	time.Sleep(healthIdle)
	if h := l.Health(); h.State != StateDegraded {
		t.Fatalf("Health with Valkey down = %+v, want degraded", h)
	}
	srv.Start()
	time.Sleep(healthIdle)
	if h := l.Health(); h.State != StateOK {
		t.Fatalf("Health with Valkey back = %+v, want ok", h)
	}
}

func TestL2ConcurrentLookups(t *testing.T) {
	addr := servicetest.RedisAddr(t)
	l := newTestL2(t, addr, servicetest.KeyPrefix(t))
	const keys, workers, perWorker = 32, 64, 50
	for i := range keys {
		l.Set(Key{byte(i)}, fetched("/a", time.Now().UnixNano(), time.Minute, []string{"products"}, []uint64{0}))
	}
	l.Wait()

	var wg sync.WaitGroup
	errs := make(chan error, workers)
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var versions []uint64
			for i := range perWorker {
				e, v, err := l.Get(context.Background(), Key{byte((w + i) % keys)}, []string{"products"}, versions[:0])
				if err != nil || e == nil || len(v) != 1 {
					errs <- errors.Join(err, errors.New("miss or missing version"))
					return
				}
				versions = v
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	d := time.Since(start)
	t.Logf("%d L2 lookups from %d goroutines in %v (%.0f/s)", workers*perWorker, workers, d, float64(workers*perWorker)/d.Seconds())
	if s := l.Stats(); s.Hits != workers*perWorker || s.Errors != 0 {
		t.Fatalf("Stats = %+v; want %d hits, no errors", s, workers*perWorker)
	}
}

// keyReads counts the reads of one key that reach Valkey.
type keyReads struct {
	key string
	n   atomic.Int64
}

// count counts the reads of h.key among cmds: a GET of it, or a key of
// an MGET.
func (h *keyReads) count(cmds ...redis.Cmder) {
	for _, c := range cmds {
		if name := c.Name(); name != "get" && name != "mget" {
			continue
		}
		for _, arg := range c.Args()[1:] {
			if arg == h.key {
				h.n.Add(1)
			}
		}
	}
}

func (h *keyReads) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *keyReads) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.count(cmd)
		return next(ctx, cmd)
	}
}
func (h *keyReads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.count(cmds...)
		return next(ctx, cmds)
	}
}

// TestL2HerdAsksOnce: a herd missing L1 on one key asks Valkey about it
// about once, not once per client, and every client still gets the
// entry and its tag's version.
func TestL2HerdAsksOnce(t *testing.T) {
	l, raw := sharedL2(t)
	k := Key{42}
	l.Set(k, fetched("/herd", time.Now().UnixNano(), time.Minute, []string{"products"}, []uint64{0}))
	l.Wait()
	if err := raw.Set(context.Background(), l.tagKey("products"), 7, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	gets := &keyReads{key: l.entryKey(k)}
	l.client.AddHook(gets)

	const herd = 500
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, herd)
	for range herd {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			e, v, err := l.Get(context.Background(), k, []string{"products"}, nil)
			switch {
			case err != nil:
				errs <- err
			case e == nil || e.Path != "/herd" || !reflect.DeepEqual(v, []uint64{7}):
				errs <- errors.New("wrong answer")
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Clients that arrive after a round trip returns start another, so a
	// few are allowed; without sharing there would be 500.
	if n := gets.n.Load(); n < 1 || n > 10 {
		t.Fatalf("%d reads of the key reached Valkey for %d lookups; want 1 to 10", n, herd)
	}
	t.Logf("%d lookups, %d reads of the key", herd, gets.n.Load())
}

// TestL2SharesOnlySameTags: lookups of one key with other tags do not
// share a round trip, since they read other versions.
func TestL2SharesOnlySameTags(t *testing.T) {
	l, _ := sharedL2(t)
	keys := []string{l.tagKey("products"), l.tagKey("user:7")}
	for _, c := range []struct {
		tags []string
		want bool
	}{
		{[]string{"products", "user:7"}, true},
		{[]string{"products"}, false},
		{[]string{"products", "user:8"}, false},
		{[]string{"user:7", "products"}, false},
		{[]string{"products", "user:77"}, false},
	} {
		if got := l.sameTags(keys, c.tags); got != c.want {
			t.Errorf("sameTags(%q, %q) = %v, want %v", keys, c.tags, got, c.want)
		}
	}
	if !l.sameTags(nil, nil) {
		t.Error("no tags and no tags are not the same")
	}
}

// TestL2BatchReadsEachLookup sends one batch of lookups with overlapping,
// disjoint and no tags, some of them misses, and checks that each gets
// its own entry and its own tags' versions in order.
func TestL2BatchReadsEachLookup(t *testing.T) {
	l, raw := sharedL2(t)
	ctx := context.Background()
	now := time.Now().UnixNano()
	l.Set(Key{1}, fetched("/one", now, time.Minute, []string{"a", "b"}, []uint64{0, 0}))
	l.Set(Key{3}, fetched("/three", now, time.Minute, nil, nil))
	l.Wait()
	for tag, v := range map[string]int{"a": 5, "c": 9} { // b never bumped
		if err := raw.Set(ctx, l.tagKey(tag), v, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	lookup := func(k Key, path string, tags []string, want []uint64) (*pendingLookup, func(t *testing.T)) {
		p := &pendingLookup{entryKey: l.entryKey(k), done: make(chan struct{})}
		for _, tag := range tags {
			p.tagKeys = append(p.tagKeys, l.tagKey(tag))
		}
		return p, func(t *testing.T) {
			t.Helper()
			if p.err != nil {
				t.Fatalf("%s: %v", path, p.err)
			}
			if p.found != (path != "") {
				t.Fatalf("key %v: found %v", k, p.found)
			}
			if p.found {
				e, err := DecodeEntry([]byte(p.value))
				if err != nil || e.Path != path {
					t.Fatalf("key %v: entry %v, %v; want %s", k, e, err, path)
				}
			}
			if !reflect.DeepEqual(p.versions, want) && len(p.versions)+len(want) > 0 {
				t.Fatalf("key %v: versions %v, want %v", k, p.versions, want)
			}
		}
	}
	p1, check1 := lookup(Key{1}, "/one", []string{"a", "b"}, []uint64{5, 0})
	p2, check2 := lookup(Key{2}, "", []string{"b", "c", "a"}, []uint64{0, 9, 5})
	p3, check3 := lookup(Key{3}, "/three", nil, nil)
	p4, check4 := lookup(Key{4}, "", []string{"c"}, []uint64{9})
	l.sendLookups([]*pendingLookup{p1, p2, p3, p4})
	for _, check := range []func(*testing.T){check1, check2, check3, check4} {
		check(t)
	}
}

// TestL2BadVersionFailsOnlyItsLookups: a tag key holding something that
// is not a version (a foreign write) fails the lookups that read it, not
// their batch-mates, and is not a failure of Valkey for the breaker.
func TestL2BadVersionFailsOnlyItsLookups(t *testing.T) {
	l, raw := sharedL2(t)
	ctx := context.Background()
	l.Set(Key{1}, fetched("/one", time.Now().UnixNano(), time.Minute, []string{"a"}, []uint64{0}))
	l.Wait()
	if err := raw.Set(ctx, l.tagKey("bad"), "not a number", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	good := &pendingLookup{entryKey: l.entryKey(Key{1}), tagKeys: []string{l.tagKey("a")}, done: make(chan struct{})}
	bad := &pendingLookup{entryKey: l.entryKey(Key{2}), tagKeys: []string{l.tagKey("a"), l.tagKey("bad")}, done: make(chan struct{})}
	before := l.Stats().Errors
	l.sendLookups([]*pendingLookup{bad, good})
	if good.err != nil || !good.found || !reflect.DeepEqual(good.versions, []uint64{0}) {
		t.Fatalf("batch-mate: err %v, found %v, versions %v", good.err, good.found, good.versions)
	}
	if bad.err == nil {
		t.Fatal("a lookup reading a bad version did not fail")
	}
	if n := l.Stats().Errors - before; n != 0 {
		t.Fatalf("%d round trips counted failed; Valkey answered", n)
	}
}
