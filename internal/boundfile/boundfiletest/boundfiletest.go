//go:build unix

// Package boundfiletest makes the files that tests of a bounded reader
// (boundfile) feed it: a named pipe nobody writes to, a file over the LMK's bound,
// a certificate authority and certificates; and bounds the wait for a read that
// would hang.
package boundfiletest

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/devpki"
)

// Files are a test's files, in Dir.
type Files struct {
	Dir string
	// FIFO is a named pipe nobody writes to: an open for reading waits for ever.
	FIFO string
	// BigLMK is a hex LMK followed by 64 KiB of spaces (65,600 bytes): over the
	// 64 KiB bound of a secret file.
	BigLMK string
}

// New makes the files in a new temporary directory, or skips t where a named
// pipe cannot be made.
func New(t testing.TB) Files {
	t.Helper()
	f := Files{Dir: t.TempDir()}
	f.FIFO = filepath.Join(f.Dir, "fifo")
	if err := syscall.Mkfifo(f.FIFO, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	f.BigLMK = filepath.Join(f.Dir, "lmk.hex")
	if err := os.WriteFile(f.BigLMK, []byte(strings.Repeat("a1", 32)+strings.Repeat(" ", 64<<10)), 0o600); err != nil || os.Chmod(f.BigLMK, 0o600) != nil {
		t.Fatalf("big LMK file %s: %v", f.BigLMK, err)
	}
	return f
}

// Cert makes a certificate authority and a certificate for name signed by it, in
// Dir, and returns the CA's certificate file and the certificate's and its key's.
func (f Files) Cert(t testing.TB, name string) (caFile, cert, key string) {
	t.Helper()
	ca, err := devpki.NewCA(f.Dir, "ca-"+name)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err = ca.Issue(f.Dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return ca.File, cert, key
}

// Within runs read and returns what it returned. A read still running after 20 s
// (a failure bound only: a bounded read returns at once) fails t, after the FIFO
// is opened for writing once, which ends an open blocked on it.
func (f Files) Within(t testing.TB, read func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- read() }()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		if w, err := os.OpenFile(f.FIFO, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
		t.Fatal("still reading after 20s")
		return nil
	}
}
