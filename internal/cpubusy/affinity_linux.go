package cpubusy

import "golang.org/x/sys/unix"

// affinity returns the CPUs this process may run on (its affinity mask, which a
// cpuset narrows), or nil when it cannot be read.
func affinity() map[int]bool {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil
	}
	n := set.Count()
	if n == 0 {
		return nil
	}
	cpus := make(map[int]bool, n)
	for i := 0; len(cpus) < n && i < 1024; i++ { // a CPUSet holds 1024 CPUs
		if set.IsSet(i) {
			cpus[i] = true
		}
	}
	return cpus
}
