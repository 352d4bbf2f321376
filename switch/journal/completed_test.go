package journal

import (
	"testing"
	"time"
)

// TestCodecCompletedBy: a pre-authorization's completion mark survives the codec,
// with and without the optional fields before it (label, QR).
func TestCodecCompletedBy(t *testing.T) {
	for _, label := range []string{"", "lbl"} {
		r := sample("000000000001", time.Unix(1700000000, 0), "T0000001")
		r.Label, r.CompletedBy = label, "000000000042"
		if label != "" {
			r.QR = "wallet"
		}
		b, err := r.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var back Record
		if err := back.UnmarshalBinary(b); err != nil || back.CompletedBy != "000000000042" || back.Label != label || back.QR != r.QR {
			t.Fatalf("label %q: back completed_by %q label %q qr %q: %v", label, back.CompletedBy, back.Label, back.QR, err)
		}
	}
}

// TestCodecKSN: a DUKPT KSN survives the codec, alone and after the optional
// fields before it; a record without one encodes as before it existed.
func TestCodecKSN(t *testing.T) {
	for _, withOthers := range []bool{false, true} {
		r := sample("000000000001", time.Unix(1700000000, 0), "T0000002")
		r.KSN = "FFFF9876543210E00007"
		if withOthers {
			r.Label, r.QR, r.CompletedBy = "lbl", "wallet", "000000000042"
		}
		b, err := r.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var back Record
		if err := back.UnmarshalBinary(b); err != nil || back.KSN != r.KSN || back.Label != r.Label || back.QR != r.QR || back.CompletedBy != r.CompletedBy {
			t.Fatalf("others %v: back ksn %q label %q qr %q completed_by %q: %v", withOthers, back.KSN, back.Label, back.QR, back.CompletedBy, err)
		}
	}
	r := sample("000000000001", time.Unix(1700000000, 0), "T0000001")
	plain, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	r.KSN = "FFFF9876543210E00007"
	with, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(with) <= len(plain) || string(with[:len(plain)]) != string(plain) {
		t.Fatalf("a record without a KSN does not encode as the prefix of the same with one (%d, %d bytes)", len(plain), len(with))
	}
}

// TestCodecRev: a cluster version count survives the codec, alone and after the
// optional fields before it; a record without one encodes as before it existed, and
// a decoder that stops at KSN (an earlier version) reads the rest unchanged.
func TestCodecRev(t *testing.T) {
	for _, withOthers := range []bool{false, true} {
		r := sample("100000000001", time.Unix(1700000000, 0), "T0000002")
		r.Rev = 7
		r.RefundedTo = 1500
		if withOthers {
			r.Label, r.QR, r.CompletedBy, r.KSN = "lbl", "wallet", "000000000042", "FFFF9876543210E00007"
		}
		b, err := r.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var back Record
		if err := back.UnmarshalBinary(b); err != nil || back.Rev != 7 || back.RefundedTo != 1500 || back.Label != r.Label || back.QR != r.QR || back.CompletedBy != r.CompletedBy || back.KSN != r.KSN {
			t.Fatalf("others %v: back %+v: %v", withOthers, back, err)
		}
	}
	r := sample("100000000001", time.Unix(1700000000, 0), "T0000001")
	r.KSN = "FFFF9876543210E00007"
	plain, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	r.Rev = 3
	with, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(with) <= len(plain) || string(with[:len(plain)]) != string(plain) {
		t.Fatalf("a record without Rev does not encode as the prefix of the same with one (%d, %d bytes)", len(plain), len(with))
	}
	// RefundedTo alone: the fields before it are written (empty) so that it is read
	// in its place.
	r = sample("100000000002", time.Unix(1700000000, 0), "T0000001")
	r.RefundedTo = 700
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back Record
	if err := back.UnmarshalBinary(b); err != nil || back.RefundedTo != 700 || back.Rev != 0 || back.KSN != "" {
		t.Fatalf("RefundedTo alone: back %+v: %v", back, err)
	}
}
