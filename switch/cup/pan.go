package cup

import (
	"fmt"
	"strings"
)

// The longest PAN and track 2 of the spec (n..19, z..37). The codec reads one nibble
// more of each (maxF2Wire, maxF35Wire): a terminal that counts the F it pads an odd
// PAN or track with in the field's length sends 20 (or 38) nibbles, the last one F.
const (
	maxPAN    = 19
	maxTrack2 = 37
	// maxF2Wire and maxF35Wire are the lengths spec.go lets F2 and F35 declare.
	maxF2Wire  = maxPAN + 1
	maxF35Wire = maxTrack2 + 1
)

// padNibble is the nibble terminals pad an odd PAN or track 2 with instead of the
// spec's 0 (the BCD filler of ISO 7813 and EMV): the codec reads F2 and F35 as hex
// nibbles, so that it is read as data when the length counts it and skipped when it
// does not.
const padNibble = "F"

// checkPAN checks F2 and writes back the PAN without its pad: a trailing F that the
// field's length counts is the pad of an odd PAN and is dropped ("4761...119F", 16
// nibbles, is the 15-digit PAN); a pad the length does not count was never read
// (the codec's Nibbles stop at the length). What remains must be 1 to 19 decimal
// digits, else the request is answered 30 (format-error-F2), the error naming what
// is wrong, never the digits. (Until 6 December 2026 F2 was moov's LBCD: an F the
// length counted, or a hex digit inside the PAN, failed the decoding and the
// connection was closed without an answer.)
func checkPAN(f *Frame) *mapError {
	if !f.Has(2) {
		return nil
	}
	v := f.Str(2)
	if trimmed := strings.TrimSuffix(v, padNibble); len(v)%2 == 0 && trimmed != v {
		v = trimmed
	}
	switch {
	case v == "":
		return formatErr(2, "PAN empty")
	case len(v) > maxPAN:
		return formatErr(2, "PAN of %d digits, the spec allows at most %d", len(v), maxPAN)
	case !isDigits(v):
		return formatErr(2, "PAN not numeric (a hex digit A-F before its last nibble; only a trailing F pad is taken)")
	}
	if v != f.Str(2) {
		f.Set(2, v)
	}
	return nil
}

// cleanTrack2 returns track 2 (its nibbles, clear) in the pipeline's form ('='
// separator), without a trailing F pad the field's length counted, after checking
// that it is digits with one separator (D) and a PAN of at most 19 digits before
// it. The error names what is wrong, never the track.
func cleanTrack2(nib string) (string, error) {
	t := strings.ToUpper(nib)
	if trimmed := strings.TrimSuffix(t, padNibble); len(t)%2 == 0 && trimmed != t {
		t = trimmed
	}
	pan, rest, ok := strings.Cut(t, "D")
	switch {
	case !ok:
		return "", fmt.Errorf("track 2 of %d nibbles without a separator (D)", len(t))
	case len(t) > maxTrack2:
		return "", fmt.Errorf("track 2 of %d characters, the spec allows at most %d", len(t), maxTrack2)
	case pan == "" || len(pan) > maxPAN || !isDigits(pan):
		return "", fmt.Errorf("track 2's PAN (%d nibbles before the separator) is not 1 to %d digits", len(pan), maxPAN)
	case rest != "" && !isDigits(rest):
		return "", fmt.Errorf("track 2 after the separator is not digits (a hex digit A-F, or a second separator)")
	}
	return pan + "=" + rest, nil
}
