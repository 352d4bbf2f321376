package server

import (
	"bytes"
	"fmt"
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

// TestDamagedTableRefused: a byte flipped in one of Badger's tables stops the open
// with an error that names the file and says what to do. Until 7 December 2026 no
// checksum was verified: a small flip started ready, serving what it read wrong, and
// a larger one crashed every start in a compaction (slice bounds out of range).
func TestDamagedTableRefused(t *testing.T) {
	dir := t.TempDir()
	db, err := OpenDB(dir, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	wb := db.NewWriteBatch()
	for i := range 5000 {
		if err := wb.Set(fmt.Appendf(nil, "k/%06d", i), bytes.Repeat([]byte{byte(i)}, 200)); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil { // its memtable goes to a table
		t.Fatal(err)
	}
	tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(tables) == 0 {
		t.Fatal("no table files after Close")
	}
	b, err := os.ReadFile(tables[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/3] ^= 0x01 // in a block of values, far from the index at the end
	if err := os.WriteFile(tables[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err = OpenDB(dir, zerolog.Nop())
	if err == nil {
		db.Close()
		t.Fatalf("%s damaged: opened", tables[0])
	}
	for _, want := range []string{filepath.Base(tables[0]), "checksum", "restore the data directory from its backup"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s damaged: the error does not say %q: %v", tables[0], want, err)
		}
	}
}
