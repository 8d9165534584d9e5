//go:build !race

// The race detector makes sync.Pool drop what is put back, on purpose, so
// allocation counts hold only in a normal build: .ci/run runs these in a
// pass of their own, without -race.

package proxy

import "testing"

// TestL1HitAllocs guards the hot path: answering from L1 allocates nothing.
func TestL1HitAllocs(t *testing.T) {
	p := warmProxy(t)
	ctx := hitCtx()
	allocs := testing.AllocsPerRun(200, func() {
		ctx.Response.Reset()
		p.Handler(ctx)
	})
	if allocs != 0 {
		t.Errorf("an L1 hit allocates %v times; want 0", allocs)
	}
	if got := string(ctx.Response.Header.Peek("X-Cache")); got != "HIT" {
		t.Errorf("X-Cache %q, want HIT", got)
	}
}
