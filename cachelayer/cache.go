package cachelayer

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/style-shepherd/sheepdog/configs"
)

// defaultL1Bytes is configs' default for cache.l1.max_bytes, applied when
// New is given a zero config.
const defaultL1Bytes = 256 << 20

// Cache is the tiered front the proxy calls: L1, then L2, with entries
// vouched for by tag versions and bans that every replica shares through
// L2's pub/sub channel. It is safe for concurrent use.
type Cache struct {
	l1       *L1
	l2       *L2 // nil without L2
	versions *tagVersions
	bans     bans
	log      *slog.Logger
	id       uint64 // this replica, to skip its own messages

	stats cacheCounters

	// The subscriber goroutine, with L2 only.
	stopSub context.CancelFunc
	subDone chan struct{}
	subMu   sync.Mutex // protects sub
	sub     interface{ Close() error }
	serving atomic.Bool // New has returned: the Cache may hold entries
	// regained is when the subscription last came back (Unix ns). A fetch
	// that started before it may carry data an invalidation missed while
	// the link was down, which the local versions never heard of: its
	// entry goes to L2 (checked there against L2's versions), not to L1.
	regained atomic.Int64

	lagObserver atomic.Pointer[func(time.Duration)] // see OnInvalidationLag
	rounds      rounds                              // invalidations sent together (rounds.go)

	// Invalidations to send again (retry.go), with L2 only.
	retry     *retryTags
	stopRetry context.CancelFunc
	retryDone chan struct{}

	closeOnce sync.Once
}

type cacheCounters struct {
	invalid, refused                   atomic.Uint64
	invalidationsSent, invalidationsIn atomic.Uint64
	bansSent, bansIn, deletesIn        atomic.Uint64
	l1Flushes                          atomic.Uint64
	invalidationsRetried               atomic.Uint64
	invalidationsLost                  atomic.Uint64
}

// Stats counts what the Cache did since it was made.
type Stats struct {
	L1 L1Stats
	L2 L2Stats // zero without L2
	// Invalid counts entries found but voided by a tag version or a ban;
	// each was a miss and was dropped from L1.
	Invalid uint64
	// Refused counts Store calls whose entry was already void.
	Refused uint64
	// InvalidationsSent counts Invalidate calls; InvalidationsReceived,
	// other replicas' invalidations that reached this one.
	InvalidationsSent, InvalidationsReceived uint64
	// BansSent and BansReceived count bans likewise; Bans is how many are
	// in force here.
	BansSent, BansReceived uint64
	Bans                   int
	// DeletesReceived counts other replicas' Delete calls that reached this one.
	DeletesReceived uint64
	// L1Flushes counts whole-L1 clears: one when the invalidation
	// subscription drops, one when it is back.
	L1Flushes uint64
	// InvalidationsRetried counts tags whose invalidation failed and was
	// then sent again; InvalidationsLost, those too many to hold, covered
	// instead by a ban of every entry stored until then (see retryMaxTags).
	InvalidationsRetried, InvalidationsLost uint64
}

// New builds a Cache. Zero fields of cfg take configs' defaults; with no
// L2 addresses, the Cache is L1 only and tag versions are local. A nil
// log is slog.Default(). New does not fail when Valkey is down: it waits
// at most a second for the invalidation subscription, and L2 is used
// whenever it answers.
func New(cfg configs.Cache, log *slog.Logger) (*Cache, error) {
	if log == nil {
		log = slog.Default()
	}
	maxBytes := int64(cfg.L1.MaxBytes)
	if maxBytes == 0 {
		maxBytes = defaultL1Bytes
	}
	l1, err := NewL1(maxBytes)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	c := &Cache{
		l1:       l1,
		versions: newTagVersions(),
		log:      log,
		id:       binary.LittleEndian.Uint64(id[:]),
	}
	if len(cfg.L2.Addrs) == 0 {
		return c, nil
	}
	if c.l2, err = NewL2(cfg.L2); err != nil {
		l1.Close()
		return nil, fmt.Errorf("cache: %w", err)
	}
	c.startSubscriber()
	c.retry, c.retryDone = newRetryTags(), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	c.stopRetry = cancel
	go c.runRetries(ctx)
	c.serving.Store(true)
	return c, nil
}

// Lookup finds k: in L1 first, then in L2, filling L1 with the remaining
// lifetime of an L2 hit. An entry voided by a tag version or a ban is a
// miss (and leaves L1). tags are the request's tags, whose versions L2
// reads in the same round trip as the entry; cur is versions with the
// current version of each tag appended: what to stamp a fill with on a
// miss. Pass a reused versions slice with room for the tags, and an L1
// hit does not allocate.
//
// An entry may be stale: Lookup returns whatever is still kept, and the
// caller decides by its times what it may answer with.
func (c *Cache) Lookup(ctx context.Context, k Key, tags []string, versions []uint64) (e *Entry, tier Tier, cur []uint64) {
	return c.lookup(ctx, k, tags, versions, nil)
}

