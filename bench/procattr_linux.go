package bench

import "syscall"

// childAttr is how the bench starts its child processes on Linux: each in a
// process group of its own, so that a Ctrl-C at the terminal reaches the bench
// alone, which then stops its children in order; and with a parent-death signal,
// so that the kernel kills them if the bench dies without stopping them (SIGKILL,
// a crash). Pdeathsig is tied to the thread that started the child: startProc
// keeps that thread for as long as the child runs.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
