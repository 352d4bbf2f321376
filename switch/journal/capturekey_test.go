package journal

import (
	"context"
	"testing"
	"time"
)

// TestCaptureKeyIndex: an offline approval's record with a CaptureKey is indexed
// under CaptureDupKey of it, not under its DE 41 + 11 + 7, and is found so after a
// restart (the index and the filter rebuilt from it); one journaled without DE 7 (a
// refusal) or answered 94 takes no key. The key survives the codec, after every
// other optional field.
func TestCaptureKeyIndex(t *testing.T) {
	dir := t.TempDir()
	db, s := open(t, dir)
	ctx := context.Background()
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	const key = "00112233445566778899aabbccddeeff"
	capture := sample("000000000001", at, "T0000001")
	capture.Offline, capture.CaptureKey = true, key
	refused := sample("000000000002", at, "T0000001")
	refused.STAN, refused.DE7, refused.Offline, refused.CaptureKey = "000200", "", true, "ffeeddccbbaa99887766554433221100"
	mismatch := sample("000000000003", at, "T0000002")
	mismatch.RC, mismatch.DecidedBy, mismatch.Offline, mismatch.CaptureKey = "94", "switch", true, "0000000000000000ffffffffffffffff"
	for _, r := range []*Record{capture, refused, mismatch} {
		if err := s.Write(ctx, r, true, true); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string) {
		t.Helper()
		if rrn, ok, err := s.LookupDuplicateKey(CaptureDupKey(key)); err != nil || !ok || rrn != capture.RRN {
			t.Errorf("%s: the capture's key: %q %v %v; want %s", when, rrn, ok, err, capture.RRN)
		}
		if _, ok, _ := s.LookupDuplicate(capture.TID, capture.STAN, capture.DE7); ok {
			t.Errorf("%s: the capture is indexed under its DE 41 + 11 + 7 too", when)
		}
		for _, r := range []*Record{refused, mismatch} {
			if rrn, ok, _ := s.LookupDuplicateKey(CaptureDupKey(r.CaptureKey)); ok {
				t.Errorf("%s: record %s (DE 7 %q, RC %s) holds its key (found %s)", when, r.RRN, r.DE7, r.RC, rrn)
			}
		}
		if got, err := s.Get(capture.RRN); err != nil || got.CaptureKey != key || !got.Offline {
			t.Errorf("%s: the capture read back %+v (%v)", when, got, err)
		}
	}
	check("written")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, s = open(t, dir)
	defer db.Close()
	defer s.Close()
	check("after a restart")

	// Every optional field set: the key comes back after them.
	full := sample("000000000004", at, "T0000001")
	full.Label, full.KSN, full.Offline, full.SealedExpiry, full.CaptureKey = "l", "FFFF", true, []byte{1}, key
	b, err := full.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back Record
	if err := back.UnmarshalBinary(b); err != nil || back.CaptureKey != key || back.KSN != "FFFF" || len(back.SealedExpiry) != 1 {
		t.Fatalf("codec: %+v (%v)", back, err)
	}
}
