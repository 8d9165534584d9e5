//go:build !linux

package compare

import "syscall"

// childAttr puts a child in its own process group. Only Linux has a
// parent-death signal, so elsewhere a bench killed with SIGKILL can leave
// its children running.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
