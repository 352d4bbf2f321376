package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestOpenDBHint: a database another switch holds is answered with the question of
// another switch; a damaged MANIFEST is not (until 7 December 2026 every error of
// Badger's open asked "is another switchyard using it?").
func TestOpenDBHint(t *testing.T) {
	dir := t.TempDir()
	db, err := OpenDB(dir, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDB(dir, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "another switchyard") {
		t.Fatalf("a database opened twice: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(dir, "MANIFEST")
	b, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0xff // the checksum of its last change no longer matches
	if err := os.WriteFile(manifest, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = OpenDB(dir, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "MANIFEST") && !strings.Contains(err.Error(), "manifest") {
		t.Fatalf("a damaged MANIFEST: %v", err)
	}
	if strings.Contains(err.Error(), "another switchyard") {
		t.Fatalf("a damaged MANIFEST asks about another switch: %v", err)
	}
}
