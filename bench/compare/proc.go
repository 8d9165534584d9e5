package compare

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
)

// proc is one process as /proc/PID/stat shows it.
type proc struct {
	pid, ppid, pgrp int
	zombie          bool
}

// readProc reads /proc/PID/stat. The command name sits in parentheses and
// may itself hold spaces and parentheses, so the fields are read after the
// last ')'.
func readProc(pid int) (proc, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return proc{}, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return proc{}, false
	}
	f := bytes.Fields(b[i+1:]) // state ppid pgrp …
	if len(f) < 3 {
		return proc{}, false
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	pgrp, err2 := strconv.Atoi(string(f[2]))
	if err1 != nil || err2 != nil {
		return proc{}, false
	}
	return proc{pid: pid, ppid: ppid, pgrp: pgrp, zombie: string(f[0]) == "Z" || string(f[0]) == "X"}, true
}

// livingProcs lists every process that has not exited. A zombie has: it is
// only waiting for a parent to read its status (on a machine whose init
// does not reap orphans, it may wait forever).
func livingProcs() []proc {
	entries, _ := os.ReadDir("/proc") // no /proc (not Linux): nothing is listed
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok && !p.zombie {
			out = append(out, p)
		}
	}
	return out
}

// Alive reports whether pid is a process that has not exited (Linux).
func Alive(pid int) bool {
	p, ok := readProc(pid)
	return ok && !p.zombie
}

// Descendants lists the living descendants of pid (Linux): its children,
// theirs, and so on. The bench's tests take this list before they stop a
// run, then check that every process in it is gone.
func Descendants(pid int) []int {
	children := make(map[int][]int)
	for _, p := range livingProcs() {
		children[p.ppid] = append(children[p.ppid], p.pid)
	}
	var out []int
	queue := children[pid]
	for len(queue) > 0 {
		next := queue[0]
		queue = queue[1:]
		out = append(out, next)
		queue = append(queue, children[next]...)
	}
	return out
}

// groupMembers lists the living processes of process group pgid (Linux).
func groupMembers(pgid int) []int {
	var out []int
	for _, p := range livingProcs() {
		if p.pgrp == pgid {
			out = append(out, p.pid)
		}
	}
	return out
}
