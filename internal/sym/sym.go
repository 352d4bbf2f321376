// Package sym holds the small symmetric-crypto helpers that the hsm packages share:
// building DES/TDES/AES block ciphers from raw keys, XOR, wiping and PAN masking.
package sym

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"fmt"
)

// NewTDES returns a DES (8-byte key), two-key TDES (16-byte key, K1|K2|K1) or
// three-key TDES (24-byte key) block cipher.
func NewTDES(key []byte) (cipher.Block, error) {
	switch len(key) {
	case 8:
		return des.NewCipher(key)
	case 16:
		var k [24]byte
		copy(k[:16], key)
		copy(k[16:], key[:8])
		b, err := des.NewTripleDESCipher(k[:])
		Wipe(k[:])
		return b, err
	case 24:
		return des.NewTripleDESCipher(key)
	}
	return nil, fmt.Errorf("DES/TDES key is %d bytes, want 8, 16 or 24", len(key))
}

// NewAES returns an AES block cipher for a 16, 24 or 32-byte key.
func NewAES(key []byte) (cipher.Block, error) {
	switch len(key) {
	case 16, 24, 32:
		return aes.NewCipher(key)
	}
	return nil, fmt.Errorf("AES key is %d bytes, want 16, 24 or 32", len(key))
}

// XOR sets dst[i] = a[i] ^ b[i] for i < len(dst); a and b must be at least as long.
func XOR(dst, a, b []byte) {
	for i := range dst {
		dst[i] = a[i] ^ b[i]
	}
}

// Wipe overwrites b with zeros.
func Wipe(b []byte) {
	clear(b)
}

// SetOddParity sets the least significant bit of every byte of a DES key so that
// each byte has odd parity, as DES keys conventionally do.
func SetOddParity(key []byte) {
	for i, b := range key {
		b &^= 1
		n := 0
		for x := b; x != 0; x &= x - 1 {
			n++
		}
		if n%2 == 0 {
			b |= 1
		}
		key[i] = b
	}
}

// MaskPAN returns pan with all but its first six and last four characters replaced by
// '*', for error messages and logs. A PAN of ten characters or fewer is fully masked
// except its last four (or, for four or fewer, fully masked).
func MaskPAN(pan string) string {
	n := len(pan)
	if n <= 4 {
		return mask(n)
	}
	if n <= 10 {
		return mask(n-4) + pan[n-4:]
	}
	return pan[:6] + mask(n-10) + pan[n-4:]
}

func mask(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = '*'
	}
	return string(b)
}

// AllDigits reports whether s is non-empty and made only of ASCII digits.
func AllDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
