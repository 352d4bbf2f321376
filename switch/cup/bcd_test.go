package cup

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/moov-io/iso8583/encoding"
	"github.com/moov-io/iso8583/prefix"
)

// errString is err's message, or "" for nil.
func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestBCDMatchesMoov: BCD, LBCD and the BCDLength prefixers give what moov's
// encoding.BCD, encoding.LBCD and prefix.BCD give (bytes, counts, error messages),
// for digit strings of every length up to 40, strings with a non-digit, and random
// bytes decoded at every length, enough or too few of them. One difference is wanted:
// a 3-digit length whose pad digit is 1-9 (0x9012), which moov reads as 012, ours
// refuses (the fields after it would shift).
func TestBCDMatchesMoov(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	encoders := []struct {
		name      string
		ours, ref encoding.Encoder
	}{{"BCD", BCD, encoding.BCD}, {"LBCD", LBCD, encoding.LBCD}}
	digits := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + rng.IntN(10))
		}
		return b
	}
	var inputs [][]byte
	for n := 0; n <= 40; n++ {
		inputs = append(inputs, digits(n))
		if n > 0 {
			bad := digits(n)
			bad[rng.IntN(n)] = "A=F x\x00"[rng.IntN(6)]
			inputs = append(inputs, bad)
		}
	}
	for _, e := range encoders {
		for _, in := range inputs {
			// Each gets its own copy: an encoder must not write into its input.
			got, gerr := e.ours.Encode(bytes.Clone(in))
			want, werr := e.ref.Encode(bytes.Clone(in))
			if !bytes.Equal(got, want) || errString(gerr) != errString(werr) {
				t.Errorf("%s.Encode(%q) = %X, %v; moov's: %X, %v", e.name, in, got, gerr, want, werr)
			}
		}
		for range 2000 {
			src := make([]byte, rng.IntN(24))
			for i := range src {
				src[i] = byte(rng.IntN(256))
				if rng.IntN(4) > 0 { // mostly valid digit pairs
					src[i] = byte(rng.IntN(10)<<4 | rng.IntN(10))
				}
			}
			length := rng.IntN(2*len(src)+4) - 1 // -1 and too long included
			got, gn, gerr := e.ours.Decode(src, length)
			want, wn, werr := e.ref.Decode(src, length)
			if werr == nil && bytes.IndexByte(want, 0) >= 0 {
				// The one intended difference: a last nibble F where a digit
				// belongs, which moov reads as a zero byte, is refused.
				if gerr == nil || !strings.Contains(gerr.Error(), "ends in the nibble F") {
					t.Errorf("%s.Decode(%X, %d) = %q, %v; want the nibble F refused (moov's: %q)", e.name, src, length, got, gerr, want)
				}
				continue
			}
			if !bytes.Equal(got, want) || gn != wn || errString(gerr) != errString(werr) {
				t.Errorf("%s.Decode(%X, %d) = %q, %d, %v; moov's: %q, %d, %v", e.name, src, length, got, gn, gerr, want, wn, werr)
			}
		}
	}
	prefixers := []struct {
		name      string
		ours, ref prefix.Prefixer
	}{{"LL", BCDLength.LL, prefix.BCD.LL}, {"LLL", BCDLength.LLL, prefix.BCD.LLL}, {"Fixed", BCDLength.Fixed, prefix.BCD.Fixed}}
	for _, p := range prefixers {
		if p.ours.Inspect() != p.ref.Inspect() {
			t.Errorf("%s.Inspect() = %q; moov's: %q", p.name, p.ours.Inspect(), p.ref.Inspect())
		}
		for _, c := range [][2]int{{19, 0}, {19, 7}, {19, 19}, {19, 20}, {99, 99}, {104, 100}, {999, 999}, {999, 1000}, {1000, 1000}} {
			got, gerr := p.ours.EncodeLength(c[0], c[1])
			want, werr := p.ref.EncodeLength(c[0], c[1])
			if !bytes.Equal(got, want) || errString(gerr) != errString(werr) {
				t.Errorf("%s.EncodeLength(%d, %d) = %X, %v; moov's: %X, %v", p.name, c[0], c[1], got, gerr, want, werr)
			}
		}
		for _, data := range [][]byte{nil, {0x19}, {0x00, 0x37}, {0x01, 0x04}, {0x09, 0x99}, {0x1A}, {0xF0, 0x01}, {0x99, 0x99}, {0x90, 0x12}} {
			for _, maxLen := range []int{19, 104, 999} {
				got, gn, gerr := p.ours.DecodeLength(maxLen, data)
				if p.name == "LLL" && len(data) == 2 && data[0]>>4 != 0 && data[0]>>4 <= 9 {
					// moov skips the pad digit (0x9999 is 999): ours refuses it.
					if gerr == nil || !strings.Contains(gerr.Error(), "pad digit") {
						t.Errorf("LLL.DecodeLength(%d, %X) = %d, %v; want the pad digit refused", maxLen, data, got, gerr)
					}
					continue
				}
				want, wn, werr := p.ref.DecodeLength(maxLen, data)
				if got != want || gn != wn || errString(gerr) != errString(werr) {
					t.Errorf("%s.DecodeLength(%d, %X) = %d, %d, %v; moov's: %d, %d, %v", p.name, maxLen, data, got, gn, gerr, want, wn, werr)
				}
			}
		}
	}
}

// BenchmarkDecodeEncode decodes a captured cup sale and encodes it again, as the
// front end does with each request and its answer (docs/performance.md Part 28).
func BenchmarkDecodeEncode(b *testing.B) {
	for _, name := range []string{"codetd-5053461-sale-0200.hex", "wearapay-ic-sale-0200.hex"} {
		body := readCapture(b, name)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				fr, err := Decode(body)
				if err != nil {
					b.Fatal(err)
				}
				var mac MACFunc
				if fr.Has(64) {
					m := fr.Bytes(64)
					mac = func([]byte) ([]byte, error) { return m, nil }
				}
				if _, err := fr.Encode(mac); err != nil {
					b.Fatal(fmt.Errorf("%s: %w", name, err))
				}
			}
		})
	}
}
