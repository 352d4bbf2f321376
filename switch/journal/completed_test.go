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
