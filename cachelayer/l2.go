package cachelayer

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"
	"github.com/style-shepherd/sheepdog/configs"
)

// ErrL2Unavailable is returned at once, without a network call, while
// the L2 breaker is open.
var ErrL2Unavailable = errors.New("l2 unavailable: breaker open")

// The defaults NewL2 applies to fields the config leaves empty; Load
// applies the same ones.
const (
	defaultL2Timeout = 50 * time.Millisecond
	defaultKeyPrefix = "sheepdog:"
)

// L2 is the shared tier: entries and tag versions in Valkey, reached
// through go-redis (one address: a plain client; several: a Valkey
// Cluster). Every call is bounded by the configured timeout and guarded
// by a breaker; writes of entries go through an owned background writer
// and never hold up an answer. Reconnecting is go-redis's own business.
//
// Keys: prefix+"e:"+hex(key) for entries, prefix+"t:"+tag for tag
// versions, prefix+"bans" for the bans, and prefix+"invalidate" is the
// pub/sub channel.
type L2 struct {
	client  redis.UniversalClient
	cluster bool // MGET would cross slots: lookups read one GET a key
	timeout time.Duration
	prefix  string
	channel string
	bansKey string

	breaker breaker
	stats   l2Counters
	health  l2Health

	queue   chan l2Write // entries for the writer; never closed
	lookups chan *pendingLookup
	// asking holds the lookups queued or on their way, by entry key, so
	// that a herd on one key makes one round trip (see queueLookup).
	askingMu sync.Mutex
	asking   map[string]*pendingLookup
	stop     chan struct{} // closed by Close
	// lookupsDone counts the lookup workers still running.
	lookupsDone sync.WaitGroup
	done        chan struct{} // closed when the writer has returned
	closeOnce   sync.Once
}

// l2Counters are the L2's counters; L2Stats is their snapshot.
type l2Counters struct {
	hits, misses, corrupt, errors, skipped atomic.Uint64
	queued, dropped, writeFailed, written  atomic.Uint64
}

// L2Stats counts what L2 did since it was made.
type L2Stats struct {
	Hits, Misses uint64
	// Corrupt counts values that did not decode: each is also a miss.
	Corrupt uint64
	// Errors counts round trips that failed (lookups share one);
	// Skipped, calls refused without touching the network: the breaker
	// was open, or more lookups waited than the queue holds.
	Errors, Skipped uint64
	// WritesQueued counts entries handed to the writer; WritesDropped,
	// those refused because its queue was full or L2 was closing;
	// WritesFailed, those whose pipeline failed or met an open breaker;
	// Written, those Valkey took.
	WritesQueued, WritesDropped, WritesFailed, Written uint64
	// BreakerOpens counts the times the breaker opened.
	BreakerOpens uint64
}

// NewL2 connects lazily: it fails only on a config it cannot use, never
// because Valkey is down, since Sheepdog must start and serve without it.
func NewL2(cfg configs.L2) (*L2, error) {
	if len(cfg.Addrs) == 0 {
		return nil, errors.New("l2: no addresses")
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("l2: timeout %v, want above 0", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultL2Timeout
	}
	if cfg.KeyPrefix == "" {
		// Never write keys outside a prefix: the Valkey is shared.
		cfg.KeyPrefix = defaultKeyPrefix
	}
	client := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:    cfg.Addrs,
		Password: cfg.Password,
		// Every call also carries a context deadline of cfg.Timeout; these
		// bound the socket operations go-redis does on its own.
		ReadTimeout:           cfg.Timeout,
		WriteTimeout:          cfg.Timeout,
		ContextTimeoutEnabled: true,
		// A failed dial is not retried within a call: the breaker decides
		// when to try again.
		DialerRetries:   1,
		DisableIdentity: true,
		// RESP2: under RESP3 go-redis peeks before every reply for push
		// notifications, which L2 never asks for (pub/sub works on both).
		Protocol: 2,
	})
	_, cluster := client.(*redis.ClusterClient)
	l := &L2{
		client:  client,
		cluster: cluster,
		timeout: cfg.Timeout,
		prefix:  cfg.KeyPrefix,
		channel: cfg.KeyPrefix + "invalidate",
		bansKey: cfg.KeyPrefix + "bans",
		breaker: breaker{now: time.Now},
		queue:   make(chan l2Write, writeQueueSize),
		lookups: make(chan *pendingLookup, lookupQueueSize),
		asking:  make(map[string]*pendingLookup),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go l.runWriter()
	l.lookupsDone.Add(lookupWorkers)
	for range lookupWorkers {
		go l.runLookups()
	}
	return l, nil
}

func (l *L2) entryKey(k Key) string {
	var b [2 * len(Key{})]byte
	return l.prefix + "e:" + string(hex.AppendEncode(b[:0], k[:]))
}

func (l *L2) tagKey(tag string) string { return l.prefix + tagInfix + tag }

