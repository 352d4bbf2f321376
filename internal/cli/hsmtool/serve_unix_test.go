//go:build unix

package hsmtool

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/boundfile/boundfiletest"
)

// TestVariantLMKFileBounded: hsm serve's --lmk-file for a variant LMK is read
// within a bound: a FIFO is refused at once (it hung the start waiting for a
// writer) and so is a file over 64 KiB (read whole before).
func TestVariantLMKFileBounded(t *testing.T) {
	files := boundfiletest.New(t)
	dir, fifo := files.Dir, files.FIFO
	big := filepath.Join(dir, "big.lmk")
	if err := os.WriteFile(big, make([]byte, 64<<10+1), 0o600); err != nil || os.Chmod(big, 0o600) != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		fifo: "variant LMK file: " + fifo + " is not a regular file but a named pipe (FIFO)",
		big:  "variant LMK file: " + big + " is 65537 bytes, more than the 65536 bytes allowed",
	} {
		err := files.Within(t, func() error { _, err := loadVariantLMK(file, "", false); return err })
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", file, err, want)
		}
	}
}
