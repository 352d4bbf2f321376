//go:build unix

package server

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/switchyard/switchyard/switch/message"
)

// Every file under a data directory is 0600 and every directory 0700 after a demo run,
// Badger's included, whatever umask the switch was started with (issue 12, item 15);
// a file left readable by others is tightened at the next start.
func TestDataDirOwnerOnly(t *testing.T) {
	old := syscall.Umask(0o022) // the usual login umask: Badger's 0644 files came from it
	t.Cleanup(func() { syscall.Umask(old) })
	dir := filepath.Join(t.TempDir(), "data")
	s := start(t, demoConfig(t, dir), nil)
	c := dial(t, s, "ascii", message.DialectASCII)
	if r := send(t, c, message.DialectASCII, purchase("4761739001010119", 1000)); r.RC != "00" {
		t.Fatalf("purchase: RC %s", r.RC)
	}
	c.Close()
	check := func() {
		t.Helper()
		n := 0
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			want := fs.FileMode(0o600)
			if d.IsDir() {
				want = 0o700
			}
			if fi.Mode().Perm() != want {
				t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
			}
			n++
			return nil
		})
		if err != nil || n < 5 {
			t.Fatalf("walked %d entries of %s: %v", n, dir, err)
		}
	}
	check() // while running: memtables, value log, LOCK
	if err := s.Drain(); err != nil {
		t.Fatal(err)
	}
	check() // after close: tables and manifest
	// An older version's readable file and directory are tightened at the next start.
	stray := filepath.Join(dir, "journal", "stray")
	if err := os.Mkdir(filepath.Join(dir, "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stray, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(stray, 0o644)
	os.Chmod(filepath.Join(dir, "old"), 0o755)
	s2 := start(t, demoConfig(t, dir), nil)
	check()
	if err := s2.Drain(); err != nil {
		t.Fatal(err)
	}
}

// A data directory that cannot be read is named as such, not as a failure to
// tighten its modes (an operator read "making it readable by its owner only:
// permission denied" as the chmod's fault).
func TestDataDirUnreadable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(file, "data") // under a regular file: cannot be read
	err := restrictDataDir(dir)
	if err == nil || err.Error() != "data directory "+dir+": reading it: lstat "+dir+": not a directory" {
		t.Fatalf("got %v", err)
	}
}
