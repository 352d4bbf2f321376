package journal

import (
	"context"
	"fmt"
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
	// Each node has a log of its own: node 2's log position is no place in node 1's
	// (whose empty log would be refused as one lost, wal.Open).
	if err := db.Update(func(txn *badger.Txn) error { return txn.Delete([]byte(keyApplied)) }); err != nil {
		t.Fatal(err)
	}
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

// TestScanByTimeAcrossPrefixes: a cluster node's index holds three nodes' records,
// whose RRN order (by node first) is not their receive order. A time-bounded scan
// finds every record received in the range, whatever its node, in receive order.
func TestScanByTimeAcrossPrefixes(t *testing.T) {
	dir := t.TempDir()
	db, s := open(t, dir)
	defer db.Close()
	defer s.Close()
	ctx := context.Background()
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	// Node 3's records come first in time, node 1's last: RRN order is the reverse.
	var want []string
	for i := range 9 {
		node := 3 - i/3
		rrn := fmt.Sprintf("%d%011d", node, i+1)
		if err := s.Write(ctx, sample(rrn, at.Add(time.Duration(i)*1500*time.Millisecond), "T1"), true, true); err != nil {
			t.Fatal(err)
		}
		if i >= 2 && i <= 7 {
			want = append(want, rrn)
		}
	}
	var got []string
	err := s.Scan(ctx, Query{From: at.Add(3 * time.Second), To: at.Add(11 * time.Second)}, func(r *Record) bool {
		got = append(got, r.RRN)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("scan from +3s to +11s: %v; want %v (every node's records in the range, in receive order)", got, want)
	}
}

// TestScanByTimeFirstSecond: records of one second whose first writes reached the
// index out of RRN order (concurrent transactions) are all found by a scan from
// before the journal's first record.
func TestScanByTimeFirstSecond(t *testing.T) {
	dir := t.TempDir()
	db, s := open(t, dir)
	defer db.Close()
	defer s.Close()
	ctx := context.Background()
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, n := range []int{3, 1, 2} { // RRN 3's first write is indexed first
		rrn := fmt.Sprintf("1%011d", n)
		if err := s.Write(ctx, sample(rrn, at.Add(time.Duration(n)*time.Millisecond), "T1"), true, true); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	if err := s.Scan(ctx, Query{From: at.Add(-time.Hour)}, func(r *Record) bool {
		got = append(got, r.RRN)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if want := "[100000000001 100000000002 100000000003]"; fmt.Sprint(got) != want {
		t.Fatalf("scan from an hour before: %v; want %s", got, want)
	}
}

// TestRRNKey: the indexer's memory of recent records is keyed by number; RRNs that
// are not 1 to 17 digits are left to Badger, and two RRNs never share a key.
func TestRRNKey(t *testing.T) {
	seen := map[uint64]string{}
	for _, rrn := range []string{"1", "01", "001", "000000000001", "100000000001", "912345678901", "99999999999999999"} {
		k, ok := rrnKey(rrn)
		if !ok {
			t.Fatalf("%q: no key", rrn)
		}
		if other, dup := seen[k]; dup {
			t.Fatalf("%q and %q share the key %x", rrn, other, k)
		}
		seen[k] = rrn
	}
	for _, rrn := range []string{"", "R1", "12345678901x", "123456789012345678", " 12345678901"} {
		if _, ok := rrnKey(rrn); ok {
			t.Fatalf("%q has a key", rrn)
		}
	}
}
