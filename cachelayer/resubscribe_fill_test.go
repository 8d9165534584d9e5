package cachelayer

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/style-shepherd/sheepdog/configs"
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

	deafWhileInvalidated(t, raw, prefix, a, b, func() { raw.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub") }, tags...)

	// The fetch begun before the write ends now, with the old answer.
	old := fetched("/api/products", fetchStart, time.Minute, tags, cur)
	a.Store(Key{7}, old)
	a.WaitForTest()
	if e, tier, _ := a.Lookup(ctx, Key{7}, tags, nil); e != nil {
		t.Fatalf("a serves the pre-invalidation entry from %v (stamped %v)", tier, e.TagVersions)
	}
}

// deafWhileInvalidated drops a's subscription (drop) and keeps it from
// settling again (its bans cannot be read) while b invalidates tags, then
// lets it resubscribe: a misses the invalidation, and has flushed L1 on
// the loss and on the return.
func deafWhileInvalidated(t *testing.T, raw *redis.Client, prefix string, a, b *Cache, drop func(), tags ...string) {
	t.Helper()
	ctx := context.Background()
	base := a.Stats().L1Flushes
	raw.Set(ctx, prefix+"bans", "x", 0)
	drop()
	eventually(t, "a noticed the loss", func() bool { return a.Stats().L1Flushes > base })
	// The write lands and b invalidates; a does not hear it.
	if err := b.Invalidate(ctx, tags...); err != nil {
		t.Fatal(err)
	}
	// a is back: subscribed, bans read, L1 flushed.
	raw.Del(ctx, prefix+"bans")
	n := a.Stats().InvalidationsReceived
	eventually(t, "a resubscribed", func() bool {
		_ = b.Invalidate(ctx, "probe")
		return a.Stats().InvalidationsReceived > n
	})
}

// holdProxy forwards to Valkey; once armed, the reply to the next MGET is
// kept back until released. It can also close the pub/sub connections.
type holdProxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	armed   bool
	held    chan struct{} // closed once the held reply has arrived from Valkey
	release chan struct{}
	pubsub  []net.Conn
}

func newHoldProxy(t *testing.T, target string) *holdProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdProxy{ln: ln, target: target, held: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			hold := make(chan struct{}, 1)
			go func() { // client -> server
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						chunk := bytes.ToLower(buf[:n])
						p.mu.Lock()
						if bytes.Contains(chunk, []byte("subscribe")) {
							p.pubsub = append(p.pubsub, c, s)
						}
						if p.armed && bytes.Contains(chunk, []byte("mget")) {
							p.armed = false
							hold <- struct{}{}
						}
						p.mu.Unlock()
						s.Write(buf[:n])
					}
					if err != nil {
						s.Close()
						return
					}
				}
			}()
			go func() { // server -> client
				buf := make([]byte, 64<<10)
				for {
					n, err := s.Read(buf)
					if n > 0 {
						select {
						case <-hold:
							close(p.held)
							<-p.release
						default:
						}
						c.Write(buf[:n])
					}
					if err != nil {
						c.Close()
						return
					}
				}
			}()
		}
	}()
	return p
}

func (p *holdProxy) arm() { p.mu.Lock(); p.armed = true; p.mu.Unlock() }

func (p *holdProxy) killPubSub() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.pubsub {
		c.Close()
	}
	p.pubsub = nil
}

// TestL2FillAcrossResubscribe: an L2 lookup that Valkey answered before
// another replica's invalidation, while this replica's subscription was
// down, comes back after the subscription is (and after its L1 flush).
// It must not fill L1, as Store refuses such fills (regained): it used to,
// and the entry then answered from L1 as fresh until its TTL.
func TestL2FillAcrossResubscribe(t *testing.T) {
	srv := servicetest.StartRedisServer(t)
	const prefix = "sheepdog-test-l2fill:"
	link := newHoldProxy(t, srv.Addr)
	a, err := New(configs.Cache{
		L1: configs.L1{MaxBytes: 1 << 20},
		L2: configs.L2{Addrs: []string{link.ln.Addr().String()}, KeyPrefix: prefix, Timeout: 5 * time.Second},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	b := newReplica(t, srv.Addr, prefix, 1<<20)
	raw := rawClient(t, srv.Addr)
	ctx := context.Background()
	tags := []string{"products"}
	eventually(t, "a subscribed", func() bool {
		_ = b.Invalidate(ctx, "probe")
		return a.Stats().InvalidationsReceived > 0
	})

	// b has the answer in L2.
	old := fetched("/api/products", time.Now().UnixNano(), 5*time.Minute, tags, b.VersionsFor(tags, nil))
	b.Store(Key{7}, old)
	b.WaitForTest()

	// a looks it up; Valkey answers (the old entry, version v0), the reply
	// is slow to come back.
	link.arm()
	got := make(chan Tier, 1)
	go func() { _, tier, _ := a.Lookup(ctx, Key{7}, tags, nil); got <- tier }()
	<-link.held

	deafWhileInvalidated(t, raw, prefix, a, b, link.killPubSub, tags...)
	// The slow reply arrives.
	close(link.release)
	t.Logf("the straddling lookup: %v", <-got)
	a.WaitForTest()
	if e, tier, _ := a.Lookup(ctx, Key{7}, tags, nil); e != nil {
		t.Fatalf("after the resubscribe, a serves the pre-invalidation entry from %v (stamped %v, L2 version now higher), fresh for %v more",
			tier, e.TagVersions, time.Duration(e.FreshUntil-time.Now().UnixNano()).Round(time.Second))
	}
}
