package journal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/switch/journal/wal"
)

// flipRecordByte flips a byte of the payload of rrn's newest version in the log, as
// a disk might, with the file open under the store, and returns the segment file
// and the offset of the frame.
func flipRecordByte(t *testing.T, db *badger.DB, logDir, rrn string) (string, int64) {
	t.Helper()
	var p wal.Ptr
	if err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(recordKey(rrn))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			var ok bool
			if p, _, ok = decodePtr(v); !ok {
				return fmt.Errorf("index entry of %s is no pointer into the log", rrn)
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(logDir, fmt.Sprintf("%08d.seg", p.Seg))
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, int64(p.Off)+7); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, int64(p.Off)+7); err != nil {
		t.Fatal(err)
	}
	return seg, int64(p.Off - wal.FrameHeader)
}

// TestDamagedRecordSkipped: a record whose frame in the log is damaged (a flipped
// byte, found by its checksum) is named by Get, and the queries (by time, by
// terminal, by RRN order) hand on every other record, then name it with its file,
// offset and RRN in an *UnreadableError; each damaged read is counted and told to
// OnDamage. Until the fifteenth release the queries stopped at it.
func TestDamagedRecordSkipped(t *testing.T) {
	dir := t.TempDir()
	db, s := openOpts(t, dir, Options{})
	defer db.Close()
	defer s.Close()
	var told []Unreadable
	s.OnDamage(func(u Unreadable) { told = append(told, u) })
	ctx := context.Background()
	base := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	var rrns []string
	for i := range 12 {
		rrns = append(rrns, writeTxn(t, s, i, base.Add(time.Duration(i)*time.Second)).RRN)
	}
	if err := s.catchUp(ctx); err != nil { // indexed: read from the log from now on
		t.Fatal(err)
	}
	bad := rrns[4] // terminal T0000001
	seg, off := flipRecordByte(t, db, filepath.Join(dir, "log"), bad)

	check := func(what string, err error) {
		t.Helper()
		var ue *UnreadableError
		if !errors.As(err, &ue) {
			t.Fatalf("%s: %v, want an *UnreadableError", what, err)
		}
		if len(ue.Records) != 1 || ue.Records[0].RRN != bad || ue.Records[0].File != seg || ue.Records[0].Offset != off || ue.Records[0].Reason == "" {
			t.Fatalf("%s: unreadable %+v, want record %s in %s at %d", what, ue.Records, bad, seg, off)
		}
	}
	_, err := s.Get(bad)
	check("Get", err)
	if _, err := s.Get(rrns[5]); err != nil {
		t.Fatalf("Get of an intact record after the damaged one: %v", err)
	}

	scan := func(what string, run func(fn func(*Record) bool) error, want []string) {
		t.Helper()
		var got []string
		err := run(func(r *Record) bool { got = append(got, r.RRN); return true })
		check(what, err)
		if !slices.Equal(got, want) {
			t.Fatalf("%s: records %v, want %v", what, got, want)
		}
	}
	others := slices.Delete(slices.Clone(rrns), 4, 5)
	scan("Scan all", func(fn func(*Record) bool) error { return s.Scan(ctx, Query{}, fn) }, others)
	scan("Scan by time", func(fn func(*Record) bool) error {
		return s.Scan(ctx, Query{From: base, To: base.Add(time.Hour)}, fn)
	}, others)
	var t1 []string
	for i, rrn := range rrns {
		if i%3 == 1 && i != 4 {
			t1 = append(t1, rrn)
		}
	}
	scan("Scan by terminal", func(fn func(*Record) bool) error {
		return s.Scan(ctx, Query{TID: "T0000001", From: base, To: base.Add(time.Hour)}, fn)
	}, t1)
	scan("ScanFrom", func(fn func(*Record) bool) error { return s.ScanFrom(ctx, rrns[0], fn) }, others)
	// 1 Get + 4 scans met it.
	if n := s.DamagedReads(); n != 5 || len(told) != 5 || told[0].RRN != bad {
		t.Fatalf("damaged reads %d, told %+v; want 5", n, told)
	}
}
