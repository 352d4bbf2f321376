package cup

import (
	"bytes"
	"testing"
)

// FuzzCUPDecode feeds the decoder arbitrary bodies: it must never panic or hang, and
// whatever it accepts must encode again, to bytes that decode to the same message (a
// fixed point; the captures are re-encoded byte for byte by TestGoldenCaptures, while
// arbitrary input may carry pad nibbles other than 0, which are not kept).
func FuzzCUPDecode(f *testing.F) {
	sale := readCapture(f, "codetd-5053461-sale-0200.hex")
	f.Add(sale)
	f.Add(sale[:40])
	f.Add([]byte{0x60, 0, 3, 0, 0, 0x60, 0x31, 0, 0x31, 0, 0, 0x08, 0x00, 0, 0x20, 0, 0, 0, 0x80, 0, 0, 0x00, 0x00, 0x01, 'T', '0', '0', '0', '0', '0', '0', '1'})
	f.Fuzz(func(t *testing.T, body []byte) {
		fr, err := Decode(body)
		if err != nil {
			return
		}
		var macf MACFunc
		if fr.Has(64) {
			m := fr.Bytes(64)
			macf = func([]byte) ([]byte, error) { return m, nil }
		}
		again, err := fr.Encode(macf)
		if err != nil {
			t.Fatalf("decoded %X but cannot encode it again: %v", body, err)
		}
		fr2, err := Decode(again)
		if err != nil {
			t.Fatalf("%X decoded, was encoded as %X, which does not decode: %v", body, again, err)
		}
		again2, err := fr2.Encode(macf)
		if err != nil || !bytes.Equal(again, again2) {
			t.Fatalf("encoding is not a fixed point:\n %X\n %X (%v)", again, again2, err)
		}
	})
}
