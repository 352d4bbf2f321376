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
// prefix.BCD (v0.26.1), with the same results and errors, but with the conversion
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
	if _, err := bcdDec.Decode(dst, src[:read]); err != nil {
		return nil, 0, utils.NewSafeError(err, "failed to perform BCD decoding")
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

func (p bcdLength) DecodeLength(maxLen int, data []byte) (int, int, error) {
	n := bcd.EncodedLen(p.digits)
	if len(data) < n {
		return 0, 0, fmt.Errorf("not enough data length: %d to read: %d byte digits", n, len(data))
	}
	digits, _, err := BCD.Decode(data[:n], p.digits)
	if err != nil {
		return 0, 0, err
	}
	dataLen, err := strconv.Atoi(string(digits))
	if err != nil {
		return 0, 0, err
	}
	if dataLen > maxLen {
		return 0, 0, fmt.Errorf("data length: %d is larger than maximum %d", dataLen, maxLen)
	}
	return dataLen, n, nil
}

func (p bcdLength) Inspect() string { return "BCD." + strings.Repeat("L", p.digits) }
