package cup

import (
	"fmt"

	"github.com/moov-io/iso8583"
	"github.com/moov-io/iso8583/encoding"
	"github.com/moov-io/iso8583/field"
	"github.com/moov-io/iso8583/prefix"
)

// Nibbles encodes a string of hex digits (0-9, A-F; '=' is written as D, the track
// separator) left-aligned, two per byte, the last byte padded with 0 when the count
// is odd: tracks 2 and 3 and the other left-aligned n fields whose content is not
// only decimal digits (an encrypted track's nibbles can be anything). moov's LBCD
// takes decimal digits only. Decoding gives upper-case hex digits.
var Nibbles encoding.Encoder = nibbles{}

type nibbles struct{}

func (nibbles) Encode(src []byte) ([]byte, error) {
	out := make([]byte, (len(src)+1)/2)
	for i, c := range src {
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c == '=':
			v = 0xD
		default:
			return nil, fmt.Errorf("character %q at %d is not a hex digit", c, i)
		}
		if i%2 == 0 {
			out[i/2] = v << 4
		} else {
			out[i/2] |= v
		}
	}
	return out, nil
}

func (nibbles) Decode(src []byte, length int) ([]byte, int, error) {
	if length < 0 {
		return nil, 0, fmt.Errorf("length should be positive, got %d", length)
	}
	read := (length + 1) / 2
	if len(src) < read {
		return nil, 0, fmt.Errorf("not enough data to decode. expected len %d, got %d", read, len(src))
	}
	const digits = "0123456789ABCDEF"
	out := make([]byte, length)
	for i := range out {
		b := src[i/2]
		if i%2 == 0 {
			out[i] = digits[b>>4]
		} else {
			out[i] = digits[b&0x0f]
		}
	}
	return out, read, nil
}

// The field kinds of the UnionPay POS format.
func bcdFixed(n int, desc string) field.Field { // right-aligned BCD digits, strict (MTI, F11)
	return field.NewString(&field.Spec{Length: n, Description: desc, Enc: BCD, Pref: BCDLength.Fixed})
}

// numFixed is a right-aligned numeric field read with its hex nibbles (NumBCD):
// the adapter checks that it is digits (checkNumeric).
func numFixed(n int, desc string) field.Field {
	return field.NewString(&field.Spec{Length: n, Description: desc, Enc: NumBCD, Pref: BCDLength.Fixed})
}

// numLFixed is numFixed left-aligned (NumLBCD).
func numLFixed(n int, desc string) field.Field {
	return field.NewString(&field.Spec{Length: n, Description: desc, Enc: NumLBCD, Pref: BCDLength.Fixed})
}

func asciiFixed(n int, desc string) field.Field {
	return field.NewString(&field.Spec{Length: n, Description: desc, Enc: encoding.ASCII, Pref: prefix.ASCII.Fixed})
}

func binFixed(n int, desc string) field.Field {
	return field.NewBinary(&field.Spec{Length: n, Description: desc, Enc: encoding.Binary, Pref: prefix.Binary.Fixed})
}

func varField(pref prefix.Prefixer, enc encoding.Encoder, max int, desc string) field.Field {
	s := &field.Spec{Length: max, Description: desc, Enc: enc, Pref: pref}
	if enc == encoding.Binary {
		return field.NewBinary(s)
	}
	return field.NewString(s)
}

