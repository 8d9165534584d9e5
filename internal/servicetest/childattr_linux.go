package servicetest

import "syscall"

// childAttr has the kernel kill a private redis-server when the test
// binary dies, so a crashed or killed test run leaves none behind.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
