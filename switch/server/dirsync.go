package server

import (
	"fmt"
	"os"
)

// syncDir fsyncs directory dir, so that a file created, renamed or removed in it
// survives a crash (a rename is durable only once its directory is synced). The
// error names dir.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
