//go:build unix

package ruleset

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A rule file that is not a regular file (a named pipe, a device, a directory
// called *.yaml) is refused with its name, at once: opening a pipe blocked rules
// check and a reload until something wrote to it.
func TestRuleFileNotRegular(t *testing.T) {
	dir := writeRules(t, map[string]string{"a.yaml": "rules: []\n"})
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe.yaml"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	if err := os.Symlink("/dev/null", filepath.Join(dir, "null.yaml")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := Load(dir, LoadOptions{}); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("err %v, want the file refused as not a regular file", err)
		}
	case <-time.After(10 * time.Second):
		// Unblock the open so that the test's goroutine ends.
		if f, err := os.OpenFile(filepath.Join(dir, "pipe.yaml"), os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		t.Fatal("Load hung on a named pipe called pipe.yaml")
	}
}
