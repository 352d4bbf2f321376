//go:build unix && !linux

package bench

import "syscall"

// childAttr is how the bench starts its child processes elsewhere than on Linux:
// each in a process group of its own (no parent-death signal: a bench killed with
// SIGKILL leaves its children running there).
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
