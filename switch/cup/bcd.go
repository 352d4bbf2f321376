package cup

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/moov-io/iso8583/encoding"
	"github.com/moov-io/iso8583/prefix"
	"github.com/moov-io/iso8583/utils"
	"github.com/yerden/go-util/bcd"
)

// BCD, LBCD and BCDLength are moov-io/iso8583's encoding.BCD, encoding.LBCD and
// prefix.BCD (v0.26.1), with the same results and errors (but for a last nibble F
// where a digit belongs, refused here, and a 3-digit length's pad digit: see
// bcdEncoder.Decode and bcdLength.DecodeLength), but with the conversion
// tables of yerden/go-util/bcd (the library moov uses) built once. Each of moov's
// calls builds a bcd.Encoder or bcd.Decoder, whose construction fills 256-entry
// tables from a map: that was three quarters of the CPU of decoding and encoding a
// cup sale (~470 µs of ~620, docs/performance.md Part 28), for some 30 BCD fields and
// length prefixes a message. A bcd.Encoder and bcd.Decoder are read-only once made,
// so one of each serves every goroutine.
var (
	BCD  encoding.Encoder = bcdEncoder{left: false}
	LBCD encoding.Encoder = bcdEncoder{left: true}
	// BCDLength are the BCD length prefixers the cup format uses: LL and LLL (two
	// or three digits in one or two bytes) and Fixed (none: moov's, which converts
	// nothing).
	BCDLength = prefix.Prefixers{Fixed: prefix.BCD.Fixed, LL: bcdLength{2}, LLL: bcdLength{3}}
)

var (
	bcdEnc = bcd.NewEncoder(bcd.Standard)
	bcdDec = bcd.NewDecoder(bcd.Standard)
)

// bcdEncoder packs decimal digits two to a byte; an odd count is padded with a 0
// digit in front (right-aligned, BCD) or behind (left-aligned, LBCD).
type bcdEncoder struct{ left bool }

func (e bcdEncoder) Encode(src []byte) ([]byte, error) {
	if len(src)%2 != 0 {
		if e.left {
			src = append(src[:len(src):len(src)], '0')
		} else {
			src = append([]byte{'0'}, src...)
		}
	}
	dst := make([]byte, bcd.EncodedLen(len(src)))
	n, err := bcdEnc.Encode(dst, src)
	if err != nil {
		return nil, utils.NewSafeError(err, "failed to perform BCD encoding")
	}
	return dst[:n], nil
}

func (e bcdEncoder) Decode(src []byte, length int) ([]byte, int, error) {
	if length < 0 {
		return nil, 0, fmt.Errorf("length should be positive, got %d", length)
	}
	decodedLen := length + length%2
	read := bcd.EncodedLen(decodedLen)
	if len(src) < read {
		return nil, 0, fmt.Errorf("not enough data to decode. expected len %d, got %d", read, len(src))
	}
	dst := make([]byte, decodedLen)
	n, err := bcdDec.Decode(dst, src[:read])
	if err != nil {
		return nil, 0, utils.NewSafeError(err, "failed to perform BCD decoding")
	}
	// The library takes a last nibble F for a filler and writes one digit fewer,
	// without an error: moov then returns a value ending in a zero byte, which no
	// encoder writes back. Only the pad nibble of a left-aligned odd count may be
	// that filler; anywhere else it is refused (since 6 December 2026, sixth
	// release; FuzzCUPDecode).
	if n < decodedLen && !(e.left && length%2 == 1 && n == length) {
		return nil, 0, fmt.Errorf("failed to perform BCD decoding: %X ends in the nibble F, not a digit", src[:read])
	}
	if e.left {
		return dst[:length], read, nil
	}
	return dst[decodedLen-length:], read, nil
}

// bcdLength is a length prefix of digits decimal digits, right-aligned BCD.
type bcdLength struct{ digits int }

func (p bcdLength) EncodeLength(maxLen, dataLen int) ([]byte, error) {
	if dataLen > maxLen {
		return nil, fmt.Errorf("field length: %d is larger than maximum: %d", dataLen, maxLen)
	}
	s := strconv.Itoa(dataLen)
	if len(s) > p.digits {
		return nil, fmt.Errorf("number of digits in length: %d exceeds: %d", dataLen, p.digits)
	}
	return BCD.Encode([]byte(strings.Repeat("0", p.digits-len(s)) + s))
}

