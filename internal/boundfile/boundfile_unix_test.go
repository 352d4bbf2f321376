//go:build unix

package boundfile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRead: a regular file (or a symlink to one) within the bound is read; a
// device, a FIFO, a directory and a file over the bound are refused at once with
// the path and what is wrong, instead of being read forever or waiting for a
// writer.
func TestRead(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.pem")
	if err := os.WriteFile(ok, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.pem")
	if err := os.Symlink(ok, link); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.pem")
	if err := os.WriteFile(big, make([]byte, 101), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.pem")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	for _, p := range []string{ok, link} {
		if b, err := Read(p, 100); err != nil || string(b) != "hello" {
			t.Errorf("Read(%s): %q, %v", p, b, err)
		}
	}
	for _, tc := range []struct{ path, want string }{
		{"/dev/zero", "/dev/zero is not a regular file but a device"},
		{fifo, fifo + " is not a regular file but a named pipe (FIFO)"},
		{dir, dir + " is not a regular file but a directory"},
		{big, big + " is 101 bytes, more than the 100 bytes allowed"},
		{filepath.Join(dir, "none"), "no such file or directory"},
	} {
		err := readBounded(t, tc.path, fifo)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Read(%s): %v, want %q", tc.path, err, tc.want)
		}
	}
	if _, err := KeyPair(ok, fifo); err == nil || !strings.Contains(err.Error(), fifo+" is not a regular file") {
		t.Errorf("KeyPair with a FIFO for its key: %v", err)
	}
}

// readBounded is Read(path, 100), failing the test if it has not returned after
// 10 s (a failure bound only: it returns at once when it works); it then opens
// fifo for writing, to end a read blocked on it.
func readBounded(t *testing.T, path, fifo string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { _, err := Read(path, 100); done <- err }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		t.Fatalf("Read(%s) still reading after 10s", path)
		return nil
	}
}