// LookupTrace is where a traced Lookup spent its time: when its L1 probe
// ended and, when it asked L2, when that ended and what went wrong.
type LookupTrace struct {
	L1End   time.Time
	AskedL2 bool
	L2End   time.Time
	L2Err   error
}

// LookupTraced is Lookup, recording its tiers' times in tr.
func (c *Cache) LookupTraced(ctx context.Context, k Key, tags []string, versions []uint64, tr *LookupTrace) (e *Entry, tier Tier, cur []uint64) {
	return c.lookup(ctx, k, tags, versions, tr)
}

// lookup is Lookup; tr, when not nil, records its tiers' times.
func (c *Cache) lookup(ctx context.Context, k Key, tags []string, versions []uint64, tr *LookupTrace) (e *Entry, tier Tier, cur []uint64) {
	now := time.Now().UnixNano()
	e, ok := c.l1.Get(k)
	if tr != nil {
		tr.L1End = time.Now()
	}
	if ok {
		if c.usable(e, now) {
			return e, TierL1, c.versions.appendTo(versions, tags)
		}
		c.stats.invalid.Add(1)
		c.l1.Del(k)
	}
	if c.l2 == nil {
		return nil, TierNone, c.versions.appendTo(versions, tags)
	}
	e, shared, err := c.l2.Get(ctx, k, tags, versions)
	if tr != nil {
		tr.AskedL2, tr.L2End, tr.L2Err = true, time.Now(), err
	}
	if err != nil {
		// Counted by L2; the caller goes upstream, stamping local versions.
		return nil, TierNone, c.versions.appendTo(versions, tags)
	}
	c.versions.raise(tags, shared[len(versions):], now)
	cur = c.versions.appendTo(versions, tags)
	if e == nil {
		return nil, TierNone, cur
	}
	if c.regained.Load() > now {
		// The subscription came back while this lookup was out: Valkey
		// may have read the entry and its versions before an
		// invalidation this replica never heard. A miss, as Store
		// refuses a fetch begun before the return.
		return nil, TierNone, cur
	}
	if !c.usable(e, now) {
		c.stats.invalid.Add(1)
		return nil, TierNone, cur
	}
	c.l1.Set(k, e)
	return e, TierL2, cur
}

// usable reports whether e may be handed out at now: still kept, and
// voided by neither a tag version nor a ban.
func (c *Cache) usable(e *Entry, now int64) bool {
	return now < e.expiresAt() && c.versions.valid(e) && c.bans.allows(e)
}

// VersionsFor appends the local version of each tag to dst, for stamping
// an entry whose fetch no Lookup preceded.
func (c *Cache) VersionsFor(tags []string, dst []uint64) []uint64 {
	return c.versions.appendTo(dst, tags)
}

// Store puts e in L1 and queues it for L2. An entry already voided (a tag
// moved on while it was fetched, or a ban landed) is not stored.
//
// ristretto admits new keys asynchronously; Store waits for that, so the
// next Lookup of k finds e. The caller is the fetch that ends a coalesced
// miss: without the wait, a request arriving between the end of that
// flight and the admission would miss again and fetch the key a second
// time.
func (c *Cache) Store(k Key, e *Entry) {
	if !c.usable(e, time.Now().UnixNano()) {
		c.stats.refused.Add(1)
		return
	}
	if e.Stored >= c.regained.Load() && c.l1.Set(k, e) {
		c.l1.Wait()
	}
	if c.l2 != nil {
		c.l2.Set(k, e)
	}
}

// Delete removes k from both tiers and from the other replicas' L1. A
// lookup of k already on its way to L2 may still bring the old entry back
// into L1; Invalidate, which versions tags, has no such window, and is
// what the proxy uses.
func (c *Cache) Delete(ctx context.Context, k Key) error {
	c.l1.Del(k)
	if c.l2 == nil {
		return nil
	}
	if err := c.l2.Del(ctx, k); err != nil {
		return fmt.Errorf("cache delete: %w", err)
	}
	if err := c.l2.publish(ctx, appendDeleteMessage(nil, c.id, []Key{k})); err != nil {
		return fmt.Errorf("cache delete: %w", err)
	}
	return nil
}

