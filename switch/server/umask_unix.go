//go:build unix

package server

import "syscall"

// restrictUmask adds 077 to the process umask: files and directories created from
// now on are not readable by group or others. It is process-wide; the switch creates
// nothing that others should read.
func restrictUmask() {
	old := syscall.Umask(0o077)
	syscall.Umask(old | 0o077)
}
