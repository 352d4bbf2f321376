// Package message defines the ISO 8583 wire contract between terminals, the switch and
// issuers: the message specs of both terminal dialects (built on moov-io/iso8583), the
// DE 48 private TLV, response codes, and the checks that turn raw bytes into a
// validated request or a precise format error.
package message

import (
	"fmt"

	"github.com/moov-io/iso8583"
	"github.com/moov-io/iso8583/encoding"
	"github.com/moov-io/iso8583/field"
	"github.com/moov-io/iso8583/prefix"
	"github.com/moov-io/iso8583/specs"
)

// Dialect is the encoding a terminal listener speaks.
type Dialect string

// The dialects of the terminal interface.
const (
	// DialectASCII is Spec87ASCII: ASCII MTI, bitmap as 16 upper-case hex characters.
	DialectASCII Dialect = "ascii"
	// DialectASCIIBinaryBitmap is the same fields with the bitmap as 8 raw bytes.
	DialectASCIIBinaryBitmap Dialect = "ascii-binary-bitmap"
	// DialectCUP is the UnionPay-style POS format (TPDU, header, BCD fields), served
	// by switch/cup in front of the pipeline, which sees it as DialectASCII.
	DialectCUP Dialect = "cup"
)

// ParseDialect returns the dialect named s, or an error naming the accepted values.
func ParseDialect(s string) (Dialect, error) {
	switch Dialect(s) {
	case "", DialectASCII:
		return DialectASCII, nil
	case DialectASCIIBinaryBitmap:
		return DialectASCIIBinaryBitmap, nil
	case DialectCUP:
		return DialectCUP, nil
	}
	return "", fmt.Errorf("unknown dialect %q (want %q, %q or %q)", s, DialectASCII, DialectASCIIBinaryBitmap, DialectCUP)
}

// Spec returns the message spec of the dialect.
func (d Dialect) Spec() *iso8583.MessageSpec {
	if d == DialectASCIIBinaryBitmap {
		return SpecBinaryBitmap
	}
	return SpecASCII
}

// BitmapBytes is the size of one bitmap on the wire in this dialect.
func (d Dialect) BitmapBytes() int {
	if d == DialectASCIIBinaryBitmap {
		return 8
	}
	return 16
}

var (
	// SpecASCII is the terminal and issuer interface in the ascii dialect: the fields of
	// moov-io's Spec87ASCII, corrected and extended as the terminal interface says.
	SpecASCII = buildSpec("Switchyard ISO 8583:1987 ASCII", field.NewBitmap(&field.Spec{
		Length:      8,
		Description: "Bitmap",
		Enc:         encoding.BytesToASCIIHex,
		Pref:        prefix.Hex.Fixed,
	}))
	// SpecBinaryBitmap is SpecASCII with the bitmap as raw bytes.
	SpecBinaryBitmap = buildSpec("Switchyard ISO 8583:1987 ASCII, binary bitmap", field.NewBitmap(&field.Spec{
		Length:      8,
		Description: "Bitmap",
		Enc:         encoding.Binary,
		Pref:        prefix.Binary.Fixed,
	}))
)

// buildSpec copies Spec87ASCII and fixes what the terminal interface needs:
//   - the bitmap is 8 bytes per bitmap (moov's is one 16-byte bitmap, always 32 hex
//     characters), so a secondary bitmap appears only when a field above 64 is present;
//   - numeric and zero-padded fixed fields are plain fixed strings, so the value read is
//     exactly the characters on the wire (validation is ours, in Validate);
//   - DE 52, DE 64 and DE 128 hold 8 raw bytes written as 16 hex characters (moov's
//     Hex.Fixed prefixer cannot pack them);
//   - DE 70 (n3), DE 95 (an42) and DE 128 are added.
func buildSpec(name string, bitmap field.Field) *iso8583.MessageSpec {
	fields := make(map[int]field.Field, len(specs.Spec87ASCII.Fields)+3)
	for id, f := range specs.Spec87ASCII.Fields {
		s := f.Spec()
		switch {
		case id == 0 || id == 1:
			continue
		case s.Pref == prefix.ASCII.Fixed && (isNumeric(f) || s.Pad != nil):
			fields[id] = fixedString(s.Length, s.Description)
		default:
			fields[id] = f
		}
	}
	fields[0] = fixedString(4, "Message Type Indicator")
	fields[1] = bitmap
	fields[52] = hexBytes("PIN Data")
	fields[64] = hexBytes("Message Authentication Code (MAC)")
	fields[70] = fixedString(3, "Network Management Information Code")
	fields[95] = fixedString(42, "Replacement Amounts")
	fields[128] = hexBytes("Message Authentication Code (MAC), secondary")
	return &iso8583.MessageSpec{Name: name, Fields: fields}
}

func isNumeric(f field.Field) bool {
	_, ok := f.(*field.Numeric)
	return ok
}

func fixedString(length int, desc string) field.Field {
	return field.NewString(&field.Spec{Length: length, Description: desc, Enc: encoding.ASCII, Pref: prefix.ASCII.Fixed})
}

func hexBytes(desc string) field.Field {
	return field.NewBinary(&field.Spec{Length: 8, Description: desc, Enc: encoding.BytesToASCIIHex, Pref: prefix.ASCII.Fixed})
}

// wireLength returns how many bytes a field with this spec and value takes on the wire,
// or -1 when the spec is of a kind the switch does not use.
func wireLength(s *field.Spec, valueLen int) int {
	hex := s.Enc == encoding.BytesToASCIIHex
	switch s.Pref {
	case prefix.ASCII.Fixed, prefix.Hex.Fixed, prefix.Binary.Fixed:
		if hex {
			return 2 * s.Length
		}
		return s.Length
	case prefix.ASCII.LL:
		return 2 + valueLen
	case prefix.ASCII.LLL:
		return 3 + valueLen
	case prefix.ASCII.L:
		return 1 + valueLen
	case prefix.ASCII.LLLL:
		return 4 + valueLen
	}
	return -1
}
