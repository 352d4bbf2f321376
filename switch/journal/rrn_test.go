package journal

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// openPrefixed opens a journal with the RRN prefix p on db, its log in dir/journal-<p>.
func openPrefixed(t *testing.T, db *badger.DB, dir, p string) *Store {
	t.Helper()
	s, err := Open(db, Options{Dir: filepath.Join(dir, "journal-"+p), RRNPrefix: p, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRRNPrefix: without a prefix RRNs are 12-digit sequence numbers as always; with
// one they are the digit and an 11-digit sequence. Two prefixes writing into one index
// (a cluster node holds the others' records) never collide, and each continues after
// its own highest RRN at restart, whatever the other wrote above it.
func TestRRNPrefix(t *testing.T) {
	dir := t.TempDir()
	db, s := open(t, dir)
	rrn, err := s.NextRRN()
	if err != nil || rrn != "000000000001" {
		t.Fatalf("first RRN without a prefix: %q, %v; want 000000000001", rrn, err)
	}
	s.Close()
	db.Close()

	db, err = badger.Open(badger.DefaultOptions(filepath.Join(dir, "shared")).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	write := func(s *Store, n int) []string {
		var out []string
		for i := range n {
			rrn, err := s.NextRRN()
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Write(ctx, sample(rrn, at.Add(time.Duration(i)*time.Millisecond), "T1"), true, true); err != nil {
				t.Fatal(err)
			}
			out = append(out, rrn)
		}
		return out
	}
	// Node 2 writes its records, then node 1 its own into the same index.
	s2 := openPrefixed(t, db, dir, "2")
	got2 := write(s2, 5)
	if got2[0] != "200000000001" || got2[4] != "200000000005" {
		t.Fatalf("prefix 2 RRNs: %v", got2)
	}
	s2.Close()
	s1 := openPrefixed(t, db, dir, "1")
	got1 := write(s1, 3)
	if got1[0] != "100000000001" {
		t.Fatalf("prefix 1 RRNs started at %s (node 2's records counted?); want 100000000001", got1[0])
	}
	seen := map[string]bool{}
	for _, r := range append(got1, got2...) {
		if seen[r] {
			t.Fatalf("RRN %s handed out twice", r)
		}
		seen[r] = true
	}
	s1.Close()

	// Node 1's sequence lease is lost (a store that only holds the index, as one
	// rebuilt from the other nodes): it continues after its highest RRN in the
	// index, not after node 2's.
	if err := db.DropPrefix([]byte(keyRRNSeq)); err != nil {
		t.Fatal(err)
	}
	s1 = openPrefixed(t, db, dir, "1")
	if next, _ := s1.NextRRN(); next != "100000000004" {
		t.Fatalf("after restart without its lease, prefix 1 continued at %s; want 100000000004", next)
	}
	// NoteRRN: records of its own that come back later (from other nodes) move it on.
	s1.NoteRRN("100000000500")
	s1.NoteRRN("200000009999") // not its own: ignored
	if next, _ := s1.NextRRN(); next != "100000000501" {
		t.Fatalf("after NoteRRN(100000000500): %s; want 100000000501", next)
	}
	s1.Close()

	if _, err := Open(db, Options{Dir: filepath.Join(dir, "bad"), RRNPrefix: "0"}); err == nil || !strings.Contains(err.Error(), `RRN prefix "0"`) {
		t.Fatalf("prefix 0 accepted: %v", err)
	}
}
