package message

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moov-io/iso8583"
)

func purchase(t testing.TB, d Dialect, extra func(m *iso8583.Message)) []byte {
	t.Helper()
	m := iso8583.NewMessage(d.Spec())
	m.MTI("0200")
	for id, v := range map[int]string{2: "4761739001010119", 3: "000000", 4: "000000001000", 7: "1121110613",
		11: "000001", 12: "110613", 13: "1121", 14: "2912", 22: "051", 25: "00", 41: "T0000001",
		42: "000000000000001", 48: "DI011SN-T0000001GL02039.904200,116.407400", 49: "156"} {
		if err := m.Field(id, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.BinaryField(52, []byte{1, 2, 3, 4, 5, 6, 7, 8}); err != nil {
		t.Fatal(err)
	}
	if extra != nil {
		extra(m)
	}
	raw, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestDecodeBothDialects(t *testing.T) {
	for _, d := range []Dialect{DialectASCII, DialectASCIIBinaryBitmap} {
		raw := purchase(t, d, nil)
		if d == DialectASCII && !bytes.HasPrefix(raw, []byte("0200723C")) {
			t.Fatalf("ascii bitmap not 16 upper-case hex: %q", raw[:20])
		}
		if d == DialectASCIIBinaryBitmap && raw[4] != 0x72 {
			t.Fatalf("binary bitmap first byte %x", raw[4])
		}
		r, err := Decode(raw, d)
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		if r.PAN != "4761739001010119" || r.Amount != 1000 || r.STAN != "000001" || r.TID != "T0000001" ||
			r.TLV.Device != "SN-T0000001" || r.TLV.Geo != "39.904200,116.407400" || !r.HasPIN ||
			r.PINBlock != [8]byte{1, 2, 3, 4, 5, 6, 7, 8} || r.ProcCode != "000000" {
			t.Fatalf("%s: decoded %+v", d, r)
		}
		if r.MaskedPAN() != "476173******0119" {
			t.Fatalf("mask %s", r.MaskedPAN())
		}
	}
}

func TestSecondaryBitmapEmptyAccepted(t *testing.T) {
	raw := purchase(t, DialectASCII, nil)
	// Set bit 1 and insert an all-zero secondary bitmap.
	bm := []byte(string(raw[4:20]))
	bm[0] = "0123456789ABCDEF"[strings.IndexByte("0123456789ABCDEF", bm[0])|8]
	withSec := append(append(append([]byte{}, raw[:4]...), bm...), []byte("0000000000000000")...)
	withSec = append(withSec, raw[20:]...)
	r, err := Decode(withSec, DialectASCII)
	if err != nil {
		t.Fatal(err)
	}
	if r.PAN != "4761739001010119" {
		t.Fatal(r.PAN)
	}
}

func TestMACPlacementAndInput(t *testing.T) {
	req, err := Decode(purchase(t, DialectASCII, nil), DialectASCII)
	if err != nil {
		t.Fatal(err)
	}
	var seen []byte
	raw, err := NewResponseBuilder(req).Set(39, "00").Bytes(func(data []byte) ([8]byte, error) {
		seen = append([]byte(nil), data...)
		return [8]byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(raw, []byte("DEADBEEF01020304")) || !bytes.Equal(seen, raw[:len(raw)-16]) {
		t.Fatalf("MAC not last / wrong input: %s", raw)
	}
	// Decode our own response as a request-shaped message to check MAC field detection.
	back := iso8583.NewMessage(SpecASCII)
	if err := back.Unpack(raw); err != nil {
		t.Fatal(err)
	}
	if back.GetField(64) == nil {
		t.Fatal("no DE 64")
	}
	// With DE 70 the MAC moves to DE 128.
	raw, err = NewResponseBuilder(req).Set(39, "00").Set(70, "301").Bytes(func([]byte) ([8]byte, error) { return [8]byte{9}, nil })
	if err != nil {
		t.Fatal(err)
	}
	back = iso8583.NewMessage(SpecASCII)
	if err := back.Unpack(raw); err != nil {
		t.Fatal(err)
	}
	if back.GetField(128) == nil || back.GetField(64) != nil {
		t.Fatal("MAC not in DE 128")
	}
}

func TestMalformed(t *testing.T) {
	good := purchase(t, DialectASCII, nil)
	cases := []struct {
		name       string
		raw        []byte
		answerable bool
	}{
		{"empty", nil, false},
		{"garbage", []byte("hello, world"), false},
		{"non-hex bitmap", append([]byte("0200ZZ3C048000C19000"), good[20:]...), false},
		{"truncated last field", good[:len(good)-5], true},
		{"trailing bytes", append(append([]byte{}, good...), "XYZ"...), true},
		{"over-long LLVAR PAN", append([]byte(string(good[:20])+"99"), good[22:]...), false},
		{"bad amount", bytes.Replace(good, []byte("000000001000"), []byte("00000000100X"), 1), true},
		{"bad TLV", bytes.Replace(good, []byte("DI011"), []byte("DI099"), 1), true},
		// A byte moov-io cannot decode stops its unpacker, but the fields after it have
		// known places: MTI, DE 11 and DE 41 are readable, so the switch answers 30.
		{"0xFF in DE 4", bytes.Replace(good, []byte("000000001000"), []byte("0000000010\xff0"), 1), true},
		{"0xFF in the PAN", bytes.Replace(good, []byte("4761739001010119"), []byte("47617390010\xff0119"), 1), true},
		{"0xFF in DE 41", bytes.Replace(good, []byte("T0000001"), []byte("T00\xff0001"), 1), false},
		{"0xFF in DE 11", bytes.Replace(good, []byte("1121110613000001"), []byte("11211106130\xff0001"), 1), false},
		// A length prefix wrong within its maximum shifts every later field: moov
		// reads on until DE 48 fails, and the DE 11 and 41 it read are other bytes
		// (they were echoed in a 30 the terminal could not match).
		{"DE 2 prefix 18 for 16 digits", bytes.Replace(good, []byte("164761739001010119"), []byte("184761739001010119"), 1), false},
		{"DE 2 prefix 14 for 16 digits", bytes.Replace(good, []byte("164761739001010119"), []byte("144761739001010119"), 1), false},
	}
	for _, c := range cases {
		_, err := Decode(c.raw, DialectASCII)
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Fatalf("%s: want FormatError, got %v", c.name, err)
		}
		if fe.Answerable() != c.answerable {
			t.Fatalf("%s: answerable=%v want %v (%v; mti=%q stan=%q tid=%q)", c.name, fe.Answerable(), c.answerable, fe, fe.MTI, fe.STAN, fe.TID)
		}
		if fe.Answerable() {
			m := NewFormatErrorResponse(fe, DialectASCII)
			raw, err := m.Pack()
			if err != nil {
				t.Fatalf("%s: 30 response does not pack: %v", c.name, err)
			}
			if !bytes.Contains(raw, []byte("T0000001")) || !bytes.Contains(raw, []byte("000001")) {
				t.Fatalf("%s: %s", c.name, raw)
			}
			if bytes.IndexByte(raw, 0xff) >= 0 {
				t.Fatalf("%s: the 30 answer echoes the bad byte: %q", c.name, raw)
			}
		}
	}
	// The echo keeps the fields after the bad one that are well formed.
	_, err := Decode(bytes.Replace(good, []byte("000000001000"), []byte("0000000010\xff0"), 1), DialectASCII)
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("0xFF in DE 4: want a FormatError, got %v", err)
	}
	if fe.Field != 4 || fe.Echo[42] != "000000000000001" || fe.Echo[49] != "156" || fe.Echo[4] != "" {
		t.Fatalf("0xFF in DE 4: %v, field %d, echo %v", err, fe.Field, fe.Echo)
	}
}

func TestTLV(t *testing.T) {
	tl, err := ParseTLV("DI003abcXX002zzIF000AT0131700000000:OK")
	if err != nil {
		t.Fatal(err)
	}
	if tl.Device != "abc" || tl.Has&HasIntegrity == 0 || tl.Integrity != "" || tl.Attestation != "1700000000:OK" {
		t.Fatalf("%+v", tl)
	}
	// The bench's ground-truth label (LB) is a known tag.
	if tl, err := ParseTLV("DI003abcLB012card-testing"); err != nil || tl.Label != "card-testing" || tl.Has&HasLabel == 0 {
		t.Fatalf("LB: %+v %v", tl, err)
	}
	for _, bad := range []string{"DI", "DI00", "DI0x1a", "DI005abc", "DI001aDI001b", "LB001aLB001b"} {
		if _, err := ParseTLV(bad); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
	a, err := ParseAttestation("1700000000:FAIL")
	if err != nil || a.OK || a.Unix != 1700000000 {
		t.Fatal(a, err)
	}
	if _, err := ParseGeo("91,0"); err == nil {
		t.Fatal("lat 91 accepted")
	}
	// Not numbers, though strconv.ParseFloat reads them; NaN passes every range test.
	for _, bad := range []string{"NaN,NaN", "nan,0", "0,NaN", "Inf,0", "0,-Infinity", "0x1p4,0", "1_0,0", ",", "39.9,", "+Inf,+Inf"} {
		if g, err := ParseGeo(bad); err == nil {
			t.Errorf("GL %q accepted as %+v", bad, g)
		}
	}
	for _, good := range []string{"39.904200,116.407400", " -33.8688 , 151.2093 ", "1e-05,-1E-5", "+0,-0", "90,-180"} {
		if _, err := ParseGeo(good); err != nil {
			t.Errorf("GL %q refused: %v", good, err)
		}
	}
}

func TestResponseMTI(t *testing.T) {
	for in, want := range map[string]string{"0200": "0210", "0400": "0410", "0420": "0430", "0800": "0810", "0210": "", "x": ""} {
		if got := ResponseMTI(in); got != want {
			t.Fatalf("%s: %s want %s", in, got, want)
		}
	}
}

// FuzzDecode: no input may panic or hang the decoder, and every accepted message must
// re-pack; every answerable error must produce a packable 30 response.
func FuzzDecode(f *testing.F) {
	f.Add(purchase(f, DialectASCII, nil), false)
	f.Add(purchase(f, DialectASCIIBinaryBitmap, nil), true)
	f.Add([]byte("0800822000000000000004000000000000001121110613000001301"), false)
	f.Add([]byte{}, false)
	f.Add(withBit65(f, DialectASCII), false)
	f.Add(withBit65(f, DialectASCIIBinaryBitmap), true)
	f.Fuzz(func(t *testing.T, raw []byte, binary bool) {
		d := DialectASCII
		if binary {
			d = DialectASCIIBinaryBitmap
		}
		r, err := Decode(raw, d)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("not a FormatError: %v", err)
			}
			if fe.Answerable() {
				if _, err := NewFormatErrorResponse(fe, d).Pack(); err != nil {
					t.Fatalf("30 response does not pack: %v", err)
				}
			}
			return
		}
		if r.TID == "" || len(r.STAN) != 6 {
			t.Fatalf("accepted without TID/STAN: %+v", r)
		}
		// The fast path must never accept what moov-io's unpacker refuses.
		if err := unpack(iso8583.NewMessage(d.Spec()), raw); err != nil {
			t.Fatalf("fast decode accepted a message moov refuses: %v", err)
		}
	})
}

// withBit65 is a purchase with a secondary bitmap (DE 70) whose first bit, the one that
// announces a third bitmap, is set.
func withBit65(t testing.TB, d Dialect) []byte {
	raw := purchase(t, d, func(m *iso8583.Message) { m.Field(70, "301") })
	if d == DialectASCIIBinaryBitmap {
		raw[4+8] |= 0x80
		return raw
	}
	v, err := strconv.ParseUint(string(raw[4+16:4+17]), 16, 8)
	if err != nil {
		t.Fatal(err)
	}
	raw[4+16] = "0123456789ABCDEF"[v|8]
	return raw
}

// A third bitmap (bit 65) is in neither ASCII dialect: the fast path once skipped the
// bit and accepted what moov-io's unpacker refuses (found by FuzzDecode).
func TestThirdBitmapRefused(t *testing.T) {
	for _, d := range []Dialect{DialectASCII, DialectASCIIBinaryBitmap} {
		raw := withBit65(t, d)
		if _, err := Scan(raw, d, func(int, []byte) {}); err == nil || !strings.Contains(err.Error(), "bit 65") {
			t.Errorf("%s: Scan: %v, want the bit 65 refused", d, err)
		}
		_, err := Decode(raw, d)
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Fatalf("%s: Decode: %v, want a FormatError", d, err)
		}
		// The 30 names the request. In the ASCII dialect moov-io reads the bit as a
		// field of its own, and every field after it shifted: until 7 December 2026
		// the 30 echoed other bytes as its DE 11 and DE 41. Now those are read by the
		// lenient walk, which ends where the message does.
		if !fe.Answerable() || fe.STAN != "000001" || fe.TID != "T0000001" || fe.Echo[42] != "000000000000001" {
			t.Errorf("%s: %v answerable %v with STAN %q TID %q DE 42 %q; want a 30 naming 000001, T0000001 and 000000000000001",
				d, fe, fe.Answerable(), fe.STAN, fe.TID, fe.Echo[42])
		}
	}
}

func TestScanAgreesWithDecode(t *testing.T) {
	for _, d := range []Dialect{DialectASCII, DialectASCIIBinaryBitmap} {
		raw := purchase(t, d, func(m *iso8583.Message) { m.Field(70, "301") })
		got := map[int]string{}
		mti, err := Scan(raw, d, func(id int, v []byte) { got[id] = string(v) })
		if err != nil || string(mti) != "0200" {
			t.Fatal(mti, err)
		}
		if got[11] != "000001" || got[41] != "T0000001" || got[52] != "0102030405060708" || got[70] != "301" || got[2] != "4761739001010119" {
			t.Fatalf("%s: %v", d, got)
		}
		if _, err := Scan(raw[:len(raw)-1], d, func(int, []byte) {}); err == nil {
			t.Fatal("truncated accepted")
		}
	}
}

func BenchmarkScan(b *testing.B) {
	raw := purchase(b, DialectASCII, nil)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		Scan(raw, DialectASCII, func(int, []byte) {})
	}
}