// tagInfix separates the prefix from the tag in a tag's key.
const tagInfix = "t:"

// do runs one guarded call: refused at once while the breaker is open,
// otherwise bounded by the timeout and recorded for the breaker and
// Health. The caller's cancellation does not reach the call, so a client
// hanging up never counts as an L2 failure; the timeout bounds it.
func (l *L2) do(ctx context.Context, f func(ctx context.Context) error) error {
	if !l.breaker.allow() {
		l.stats.skipped.Add(1)
		return ErrL2Unavailable
	}
	return l.call(ctx, f)
}

// call is do without asking the breaker, for a caller that has just seen
// Valkey answer (the subscriber, resubscribed). Its outcome still counts.
func (l *L2) call(ctx context.Context, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.timeout)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	l.observe(start, err)
	return err
}

// observe records a call's outcome. redis.Nil is an answer, not a failure.
func (l *L2) observe(start time.Time, err error) {
	ok := err == nil || errors.Is(err, redis.Nil)
	l.breaker.record(ok)
	l.health.record(start, time.Since(start), err, ok)
	if !ok {
		l.stats.errors.Add(1)
	}
}

// Get looks k up and reads the versions of tags in one round trip. The
// versions are appended to versions, one per tag, 0 for a tag never
// bumped; on an error, versions comes back as given. The entry is nil on
// a miss, including a value that does not decode (counted as Corrupt).
func (l *L2) Get(ctx context.Context, k Key, tags []string, versions []uint64) (*Entry, []uint64, error) {
	allowed, probe := l.breaker.allowProbe()
	if !allowed {
		l.stats.skipped.Add(1)
		return nil, versions, fmt.Errorf("l2 get: %w", ErrL2Unavailable)
	}
	p, err := l.queueLookup(k, tags)
	if err != nil {
		if errors.Is(err, errLookupQueueFull) {
			l.stats.skipped.Add(1)
			l.breaker.release() // never sent: no outcome to record
		} else if probe {
			l.breaker.record(false)
		} // else a timed-out wait is counted by its round trip
		return nil, versions, fmt.Errorf("l2 get: %w", err)
	}
	if probe {
		// The probe may have joined a lookup whose outcome was counted
		// before the cooldown ended, which left half-open untouched: it
		// counts its answer itself. Counting one twice changes nothing.
		l.breaker.record(p.err == nil)
	}
	if p.err != nil { // counted once per round trip, by sendLookups
		return nil, versions, fmt.Errorf("l2 get: %w", p.err)
	}
	versions = append(versions, p.versions...)
	if !p.found {
		l.stats.misses.Add(1)
		return nil, versions, nil
	}
	// The entry views the value's bytes in place: a string's bytes never
	// change, and no one writes to an entry's. That saves copying every
	// value; callers that joined each decode their own Entry of them.
	e, err := decodeShared(unsafe.Slice(unsafe.StringData(p.value), len(p.value)))
	if err != nil {
		l.stats.corrupt.Add(1)
		l.stats.misses.Add(1)
		return nil, versions, nil
	}
	l.stats.hits.Add(1)
	return e, versions, nil
}

// parseVersion reads one tag version as MGET or GET returns it: nil for a
// tag never bumped, else the decimal string INCR left.
func parseVersion(v any) (uint64, error) {
	switch v := v.(type) {
	case nil:
		return 0, nil
	case string:
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("tag version %q: %w", v, err)
		}
		return n, nil
	default:
		return 0, fmt.Errorf("tag version of type %T", v)
	}
}

// Del removes the entries under keys.
func (l *L2) Del(ctx context.Context, keys ...Key) error {
	if len(keys) == 0 {
		return nil
	}
	err := l.do(ctx, func(ctx context.Context) error {
		// One DEL per key: on a cluster the keys live in different slots.
		pipe := l.client.Pipeline()
		for _, k := range keys {
			pipe.Del(ctx, l.entryKey(k))
		}
		_, err := pipe.Exec(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("l2 del: %w", err)
	}
	return nil
}

// Stats returns L2's counters.
func (l *L2) Stats() L2Stats {
	_, opens := l.breaker.status()
	s := &l.stats
	return L2Stats{
		Hits:          s.hits.Load(),
		Misses:        s.misses.Load(),
		Corrupt:       s.corrupt.Load(),
		Errors:        s.errors.Load(),
		Skipped:       s.skipped.Load(),
		WritesQueued:  s.queued.Load(),
		WritesDropped: s.dropped.Load(),
		WritesFailed:  s.writeFailed.Load(),
		Written:       s.written.Load(),
		BreakerOpens:  opens,
	}
}

// Close stops the writer after one last attempt at what it holds, and
// closes the connections. L2 must not be used afterwards, except for
// Stats and Health.
func (l *L2) Close() {
	l.closeOnce.Do(func() {
		close(l.stop)
		<-l.done
		l.lookupsDone.Wait()
		l.health.closed.Store(true)
		_ = l.client.Close()
	})
}
