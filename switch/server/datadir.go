package server

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// The data directory holds card data (the journal, hashed PANs, risk state) and the
// key store: nobody but the switch's user may read any of it. Badger creates its files
// 0666 and 0644 (its memtables, value logs, tables and LOCK), leaving only the 0700
// directory to protect them; so the process's umask is narrowed to 077 before the
// database opens, which covers the files Badger creates later too, and files left
// readable by an earlier version are tightened.

// restrictDataDir narrows the process umask to 077 (adding to it, never widening) and
// makes every file under dir 0600 and every directory 0700. It is called before
// Badger opens dir.
func restrictDataDir(dir string) error {
	restrictUmask()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			// Not the tightening's fault: what is there cannot be read.
			return fmt.Errorf("reading it: %w", err)
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else if !d.Type().IsRegular() {
			return nil // symlinks and the like: leave them to the operator
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&^want != 0 {
			if err := os.Chmod(path, fi.Mode().Perm()&want); err != nil {
				return fmt.Errorf("making it readable by its owner only: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	return nil
}
