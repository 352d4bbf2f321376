package hsm

import (
	"crypto/subtle"
	"fmt"

	"github.com/switchyard/switchyard/internal/sym"
)

// CheckComponents refuses clear key components that do not split the knowledge of
// the key they form (FormKey, both backends): two equal components (they cancel out:
// of two, the all-zero key; of three, the key is the third custodian's component), an
// all-zero component (of two, the other custodian's component is the key), and
// components that combine to the all-zero key. For DES keys (TDES-2KEY, TDES-3KEY)
// the comparisons ignore the parity bit of each byte, as DES does: components that
// differ only in parity are equal keys, and a key of parity bits only is the all-zero
// key (odd parity turns it into the weak key 0101...01). The same holds part by part
// (keyParts: a DES key's 8-byte keys, an AES key's halves): a component with an
// all-zero part leaves that part of the key to the other custodians (of two, one
// custodian knows half the key), and components that combine to a key with an
// all-zero part, or to a TDES-3KEY key whose first and last parts are equal (a
// double-length key in triple-length form), are refused. Each component must be of
// the algorithm's key length, and the key they form must pass CheckKeyHalves (single:
// KeySpec.SingleLength). The caller wipes the components; CheckComponents wipes its
// own copies. Errors name the component and the part, never a value.
func CheckComponents(alg Algorithm, comps [][]byte, single bool) error {
	n := alg.KeyLength()
	if n == 0 {
		return fmt.Errorf("%w: unknown key algorithm %q", ErrInput, alg)
	}
	if len(comps) < 2 || len(comps) > 3 {
		return fmt.Errorf("%w: %d components, want 2 or 3", ErrInput, len(comps))
	}
	var mask byte = 0xFF
	if !alg.IsAES() {
		mask = 0xFE // the DES parity bit carries no key material
	}
	var buf [3 * 32]byte
	defer sym.Wipe(buf[:])
	masked := make([][]byte, len(comps))
	key := make([]byte, n)
	defer sym.Wipe(key)
	for i, c := range comps {
		if len(c) != n {
			return fmt.Errorf("%w: component %d is %d bytes, a %s key needs %d", ErrInput, i+1, len(c), alg, n)
		}
		m := buf[i*32 : i*32+n]
		for j := range c {
			m[j] = c[j] & mask
		}
		masked[i] = m
		if isZero(m) {
			return fmt.Errorf("%w: component %d is all zero%s: the other components alone form the key", ErrInput, i+1, parityNote(alg))
		}
		if p, ok := zeroPart(alg, m); ok {
			return fmt.Errorf("%w: component %d's %s is all zero%s: the other components alone form that part of the key", ErrInput, i+1, p, parityNote(alg))
		}
		for j := range i {
			if subtle.ConstantTimeCompare(m, masked[j]) == 1 {
				return fmt.Errorf("%w: components %d and %d are equal%s: they cancel out, leaving the key known to one custodian (or all zero)", ErrInput, j+1, i+1, parityNote(alg))
			}
		}
		sym.XOR(key, key, m)
	}
	if isZero(key) {
		return fmt.Errorf("%w: the components combine to the all-zero key%s", ErrInput, parityNote(alg))
	}
	if p, ok := zeroPart(alg, key); ok {
		return fmt.Errorf("%w: the components combine to a key whose %s is all zero%s: that part is known to all, and the key is weaker than its length says", ErrInput, p, parityNote(alg))
	}
	if alg == TDES3KEY && subtle.ConstantTimeCompare(key[:8], key[16:]) == 1 {
		return fmt.Errorf("%w: the components combine to a TDES-3KEY key whose first and last parts are equal%s: a double-length key masquerading as a triple-length one", ErrInput, parityNote(alg))
	}
	return CheckKeyHalves(alg, key, single)
}

// zeroPart reports whether a part of key (of algorithm alg; parity bits already
// cleared for DES) is all zero, and names it: the 8-byte DES keys of a TDES key
// ("first half", "second half"; "first part", ... of a TDES-3KEY key), the two halves
// of an AES key. A key of one part (none here) has none to report.
func zeroPart(alg Algorithm, key []byte) (string, bool) {
	n, word := 2, "half"
	if !alg.IsAES() {
		n = len(key) / 8
		if n == 3 {
			word = "part"
		}
	}
	if n < 2 || len(key)%n != 0 {
		return "", false
	}
	size := len(key) / n
	for i := range n {
		if isZero(key[i*size : (i+1)*size]) {
			return []string{"first", "second", "third"}[i] + " " + word, true
		}
	}
	return "", false
}

func parityNote(alg Algorithm) string {
	if alg.IsAES() {
		return ""
	}
	return " (DES parity bits ignored)"
}

// isZero reports whether every byte of b is zero, in time that depends only on len(b).
func isZero(b []byte) bool {
	var acc byte
	for _, x := range b {
		acc |= x
	}
	return acc == 0
}

// CheckKeyHalves refuses a TDES key whose independent parts are equal, ignoring
// parity: a TDES-2KEY key of two equal halves, or a TDES-3KEY key whose first and
// second or second and third parts are equal, enciphers as single DES (56 bits)
// while it passes for a double- or triple-length key (payShield error 75, "single
// length key masquerading as double or triple length key"). single allows a
// TDES-2KEY key of equal halves, asked for as such (KeySpec.SingleLength). AES keys
// pass.
func CheckKeyHalves(alg Algorithm, key []byte, single bool) error {
	eq := func(a, b []byte) bool {
		var d byte
		for i := range a {
			d |= (a[i] ^ b[i]) &^ 1
		}
		return d == 0
	}
	switch {
	case alg == TDES2KEY && len(key) == 16:
		if !single && eq(key[:8], key[8:]) {
			return fmt.Errorf("%w: the TDES-2KEY key's two halves are equal: a single-length DES key masquerading as a double-length one", ErrInput)
		}
	case alg == TDES3KEY && len(key) == 24:
		if eq(key[:8], key[8:16]) || eq(key[8:16], key[16:]) {
			return fmt.Errorf("%w: the TDES-3KEY key's middle part equals its first or last: a single-length DES key masquerading as a triple-length one", ErrInput)
		}
	}
	return nil
}
