package journal

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// owedRRNs returns the RRNs ScanOwed yields for node.
func owedRRNs(t *testing.T, s *Store, node string) []string {
	t.Helper()
	var out []string
	if err := s.ScanOwed(context.Background(), node, func(r *Record) bool {
		if r.OwedBy != node || r.Reversed() {
			t.Errorf("ScanOwed(%q) yields %s owed by %q, reversed by %q", node, r.RRN, r.OwedBy, r.ReversedBy)
		}
		out = append(out, r.RRN)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// owedKeys returns the keys of the index of owed reversals.
func owedKeys(t *testing.T, db *badger.DB) []string {
	t.Helper()
	var out []string
	if err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixOwed)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			out = append(out, string(it.Item().Key()))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// owe gives r the reversal_owed event that node writes when the queue refuses the
// 0420 of r, and writes it.
func owe(t *testing.T, s *Store, r *Record, node string) {
	t.Helper()
	r.OwedBy = node
	r.AddEvent(StateReversalOwed, r.Received.Add(time.Second), "000000000009: not queued (no quorum); tried again")
	if err := s.Write(context.Background(), r, false, true); err != nil {
		t.Fatal(err)
	}
}

// TestScanOwed: a cluster node's store (any node's records) finds the records whose
// reversal advice a node owes by the node's name, whoever's records they are, as
// soon as their write returns; a record reversed since leaves the index; the index
// is rebuilt from the log after a crash that took it. A store that owes nothing
// holds no entry, and node "" (a single switch) finds nothing.
func TestScanOwed(t *testing.T) {
	dir := t.TempDir()
	db, s := openOpts(t, dir, Options{RRNPrefix: "1", IndexDelay: never, Prealloc: -1})
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	a := sample("100000000001", at, "T0000001")     // node 1's purchase, voided on node 2
	b := sample("200000000001", at, "T0000002")     // node 2's, reversed on node 3
	c := sample("300000000001", at, "T0000003")     // node 3's, voided on node 2
	plain := sample("100000000002", at, "T0000004") // owes nothing
	for i, r := range []*Record{a, b, c, plain} {
		r.STAN = "00000" + string(rune('1'+i))
		if err := s.Write(context.Background(), r, true, true); err != nil {
			t.Fatal(err)
		}
	}
	if keys := owedKeys(t, db); len(keys) != 0 {
		t.Fatalf("index of owed reversals before any debt: %q", keys)
	}
	owe(t, s, c, "2")
	owe(t, s, a, "2")
	owe(t, s, b, "3")
	// Not indexed yet (the indexer only runs for queries): ScanOwed catches it up.
	if got := owedRRNs(t, s, "2"); !slices.Equal(got, []string{"100000000001", "300000000001"}) {
		t.Fatalf("owed by node 2: %q", got)
	}
	if got := owedRRNs(t, s, "3"); !slices.Equal(got, []string{"200000000001"}) {
		t.Fatalf("owed by node 3: %q", got)
	}
	for _, node := range []string{"1", ""} {
		if got := owedRRNs(t, s, node); len(got) != 0 {
			t.Fatalf("owed by node %q: %q, want none", node, got)
		}
	}
	// Node 2 queues the 0420 of a: the mark, written, takes a out of the index.
	a.ReversedBy = "000000000009"
	a.AddEvent(StateReversed, at.Add(2*time.Second), a.ReversedBy)
	if err := s.Write(context.Background(), a, false, true); err != nil {
		t.Fatal(err)
	}
	if got := owedRRNs(t, s, "2"); !slices.Equal(got, []string{"300000000001"}) {
		t.Fatalf("owed by node 2 after a was reversed: %q", got)
	}
	if keys := owedKeys(t, db); !slices.Equal(keys, []string{"j/O/2/300000000001", "j/O/3/200000000001"}) {
		t.Fatalf("index of owed reversals: %q", keys)
	}
	// c reversed, and a debt of node 4, in versions the index never gets (the
	// crash takes them from Badger): Open replays them from the log.
	c.ReversedBy = "switch:owed-at-restart"
	c.AddEvent(StateReversed, at.Add(3*time.Second), c.ReversedBy)
	if err := s.Write(context.Background(), c, false, true); err != nil {
		t.Fatal(err)
	}
	owe(t, s, plain, "4")
	crash(db)
	db, s = openOpts(t, dir, Options{RRNPrefix: "1", Prealloc: -1})
	defer db.Close()
	defer s.Close()
	if got := owedRRNs(t, s, "2"); len(got) != 0 {
		t.Fatalf("owed by node 2 after the crash: %q, want none", got)
	}
	if got := owedRRNs(t, s, "3"); !slices.Equal(got, []string{"200000000001"}) {
		t.Fatalf("owed by node 3 after the crash: %q", got)
	}
	if got := owedRRNs(t, s, "4"); !slices.Equal(got, []string{"100000000002"}) {
		t.Fatalf("owed by node 4 after the crash: %q", got)
	}
	if keys := owedKeys(t, db); !slices.Equal(keys, []string{"j/O/3/200000000001", "j/O/4/100000000002"}) {
		t.Fatalf("index of owed reversals after the crash: %q", keys)
	}
}

// TestPurgeRemovesOwedEntry: a purged record leaves the index of owed reversals
// with its other index entries.
func TestPurgeRemovesOwedEntry(t *testing.T) {
	dir := t.TempDir()
	db, s := openOpts(t, dir, Options{SegmentSize: 2048, NoSync: true})
	defer db.Close()
	defer s.Close()
	base := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	old := purgeDays(t, s, base, 1, 8)[0][2]
	owe(t, s, old, "2") // in day 0's segments, with its record
	days := purgeDaysFrom(t, s, 8, base.AddDate(0, 0, 1), 5, 8)
	owe(t, s, days[4][2], "2")
	if err := s.PutDurable(context.Background(), []byte("t/flush"), []byte{1}); err != nil {
		t.Fatal(err)
	}
	if got := owedRRNs(t, s, "2"); len(got) != 2 {
		t.Fatalf("owed by node 2 before the purge: %q", got)
	}
	res, err := s.Purge(context.Background(), base.AddDate(0, 0, 3))
	if err != nil || res.Records == 0 {
		t.Fatalf("purge: %+v %v", res, err)
	}
	if got := owedRRNs(t, s, "2"); !slices.Equal(got, []string{days[4][2].RRN}) {
		t.Fatalf("owed by node 2 after the purge: %q, want %s alone", got, days[4][2].RRN)
	}
	if keys := owedKeys(t, db); !slices.Equal(keys, []string{"j/O/2/" + days[4][2].RRN}) {
		t.Fatalf("index of owed reversals after the purge: %q", keys)
	}
}

// TestCodecOwedBy: OwedBy survives the codec, alone (the optional fields before it
// written empty) and after the others; a record without it encodes as before.
func TestCodecOwedBy(t *testing.T) {
	r := sample("100000000001", time.Unix(1700000000, 0), "T0000001")
	r.RefundedTo = 300
	plain, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	r.OwedBy = "2"
	with, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(with) <= len(plain) || string(with[:len(plain)]) != string(plain) {
		t.Fatalf("a record without OwedBy does not encode as the prefix of the same with it (%d, %d bytes)", len(plain), len(with))
	}
	var back Record
	if err := back.UnmarshalBinary(with); err != nil || back.OwedBy != "2" || back.RefundedTo != 300 {
		t.Fatalf("back %+v: %v", back, err)
	}
	alone := sample("100000000002", time.Unix(1700000000, 0), "T0000001")
	alone.OwedBy = "3"
	b, err := alone.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back = Record{}
	if err := back.UnmarshalBinary(b); err != nil || back.OwedBy != "3" || back.RefundedTo != 0 || back.Rev != 0 || back.Label != "" {
		t.Fatalf("OwedBy alone: back %+v: %v", back, err)
	}
}

// TestCodecRequested: a partial approval's requested amount survives the codec, alone
// and after OwedBy; a record without it encodes as before.
func TestCodecRequested(t *testing.T) {
	r := sample("100000000003", time.Unix(1700000000, 0), "T0000001")
	r.OwedBy = "2"
	plain, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	r.Amount, r.Requested = 600, 1000
	with, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back Record
	if err := back.UnmarshalBinary(with); err != nil || back.Requested != 1000 || back.Amount != 600 || back.OwedBy != "2" || back.RequestedAmount() != 1000 {
		t.Fatalf("back %+v: %v", back, err)
	}
	back = Record{}
	if err := back.UnmarshalBinary(plain); err != nil || back.Requested != 0 || back.RequestedAmount() != back.Amount {
		t.Fatalf("without Requested: back %+v: %v", back, err)
	}
	alone := sample("100000000004", time.Unix(1700000000, 0), "T0000001")
	alone.Requested = 5
	b, err := alone.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back = Record{}
	if err := back.UnmarshalBinary(b); err != nil || back.Requested != 5 || back.OwedBy != "" {
		t.Fatalf("Requested alone: back %+v: %v", back, err)
	}
}

// TestCodecOffline: the mark of a captured offline approval survives the codec, alone
// and after Requested; a record without it encodes as before (the same bytes), and an
// older record (without the field) reads as not offline.
func TestCodecOffline(t *testing.T) {
	r := sample("100000000005", time.Unix(1700000000, 0), "T0000001")
	plain, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	r.Offline = true
	alone, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back Record
	if err := back.UnmarshalBinary(alone); err != nil || !back.Offline || back.Requested != 0 || back.Label != "" {
		t.Fatalf("Offline alone: back %+v: %v", back, err)
	}
	back = Record{}
	if err := back.UnmarshalBinary(plain); err != nil || back.Offline {
		t.Fatalf("without Offline: back %+v: %v", back, err)
	}
	r.Requested, r.OwedBy = 900, "3"
	both, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back = Record{}
	if err := back.UnmarshalBinary(both); err != nil || !back.Offline || back.Requested != 900 || back.OwedBy != "3" {
		t.Fatalf("Offline after Requested: back %+v: %v", back, err)
	}
	r.Offline = false
	again, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(again) >= len(both) {
		t.Errorf("a record without Offline encodes to %d bytes, with it %d: the field is written when not set", len(again), len(both))
	}
}

// TestCodecSealedPAN: the sealed card of an offline approval whose advice is owed
// survives the codec, and is never in the record's JSON; a record with it and
// without Offline keeps Offline false; the encoding of a record without it is the
// same bytes as before, and one with it is that encoding followed by the field alone
// (a decoder older than it, which stops after Offline, reads the rest unchanged).
func TestCodecSealedPAN(t *testing.T) {
	r := sample("100000000006", time.Unix(1700000000, 0), "T0000001")
	r.Offline = true
	before, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	r.SealedPAN = []byte{0, 1, 2, 0xfe, 0xff}
	with, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(with, before) || len(with) != len(before)+1+len(r.SealedPAN) {
		t.Fatalf("encoding with the sealed card (%d bytes) does not extend the one without (%d bytes) by the field alone", len(with), len(before))
	}
	var back Record
	if err := back.UnmarshalBinary(with); err != nil || !back.Offline || !bytes.Equal(back.SealedPAN, r.SealedPAN) {
		t.Fatalf("back %+v: %v", back, err)
	}
	back = Record{}
	if err := back.UnmarshalBinary(before); err != nil || back.SealedPAN != nil {
		t.Fatalf("without the sealed card: back %+v: %v", back, err)
	}
	r.Offline = false
	back = Record{}
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := back.UnmarshalBinary(b); err != nil || back.Offline || !bytes.Equal(back.SealedPAN, r.SealedPAN) {
		t.Fatalf("sealed card without Offline: back %+v: %v", back, err)
	}
	j, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(j, []byte("sealed")) || bytes.Contains(j, []byte(base64.StdEncoding.EncodeToString(r.SealedPAN))) {
		t.Errorf("the record's JSON carries the sealed card: %s", j)
	}
}

// TestCodecSealedICC: the sealed chip data of an offline approval survives the codec
// after the sealed card and Written, never in the record's JSON; the encoding with
// it extends the one without it by Written (unset: one byte) and the field (an
// older decoder stops before them).
func TestCodecSealedICC(t *testing.T) {
	r := sample("100000000007", time.Unix(1700000000, 0), "T0000001")
	r.Offline, r.SealedPAN = true, []byte{9, 8, 7}
	before, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	r.SealedICC = []byte{0xca, 0xfe, 0, 1}
	with, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(with, before) || len(with) != len(before)+1+1+len(r.SealedICC) {
		t.Fatalf("encoding with the sealed chip data (%d bytes) does not extend the one without (%d bytes) by the field alone", len(with), len(before))
	}
	var back Record
	if err := back.UnmarshalBinary(with); err != nil || !bytes.Equal(back.SealedPAN, r.SealedPAN) || !bytes.Equal(back.SealedICC, r.SealedICC) {
		t.Fatalf("back %+v: %v", back, err)
	}
	r.SealedPAN = nil // the chip data alone: the card's field written empty before it
	back = Record{}
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := back.UnmarshalBinary(b); err != nil || back.SealedPAN != nil || !bytes.Equal(back.SealedICC, r.SealedICC) {
		t.Fatalf("chip data without the card: back %+v: %v", back, err)
	}
	j, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(j, []byte(base64.StdEncoding.EncodeToString(r.SealedICC))) {
		t.Errorf("the record's JSON carries the sealed chip data: %s", j)
	}
}

// TestCodecSealedExpiry: the sealed expiry of an offline approval survives the codec
// after the sealed chip data, never in the record's JSON. The encoding of a record
// without it is the same bytes as the codec before it wrote, so records written by
// that codec decode as before (without it), and the encoding with it extends that
// by the field alone (the older decoder, which stops after SealedICC, reads the rest
// unchanged). Set alone, the fields before it are written empty and decode so.
func TestCodecSealedExpiry(t *testing.T) {
	r := sample("100000000008", time.Unix(1700000000, 0), "T0000001")
	r.Offline, r.SealedPAN, r.SealedICC = true, []byte{9, 8, 7}, []byte{0xca, 0xfe}
	before, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var old Record // a record of the codec before SealedExpiry
	if err := old.UnmarshalBinary(before); err != nil || old.SealedExpiry != nil || !bytes.Equal(old.SealedICC, r.SealedICC) ||
		!bytes.Equal(old.SealedPAN, r.SealedPAN) || !old.Offline {
		t.Fatalf("a record without the sealed expiry: back %+v: %v", old, err)
	}
	r.SealedExpiry = []byte{0x5e, 0xa1, 0xed, 0, 0xff}
	with, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(with, before) || len(with) != len(before)+1+len(r.SealedExpiry) {
		t.Fatalf("encoding with the sealed expiry (%d bytes) does not extend the one without (%d bytes) by the field alone", len(with), len(before))
	}
	var back Record
	if err := back.UnmarshalBinary(with); err != nil || !bytes.Equal(back.SealedPAN, r.SealedPAN) ||
		!bytes.Equal(back.SealedICC, r.SealedICC) || !bytes.Equal(back.SealedExpiry, r.SealedExpiry) {
		t.Fatalf("back %+v: %v", back, err)
	}
	r.SealedPAN, r.SealedICC = nil, nil // the expiry alone
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back = Record{}
	if err := back.UnmarshalBinary(b); err != nil || back.SealedPAN != nil || back.SealedICC != nil || !bytes.Equal(back.SealedExpiry, r.SealedExpiry) {
		t.Fatalf("the expiry without the card: back %+v: %v", back, err)
	}
	if err := back.UnmarshalBinary(with[:len(with)-2]); err == nil {
		t.Errorf("a sealed expiry cut short decodes")
	}
	j, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(j, []byte(base64.StdEncoding.EncodeToString(r.SealedExpiry))) || bytes.Contains(j, []byte("xpiry")) {
		t.Errorf("the record's JSON carries the sealed expiry: %s", j)
	}
}
