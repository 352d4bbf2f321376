package journal

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func sample(rrn string, at time.Time, tid string) *Record {
	r := &Record{RRN: rrn, Received: at.UTC(), MTI: "0200", Type: "purchase", ProcCode: "000000", TID: tid, MID: "000000000000001",
		STAN: "000123", DE7: "1121110613", PANMasked: "476173******0119", CardHash: "abcd", Amount: 1000, Currency: "156",
		EntryMode: "071", Issuer: "demo", RC: "00", AuthCode: "000001", DecidedBy: "issuer", RuleSet: "v1",
		RuleHits: []RuleHit{{ID: "r1", Action: "alert", Mode: "shadow", Reason: "x", Score: 5}},
		Facts:    []byte{1, 2, 3}, Timings: Timings{Decode: 1, Total: 9}}
	r.AddEvent(StateReceived, at.UTC(), "")
	r.AddEvent(StateAnswered, at.Add(time.Millisecond).UTC(), "note")
	return r
}

func TestCodecRoundTrip(t *testing.T) {
	r := sample("000000000001", time.Unix(1700000000, 123456789), "T0000001")
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back Record
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*r, back) {
		t.Fatalf("round trip:\n%+v\n%+v", *r, back)
	}
	for i := 0; i < len(b); i++ {
		var x Record
		_ = x.UnmarshalBinary(b[:i]) // must not panic on any truncation
	}
}

// TestCodecLabel: the bench's label is kept, after every other field and only when
// set, so a record without one encodes as before and one with it starts with the same
// bytes (a decoder older than the label reads it whole and skips the rest).
func TestCodecLabel(t *testing.T) {
	r := sample("000000000001", time.Unix(1700000000, 0), "T0000001")
	without, _ := r.MarshalBinary()
	r.Label = "card-testing-spread"
	with, _ := r.MarshalBinary()
	if len(with) <= len(without) || !bytes.Equal(with[:len(without)], without) {
		t.Fatalf("with a label:\n%x\nwithout:\n%x", with, without)
	}
	var back Record
	if err := back.UnmarshalBinary(with); err != nil || back.Label != "card-testing-spread" {
		t.Fatalf("label back %q: %v", back.Label, err)
	}
	back = Record{}
	if err := back.UnmarshalBinary(without); err != nil || back.Label != "" {
		t.Fatalf("no label back %q: %v", back.Label, err)
	}
}

// TestCodecQR: a QR payment's network is kept after the label, with or without one.
func TestCodecQR(t *testing.T) {
	for _, label := range []string{"", "legitimate"} {
		r := sample("000000000002", time.Unix(1700000000, 0), "T0000001")
		r.Label, r.QR = label, "wechat"
		b, _ := r.MarshalBinary()
		var back Record
		if err := back.UnmarshalBinary(b); err != nil || back.QR != "wechat" || back.Label != label {
			t.Fatalf("label %q: back QR %q label %q: %v", label, back.QR, back.Label, err)
		}
	}
}

// TestCodecContentSum: a cup request's content fingerprint is kept after
// CaptureKey, as 8 bytes and only when set: a record without it encodes as before
// (a record written by an earlier version decodes with 0), one with it starts with
// the same bytes, and every earlier optional field is kept beside it.
func TestCodecContentSum(t *testing.T) {
	r := sample("000000000004", time.Unix(1700000000, 0), "T0000001")
	without, _ := r.MarshalBinary()
	for _, sum := range []uint64{1, 0x8000000000000000, 0xfedcba9876543210} {
		r.ContentSum = sum
		with, _ := r.MarshalBinary()
		if len(with) <= len(without) || !bytes.Equal(with[:len(without)], without) {
			t.Fatalf("sum %x: with it:\n%x\nwithout:\n%x", sum, with, without)
		}
		var back Record
		if err := back.UnmarshalBinary(with); err != nil || back.ContentSum != sum || back.Unknown != nil {
			t.Fatalf("sum %x back %x, unknown %x: %v", sum, back.ContentSum, back.Unknown, err)
		}
	}
	r.ContentSum, r.CaptureKey, r.Label = 0, "", ""
	var back Record
	if err := back.UnmarshalBinary(without); err != nil || back.ContentSum != 0 {
		t.Fatalf("a record without it: sum %x: %v", back.ContentSum, err)
	}
	r.Label, r.CaptureKey, r.ContentSum = "x", "ck", 42
	b, _ := r.MarshalBinary()
	back = Record{}
	if err := back.UnmarshalBinary(b); err != nil || back.Label != "x" || back.CaptureKey != "ck" || back.ContentSum != 42 {
		t.Fatalf("with the fields before it: %+v: %v", back, err)
	}
	if j, _ := json.Marshal(r); bytes.Contains(j, []byte("42")) && bytes.Contains(j, []byte("content")) {
		t.Fatalf("the fingerprint is in the record's JSON: %s", j)
	}
}

