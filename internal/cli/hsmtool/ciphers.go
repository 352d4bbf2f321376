package hsmtool

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"fmt"

	"github.com/switchyard/switchyard/hsm/pinblock"
)

// The block-cipher helpers below are the few lines of hsm/internal/sym this tool
// needs; sym is internal to hsm, and the tool lives with the other commands.

// wipe zeroes key material after use.
func wipe(b []byte) { pinblock.Wipe(b) }

// newTDES returns a DES (8-byte key), two-key TDES (16-byte key, K1|K2|K1) or
// three-key TDES (24-byte key) block cipher.
func newTDES(key []byte) (cipher.Block, error) {
	switch len(key) {
	case 8:
		return des.NewCipher(key)
	case 16:
		var k [24]byte
		copy(k[:16], key)
		copy(k[16:], key[:8])
		b, err := des.NewTripleDESCipher(k[:])
		wipe(k[:])
		return b, err
	case 24:
		return des.NewTripleDESCipher(key)
	}
	return nil, fmt.Errorf("DES/TDES key is %d bytes, want 8, 16 or 24", len(key))
}

// newAES returns an AES block cipher for a 16, 24 or 32-byte key.
func newAES(key []byte) (cipher.Block, error) {
	switch len(key) {
	case 16, 24, 32:
		return aes.NewCipher(key)
	}
	return nil, fmt.Errorf("AES key is %d bytes, want 16, 24 or 32", len(key))
}
