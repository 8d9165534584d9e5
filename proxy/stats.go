package proxy

import (
	"sync/atomic"

	"github.com/style-shepherd/sheepdog/cachelayer"
	"github.com/style-shepherd/sheepdog/upstream"
)

// routeStats counts a route's answers by status class. Counters are
// atomics so the hot path never takes a lock.
type routeStats struct {
	requests atomic.Uint64
	classes  [5]atomic.Uint64 // 1xx..5xx

	// Cache routes only.
	hitsL1, hitsL2 atomic.Uint64
	misses         atomic.Uint64 // lookups that found nothing fresh
	missAnswers    atomic.Uint64 // of those, answered by their own fetch (or its failure)
	stale          atomic.Uint64 // answered from a stale copy
	coalesced      atomic.Uint64 // answered by another request's fetch
	bypassed       atomic.Uint64 // sent upstream uncached (credentials, not shareable, too large)
	refreshes      atomic.Uint64 // background refreshes done
}

func (s *routeStats) hit(t cachelayer.Tier) {
	if t == cachelayer.TierL2 {
		s.hitsL2.Add(1)
		return
	}
	s.hitsL1.Add(1)
}

func (s *routeStats) record(status int) {
	s.requests.Add(1)
	if c := status/100 - 1; c >= 0 && c < len(s.classes) {
		s.classes[c].Add(1)
	}
}

// RouteStats is one route's counters as /stats reports them.
type RouteStats struct {
	Requests uint64            `json:"requests"`
	Statuses map[string]uint64 `json:"statuses"`
	Cache    *CacheStats       `json:"cache,omitempty"`
	Batch    *BatchStats       `json:"batch,omitempty"`
}

// BatchStats is a batch route's Batcher counters, and for a postgres sink
// its pool in the app's own shape.
type BatchStats struct {
	Batches   int64   `json:"batches"`    // batches formed and flushed
	Items     int64   `json:"items"`      // items in them
	MeanBatch float64 `json:"mean_batch"` // items per batch: how much batching saved
	Refused   int64   `json:"refused"`    // callers turned away by a full queue (503)
	Failures  int64   `json:"failures"`   // items queued whose caller got an error
	Queued    int     `json:"queued"`     // items waiting now
	// Pool is the postgres sink's connection pool.
	Pool *upstream.PoolStats `json:"pool,omitempty"`
}

func (b *batchRoute) stats() *BatchStats {
	s := b.batcher().Stats()
	out := &BatchStats{
		Batches: s.Batches, Items: s.Items, MeanBatch: s.MeanBatch,
		Refused: s.Refused, Failures: s.Failures, Queued: s.Queued,
	}
	if b.pgSink != nil {
		pool := b.pgSink.PoolStats()
		out.Pool = &pool
	}
	return out
}

// CacheStats is a cache route's counters by outcome and tier.
type CacheStats struct {
	HitsL1    uint64 `json:"hits_l1"`
	HitsL2    uint64 `json:"hits_l2"`
	Misses    uint64 `json:"misses"`
	Stale     uint64 `json:"stale"`
	Coalesced uint64 `json:"coalesced"`
	Bypassed  uint64 `json:"bypassed"`
	Refreshes uint64 `json:"refreshes"`
}

func (s *routeStats) snapshot() RouteStats {
	out := RouteStats{Requests: s.requests.Load(), Statuses: make(map[string]uint64, len(s.classes))}
	for i := range s.classes {
		out.Statuses[string(rune('1'+i))+"xx"] = s.classes[i].Load()
	}
	return out
}

func (s *routeStats) cacheSnapshot() *CacheStats {
	return &CacheStats{
		HitsL1: s.hitsL1.Load(), HitsL2: s.hitsL2.Load(), Misses: s.misses.Load(), Stale: s.stale.Load(),
		Coalesced: s.coalesced.Load(), Bypassed: s.bypassed.Load(), Refreshes: s.refreshes.Load(),
	}
}
