//go:build unix

package hsmtool

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestVariantLMKFileBounded: hsm serve's --lmk-file for a variant LMK is read
// within a bound: a FIFO is refused at once (it hung the start waiting for a
// writer) and so is a file over 64 KiB (read whole before).
func TestVariantLMKFileBounded(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	big := filepath.Join(dir, "big.lmk")
	if err := os.WriteFile(big, make([]byte, 64<<10+1), 0o600); err != nil || os.Chmod(big, 0o600) != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		fifo: "variant LMK file: " + fifo + " is not a regular file but a named pipe (FIFO)",
		big:  "variant LMK file: " + big + " is 65537 bytes, more than the 65536 bytes allowed",
	} {
		done := make(chan error, 1)
		go func() { _, err := loadVariantLMK(file, "", false); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %v, want %q", file, err, want)
			}
		case <-time.After(20 * time.Second): // a failure bound only
			if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				f.Close()
			}
			t.Fatalf("%s: still reading after 20s", file)
		}
	}
}