func BenchmarkDecode(b *testing.B) {
	raw := purchase(b, DialectASCII, nil)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Decode(raw, DialectASCII); err != nil {
			b.Fatal(err)
		}
	}
}

// TestParseDE7MatchesTimeParse checks the hand-written DE 7 parser against the
// straightforward one it replaced (time.Parse for each candidate year) on every month
// and day, edge times and out-of-range values, around a leap year.
func TestParseDE7MatchesTimeParse(t *testing.T) {
	ref := func(s string, now time.Time) (time.Time, bool) {
		best := time.Time{}
		for _, y := range []int{now.Year() - 1, now.Year(), now.Year() + 1} {
			tm, err := time.Parse("20060102150405", fmt.Sprintf("%04d%s", y, s))
			if err != nil {
				continue
			}
			d, bd := tm.Sub(now), best.Sub(now)
			if d < 0 {
				d = -d
			}
			if bd < 0 {
				bd = -bd
			}
			if best.IsZero() || d < bd {
				best = tm
			}
		}
		return best, !best.IsZero()
	}
	nows := []time.Time{
		time.Date(2024, 2, 28, 23, 59, 59, 0, time.UTC),
		time.Date(2025, 12, 31, 23, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 1, 0, 30, 0, 0, time.UTC),
	}
	checked := 0
	for _, now := range nows {
		for mo := 0; mo <= 13; mo++ {
			for d := 0; d <= 32; d++ {
				for _, hms := range []string{"000000", "235959", "120000", "240000", "236000", "235960"} {
					s := fmt.Sprintf("%02d%02d%s", mo, d, hms)
					want, wok := ref(s, now)
					got, err := ParseDE7(s, now)
					if wok != (err == nil) || wok && !got.Equal(want) {
						t.Fatalf("ParseDE7(%q, %v) = %v, %v; want %v (valid %v)", s, now, got, err, want, wok)
					}
					checked++
				}
			}
		}
	}
	if checked < 8000 {
		t.Fatalf("only %d cases", checked)
	}
}

// TestValidAdditionalAmounts: DE 54 of ISO 8583:1987's layout, 20 characters an
// amount (account type n2, amount type n2, currency n3, sign C/D, amount n12), one
// to six of them; anything else is not.
func TestValidAdditionalAmounts(t *testing.T) {
	for s, want := range map[string]bool{
		"0002156C000001234567":                          true,
		"0002156D000001234567" + "0001156C000000000001": true,
		"":                     false,
		"0002156C00000123456":  false, // cut short
		"0002156X000001234567": false, // sign
		"00A2156C000001234567": false,
		"0002156C00000123456 ": false,
		strings.Repeat("0002156C000001234567", 7): false, // over DE 54's 120
	} {
		if got := ValidAdditionalAmounts(s); got != want {
			t.Errorf("ValidAdditionalAmounts(%q) = %v, want %v", s, got, want)
		}
	}
}
