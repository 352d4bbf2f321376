package payshield

import (
	"encoding/hex"
	"fmt"

	"github.com/switchyard/switchyard/hsm"
)

// The variant LMK's key type table: a key type code of 3 hex digits names the LMK
// pair a key is encrypted under (its last two digits: 00 = pair 04-05, 01 = 06-07,
// 02 = 14-15, 03 = 16-17, 08 = 26-27, 09 = 28-29, 0A = 30-31) and the variant of
// that pair (its first digit). The codes are payShield's (host command reference,
// key type table; the same table as the open-source simulators'); which code each
// of the switch's key types gets is listed in docs/hsm.md.

// variantType is one entry of the key type table.
type variantType struct {
	code    string // key type code, e.g. "001"
	pair    int    // index into the 20 LMK pairs (pair 06-07 is 3)
	variant int    // LMK variant 0-9
	bu      string // the 2-digit key type code of BU
}

var variantTypes = map[hsm.KeyType]variantType{
	hsm.ZMK: {"000", 2, 0, "00"},
	hsm.ZPK: {"001", 3, 0, "01"},
	hsm.TMK: {"002", 7, 0, "02"},
	hsm.TPK: {"002", 7, 0, "02"},
	hsm.TAK: {"003", 8, 0, "03"},
	hsm.ZAK: {"008", 13, 0, "08"},
	hsm.BDK: {"009", 14, 0, "09"},
	hsm.CVK: {"402", 7, 4, "FF"},
	hsm.DEK: {"00A", 15, 0, "0A"},
	hsm.TDK: {"00A", 15, 0, "0A"},
}

// variantTypeOf returns the key type table entry of a switch key type.
func variantTypeOf(t hsm.KeyType) (variantType, error) {
	vt, ok := variantTypes[t]
	if !ok {
		return vt, fmt.Errorf("%w: key type %q has no variant LMK key type code", hsm.ErrInput, t)
	}
	return vt, nil
}

// isVariantToken reports whether tok is a key under a variant LMK: a scheme letter
// U, X (double length), T, Y (triple) or Z (single) and hex, or 16, 32 or 48 hex
// digits without a scheme letter.
func isVariantToken(tok string) bool {
	if tok == "" {
		return false
	}
	switch tok[0] {
	case 'U', 'X', 'T', 'Y', 'Z':
		return true
	}
	switch len(tok) {
	case 16, 32, 48:
		_, err := hex.DecodeString(tok)
		return err == nil
	}
	return false
}

// variantScheme returns the key scheme of a variant token and its hex cryptogram:
// a token without a scheme letter is X (double) or Y (triple) by its length, Z for
// 16 digits.
func variantScheme(tok string) (byte, string) {
	switch tok[0] {
	case 'U', 'X', 'T', 'Y', 'Z':
		if len(tok) == 17 || len(tok) == 33 || len(tok) == 49 {
			return tok[0], tok[1:]
		}
	}
	switch len(tok) {
	case 16:
		return 'Z', tok
	case 32:
		return 'X', tok
	}
	return 'Y', tok
}

func hasOddParity(k []byte) bool {
	for _, b := range k {
		n := 0
		for x := b; x != 0; x &= x - 1 {
			n++
		}
		if n%2 == 0 {
			return false
		}
	}
	return true
}
