//go:build !unix

package bench

import "syscall"

// childAttr is nil where there are no process groups: the bench's children are
// started as exec.Cmd does by default.
func childAttr() *syscall.SysProcAttr { return nil }
