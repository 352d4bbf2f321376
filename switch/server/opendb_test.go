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

// TestLostDatabaseRefused: a switch whose Badger lost its MANIFEST is refused before
// Badger opens (which would delete the tables it does not know), its tables left in
// place; one whose Badger lost everything is refused by the journal, whose log holds
// frames the empty database has no position for. Until 7 December 2026 both started
// ready, with a new demo fleet and the journal replayed from its first frame (advices
// the issuer had acknowledged sent again).
func TestLostDatabaseRefused(t *testing.T) {
	dir := t.TempDir()
	first := purchaseAndStop(t, dir)
	if err := os.Remove(filepath.Join(dir, "MANIFEST")); err != nil {
		t.Fatal(err)
	}
	tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(tables) == 0 {
		t.Fatal("no table files after a clean stop")
	}
	if _, err := Open(demoConfig(t, dir), zerolog.Nop(), testDemoIssuer); err == nil || !strings.Contains(err.Error(), "but no MANIFEST") || !strings.Contains(err.Error(), "from its backup") {
		t.Fatalf("a database without its MANIFEST: %v", err)
	}
	for _, f := range tables {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("the refused start removed a table: %v", err)
		}
	}
	// All of Badger's files gone, the journal's log kept.
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "journal" {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := Open(demoConfig(t, dir), zerolog.Nop(), testDemoIssuer); err == nil || !strings.Contains(err.Error(), "database has no j/applied") {
		t.Fatalf("a log under an empty database: %v (the purchase before was %s)", err, first.RRN)
	}
}