// Invalidate voids every entry carrying one of tags, here and on every
// replica: it bumps the tags' versions in L2 (by one, and at least to the
// current time in milliseconds, so versions keep growing even if Valkey
// loses its keys), raises the local ones to the results, and publishes
// them, together with the calls that arrive meanwhile (rounds.go). It
// returns after the local raise and the publish. When L2 cannot be reached the local versions are bumped
// anyway, so this replica stops answering with the old entries, and the
// error says that the others may not know yet: the tags are sent again in
// the background until Valkey takes them (retry.go).
func (c *Cache) Invalidate(ctx context.Context, tags ...string) error {
	if len(tags) == 0 {
		return nil
	}
	now := time.Now().UnixNano()
	c.stats.invalidationsSent.Add(1)
	if c.l2 == nil {
		c.versions.bump(tags, now, nil)
		return nil
	}
	if err := c.sendTogether(tags); err != nil {
		c.versions.bump(tags, now, nil)
		if dropped := c.retry.add(tags, now); dropped > 0 {
			c.stats.invalidationsLost.Add(uint64(dropped))
		}
		return fmt.Errorf("invalidate: %w", err)
	}
	return nil
}

// sendInvalidation bumps tags in L2, raises them here and publishes them.
func (c *Cache) sendInvalidation(ctx context.Context, tags []string, now int64) error {
	versions, err := c.l2.bump(ctx, tags, now, make([]uint64, 0, len(tags)))
	if err != nil {
		return err
	}
	c.versions.raise(tags, versions, now)
	return c.l2.publish(ctx, appendVersionsMessage(nil, c.id, time.Now().UnixNano(), tags, versions))
}

// Ban voids every entry whose request path starts with prefix and that
// was stored before now, here, in L2 (where replicas that start later
// find it) and on every replica. The ban stands for MaxKeep and an hour.
func (c *Cache) Ban(ctx context.Context, prefix string) error {
	return c.banAt(ctx, prefix, time.Now().UnixNano())
}

// banAt is Ban of the entries stored before at (Unix ns).
func (c *Cache) banAt(ctx context.Context, prefix string, at int64) error {
	now := time.Now().UnixNano()
	b := ban{prefix: prefix, at: banTime(at)}
	c.bans.add(now, b)
	c.stats.bansSent.Add(1)
	if c.l2 == nil {
		return nil
	}
	if err := c.l2.addBan(ctx, b, now, appendBanMessage(nil, c.id, b)); err != nil {
		return fmt.Errorf("ban: %w", err)
	}
	return nil
}

// Stats returns the Cache's counters.
func (c *Cache) Stats() Stats {
	s := Stats{
		L1:                    c.l1.Stats(),
		Invalid:               c.stats.invalid.Load(),
		Refused:               c.stats.refused.Load(),
		InvalidationsSent:     c.stats.invalidationsSent.Load(),
		InvalidationsReceived: c.stats.invalidationsIn.Load(),
		BansSent:              c.stats.bansSent.Load(),
		BansReceived:          c.stats.bansIn.Load(),
		Bans:                  c.bans.count(),
		DeletesReceived:       c.stats.deletesIn.Load(),
		L1Flushes:             c.stats.l1Flushes.Load(),
		InvalidationsRetried:  c.stats.invalidationsRetried.Load(),
		InvalidationsLost:     c.stats.invalidationsLost.Load(),
	}
	if c.l2 != nil {
		s.L2 = c.l2.Stats()
	}
	return s
}

// L2Pool returns the go-redis pool figures of the L2 connection; false
// without L2.
func (c *Cache) L2Pool() (*redis.PoolStats, bool) {
	if c.l2 == nil {
		return nil, false
	}
	return c.l2.client.PoolStats(), true
}

// OnInvalidationLag sets f to be told, for each invalidation another
// replica sends, how long it took from its publish to its arrival here
// (the replicas' clocks are assumed in step). Set it before traffic; f
// runs on the subscriber's goroutine.
func (c *Cache) OnInvalidationLag(f func(time.Duration)) { c.lagObserver.Store(&f) }

// L2Health returns L2's health, and false when no L2 is configured.
func (c *Cache) L2Health() (Health, bool) {
	if c.l2 == nil {
		return Health{}, false
	}
	return c.l2.Health(), true
}

// WaitForTest blocks until L1 has applied every Set made so far and L2
// has sent every queued write: both happen asynchronously, and a test
// that reads right after a Store must wait for them. The proxy never
// needs to.
func (c *Cache) WaitForTest() {
	c.l1.Wait()
	if c.l2 != nil {
		c.l2.Wait()
	}
}

// Close stops the subscriber, sends what L2 has queued (bounded by its
// timeout) and releases both tiers. The Cache must not be used afterwards,
// except for Stats and L2Health.
func (c *Cache) Close() {
	c.closeOnce.Do(func() {
		if c.l2 != nil {
			c.stopRetry()
			<-c.retryDone
			c.stopSubscriber()
			c.l2.Close()
		}
		c.l1.Close()
	})
}
