package pinblock

import (
	"bytes"
	"crypto/aes"
	"crypto/des"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/hsm/internal/testvec"
)

const vectors = "../../testdata/vectors/crypto.json"

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFormat0PublishedVectors(t *testing.T) {
	for _, v := range testvec.Load(t, vectors, "iso9564_format0_clear") {
		t.Run(v.Label(), func(t *testing.T) {
			pin := []byte(v.Str(t, "pin"))
			pan := v.Str(t, "pan")
			got, err := Encode(Format0, pin, pan, nil)
			if err != nil {
				t.Fatal(err)
			}
			if testvec.Upper(got) != v.Str(t, "expected") {
				t.Fatalf("format 0 block = %X, want %s", got, v.Str(t, "expected"))
			}
			back, err := Decode(Format0, got, pan)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back, pin) {
				t.Fatalf("decoded PIN differs")
			}
		})
	}
}

// ANSI X9.24-3:2017 supplement test vectors, "Calculation of AES PIN Block Format 4"
// (as reproduced in openemv/pinblock tests/pinblock_format4_test.c): PIN 1234 gives
// the PIN field 441234AAAAAAAAAA followed by random bytes, and PAN 4111111111111111
// gives the PAN field 44111111111111111000000000000000. The short-PAN case (123456789)
// is the same file's hand-made example.
func TestFormat4FieldsPublished(t *testing.T) {
	f, err := Encode(Format4, []byte("1234"), "", bytes.NewReader(bytes.Repeat([]byte{0x5C}, 16)))
	if err != nil {
		t.Fatal(err)
	}
	if got := testvec.Upper(f[:8]); got != "441234AAAAAAAAAA" {
		t.Fatalf("format 4 PIN field = %s, want 441234AAAAAAAAAA", got)
	}
	if !bytes.Equal(f[8:], bytes.Repeat([]byte{0x5C}, 8)) {
		t.Fatalf("format 4 random half = %X, want the reader's bytes", f[8:])
	}
	for pan, want := range map[string]string{
		"4111111111111111": "44111111111111111000000000000000",
		"4111111111111":    "14111111111111000000000000000000",
		"123456789":        "00001234567890000000000000000000",
		"123456789012":     "01234567890120000000000000000000",
	} {
		p, err := PANField(pan)
		if err != nil {
			t.Fatal(err)
		}
		if got := testvec.Upper(p[:]); got != want {
			t.Errorf("PAN field of %s = %s, want %s", pan, got, want)
		}
	}
	f5, err := Encode(Format4, []byte("12345"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := testvec.Upper(f5[:8]); got != "4512345AAAAAAAAA" {
		t.Fatalf("odd-length format 4 PIN field = %s", got)
	}
}

func TestFormat4EncipherStructure(t *testing.T) {
	key := mustHex(t, "000102030405060708090A0B0C0D0E0F")
	c, _ := aes.NewCipher(key)
	rnd := bytes.NewReader(bytes.Repeat([]byte{0x11}, 16))
	pan := "4111111111111111"
	blk, err := Encrypt(c, Format4, []byte("1234"), pan, rnd)
	if err != nil {
		t.Fatal(err)
	}
	// Recompute E(K, E(K, pinField) XOR panField) by hand.
	pf, _ := Encode(Format4, []byte("1234"), "", bytes.NewReader(bytes.Repeat([]byte{0x11}, 16)))
	pa, _ := PANField(pan)
	want := make([]byte, 16)
	c.Encrypt(want, pf)
	for i := range want {
		want[i] ^= pa[i]
	}
	c.Encrypt(want, want)
	if !bytes.Equal(blk, want) {
		t.Fatalf("format 4 block %X, want %X", blk, want)
	}
	pin, err := Decrypt(c, Format4, blk, pan)
	if err != nil || string(pin) != "1234" {
		t.Fatalf("decrypt: %q %v", pin, err)
	}
	// Bound to the PAN: another PAN gives a fill/control error, not a PIN.
	if _, err := Decrypt(c, Format4, blk, "4111111111111112"); err == nil {
		t.Fatal("format 4 block decoded under another PAN")
	}
}

func TestRoundTripAllFormatsAndLengths(t *testing.T) {
	tdes, _ := des.NewTripleDESCipher(mustHex(t, "0123456789ABCDEFFEDCBA987654321089ABCDEF01234567"))
	a, _ := aes.NewCipher(mustHex(t, "2B7E151628AED2A6ABF7158809CF4F3C"))
	pans := []string{"4761739001010119", "4012345678909", "1234567890123456789", "12345678"}
	for _, f := range []Format{Format0, Format1, Format3, Format4} {
		c := tdes
		if f == Format4 {
			c = a
		}
		for l := 4; l <= 12; l++ {
			pin := []byte("987654321098"[:l])
			for _, pan := range pans {
				blk, err := Encrypt(c, f, pin, pan, nil)
				if err != nil {
					t.Fatalf("%s len %d pan %s: %v", f, l, pan, err)
				}
				if len(blk) != f.BlockSize() {
					t.Fatalf("%s block size %d", f, len(blk))
				}
				got, err := Decrypt(c, f, blk, pan)
				if err != nil {
					t.Fatalf("%s len %d: %v", f, l, err)
				}
				if !bytes.Equal(got, pin) {
					t.Fatalf("%s len %d: PIN differs after round trip", f, l)
				}
			}
		}
	}
}

// Formats 1 and 3 must have random fills of the right alphabet; format 3 must use
// every value A-F; two encodings of one PIN must differ.
func TestRandomFillStructure(t *testing.T) {
	pan := "4761739001010119"
	panF, _ := panField8(pan)
	seen3 := map[byte]int{}
	seen1 := map[byte]int{}
	distinct := map[string]bool{}
	for i := 0; i < 500; i++ {
		b3, err := Encode(Format3, []byte("1234"), pan, nil)
		if err != nil {
			t.Fatal(err)
		}
		var clear [8]byte
		for j := range clear {
			clear[j] = b3[j] ^ panF[j]
		}
		if clear[0] != 0x34 || clear[1] != 0x12 || clear[2] != 0x34 {
			t.Fatalf("format 3 head %X", clear[:3])
		}
		for j := 6; j < 16; j++ {
			n := clear[j/2] >> 4
			if j%2 == 1 {
				n = clear[j/2] & 0xF
			}
			if n < 0xA {
				t.Fatalf("format 3 fill nibble %X not in A-F", n)
			}
			seen3[n]++
		}
		distinct[hex.EncodeToString(b3)] = true
		b1, err := Encode(Format1, []byte("1234"), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if b1[0] != 0x14 || b1[1] != 0x12 || b1[2] != 0x34 {
			t.Fatalf("format 1 head %X", b1[:3])
		}
		for j := 6; j < 16; j++ {
			n := b1[j/2] >> 4
			if j%2 == 1 {
				n = b1[j/2] & 0xF
			}
			seen1[n]++
		}
	}
	if len(seen3) != 6 {
		t.Fatalf("format 3 fill used %d of the 6 values A-F: %v", len(seen3), seen3)
	}
	if len(seen1) != 16 {
		t.Fatalf("format 1 fill used %d of 16 nibble values", len(seen1))
	}
	if len(distinct) < 490 {
		t.Fatalf("format 3 blocks repeat: only %d distinct of 500", len(distinct))
	}
}

func TestDeterministicFillFromReader(t *testing.T) {
	r := bytes.NewReader(bytes.Repeat([]byte{0x01, 0x23}, 8))
	b, err := Encode(Format1, []byte("1234"), "", r)
	if err != nil {
		t.Fatal(err)
	}
	// Random bytes were 01 23 01 23 ...; nibble i of them fills nibble i.
	// Fill nibble i (i >= 6) is nibble i of the random bytes 0123 0123 ...
	if got := testvec.Upper(b); got != "1412342301230123" {
		t.Fatalf("format 1 with fixed fill = %s, want 1412342301230123", got)
	}
	if _, err := Encode(Format3, []byte("1234"), "4761739001010119", bytes.NewReader(nil)); err == nil {
		t.Fatal("encode with an empty random reader succeeded")
	}
}

func TestStrictDecodeRejects(t *testing.T) {
	pan := "4012345678909"
	good := mustHex(t, "041274EDCBA9876F") // PIN 1234, format 0
	panF, _ := panField8(pan)
	mk := func(clear string) []byte {
		c := mustHex(t, clear)
		for i := range c {
			c[i] ^= panF[i]
		}
		return c
	}
	if pin, err := Decode(Format0, good, pan); err != nil || string(pin) != "1234" {
		t.Fatalf("good block: %q %v", pin, err)
	}
	cases := []struct {
		name  string
		f     Format
		block []byte
		want  error
	}{
		{"control", Format0, mk("141234FFFFFFFFFF"), ErrControl},
		{"short", Format0, mk("031234FFFFFFFFFF"), ErrPINLength},
		{"long", Format0, mk("0D1234FFFFFFFFFF"), ErrPINLength},
		{"non-digit", Format0, mk("04123AFFFFFFFFFF"), ErrPINDigits},
		{"fill", Format0, mk("041234FFFFFFFFFE"), ErrFill},
		{"format3 fill below A", Format3, mk("341234ABCDEF9BCD"), ErrFill},
		{"format3 as format0", Format0, mk("341234ABCDEFABCD"), ErrControl},
		{"format4 fill", Format4, mustHex(t, "441234AAAAAAAAAB0000000000000000"), ErrFill},
		{"format4 size", Format4, mustHex(t, "441234AAAAAAAAAA"), ErrBlockSize},
		{"format1 digits", Format1, mustHex(t, "14123F0000000000"), ErrPINDigits},
	}
	for _, c := range cases {
		_, err := Decode(c.f, c.block, pan)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), pan) {
			t.Errorf("%s: error leaks the PAN: %v", c.name, err)
		}
	}
	// 12-digit PINs decode (moov's pinblock mishandles 10-12 digits).
	b12, err := Encode(Format0, []byte("123456789012"), pan, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := testvec.Upper(b12); got != testvec.Upper(mk("0C123456789012FF")) {
		t.Fatalf("12-digit format 0 = %s", got)
	}
	if p, err := Decode(Format0, b12, pan); err != nil || string(p) != "123456789012" {
		t.Fatalf("12-digit decode: %v", err)
	}
}

func TestEncodeRejects(t *testing.T) {
	for _, pin := range []string{"", "123", "1234567890123", "12a4", "12 4"} {
		if _, err := Encode(Format0, []byte(pin), "4761739001010119", nil); err == nil {
			t.Errorf("PIN %q accepted", pin)
		}
	}
	for _, pan := range []string{"", "1234567", "12345678901234567890", "47617390010101X9"} {
		_, err := Encode(Format0, []byte("1234"), pan, nil)
		if !errors.Is(err, ErrPAN) {
			t.Errorf("PAN %q: err = %v", pan, err)
		}
	}
	_, err := Encode(Format0, []byte("1234"), "4761739001010119X", nil)
	if err == nil || strings.Contains(err.Error(), "4761739001010119") {
		t.Fatalf("bad-PAN error must mask the PAN: %v", err)
	}
	if _, err := Encode(Format(2), []byte("1234"), "4761739001010119", nil); !errors.Is(err, ErrFormat) {
		t.Fatalf("format 2: %v", err)
	}
	a, _ := aes.NewCipher(make([]byte, 16))
	if _, err := Encrypt(a, Format0, []byte("1234"), "4761739001010119", nil); !errors.Is(err, ErrBlockSize) {
		t.Fatalf("format 0 under AES: %v", err)
	}
}

func TestParseFormat(t *testing.T) {
	for s, want := range map[string]Format{"0": Format0, "ISO-1": Format1, "iso3": Format3, " 4 ": Format4} {
		got, err := ParseFormat(s)
		if err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %v, %v", s, got, err)
		}
	}
	for _, s := range []string{"2", "5", "-1", "x", ""} {
		if _, err := ParseFormat(s); err == nil {
			t.Errorf("ParseFormat(%q) accepted", s)
		}
	}
	var f Format
	if err := f.UnmarshalText([]byte("3")); err != nil || f != Format3 {
		t.Fatal(err)
	}
	if b, _ := Format4.MarshalText(); string(b) != "4" {
		t.Fatal(string(b))
	}
}

func TestAppendDecryptDoesNotLeakScratch(t *testing.T) {
	c, _ := des.NewCipher(mustHex(t, "0123456789ABCDEF"))
	blk, _ := Encrypt(c, Format0, []byte("1234"), "4012345678909", nil)
	buf := make([]byte, 0, 32)
	pin, err := AppendDecrypt(buf, c, Format0, blk, "4012345678909")
	if err != nil || string(pin) != "1234" {
		t.Fatalf("%q %v", pin, err)
	}
	// Bytes past the PIN in the scratch area must be zero (the clear block is wiped).
	tail := pin[len(pin):cap(pin)]
	if !bytes.Equal(tail[:8], make([]byte, 8)) {
		t.Fatalf("clear block left in scratch: %X", tail[:8])
	}
	Wipe(pin)
	if !bytes.Equal(pin, []byte{0, 0, 0, 0}) {
		t.Fatal("Wipe left bytes")
	}
}

func TestAppendDecryptAllocs(t *testing.T) {
	c, _ := des.NewTripleDESCipher(mustHex(t, "0123456789ABCDEFFEDCBA987654321089ABCDEF01234567"))
	blk, _ := Encrypt(c, Format0, []byte("1234"), "4012345678909", nil)
	buf := make([]byte, 0, 32)
	allocs := testing.AllocsPerRun(100, func() {
		p, err := AppendDecrypt(buf, c, Format0, blk, "4012345678909")
		if err != nil || len(p) != 4 {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Fatalf("AppendDecrypt allocates %.1f times per call", allocs)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(byte(0), mustHex(f, "041274EDCBA9876F"), "4012345678909")
	f.Add(byte(3), mustHex(f, "341234ABCDEFABCD"), "4761739001010119")
	f.Add(byte(1), mustHex(f, "1412340123456789"), "")
	f.Add(byte(4), mustHex(f, "441234AAAAAAAAAA0000000000000000"), "4111111111111111")
	f.Add(byte(9), []byte{}, "1")
	f.Fuzz(func(t *testing.T, fb byte, block []byte, pan string) {
		f := Format(fb % 5)
		pin, err := Decode(f, block, pan)
		if err != nil {
			if pin != nil && len(pin) != 0 {
				t.Fatalf("error with a PIN returned")
			}
			return
		}
		if CheckPIN(pin) != nil {
			t.Fatalf("decoder returned an invalid PIN")
		}
		// Whatever decodes must re-encode to the same block (formats without random fill)
		// or at least decode again identically.
		if f == Format0 {
			again, err := Encode(f, pin, pan, nil)
			if err != nil || !bytes.Equal(again, block) {
				t.Fatalf("format 0 decode/encode not inverse: %v", err)
			}
		}
	})
}