// TestCodecBalance: an approved balance inquiry's DE 54 is kept after ContentSum,
// only when set: a record without it encodes as before, one with it starts with the
// same bytes, keeps the fields before it, and the balance is not in the JSON.
func TestCodecBalance(t *testing.T) {
	const de54 = "0002156C000001234567"
	r := sample("000000000005", time.Unix(1700000000, 0), "T0000001")
	without, _ := r.MarshalBinary()
	r.Balance = de54
	with, _ := r.MarshalBinary()
	if len(with) <= len(without) || !bytes.Equal(with[:len(without)], without) {
		t.Fatalf("with it:\n%x\nwithout:\n%x", with, without)
	}
	var back Record
	if err := back.UnmarshalBinary(with); err != nil || back.Balance != de54 || back.Unknown != nil {
		t.Fatalf("back %q, unknown %x: %v", back.Balance, back.Unknown, err)
	}
	back = Record{}
	if err := back.UnmarshalBinary(without); err != nil || back.Balance != "" {
		t.Fatalf("a record without it: %q: %v", back.Balance, err)
	}
	r.Label, r.ContentSum = "x", 42
	b, _ := r.MarshalBinary()
	back = Record{}
	if err := back.UnmarshalBinary(b); err != nil || back.Label != "x" || back.ContentSum != 42 || back.Balance != de54 {
		t.Fatalf("with the fields before it: %+v: %v", back, err)
	}
	if j, _ := json.Marshal(r); bytes.Contains(j, []byte("1234567")) {
		t.Fatalf("the balance is in the record's JSON: %s", j)
	}
}

// TestCodecRuleErrors: the rules that failed at run time on a transaction are
// kept after Balance, only when set: a record without them encodes as before, one
// with them starts with the same bytes and keeps the fields before them, and they
// are in the record's JSON (the journal API, journal --json) as rule_errors.
func TestCodecRuleErrors(t *testing.T) {
	errs := []RuleError{{ID: "quotes-device", Error: `strconv.Atoi: parsing "411111******1111 x": invalid syntax`}, {ID: "divides", Error: "division by zero"}}
	r := sample("000000000006", time.Unix(1700000000, 0), "T0000001")
	without, _ := r.MarshalBinary()
	r.RuleErrors = errs
	with, _ := r.MarshalBinary()
	if len(with) <= len(without) || !bytes.Equal(with[:len(without)], without) {
		t.Fatalf("with them:\n%x\nwithout:\n%x", with, without)
	}
	var back Record
	if err := back.UnmarshalBinary(with); err != nil || !slices.Equal(back.RuleErrors, errs) || back.Unknown != nil {
		t.Fatalf("back %+v, unknown %x: %v", back.RuleErrors, back.Unknown, err)
	}
	back = Record{}
	if err := back.UnmarshalBinary(without); err != nil || back.RuleErrors != nil {
		t.Fatalf("a record without them: %+v: %v", back.RuleErrors, err)
	}
	r.Label, r.Balance = "x", "0002156C000001234567"
	b, _ := r.MarshalBinary()
	back = Record{}
	if err := back.UnmarshalBinary(b); err != nil || back.Label != "x" || back.Balance != r.Balance || !slices.Equal(back.RuleErrors, errs) {
		t.Fatalf("with the fields before them: %+v: %v", back, err)
	}
	j, _ := json.Marshal(r)
	if !bytes.Contains(j, []byte(`"rule_errors":[{"id":"quotes-device","error":`)) {
		t.Fatalf("the rule errors are not in the record's JSON: %s", j)
	}
	r.RuleErrors = nil
	if j, _ := json.Marshal(r); bytes.Contains(j, []byte("rule_errors")) {
		t.Fatalf("a record without rule errors: %s", j)
	}
}

// TestCodecKeepsNewerFields: fields a newer version appends after the last one this
// version knows survive this version's decoding and re-encoding (a rolling upgrade's
// older node rewriting a newer node's record), whichever known fields are set.
func TestCodecKeepsNewerFields(t *testing.T) {
	base := sample("000000000003", time.Unix(1700000000, 0), "T0000001")
	plain, _ := base.MarshalBinary()
	// What a newer version writes: every known optional field (zero), then its own.
	e := enc{b: append([]byte(nil), plain...)}
	for i := 0; i < 4; i++ {
		e.str("") // Label, QR, CompletedBy, KSN
	}
	e.int(0)            // Rev
	e.int(0)            // RefundedTo
	e.str("")           // OwedBy
	e.int(0)            // Requested
	e.int(0)            // Offline
	e.bytes(nil)        // SealedPAN
	e.time(time.Time{}) // Written
	e.bytes(nil)        // SealedICC
	e.bytes(nil)        // SealedExpiry
	e.str("")           // CaptureKey
	e.bytes(nil)        // ContentSum
	e.str("")           // Balance
	e.int(0)            // RuleErrors
	known := len(e.b)
	e.str("a newer field")
	e.int(42)
	newer := e.b
	var back Record
	if err := back.UnmarshalBinary(newer); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Unknown, newer[known:]) {
		t.Fatalf("Unknown %x, want %x", back.Unknown, newer[known:])
	}
	again, _ := back.MarshalBinary()
	if !bytes.Equal(again, newer) {
		t.Fatalf("re-encoded:\n%x\nwant:\n%x", again, newer)
	}
	// Changed by this version (a refund, a known optional field set): the newer
	// fields still follow the known ones.
	back.Refunded, back.Rev = 500, 7
	changed, _ := back.MarshalBinary()
	var back2 Record
	if err := back2.UnmarshalBinary(changed); err != nil {
		t.Fatal(err)
	}
	if back2.Refunded != 500 || back2.Rev != 7 || !bytes.Equal(back2.Unknown, newer[known:]) {
		t.Fatalf("after a change: refunded %d rev %d unknown %x", back2.Refunded, back2.Rev, back2.Unknown)
	}
	// A record of this version has none.
	var own Record
	if err := own.UnmarshalBinary(plain); err != nil || own.Unknown != nil {
		t.Fatalf("own record: unknown %x: %v", own.Unknown, err)
	}
}

