package message

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/moov-io/iso8583/encoding"
	"github.com/moov-io/iso8583/prefix"
)

// ICC data (DE 55): the chip's BER-TLV objects, carried as hex in Request.ICC. The
// tags are read with moov-io/iso8583's BER-TLV tag and length codecs.

// adviceICCTags are the chip data objects an advice (an offline approval's, a
// stand-in's) carries to the issuer: what it needs to check the card's cryptogram
// (the transaction certificate, or the request's ARQC) and clear the sale (EMV Book 2 8.1.1, the data the TC is computed over,
// and the issuer application data; UnionPay's PBOC 2.0/3.0 list for DE 55 of an
// advice). Tags that carry the card's track or name (57 track 2 equivalent, 5A PAN,
// 5F20 cardholder name, 9F1F and 9F20 track discretionary data, 56, 9F6B, 9F0B) are
// not in it: they are sensitive authentication data that may not wait on disk, and
// the advice carries the card in DE 2 (sealed while it waits).
var adviceICCTags = map[string]bool{
	"9F26": true, // application cryptogram
	"9F27": true, // cryptogram information data
	"9F10": true, // issuer application data
	"9F37": true, // unpredictable number
	"9F36": true, // application transaction counter
	"95":   true, // terminal verification results
	"9A":   true, // transaction date
	"9C":   true, // transaction type
	"9F02": true, // amount, authorized
	"9F03": true, // amount, other
	"5F2A": true, // transaction currency code
	"82":   true, // application interchange profile
	"9F1A": true, // terminal country code
	"9F33": true, // terminal capabilities
	"9F34": true, // cardholder verification method results
	"9F35": true, // terminal type
	"9F1E": true, // interface device serial number
	"84":   true, // dedicated file name
	"9F09": true, // application version number (terminal)
	"9F41": true, // transaction sequence counter
	"5F34": true, // PAN sequence number
	"9F63": true, // card product identification (PBOC)
	"9F74": true, // electronic cash issuer authorization code (PBOC)
	"9B":   true, // transaction status information
}

// CryptogramTC, CryptogramARQC and CryptogramAAC are the kinds of application
// cryptogram the two high bits of tag 9F27 name (EMV Book 3, 6.5.5.4).
const (
	CryptogramAAC  = 0x00 // the card declined
	CryptogramTC   = 0x40 // the card approved offline
	CryptogramARQC = 0x80 // the card asked the issuer
)

// iccObject is one data object of ICC data: its tag in upper-case hex, and the hex
// of the whole object (tag, length and value) as it came.
type iccObject struct {
	tag, raw, value string
}

// parseICC splits hexICC, ICC data as hex, into its top-level data objects. It
// fails on data that is not hex or whose objects run past its end.
func parseICC(hexICC string) ([]iccObject, error) {
	b, err := hex.DecodeString(hexICC)
	if err != nil {
		return nil, fmt.Errorf("ICC data: not hex: %w", err)
	}
	var out []iccObject
	for off := 0; off < len(b); {
		if b[off] == 0x00 || b[off] == 0xFF { // padding between objects (EMV Book 3, B1)
			off++
			continue
		}
		tag, n, err := encoding.BerTLVTag.Decode(b[off:], 0)
		if err != nil {
			return nil, fmt.Errorf("ICC data: tag at byte %d: %w", off, err)
		}
		l, m, err := prefix.BerTLV.DecodeLength(0, b[off+n:])
		if err != nil {
			return nil, fmt.Errorf("ICC data: length of tag %s at byte %d: %w", tag, off, err)
		}
		start := off + n + m
		if l < 0 || l > len(b)-start {
			return nil, fmt.Errorf("ICC data: tag %s at byte %d: length %d runs past the end (%d bytes)", tag, off, l, len(b))
		}
		end := start + l
		out = append(out, iccObject{tag: strings.ToUpper(string(tag)), raw: strings.ToUpper(hex.EncodeToString(b[off:end])),
			value: strings.ToUpper(hex.EncodeToString(b[start:end]))})
		off = end
	}
	return out, nil
}

// AdviceICC returns the ICC data of hexICC (hex, as Request.ICC) that an advice may
// carry: its objects whose tags are in the advice's list, in
// their order, as hex. Objects of other tags, the card's track and name among them,
// are dropped. An error says what in hexICC does not parse.
func AdviceICC(hexICC string) (string, error) {
	objs, err := parseICC(hexICC)
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	for _, o := range objs {
		if adviceICCTags[o.tag] {
			sb.WriteString(o.raw)
		}
	}
	return sb.String(), nil
}

// CryptogramKind returns the kind of application cryptogram hexICC's tag 9F27 names
// (CryptogramAAC, CryptogramTC or CryptogramARQC; its two high bits), and false when
// hexICC has no 9F27 or does not parse.
func CryptogramKind(hexICC string) (byte, bool) {
	objs, err := parseICC(hexICC)
	if err != nil {
		return 0, false
	}
	for _, o := range objs {
		if o.tag == "9F27" && len(o.value) == 2 {
			v, err := hex.DecodeString(o.value)
			if err != nil {
				return 0, false
			}
			return v[0] & 0xC0, true
		}
	}
	return 0, false
}

// ICCValues returns the value (upper-case hex) of each top-level data object of
// hexICC by its tag (upper-case hex), the first one of a repeated tag. An error says
// what in hexICC does not parse.
func ICCValues(hexICC string) (map[string]string, error) {
	objs, err := parseICC(hexICC)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(objs))
	for _, o := range objs {
		if _, ok := out[o.tag]; !ok {
			out[o.tag] = o.value
		}
	}
	return out, nil
}
