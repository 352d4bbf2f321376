//go:build !linux

package cpubusy

// affinity is not known here: the counter reads the first line of /proc/stat, where
// there is one.
func affinity() map[int]bool { return nil }
