package cachelayer

import "testing"

// assertNoAllocs fails unless f allocates nothing once warmed up.
//
// Under the race detector sync.Pool drops a quarter of what is put back,
// on purpose; AllocsPerRun's average rounds that down for a pool holding
// one small object (L1's key scratch), so those checks hold in both
// builds. Checks of pools whose refill costs several allocations live in
// allocs_norace_test.go.
func assertNoAllocs(t *testing.T, what string, f func()) {
	t.Helper()
	f()
	if n := testing.AllocsPerRun(200, f); n != 0 {
		t.Fatalf("%s allocates %v times per run, want 0", what, n)
	}
}
