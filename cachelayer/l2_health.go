package cachelayer

import (
	"context"
	"sync/atomic"
	"time"
)

// The states Health reports, as the admin /health endpoint shows them.
const (
	StateOK       = "ok"
	StateDegraded = "degraded"
	StateDown     = "down"
)

// Health is L2's state for the admin /health endpoint.
type Health struct {
	// State is "ok", "degraded" (the breaker is open or the last call
	// failed), or "down" (L2 is closed).
	State string `json:"state"`
	// LatencyMS is the duration of the last call, or of the PING Health
	// sends when L2 has been idle.
	LatencyMS float64 `json:"latency_ms"`
	// LastError is the last failure while not ok.
	LastError string `json:"error"`
}

// healthIdle is how long L2 may go without a call before Health checks
// it with a PING of its own.
const healthIdle = time.Second

// l2Health remembers the last call's outcome; atomics, since every call
// records into it.
type l2Health struct {
	lastCall    atomic.Int64 // unix nanos of the last call's start
	lastLatency atomic.Int64 // nanos
	lastOK      atomic.Bool
	lastErr     atomic.Pointer[string] // the last failure's message
	closed      atomic.Bool
}

func (h *l2Health) record(start time.Time, latency time.Duration, err error, ok bool) {
	h.lastCall.Store(start.UnixNano())
	h.lastLatency.Store(int64(latency))
	h.lastOK.Store(ok)
	if !ok {
		msg := err.Error()
		h.lastErr.Store(&msg)
	}
}

// Health reports L2's state. When no call has been made for a second it
// sends a PING first (bounded by the timeout and refused by an open
// breaker), so an idle replica still notices an outage and, as the
// breaker's probe, a recovery.
func (l *L2) Health() Health {
	h := &l.health
	if h.closed.Load() {
		return Health{State: StateDown, LastError: "l2 closed"}
	}
	if time.Since(time.Unix(0, h.lastCall.Load())) > healthIdle {
		_ = l.do(context.Background(), func(ctx context.Context) error {
			return l.client.Ping(ctx).Err()
		})
	}
	closed, _ := l.breaker.status()
	out := Health{
		State:     StateOK,
		LatencyMS: float64(h.lastLatency.Load()) / float64(time.Millisecond),
	}
	if !closed || !h.lastOK.Load() {
		out.State = StateDegraded
		if msg := h.lastErr.Load(); msg != nil {
			out.LastError = *msg
		}
	}
	return out
}
