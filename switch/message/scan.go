package message

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/moov-io/iso8583/encoding"
	"github.com/moov-io/iso8583/field"
	"github.com/moov-io/iso8583/prefix"
)

// fieldLayout is how one field of a spec sits on the wire, precomputed for Scan.
type fieldLayout struct {
	fixed  int // wire length of a fixed field; 0 for variable
	digits int // length prefix digits of a variable field
	hex    bool
}

var (
	layoutASCII  = layouts(SpecASCII.Fields)
	layoutBinary = layouts(SpecBinaryBitmap.Fields)
)

func layouts(fields map[int]field.Field) [129]fieldLayout {
	var l [129]fieldLayout
	for id, f := range fields {
		if id < 2 || id > 128 {
			continue
		}
		s := f.Spec()
		fl := fieldLayout{hex: s.Enc == encoding.BytesToASCIIHex}
		switch s.Pref {
		case prefix.ASCII.Fixed:
			fl.fixed = s.Length
			if fl.hex {
				fl.fixed *= 2
			}
		case prefix.ASCII.L:
			fl.digits = 1
		case prefix.ASCII.LL:
			fl.digits = 2
		case prefix.ASCII.LLL:
			fl.digits = 3
		case prefix.ASCII.LLLL:
			fl.digits = 4
		default:
			fl.fixed = -1
		}
		l[id] = fl
	}
	return l
}

// Scan walks the fields of a message body without decoding it into a moov message and
// calls fn with each field's number and its wire value (hex fields as hex characters).
// It allocates nothing; it is meant for matching and routing, not validation: use
// Decode for requests.
func Scan(raw []byte, d Dialect, fn func(id int, value []byte)) (mti []byte, err error) {
	return scan(raw, d, false, fn)
}

// errInvalidChars is the error of a field whose characters its encoding refuses.
var errInvalidChars = errors.New("invalid characters")

// scan is Scan. When lenient, a field whose length is known but whose characters are
// invalid (a 0xFF in DE 4) is skipped instead of ending the walk, so that the fields
// after it still reach fn; the first such error is returned at the end, unless the
// walk fails otherwise (truncated, misaligned: that error is returned). The slow path
// uses it to read the MTI, DE 11 and DE 41 that a 30 answer needs.
func scan(raw []byte, d Dialect, lenient bool, fn func(id int, value []byte)) (mti []byte, err error) {
	if len(raw) < 4 {
		return nil, fmt.Errorf("message of %d bytes has no MTI", len(raw))
	}
	mti = raw[:4]
	if !isASCII(mti) {
		return nil, fmt.Errorf("MTI is not ASCII")
	}
	off := 4
	var bitmap [16]byte
	lay := &layoutASCII
	readBitmap := func(i int) error {
		if d == DialectASCIIBinaryBitmap {
			if len(raw) < off+8 {
				return fmt.Errorf("bitmap %d truncated", i+1)
			}
			copy(bitmap[i*8:], raw[off:off+8])
			off += 8
			return nil
		}
		if len(raw) < off+16 {
			return fmt.Errorf("bitmap %d truncated", i+1)
		}
		if _, err := hex.Decode(bitmap[i*8:i*8+8], raw[off:off+16]); err != nil {
			return fmt.Errorf("bitmap %d is not hex", i+1)
		}
		off += 16
		return nil
	}
	if d == DialectASCIIBinaryBitmap {
		lay = &layoutBinary
	}
	if err := readBitmap(0); err != nil {
		return mti, err
	}
	max := 64
	if bitmap[0]&0x80 != 0 {
		if err := readBitmap(1); err != nil {
			return mti, err
		}
		// Bit 65 announces a third bitmap, which neither dialect has (moov-io's
		// unpacker would read 8 more bytes as one and refuse the fields 129-192).
		// The lenient walk ignores it: if the fields then end exactly at the end of
		// raw, DE 11 and DE 41 are where they seem and the 30 answer can name them.
		if bitmap[8]&0x80 != 0 {
			if !lenient {
				return mti, fmt.Errorf("bit 65 is set: a third bitmap is not supported")
			}
			bitmap[8] &^= 0x80
		}
		max = 128
	}
	for id := 2; id <= max; id++ {
		if bitmap[(id-1)/8]&(0x80>>((id-1)%8)) == 0 {
			continue
		}
		fl := lay[id]
		n := fl.fixed
		switch {
		case n < 0 || (n == 0 && fl.digits == 0):
			return mti, fmt.Errorf("DE %d: not in the spec", id)
		case n == 0:
			if len(raw) < off+fl.digits {
				return mti, fmt.Errorf("DE %d: length truncated", id)
			}
			for _, c := range raw[off : off+fl.digits] {
				if c < '0' || c > '9' {
					return mti, fmt.Errorf("DE %d: length is not digits", id)
				}
				n = n*10 + int(c-'0')
			}
			off += fl.digits
		}
		if len(raw) < off+n {
			return mti, fmt.Errorf("DE %d: value truncated", id)
		}
		if v := raw[off : off+n]; fl.hex && !isHex(v) || !fl.hex && !isASCII(v) {
			if !lenient {
				return mti, fmt.Errorf("DE %d: %w", id, errInvalidChars)
			}
			if err == nil {
				err = fmt.Errorf("DE %d: %w", id, errInvalidChars)
			}
			off += n
			continue
		}
		fn(id, raw[off:off+n])
		off += n
	}
	if off != len(raw) {
		return mti, fmt.Errorf("%d bytes after the last field", len(raw)-off)
	}
	return mti, err
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c > 127 {
			return false
		}
	}
	return true
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'F' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
