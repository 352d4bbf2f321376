package payshield

import (
	"crypto/cipher"
	"crypto/des"
	"fmt"
)

// The variant LMK scheme of payShield, the one most installed HSMs still hold keys
// under: 20 LMK pairs (00-01 ... 38-39), each a double-length DES key. A key type
// selects a pair and a variant (its first digit, XORed into the first byte of the
// pair's left key); the key's scheme (U double, T triple length) XORs a further
// variant per key part into the first byte of the pair's right key. The client sends
// such tokens to a real payShield as they are; VariantEncrypt lets tests and
// migrations reproduce them under the published test LMK.

// TestLMK is the published Thales test LMK set (variant scheme), pairs 00-01 to
// 38-39 as 16-byte keys in hex. It is public: never use it in production.
var TestLMK = [20]string{
	"01010101010101017902CD1FD36EF8BA", "20202020202020203131313131313131",
	"40404040404040405151515151515151", "61616161616161617070707070707070",
	"80808080808080809191919191919191", "A1A1A1A1A1A1A1A1B0B0B0B0B0B0B0B0",
	"C1C1010101010101D0D0010101010101", "E0E0010101010101F1F1010101010101",
	"1C587F1C13924FEF0101010101010101", "01010101010101010101010101010101",
	"02020202020202020404040404040404", "07070707070707071010101010101010",
	"13131313131313131515151515151515", "16161616161616161919191919191919",
	"1A1A1A1A1A1A1A1A1C1C1C1C1C1C1C1C", "23232323232323232525252525252525",
	"26262626262626262929292929292929", "2A2A2A2A2A2A2A2A2C2C2C2C2C2C2C2C",
	"2F2F2F2F2F2F2F2F3131313131313131", "01010101010101010101010101010101",
}

// lmkVariants are the key type variants 0-9, XORed into the first byte of the left
// LMK key.
var lmkVariants = [10]byte{0x00, 0xA6, 0x5A, 0x6A, 0xDE, 0x2B, 0x50, 0x74, 0x9C, 0xFA}

// schemeVariants are the variants of each part of a double-length (U) and a triple-
// length (T) key, XORed into the first byte of the right LMK key.
// X and Y (and tokens without a scheme letter) are the keys of the older, ECB
// scheme: no per-part variant.
var schemeVariants = map[byte][]byte{'U': {0xA6, 0x5A}, 'T': {0x6A, 0xDE, 0x2B}, 'Z': {0x00}, 'X': {0x00, 0x00}, 'Y': {0x00, 0x00, 0x00}}

func variantCiphers(pair []byte, variant int, scheme byte) ([]cipher.Block, error) {
	if len(pair) != 16 {
		return nil, fmt.Errorf("LMK pair is %d bytes, want 16", len(pair))
	}
	if variant < 0 || variant > 9 {
		return nil, fmt.Errorf("LMK variant %d out of range 0-9", variant)
	}
	sv, ok := schemeVariants[scheme]
	if !ok {
		return nil, fmt.Errorf("key scheme %q is not U, X, T, Y or Z", string(rune(scheme)))
	}
	var out []cipher.Block
	for _, v := range sv {
		k := make([]byte, 24)
		copy(k, pair)
		k[0] ^= lmkVariants[variant]
		k[8] ^= v
		copy(k[16:], k[:8])
		c, err := des.NewTripleDESCipher(k)
		clear(k)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// VariantEncrypt encrypts a key (8, 16 or 24 bytes for scheme Z, U or T) under an LMK
// pair with a variant, as a payShield with a variant LMK stores it.
func VariantEncrypt(pair []byte, variant int, scheme byte, key []byte) ([]byte, error) {
	cs, err := variantCiphers(pair, variant, scheme)
	if err != nil {
		return nil, err
	}
	if len(key) != 8*len(cs) {
		return nil, fmt.Errorf("a scheme %c key is %d bytes, not %d", scheme, 8*len(cs), len(key))
	}
	out := make([]byte, len(key))
	for i, c := range cs {
		c.Encrypt(out[8*i:], key[8*i:])
	}
	return out, nil
}

// VariantDecrypt is the inverse of VariantEncrypt.
func VariantDecrypt(pair []byte, variant int, scheme byte, enc []byte) ([]byte, error) {
	cs, err := variantCiphers(pair, variant, scheme)
	if err != nil {
		return nil, err
	}
	if len(enc) != 8*len(cs) {
		return nil, fmt.Errorf("a scheme %c key is %d bytes, not %d", scheme, 8*len(cs), len(enc))
	}
	out := make([]byte, len(enc))
	for i, c := range cs {
		c.Decrypt(out[8*i:], enc[8*i:])
	}
	return out, nil
}