// DecodeLength reads the length prefix: its digits, right-aligned, the pad nibble of
// an odd count 0. Unlike moov's prefix.BCD, a pad nibble other than 0 is refused
// rather than skipped: a 3-digit length of 0x9012 is not 12 but a length the field
// cannot have, and reading it as 12 would shift every field after it (since 6
// December 2026, sixth release). Its digits are read without allocating; a prefix
// that is not digits gets moov's error.
func (p bcdLength) DecodeLength(maxLen int, data []byte) (int, int, error) {
	n := bcd.EncodedLen(p.digits)
	if len(data) < n {
		return 0, 0, fmt.Errorf("not enough data length: %d to read: %d byte digits", n, len(data))
	}
	if p.digits%2 == 1 && data[0]>>4 != 0 && data[0]>>4 <= 9 {
		return 0, 0, fmt.Errorf("data length: %X is not a %d-digit length (its pad digit is %d, not 0): larger than maximum %d", data[:n], p.digits, data[0]>>4, maxLen)
	}
	dataLen, digitsOK := 0, true
	for i := 0; i < n*2; i++ {
		d := int(data[i/2] >> 4)
		if i%2 == 1 {
			d = int(data[i/2] & 0x0f)
		}
		if d > 9 {
			digitsOK = false
			break
		}
		dataLen = dataLen*10 + d
	}
	if digitsOK {
		if dataLen > maxLen {
			return 0, 0, fmt.Errorf("data length: %d is larger than maximum %d", dataLen, maxLen)
		}
		return dataLen, n, nil
	}
	if _, _, err := BCD.Decode(data[:n], p.digits); err != nil {
		return 0, 0, err // moov's error for a nibble A-F
	}
	return 0, 0, fmt.Errorf("data length: %X is not %d decimal digits", data[:n], p.digits)
}

func (p bcdLength) Inspect() string { return "BCD." + strings.Repeat("L", p.digits) }

// The numeric fields of the cup spec (F3, F4, F12 to F15, F22, F23, F25, F26, F32,
// F48, F53) are read with NumBCD and NumLBCD: BCD and LBCD for decimal digits, but a
// nibble A-F is read as that letter (upper case) instead of failing the decoding, and
// written back as it was read, so that a request with one is still read to its end
// and can be answered (30, the field named: checkNumeric) rather than closing the
// connection. The pad nibble of an odd count is dropped, whatever it is. The MTI, F11
// and the length prefixes stay strict: a request without them cannot be answered.
var (
	NumBCD  encoding.Encoder = numEncoder{bcdEncoder{left: false}}
	NumLBCD encoding.Encoder = numEncoder{bcdEncoder{left: true}}
)

// numEncoder is a bcdEncoder that takes hex nibbles A-F too (NumBCD, NumLBCD).
type numEncoder struct{ bcd bcdEncoder }

func (e numEncoder) Encode(src []byte) ([]byte, error) {
	hex := false
	for _, c := range src {
		hex = hex || c < '0' || c > '9'
	}
	if !hex {
		return e.bcd.Encode(src)
	}
	if len(src)%2 != 0 {
		if e.bcd.left {
			src = append(src[:len(src):len(src)], '0')
		} else {
			src = append([]byte{'0'}, src...)
		}
	}
	return Nibbles.Encode(src)
}

func (e numEncoder) Decode(src []byte, length int) ([]byte, int, error) {
	out, read, err := e.bcd.Decode(src, length)
	if err == nil || length < 0 || len(src) < (length+1)/2 {
		return out, read, err
	}
	// A nibble A-F: the nibbles as they are (Nibbles reads left-aligned).
	decodedLen := length + length%2
	nib, read, err := Nibbles.Decode(src, decodedLen)
	if err != nil {
		return nil, 0, err
	}
	if e.bcd.left {
		return nib[:length], read, nil
	}
	return nib[decodedLen-length:], read, nil
}
