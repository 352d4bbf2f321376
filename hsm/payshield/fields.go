package payshield

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/pinblock"
)

// The field layouts shared by the client and the server. They follow payShield's
// where the published command descriptions fix them, and are documented in
// docs/hsm.md where the key-block LMK scheme leaves a choice (the "#" key block
// header of A0/A6/FK, the lengths in front of variable fields).

// pinFormatCodes are payShield's PIN block format codes.
var pinFormatCodes = map[pinblock.Format]string{pinblock.Format0: "01", pinblock.Format1: "05", pinblock.Format3: "47", pinblock.Format4: "48"}

func pinFormatCode(f pinblock.Format) (string, error) {
	c, ok := pinFormatCodes[f]
	if !ok {
		return "", fmt.Errorf("%w: PIN block format %s has no payShield code", hsm.ErrInput, f)
	}
	return c, nil
}

func pinFormatOf(code string) (pinblock.Format, bool) {
	for f, c := range pinFormatCodes {
		if c == code {
			return f, true
		}
	}
	return 0, false
}

// algCodes are the key block algorithm codes of the "#" header.
var algCodes = map[hsm.Algorithm]string{hsm.TDES2KEY: "T2", hsm.TDES3KEY: "T3", hsm.AES128: "A1", hsm.AES192: "A2", hsm.AES256: "A3"}

func algOf(code string) (hsm.Algorithm, bool) {
	for a, c := range algCodes {
		if c == code {
			return a, true
		}
	}
	return "", false
}

// appendSpec appends the "#" key block header of a key to create: usage, algorithm,
// mode of use, key version, exportability and one optional block, LB, that names the
// key ID, version and type (hsm serve binds them into the key block under its LMK).
func appendSpec(dst []byte, spec hsm.KeySpec, version int) ([]byte, error) {
	p, err := hsm.ProfileFor(spec.Type, spec.Algorithm, spec.MACAlgorithm)
	if err != nil {
		return dst, err
	}
	lb := fmt.Sprintf("%s/v%d/%s", spec.ID, version, spec.Type)
	if len(lb)+4 > 255 {
		return dst, fmt.Errorf("%w: key ID %q is too long for a key block label", hsm.ErrInput, spec.ID)
	}
	dst = append(dst, '#')
	dst = append(dst, p.Usage...)
	dst = append(dst, algCodes[spec.Algorithm]...)
	dst = append(dst, p.ModeOfUse)
	dst = fmt.Appendf(dst, "%02d", version%100)
	dst = append(dst, p.Exportability)
	dst = append(dst, "01LB"...)
	dst = fmt.Appendf(dst, "%02X", len(lb)+4)
	return append(dst, lb...), nil
}

// readSpec reads the "#" key block header appendSpec writes and returns the key spec
// and version it names.
func readSpec(f *Fields) (hsm.KeySpec, int, error) {
	var spec hsm.KeySpec
	if !f.Delim('#') {
		f.fail("key block header", "want '#'")
		return spec, 0, f.Err()
	}
	usage := f.Fixed("key usage", 2)
	alg := f.Fixed("algorithm", 2)
	f.Fixed("mode of use", 1)
	f.Digits("key version", 2)
	f.Fixed("exportability", 1)
	n := f.Digits("optional blocks", 2)
	if f.Err() != nil {
		return spec, 0, f.Err()
	}
	var ok bool
	if spec.Algorithm, ok = algOf(alg); !ok {
		f.fail("algorithm", "unknown algorithm code %q", alg)
		return spec, 0, f.Err()
	}
	switch usage {
	case "M3":
		spec.MACAlgorithm = hsm.MACRetail
	case "M6":
		spec.MACAlgorithm = hsm.MACCMAC
	}
	blocks, _ := strconv.Atoi(n)
	label := ""
	for range blocks {
		id := f.Fixed("optional block ID", 2)
		l, err := strconv.ParseUint(f.Hex("optional block length", 2), 16, 8)
		if f.Err() != nil || err != nil || l < 4 {
			f.fail("optional block length", "bad length")
			return spec, 0, f.Err()
		}
		data := f.Fixed("optional block "+id, int(l)-4)
		if id == "LB" {
			label = data
		}
	}
	if f.Err() != nil {
		return spec, 0, f.Err()
	}
	id, version, t, err := parseLabel(label)
	if err != nil {
		return spec, 0, err
	}
	spec.ID, spec.Type = id, t
	return spec, version, nil
}

