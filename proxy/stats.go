package proxy

import (
	"sync/atomic"
)

// routeStats counts a route's answers by status class. Counters are
// atomics so the hot path never takes a lock.
type routeStats struct {
	requests atomic.Uint64
	classes  [5]atomic.Uint64 // 1xx..5xx
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
}

func (s *routeStats) snapshot() RouteStats {
	out := RouteStats{Requests: s.requests.Load(), Statuses: make(map[string]uint64, len(s.classes))}
	for i := range s.classes {
		out.Statuses[string(rune('1'+i))+"xx"] = s.classes[i].Load()
	}
	return out
}
