package cachelayer

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestBreakerProbeJoinsCountedLookup: the half-open probe joins a lookup
// whose outcome was counted while the breaker was still open (as
// sendLookups could before it took the batch out of asking first). The
// probe counts its answer itself, so the breaker does not stay half-open,
// refusing every later call, Health's PING included, for good.
func TestBreakerProbeJoinsCountedLookup(t *testing.T) {
	l := newTestL2Timeout(t, "127.0.0.1:1", "sheepdog-breaker-probe:", 50*time.Millisecond)
	clock := &fakeClock{t: time.Now()}
	l.breaker.now = clock.now // before any call

	// A lookup queued before the outage, still on its way.
	p := &pendingLookup{entryKey: l.entryKey(Key{1}), done: make(chan struct{})}
	l.askingMu.Lock()
	l.asking[p.entryKey] = p
	l.askingMu.Unlock()

	for range breakerFailures { // the outage opens the breaker
		l.breaker.allow()
		l.breaker.record(false)
	}
	clock.advance(breakerCooldown)

	// sendLookups, first half: p's round trip ends (while the breaker is
	// still open, so the cooldown stands) and is observed.
	p.err = context.DeadlineExceeded
	l.observe(time.Now(), p.err)

	// The probe arrives and joins p.
	got := make(chan error, 1)
	go func() { _, _, err := l.Get(context.Background(), Key{1}, nil, nil); got <- err }()
	time.Sleep(50 * time.Millisecond)

	// sendLookups, second half: forget p, wake its callers.
	l.askingMu.Lock()
	delete(l.asking, p.entryKey)
	l.askingMu.Unlock()
	close(p.done)
	if err := <-got; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("probe: %v", err)
	}

	clock.advance(time.Hour) // Valkey has long been back
	if h := l.Health(); h.State != StateDegraded {
		t.Fatalf("health %+v", h)
	}
	if _, _, err := l.Get(context.Background(), Key{2}, nil, nil); errors.Is(err, ErrL2Unavailable) {
		t.Fatalf("an hour later the breaker still refuses every call: %v (state %v)", err, l.breaker.state)
	}
}