// parseLabel splits a key block label "ID/vN/TYPE".
func parseLabel(lb string) (string, int, hsm.KeyType, error) {
	parts := strings.Split(lb, "/")
	if len(parts) != 3 || !strings.HasPrefix(parts[1], "v") {
		return "", 0, "", fmt.Errorf("%w: key block label %q is not ID/vN/TYPE", hsm.ErrInput, lb)
	}
	v, err := strconv.Atoi(parts[1][1:])
	if err != nil || v < 1 {
		return "", 0, "", fmt.Errorf("%w: key block label %q has a bad version", hsm.ErrInput, lb)
	}
	t := hsm.KeyType(parts[2])
	if !t.Valid() {
		return "", 0, "", fmt.Errorf("%w: key block label %q has unknown key type", hsm.ErrInput, lb)
	}
	return parts[0], v, t, nil
}

// appendVar appends a variable field with its length as 4 digits.
func appendVar(dst []byte, s string) []byte {
	dst = fmt.Appendf(dst, "%04d", len(s))
	return append(dst, s...)
}

// readVar reads a field appendVar wrote.
func (f *Fields) readVar(name string) string {
	n, _ := strconv.Atoi(f.Digits(name+" length", 4))
	return f.Fixed(name, n)
}

// appendPAN appends the account number field of CA, CC and G0. For formats 0, 1 and 3
// it is payShield's: the 12 right-most digits of the PAN excluding the check digit
// (12N). Format 4 binds the whole PAN, which 12 digits cannot carry: then the field is
// "P", 2 digits of length and the PAN (this project's; docs/hsm.md).
func appendPAN(dst []byte, pan string, full bool) []byte {
	if full {
		dst = fmt.Appendf(dst, "P%02d", len(pan))
		return append(dst, pan...)
	}
	d := ""
	if len(pan) > 1 {
		d = pan[:len(pan)-1]
	}
	if len(d) > 12 {
		d = d[len(d)-12:]
	}
	return append(dst, (strings.Repeat("0", 12-len(d)) + d)...)
}

// readPAN reads the account number field and returns a PAN the PIN block functions
// bind the same digits from: the 12 digits with a check digit appended (the functions
// skip it), or the full PAN.
func (f *Fields) readPAN() string {
	if f.Delim('P') {
		n, _ := strconv.Atoi(f.Digits("account number length", 2))
		return f.Digits("account number", n)
	}
	return f.Digits("account number", 12) + "0"
}

// token returns the protocol token of a stored key: the record's block as is when it
// is a payShield token already (S, U, X, T, Y or Z scheme), "S" and the block when it
// is a bare TR-31 key block (as the software HSM stores them under its LMK: hsm serve
// reads them so).
func token(rec hsm.KeyRecord) string {
	if rec.Block == "" {
		return ""
	}
	switch rec.Block[0] {
	case 'S', 'U', 'X', 'T', 'Y', 'Z':
		return rec.Block
	}
	// A variant token without its scheme letter (an older key store): X or Y, the
	// ECB scheme such tokens are under.
	if len(rec.Block) == 32 && isVariantToken(rec.Block) {
		return "X" + rec.Block
	}
	if len(rec.Block) == 48 && isVariantToken(rec.Block) {
		return "Y" + rec.Block
	}
	return "S" + rec.Block
}

// blockOf returns what the key store keeps for a token the HSM returned: a TR-31 key
// block ("S" and a block of version A to D) without its "S", so that the software HSM
// under the same LMK reads it too; any other token as is.
func blockOf(tok string) string {
	if len(tok) > 1 && tok[0] == 'S' && tok[1] >= 'A' && tok[1] <= 'D' {
		return tok[1:]
	}
	return tok
}
