package message

import (
	"errors"
	"strings"
	"testing"
)

func qrRequest(t *testing.T, proc, pan, de48 string) ([]byte, error) {
	t.Helper()
	b := NewBuilder(DialectASCII, "0200").Set(2, pan).Set(3, proc).Set(4, "000000001000").Set(7, "1121110613").Set(11, "000001").
		Set(22, "031").Set(41, "T0000001").Set(42, "000000000000001").Set(48, de48).Set(49, "156")
	if proc != PCPurchase {
		b.Set(37, "000000000042")
	}
	return b.Bytes(nil)
}

// TestDecodeQRCode: a purchase with DE 48 QC instead of a card decodes with the code
// on the request; a refund of a QR payment carries QC empty and no card; a code with
// a card, a bad code or a code in a refund are format errors that never echo the code.
func TestDecodeQRCode(t *testing.T) {
	const code = "134567890123456789"
	raw, err := qrRequest(t, PCPurchase, "", "QC018"+code)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Decode(raw, DialectASCII)
	if err != nil {
		t.Fatal(err)
	}
	if !r.QR || r.QRCode != code || r.PAN != "" {
		t.Fatalf("QR %v code %q PAN %q", r.QR, r.QRCode, r.PAN)
	}
	raw, _ = qrRequest(t, PCRefund, "", "QC000")
	if r, err = Decode(raw, DialectASCII); err != nil || !r.QR || r.QRCode != "" {
		t.Fatalf("refund: %+v %v", r, err)
	}
	for name, c := range map[string][2]string{
		"card and code":  {"4761739001010119", "QC018" + code},
		"letters":        {"", "QC01813456789012345678X"},
		"too short":      {"", "QC0071234567"},
		"no card at all": {"", "DI005SN-01"},
	} {
		raw, err := qrRequest(t, PCPurchase, c[0], c[1])
		if err != nil {
			t.Fatal(err)
		}
		_, err = Decode(raw, DialectASCII)
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Fatalf("%s: accepted (%v)", name, err)
		}
		if strings.Contains(err.Error(), code) {
			t.Fatalf("%s: error shows the code: %v", name, err)
		}
	}
	raw, _ = qrRequest(t, PCRefund, "", "QC018"+code)
	if _, err := Decode(raw, DialectASCII); err == nil {
		t.Fatal("a refund with a payment code was accepted")
	}
}
