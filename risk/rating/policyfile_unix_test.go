//go:build unix

package rating

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A policy file that is not a regular file (a named pipe) or is over MaxPolicySize
// is refused with its name, at once: rules check and test read it beside the rules,
// and a named pipe blocked them on open until something wrote to it.
func TestLoadPolicyFileKinds(t *testing.T) {
	dir := t.TempDir()
	pipe := filepath.Join(dir, "policy.yaml")
	if err := syscall.Mkfifo(pipe, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := LoadPolicy(pipe); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("a named pipe: %v, want it refused as not a regular file", err)
		}
	case <-time.After(10 * time.Second):
		if f, err := os.OpenFile(pipe, os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		t.Fatal("LoadPolicy hung on a named pipe")
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte("# "+strings.Repeat("x", MaxPolicySize)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPolicy(big); err == nil || !strings.Contains(err.Error(), "more than the 1048576 bytes allowed") {
		t.Errorf("a policy file over the bound: %v", err)
	}
}
