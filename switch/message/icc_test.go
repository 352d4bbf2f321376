package message

import (
	"strings"
	"testing"
)

// iccSample is the ICC data of an offline approval as a UnionPay terminal uploads it:
// the cryptogram's objects, and the card's track 2 equivalent (57), PAN (5A) and
// cardholder name (5F20), which an advice must not carry.
const iccSample = "9F2608" + "1122334455667788" +
	"9F2701" + "40" +
	"9F1007" + "06010A03A00000" +
	"5710" + "6212345678901234D25122010000000F" +
	"5A08" + "6212345678901234" +
	"5F2005" + "5A48414E47" +
	"9F3602" + "0012" +
	"9505" + "0000000000" +
	"9A03" + "261201" +
	"9C01" + "00" +
	"9F0206" + "000000004200" +
	"5F2A02" + "0156" +
	"8202" + "7C00" +
	"9F3704" + "A1B2C3D4"

// TestAdviceICC: the advice's ICC data keeps the objects the issuer needs for the
// card's cryptogram, in their order, and drops the track, PAN and name; ICC data that
// does not parse is an error naming where.
func TestAdviceICC(t *testing.T) {
	got, err := AdviceICC(strings.ToLower(iccSample))
	if err != nil {
		t.Fatal(err)
	}
	want := "9F26081122334455667788" + "9F270140" + "9F100706010A03A00000" + "9F36020012" + "95050000000000" +
		"9A03261201" + "9C0100" + "9F0206000000004200" + "5F2A020156" + "82027C00" + "9F3704A1B2C3D4"
	if got != want {
		t.Errorf("AdviceICC:\n got %s\nwant %s", got, want)
	}
	for _, leak := range []string{"6212345678901234", "5A48414E47"} {
		if strings.Contains(got, leak) {
			t.Errorf("advice ICC data carries %s", leak)
		}
	}
	if got, err := AdviceICC(""); err != nil || got != "" {
		t.Errorf("AdviceICC of nothing: %q, %v", got, err)
	}
	for _, bad := range []struct{ in, says string }{
		{"9F2608AABB", "runs past the end"},
		{"9F26", "length of tag 9F26"},
		{"9F", "tag at byte 0"},
		{"XYZ1", "not hex"},
		{"9F2684FFFFFFFF", "runs past the end"},
		{"9F2688FFFFFFFFFFFFFFFF", "tag 9F26"},
		{"9F270140" + "9F2603AA", "tag 9F26 at byte 4"},
	} {
		if _, err := AdviceICC(bad.in); err == nil || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("AdviceICC(%s): %v, want an error saying %q", bad.in, err, bad.says)
		}
	}
}

// TestCryptogramKind reads 9F27's two high bits.
func TestCryptogramKind(t *testing.T) {
	for _, c := range []struct {
		icc  string
		kind byte
		ok   bool
	}{
		{iccSample, CryptogramTC, true},
		{"9F270100", CryptogramAAC, true},
		{"9F270180", CryptogramARQC, true},
		{"9F270141", CryptogramTC, true}, // low bits: a reason code
		{"9F26021122", 0, false},
		{"", 0, false},
		{"9F27", 0, false},
	} {
		kind, ok := CryptogramKind(c.icc)
		if kind != c.kind || ok != c.ok {
			t.Errorf("CryptogramKind(%s) = %#x, %v; want %#x, %v", c.icc, kind, ok, c.kind, c.ok)
		}
	}
}

// BenchmarkAdviceICC is the cost an offline capture adds: its chip data filtered for
// the advice (and read again for 9F27).
func BenchmarkAdviceICC(b *testing.B) {
	for b.Loop() {
		if _, err := AdviceICC(iccSample); err != nil {
			b.Fatal(err)
		}
		if _, ok := CryptogramKind(iccSample); !ok {
			b.Fatal("no 9F27")
		}
	}
}
