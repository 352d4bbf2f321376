//go:build !linux

package bench

import "time"

// threadCPU cannot read a thread's CPU time here: the host's speed goes unmeasured.
func threadCPU() (time.Duration, bool) { return 0, false }
