package compare

import "syscall"

// childAttr puts a child in its own process group and, should the bench
// die without stopping it, has the kernel send it SIGKILL.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
