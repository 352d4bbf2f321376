// Package testfault breaks what a test needs broken, for real, in the test's own
// process: today the journal log's segment files, made read-only under a running
// switch as if its disk had turned read-only. Only tests import it.
package testfault

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// MakeSegmentsReadOnly replaces each file descriptor of the process open for
// writing on a segment file (*.seg) in journalDir (the log's active segment) with
// a read-only one of the same file, with dup3: reads go on, writes fail with EBADF
// and truncating fails too, so the journal's log breaks at its next write. It
// skips the test without /proc/self/fd and fails it when no such descriptor is
// open.
func MakeSegmentsReadOnly(t testing.TB, journalDir string) {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd to find the journal's segment by: %v", err)
	}
	n := 0
	for _, e := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil || filepath.Dir(target) != journalDir || !strings.HasSuffix(target, ".seg") {
			continue
		}
		info, err := os.ReadFile(filepath.Join("/proc/self/fdinfo", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var flags string
		for _, l := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(l, "flags:"); ok {
				flags = strings.TrimSpace(v)
			}
		}
		if len(flags) == 0 || flags[len(flags)-1] == '0' { // O_RDONLY: the access mode is the last octal digit
			continue
		}
		ro, err := os.Open(target)
		if err != nil {
			t.Fatal(err)
		}
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Dup3(int(ro.Fd()), fd, syscall.O_CLOEXEC); err != nil {
			t.Fatalf("dup3 onto the segment's descriptor %d (%s): %v", fd, target, err)
		}
		ro.Close()
		n++
	}
	if n == 0 {
		t.Fatalf("no descriptor open for writing on a segment in %s", journalDir)
	}
}
