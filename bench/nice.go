package bench

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// The bench's load generator (this process) and its simulators share the cores with
// the switch they measure. With LoadNice above zero they run at that niceness and the
// switch at the niceness it was started with, so that where they compete for a core
// the switch has it first, as a production host gives its switch priority over
// whatever else runs there. Lowering a priority needs no privilege.

// maxNice is the lowest priority Linux gives.
const maxNice = 19

// checkNice reports whether n is a niceness the bench can lower its processes to.
func checkNice(n int) error {
	if n < 0 || n > maxNice {
		return fmt.Errorf("load niceness %d: want 0 (off) to %d", n, maxNice)
	}
	return nil
}

// niceCommand is exe args run at niceness n through nice(1) (every thread the
// program starts inherits it), or as is when n is 0.
func niceCommand(n int, exe string, args ...string) (*exec.Cmd, error) {
	if n == 0 {
		return exec.Command(exe, args...), nil
	}
	nice, err := exec.LookPath("nice")
	if err != nil {
		return nil, fmt.Errorf("load niceness %d: %w (coreutils' nice runs the simulators at it)", n, err)
	}
	return exec.Command(nice, append([]string{"-n", strconv.Itoa(n), exe}, args...)...), nil
}

// reniceSelf sets every thread of this process to niceness n. Linux keeps a
// niceness per thread and a new thread inherits its creator's, so after this
// call the threads the Go runtime starts later have n as well.
func reniceSelf(n int) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("load niceness %d: %w", n, err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		// A thread that ended since the listing is no error.
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, n); err != nil && err != syscall.ESRCH {
			return fmt.Errorf("load niceness %d for thread %d: %w", n, tid, err)
		}
	}
	return nil
}

// niceOf is the niceness of process pid's main thread.
func niceOf(pid int) (int, error) {
	// getpriority returns 20 - nice for PRIO_PROCESS on Linux (the raw syscall).
	p, err := syscall.Getpriority(syscall.PRIO_PROCESS, pid)
	if err != nil {
		return 0, fmt.Errorf("priority of process %d: %w", pid, err)
	}
	return 20 - p, nil
}
