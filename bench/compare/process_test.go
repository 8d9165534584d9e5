package compare

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// shell starts script under sh in its own process group and stops it when
// the test ends.
func shell(t *testing.T, script string) *Process {
	t.Helper()
	p, err := Start(Command{Name: "sh", Path: "/bin/sh", Args: []string{"-c", script},
		Log: filepath.Join(t.TempDir(), "sh.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(time.Second) })
	return p
}

// waitForLines waits until the log holds at least n words, one a line.
func waitForLines(t *testing.T, p *Process, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(p.log)
		lines := strings.Fields(string(b))
		if len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("log has %q, want %d lines", b, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStopLeavesNothingOfTheGroup(t *testing.T) {
	tests := []struct {
		name   string
		script string // prints the pid of every process it starts, then waits
		within time.Duration
	}{
		{"leader and worker stop on SIGTERM", `sleep 30 & echo $!; echo $$; wait`, time.Second},
		{"worker ignores SIGTERM, leader exits", `sh -c 'trap "" TERM; echo $$; while :; do sleep 0.05; done' & wait`, 2 * time.Second},
		{"leader ignores SIGTERM", `trap "" TERM; sleep 30 & echo $!; echo $$; while :; do sleep 0.05; done`, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := shell(t, tt.script)
			var pids []int
			for _, f := range waitForLines(t, p, 1) {
				pid, err := strconv.Atoi(f)
				if err != nil {
					t.Fatalf("log line %q", f)
				}
				pids = append(pids, pid)
			}
			if members := groupMembers(p.PID()); len(members) < 2 {
				t.Fatalf("group %d has %v, want the shell and what it started", p.PID(), members)
			}
			start := time.Now()
			p.Stop(500 * time.Millisecond)
			if took := time.Since(start); took > tt.within {
				t.Errorf("Stop took %v, want under %v", took, tt.within)
			}
			for _, pid := range append(pids, p.PID()) {
				if Alive(pid) {
					t.Errorf("process %d is still alive", pid)
				}
			}
			if members := groupMembers(p.PID()); len(members) > 0 {
				t.Errorf("group %d still has %v", p.PID(), members)
			}
		})
	}
}

func TestWaitReady(t *testing.T) {
	tests := []struct {
		name    string
		script  string
		ready   func(context.Context) error
		wantErr string // "" for success
	}{
		{"ready at once", "sleep 30", func(context.Context) error { return nil }, ""},
		{"exits first, with its log", "echo boom >&2; exit 3", func(context.Context) error { return os.ErrNotExist }, "boom"},
		{"never ready", "sleep 30", func(context.Context) error { return os.ErrNotExist }, "not ready after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := shell(t, tt.script)
			err := p.WaitReady(context.Background(), 300*time.Millisecond, tt.ready)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("WaitReady: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("WaitReady: %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}

func TestDescendantsFollowsGrandchildren(t *testing.T) {
	p := shell(t, `sh -c 'sleep 30 & echo $!; wait' & wait`)
	grandchild, err := strconv.Atoi(waitForLines(t, p, 1)[0])
	if err != nil {
		t.Fatal(err)
	}
	got := Descendants(os.Getpid())
	found := map[int]bool{}
	for _, pid := range got {
		found[pid] = true
	}
	if !found[p.PID()] || !found[grandchild] {
		t.Errorf("Descendants = %v, want the shell %d and the grandchild %d", got, p.PID(), grandchild)
	}
}