func open(t *testing.T, dir string) (*badger.DB, *Store) {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(false))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(db, Options{Dir: filepath.Join(dir, "journal")})
	if err != nil {
		t.Fatal(err)
	}
	return db, s
}

func TestStoreQueriesAndRestart(t *testing.T) {
	dir := t.TempDir()
	db, s := open(t, dir)
	ctx := context.Background()
	base := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	var rrns []string
	for i := 0; i < 20; i++ {
		rrn, err := s.NextRRN()
		if err != nil {
			t.Fatal(err)
		}
		rrns = append(rrns, rrn)
		tid := "T0000001"
		if i%2 == 1 {
			tid = "T0000002"
		}
		r := sample(rrn, base.Add(time.Duration(i)*time.Minute), tid)
		if err := s.Write(ctx, r, true, i%3 == 0); err != nil {
			t.Fatal(err)
		}
		r.AddEvent(StateResponded, base, "")
		if err := s.Write(ctx, r, false, true); err != nil {
			t.Fatal(err)
		}
	}
	count := func(q Query) int {
		n := 0
		if err := s.Scan(ctx, q, func(*Record) bool { n++; return true }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(Query{TID: "T0000002"}); n != 10 {
		t.Fatalf("by terminal: %d", n)
	}
	if n := count(Query{From: base.Add(5 * time.Minute), To: base.Add(10 * time.Minute)}); n != 5 {
		t.Fatalf("by time: %d", n)
	}
	if n := count(Query{MID: "000000000000001", Limit: 3}); n != 3 {
		t.Fatalf("limit: %d", n)
	}
	if n := count(Query{RRN: rrns[4]}); n != 1 {
		t.Fatalf("by rrn: %d", n)
	}
	rec, err := s.Get(rrns[7])
	if err != nil || rec.State != StateResponded || len(rec.Events) != 3 {
		t.Fatalf("%+v %v", rec, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, s = open(t, dir)
	defer db.Close()
	defer s.Close()
	if n := count(Query{}); n != 20 {
		t.Fatalf("after reopen: %d", n)
	}
	next, _ := s.NextRRN()
	if next <= rrns[len(rrns)-1] {
		t.Fatalf("RRN went back after restart: %s after %s", next, rrns[len(rrns)-1])
	}
}

func BenchmarkMarshal(b *testing.B) {
	r := sample("000000000001", time.Now(), "T0000001")
	b.ReportAllocs()
	buf := make([]byte, 0, 512)
	for i := 0; i < b.N; i++ {
		buf, _ = r.AppendBinary(buf[:0])
	}
}

// TestTimeScanWithinOneSecond: the time index has one entry a second; a time query
// still finds every record, also when RRN order and receive order differ slightly.
func TestTimeScanWithinOneSecond(t *testing.T) {
	db, s := open(t, t.TempDir())
	defer db.Close()
	defer s.Close()
	ctx := context.Background()
	base := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	for i := 0; i < 300; i++ {
		rrn, _ := s.NextRRN()
		// 100 records a second over 3 seconds, each 0-3 ms off its place in RRN order.
		at := base.Add(time.Duration(i)*10*time.Millisecond + time.Duration(i%4)*time.Millisecond)
		if err := s.Write(ctx, sample(rrn, at, "T0000001"), true, i%50 == 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Write(ctx, sample("999999999999", base, "X"), false, true); err != nil { // a sync point
		t.Fatal(err)
	}
	count := func(from, to time.Time) int {
		n := 0
		if err := s.Scan(ctx, Query{From: from, To: to}, func(*Record) bool { n++; return true }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(base.Add(500*time.Millisecond), base.Add(1500*time.Millisecond)); n != 100 {
		t.Fatalf("records in [0.5 s, 1.5 s): %d, want 100", n)
	}
	if n := count(base.Add(2990*time.Millisecond), time.Time{}); n != 1 {
		t.Fatalf("records from 2.99 s: %d, want 1", n)
	}
	if n := count(time.Time{}, time.Time{}); n != 301 {
		t.Fatalf("all records: %d, want 301", n)
	}
	last, _ := s.LastReceived()
	if last.Before(base.Add(2 * time.Second)) {
		t.Fatalf("last received %v", last)
	}
}
