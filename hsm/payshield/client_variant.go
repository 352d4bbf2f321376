package payshield

import (
	"fmt"

	"github.com/switchyard/switchyard/hsm"
)

// The LMK schemes a client can create keys under (ClientOptions.LMKScheme).
const (
	LMKKeyBlock = "keyblock"
	LMKVariant  = "variant"
)

// How the client fills in the key type fields: for a key whose token is a key block
// (S) it sends FFF, as payShield wants with key blocks (the block carries its
// usage); for a variant token (U, X, T, Y, or 32/48 hex digits) the key type code of
// the record's type (000 ZMK, 001 ZPK, 002 TPK/TMK, 003 TAK, 008 ZAK, 009 BDK, 402
// CVK), which selects the LMK pair and variant the HSM decrypts it under. Keys the
// client creates (A0, A6, FK) are created under the scheme of LMKScheme.

func (c *Client) variantLMK() bool { return c.opts.LMKScheme == LMKVariant }

// keyTypeField returns the 3-character key type field for a stored key.
func keyTypeField(rec hsm.KeyRecord) (string, error) {
	if !isVariantToken(token(rec)) {
		return "FFF", nil
	}
	vt, err := variantTypeOf(rec.Type)
	if err != nil {
		return "", fmt.Errorf("%s: %w", rec.Ref(), err)
	}
	return vt.code, nil
}

// kekFlag is the ZMK/TMK flag of a KEK: 1 for a TMK, 0 for a ZMK.
func kekFlag(rec hsm.KeyRecord) string {
	if rec.Type == hsm.TMK {
		return "1"
	}
	return "0"
}

// variantHeader returns the key type code and key scheme (U double, T triple length)
// of a key to create under a variant LMK, which holds DES keys only.
func variantHeader(spec hsm.KeySpec) (string, error) {
	vt, err := variantTypeOf(spec.Type)
	if err != nil {
		return "", err
	}
	switch spec.Algorithm {
	case hsm.TDES2KEY:
		return vt.code + "U", nil
	case hsm.TDES3KEY:
		return vt.code + "T", nil
	}
	return "", fmt.Errorf("%w: a variant LMK holds TDES keys only, not %s (use a key-block LMK for AES keys)", hsm.ErrInput, spec.Algorithm)
}

// buTypeField returns BU's key type code (2), key length flag and, after the token,
// the trailer (";" and the 3-digit code when the 2-digit code is FF).
func buTypeField(rec hsm.KeyRecord) (string, string, error) {
	if !isVariantToken(token(rec)) {
		return "FFF", "", nil
	}
	vt, err := variantTypeOf(rec.Type)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", rec.Ref(), err)
	}
	flag := "1"
	if sc, _ := variantScheme(token(rec)); sc == 'T' || sc == 'Y' {
		flag = "2"
	}
	if vt.bu == "FF" {
		return vt.bu + flag, ";" + vt.code, nil
	}
	return vt.bu + flag, "", nil
}