// Spec is the UnionPay POS terminal message (MTI to F64) as the switch reads and
// writes it; the TPDU and header around it are Frame's. Numeric fields are strings so
// that the digits read are exactly those on the wire.
var Spec = &iso8583.MessageSpec{
	Name: "UnionPay POS terminal (cup)",
	Fields: map[int]field.Field{
		0: bcdFixed(4, "Message Type Indicator"),
		1: field.NewBitmap(&field.Spec{Length: 8, Description: "Bitmap", Enc: encoding.Binary, Pref: prefix.Binary.Fixed}),
		// F2 and F35 are read as nibbles, one more than the spec's longest (pan.go):
		// an F pad, counted or not, and a stray hex digit are the adapter's to
		// answer (30), never a decoding error that closes the connection.
		2: varField(BCDLength.LL, Nibbles, maxF2Wire, "Primary Account Number"),
		3: numFixed(6, "Processing Code"),
		4: numFixed(12, "Amount, Transaction"),
		// 5 to 10 are not used by POS terminals.
		11: bcdFixed(6, "System Trace Audit Number"),
		12: numFixed(6, "Time, Local Transaction (hhmmss)"),
		13: numFixed(4, "Date, Local Transaction (MMDD)"),
		14: numFixed(4, "Date, Expiration (YYMM)"),
		15: numFixed(4, "Date, Settlement (MMDD)"),
		22: numLFixed(3, "Point of Service Entry Mode"),
		23: numFixed(3, "Card Sequence Number"),
		25: numFixed(2, "Point of Service Condition Code"),
		26: numFixed(2, "Point of Service PIN Capture Code"),
		32: varField(BCDLength.LL, NumLBCD, 11, "Acquiring Institution Identification Code"),
		35: varField(BCDLength.LL, Nibbles, maxF35Wire, "Track 2 Data"),
		36: varField(BCDLength.LLL, Nibbles, 104, "Track 3 Data"),
		37: asciiFixed(12, "Retrieval Reference Number"),
		38: asciiFixed(6, "Authorization Identification Response"),
		39: asciiFixed(2, "Response Code"),
		41: asciiFixed(8, "Card Acceptor Terminal Identification"),
		42: asciiFixed(15, "Card Acceptor Identification Code"),
		44: varField(BCDLength.LL, encoding.ASCII, 25, "Additional Response Data"),
		48: varField(BCDLength.LLL, NumLBCD, 322, "Additional Data - Private (settlement totals)"),
		49: asciiFixed(3, "Currency Code, Transaction"),
		52: binFixed(8, "PIN Data"),
		53: numFixed(16, "Security Related Control Information"),
		54: varField(BCDLength.LLL, encoding.ASCII, 40, "Balance Amount"),
		55: varField(BCDLength.LLL, encoding.Binary, 255, "ICC System Related Data"),
		58: varField(BCDLength.LLL, encoding.ASCII, 100, "PBOC Electronic Data"),
		59: varField(BCDLength.LLL, encoding.ASCII, 600, "Terminal information (TLV)"),
		60: varField(BCDLength.LLL, Nibbles, 40, "Reserved Private (60.1 type, 60.2 batch, 60.3 network code ...)"),
		61: varField(BCDLength.LLL, Nibbles, 40, "Original Message (61.1 batch, 61.2 STAN, 61.3 MMDD ...)"),
		62: varField(BCDLength.LLL, encoding.Binary, 512, "Reserved Private (working keys, terminal information)"),
		63: varField(BCDLength.LLL, encoding.ASCII, 163, "Reserved Private (63.1 operator / card organisation)"),
		64: binFixed(8, "Message Authentication Code"),
	},
}

// wireSize is how a field of Spec is laid out on the wire, for wireLen: fixed bytes
// (fixed > 0), or a BCD length prefix of pref bytes and the field's content, two
// characters a byte when half (BCD, nibbles), else one. Neither: measured by
// encoding it.
type wireSize struct {
	fixed, pref int
	half        bool
}

// wireSizes are Spec's fields' wireSize, by field number.
var wireSizes = func() (w [65]wireSize) {
	for id := 2; id <= 64; id++ {
		fl, ok := Spec.Fields[id]
		if !ok {
			continue
		}
		s := fl.Spec()
		var half, known bool
		switch s.Enc {
		case BCD, LBCD, NumBCD, NumLBCD, Nibbles:
			half, known = true, true
		case encoding.ASCII, encoding.Binary:
			known = true
		}
		if !known {
			continue
		}
		switch s.Pref {
		case BCDLength.Fixed, prefix.ASCII.Fixed, prefix.Binary.Fixed:
			w[id].fixed = s.Length
			if half {
				w[id].fixed = (s.Length + 1) / 2
			}
		case BCDLength.LL:
			w[id] = wireSize{pref: 1, half: half}
		case BCDLength.LLL:
			w[id] = wireSize{pref: 2, half: half}
		}
	}
	return w
}()
