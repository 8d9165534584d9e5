package cachelayer

import (
	"testing"
	"time"
)

// fakeClock is a time source tests move by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestBreaker(t *testing.T) {
	type step struct {
		advance time.Duration
		outcome string // "ok", "fail", "unsent" (released), or "" to only ask allow
		allowed bool   // what allow must say before the outcome
	}
	fail := step{outcome: "fail", allowed: true}
	ok := step{outcome: "ok", allowed: true}
	tests := []struct {
		name      string
		steps     []step
		wantOpens uint64
		closed    bool
	}{
		{"four failures keep it closed", []step{fail, fail, fail, fail, {allowed: true}}, 0, true},
		{"a success resets the count", []step{fail, fail, fail, fail, ok, fail, fail, fail, fail, {allowed: true}}, 0, true},
		{"five failures open it", []step{fail, fail, fail, fail, fail, {allowed: false}}, 1, false},
		{"still open just before the cooldown ends", []step{fail, fail, fail, fail, fail,
			{advance: breakerCooldown - time.Millisecond, allowed: false}}, 1, false},
		{"one probe after the cooldown, the next call waits", []step{fail, fail, fail, fail, fail,
			{advance: breakerCooldown, allowed: true}, {allowed: false}}, 1, false},
		{"a failed probe opens it again", []step{fail, fail, fail, fail, fail,
			{advance: breakerCooldown, outcome: "fail", allowed: true}, {allowed: false},
			{advance: breakerCooldown, allowed: true}}, 2, false},
		{"a good probe closes it", []step{fail, fail, fail, fail, fail,
			{advance: breakerCooldown, outcome: "ok", allowed: true}, {allowed: true}, {allowed: true}}, 1, true},
		{"a probe never sent passes its turn on", []step{fail, fail, fail, fail, fail,
			{advance: breakerCooldown, outcome: "unsent", allowed: true}, {outcome: "ok", allowed: true}, {allowed: true}}, 1, true},
		{"releasing a closed breaker changes nothing", []step{{outcome: "unsent", allowed: true}, fail, fail, fail, fail, {allowed: true}}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{t: time.Unix(1000, 0)}
			b := &breaker{now: clock.now}
			for i, s := range tt.steps {
				clock.advance(s.advance)
				if got := b.allow(); got != s.allowed {
					t.Fatalf("step %d: allow() = %v, want %v", i, got, s.allowed)
				}
				switch s.outcome {
				case "unsent":
					b.release()
				case "ok", "fail":
					b.record(s.outcome == "ok")
				}
			}
			closed, opens := b.status()
			if opens != tt.wantOpens || closed != tt.closed {
				t.Fatalf("status() = closed %v, %d opens; want %v, %d", closed, opens, tt.closed, tt.wantOpens)
			}
		})
	}
}
