package cachelayer

import "testing"

// assertNoAllocs fails unless f allocates nothing once warmed up. Under
// the race detector sync.Pool drops items on purpose, so it skips there.
func assertNoAllocs(t *testing.T, what string, f func()) {
	t.Helper()
	if raceEnabled {
		t.Skip("allocation counts need a build without -race")
	}
	f()
	if n := testing.AllocsPerRun(200, f); n != 0 {
		t.Fatalf("%s allocates %v times per run, want 0", what, n)
	}
}
