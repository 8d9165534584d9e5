package servicetest

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"
)

// leakWait is how long CheckGoroutines lets goroutines finish exiting:
// a Close that waits for its own goroutines still leaves, for instance,
// the runtime's side of a closed connection a moment to wind down.
const leakWait = 3 * time.Second

// CheckGoroutines fails the test if, when it ends, goroutines run that
// did not run when CheckGoroutines was called. Call it first, so that its
// check runs after every other Cleanup. Not for parallel tests, whose
// goroutines it cannot tell apart.
func CheckGoroutines(t testing.TB) {
	t.Helper()
	before := goroutines()
	t.Cleanup(func() {
		deadline := time.Now().Add(leakWait)
		for {
			leaked := newGoroutines(before)
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d goroutines left running:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// goroutines returns the stacks of every goroutine, by the goroutine's id
// (the "goroutine N" line that starts each stack).
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	stacks := make(map[string]string)
	for _, stack := range bytes.Split(buf, []byte("\n\n")) {
		header, _, _ := bytes.Cut(stack, []byte("\n"))
		id, _, _ := bytes.Cut(header, []byte(" ["))
		stacks[string(id)] = string(stack)
	}
	return stacks
}

// newGoroutines lists the stacks of goroutines not in before. The test's
// own goroutine, where the check runs, was already there.
func newGoroutines(before map[string]string) []string {
	var leaked []string
	for id, stack := range goroutines() {
		if _, ok := before[id]; !ok {
			leaked = append(leaked, stack)
		}
	}
	return leaked
}
