//go:build unix

package server

import "syscall"

// fdLimit returns the process's limit of open file descriptors (0 if unknown). The Go
// runtime has already raised the soft limit to the hard one at start.
func fdLimit() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	return r.Cur
}
