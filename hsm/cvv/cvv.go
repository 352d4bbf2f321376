// Package cvv computes Visa card verification values (CVV, CVV2, iCVV) from a CVK
// pair (CVK A, CVK B: two single-length DES keys), the PAN, the expiry date (YYMM)
// and the service code, by the Visa CVV method: the 32-digit string PAN || expiry ||
// service code (zero-padded on the right) is split into two 8-byte blocks; block 1 is
// DES-encrypted under CVK A, XORed with block 2 and TDES-encrypted under CVK A|B; the
// CVV is the first three decimal digits of the result (digits first, then the hex
// letters A-F converted to 0-5).
package cvv

import (
	"crypto/cipher"
	"crypto/des"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/switchyard/switchyard/internal/sym"
)

// Service codes that select the CVV2 and iCVV variants.
const (
	ServiceCodeCVV2 = "000" // CVV2 (printed on the card) uses service code 000
	ServiceCodeICVV = "999" // iCVV (chip track 2 equivalent) uses service code 999
)

// ErrInput is wrapped by errors about a bad PAN, expiry or service code.
var ErrInput = errors.New("bad CVV input")

// Calculator computes CVVs with one CVK pair. It is safe for concurrent use.
type Calculator struct {
	a    cipher.Block // DES under CVK A
	tdes cipher.Block // TDES under CVK A | CVK B
}

// New returns a Calculator for a 16-byte CVK pair (CVK A || CVK B).
func New(cvk []byte) (*Calculator, error) {
	if len(cvk) != 16 {
		return nil, fmt.Errorf("CVV: CVK pair is %d bytes, want 16 (CVK A and CVK B)", len(cvk))
	}
	a, err := des.NewCipher(cvk[:8])
	if err != nil {
		return nil, fmt.Errorf("CVV: CVK A: %w", err)
	}
	t, err := sym.NewTDES(cvk)
	if err != nil {
		return nil, fmt.Errorf("CVV: CVK pair: %w", err)
	}
	return &Calculator{a: a, tdes: t}, nil
}

// NewPair returns a Calculator for CVK A and CVK B given separately (8 bytes each).
func NewPair(cvkA, cvkB []byte) (*Calculator, error) {
	if len(cvkA) != 8 || len(cvkB) != 8 {
		return nil, fmt.Errorf("CVV: CVK A is %d bytes and CVK B %d bytes, want 8 each", len(cvkA), len(cvkB))
	}
	k := make([]byte, 16)
	copy(k, cvkA)
	copy(k[8:], cvkB)
	defer sym.Wipe(k)
	return New(k)
}

func checkInput(pan, expiry, serviceCode string) error {
	if len(pan) < 12 || len(pan) > 19 || !sym.AllDigits(pan) {
		return fmt.Errorf("%w: PAN %s is not 12 to 19 digits", ErrInput, sym.MaskPAN(pan))
	}
	if len(expiry) != 4 || !sym.AllDigits(expiry) {
		return fmt.Errorf("%w: expiry %q is not YYMM", ErrInput, expiry)
	}
	if mm := (expiry[2]-'0')*10 + expiry[3] - '0'; mm < 1 || mm > 12 {
		return fmt.Errorf("%w: expiry %q has month %02d", ErrInput, expiry, mm)
	}
	if len(serviceCode) != 3 || !sym.AllDigits(serviceCode) {
		return fmt.Errorf("%w: service code %q is not 3 digits", ErrInput, serviceCode)
	}
	return nil
}

// Compute returns the 3-digit CVV for pan, expiry (YYMM) and service code. Use
// ServiceCodeCVV2 for CVV2 and ServiceCodeICVV for iCVV.
func (c *Calculator) Compute(pan, expiry, serviceCode string) (string, error) {
	var out [3]byte
	if err := c.compute(&out, pan, expiry, serviceCode); err != nil {
		return "", err
	}
	return string(out[:]), nil
}

func (c *Calculator) compute(out *[3]byte, pan, expiry, serviceCode string) error {
	if err := checkInput(pan, expiry, serviceCode); err != nil {
		return err
	}
	var digits [32]byte // nibbles
	n := 0
	for _, s := range []string{pan, expiry, serviceCode} {
		for i := 0; i < len(s); i++ {
			digits[n] = s[i] - '0'
			n++
		}
	}
	buf := make([]byte, 16) // escapes into the cipher calls; small
	for i := 0; i < 16; i++ {
		buf[i] = digits[2*i]<<4 | digits[2*i+1]
	}
	c.a.Encrypt(buf[:8], buf[:8])
	sym.XOR(buf[:8], buf[:8], buf[8:])
	c.tdes.Encrypt(buf[:8], buf[:8])
	k := 0
	for pass := 0; pass < 2 && k < 3; pass++ {
		for i := 0; i < 16 && k < 3; i++ {
			v := buf[i/2] >> 4
			if i%2 == 1 {
				v = buf[i/2] & 0xF
			}
			if pass == 0 && v <= 9 {
				out[k] = '0' + v
				k++
			} else if pass == 1 && v > 9 {
				out[k] = '0' + v - 10
				k++
			}
		}
	}
	return nil
}

// Verify reports whether cvv is the CVV for pan, expiry and service code, comparing
// in constant time. Bad input is an error.
func (c *Calculator) Verify(cvv, pan, expiry, serviceCode string) (bool, error) {
	var out [3]byte
	if err := c.compute(&out, pan, expiry, serviceCode); err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare([]byte(cvv), out[:]) == 1, nil
}

// Compute returns the CVV under the CVK pair cvk (16 bytes).
func Compute(cvk []byte, pan, expiry, serviceCode string) (string, error) {
	c, err := New(cvk)
	if err != nil {
		return "", err
	}
	return c.Compute(pan, expiry, serviceCode)
}
