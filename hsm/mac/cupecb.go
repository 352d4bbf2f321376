package mac

import (
	"crypto/cipher"
	"encoding/hex"
)

// CUPECB appends to dst the MAC of data by the China UnionPay POS "ECB" algorithm,
// as the 8 ASCII characters that travel in field 64:
//
//  1. pad data with zeros to a multiple of 8 bytes and XOR all 8-byte blocks: R;
//  2. write R as 16 upper-case hex characters; encrypt the first 8 with c;
//  3. XOR the result with the last 8 characters and encrypt again with c;
//  4. the first 8 upper-case hex characters of that block are the MAC.
//
// c is single DES for a single-length MAK and TDES for a double-length one (the
// UnionPay check value in docs/cup-dialect.md is computed so).
func CUPECB(dst []byte, c cipher.Block, data []byte) []byte {
	var r, h [16]byte
	x := r[:8]
	for i := 0; i < len(data); i += 8 {
		end := min(i+8, len(data))
		for j := i; j < end; j++ {
			x[j-i] ^= data[j]
		}
	}
	upperHex(h[:], x)
	var b [8]byte
	c.Encrypt(b[:], h[:8])
	for i := range b {
		b[i] ^= h[8+i]
	}
	c.Encrypt(b[:], b[:])
	upperHex(h[:], b[:])
	return append(dst, h[:8]...)
}

func upperHex(dst, src []byte) {
	hex.Encode(dst, src)
	for i, c := range dst[:2*len(src)] {
		if c >= 'a' && c <= 'f' {
			dst[i] = c - 'a' + 'A'
		}
	}
}

// ede is the TDES (encrypt-decrypt-encrypt) block of a retail MAC's two DES halves.
type ede struct{ k, k2 cipher.Block }

func (e ede) BlockSize() int { return 8 }
func (e ede) Encrypt(dst, src []byte) {
	e.k.Encrypt(dst, src)
	e.k2.Decrypt(dst, dst)
	e.k.Encrypt(dst, dst)
}
func (e ede) Decrypt(dst, src []byte) {
	e.k.Decrypt(dst, src)
	e.k2.Encrypt(dst, dst)
	e.k.Decrypt(dst, dst)
}

// CUPECB appends to dst the CUP "ECB" MAC of data under the retail MAC's
// double-length key (see the function CUPECB), so that one stored MAC key serves a
// terminal configured for either algorithm.
func (r *Retail) CUPECB(dst, data []byte) []byte {
	return CUPECB(dst, ede{r.k, r.k2}, data)
}
