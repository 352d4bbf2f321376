// Package mac computes and verifies message authentication codes: ISO 9797-1 MAC
// algorithm 1 (CBC-MAC) and algorithm 3 (the ANSI X9.19 "retail" MAC with a
// double-length DES key) with padding methods 1 and 2, and CMAC (NIST SP 800-38B,
// RFC 4493) for TDES and AES, with truncation and constant-time verification.
//
// The Retail and CMAC types hold expanded ciphers for reuse on a hot path: their Sum
// methods append to dst (so a caller with a buffer does not allocate) and their
// Verify methods do not allocate.
package mac

import (
	"crypto/cipher"
	"crypto/des"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"

	"github.com/switchyard/switchyard/internal/sym"
)

// Padding is an ISO 9797-1 padding method.
type Padding uint8

// The supported padding methods.
const (
	// Padding1 appends as few zero bytes as needed (none when the data fills whole
	// blocks); empty data becomes one block of zeros.
	Padding1 Padding = 1
	// Padding2 appends 0x80 and then as few zero bytes as needed.
	Padding2 Padding = 2
)

// MinVerifyLength is the shortest MAC that Verify methods accept (4 bytes, the
// shortest that ISO 9797-1 and X9.19 use).
const MinVerifyLength = 4

// ErrPadding is wrapped by errors about an unknown padding method.
var ErrPadding = errors.New("unknown ISO 9797-1 padding method (want 1 or 2)")

// String names the padding method.
func (p Padding) String() string { return fmt.Sprintf("ISO 9797-1 padding method %d", uint8(p)) }

func (p Padding) valid() bool { return p == Padding1 || p == Padding2 }

// Equal reports whether a and b are equal, in time that depends only on their lengths.
func Equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

var scratchPool = sync.Pool{New: func() any { return new([32]byte) }}

// cbc runs CBC-MAC (IV zero) over data with padding pad into x (one cipher block).
func cbc(c cipher.Block, x, data []byte, pad Padding) {
	bs := len(x)
	clear(x)
	full := len(data) / bs
	rest := len(data) % bs
	if pad == Padding1 && rest == 0 && full > 0 {
		// Data fills whole blocks: no padding.
		for i := 0; i < full; i++ {
			sym.XOR(x, x, data[i*bs:])
			c.Encrypt(x, x)
		}
		return
	}
	for i := 0; i < full; i++ {
		sym.XOR(x, x, data[i*bs:])
		c.Encrypt(x, x)
	}
	// Last, padded block (zeros are a no-op in the XOR).
	last := data[full*bs:]
	for i := range last {
		x[i] ^= last[i]
	}
	if pad == Padding2 {
		x[rest] ^= 0x80
	}
	c.Encrypt(x, x)
}

// Alg1 returns the ISO 9797-1 MAC algorithm 1 MAC (CBC-MAC, IV zero, no output
// transformation) of data under c, one cipher block long. With a DES or TDES cipher
// this is also the ANSI X9.9 / FIPS 113 MAC.
func Alg1(c cipher.Block, data []byte, pad Padding) ([]byte, error) {
	if !pad.valid() {
		return nil, fmt.Errorf("MAC algorithm 1: %w: %d", ErrPadding, pad)
	}
	x := make([]byte, c.BlockSize())
	cbc(c, x, data, pad)
	return x, nil
}

// Alg1Key is Alg1 with a raw DES (8-byte) or TDES (16 or 24-byte) key.
func Alg1Key(key, data []byte, pad Padding) ([]byte, error) {
	c, err := sym.NewTDES(key)
	if err != nil {
		return nil, fmt.Errorf("MAC algorithm 1: %w", err)
	}
	return Alg1(c, data, pad)
}

// Retail computes ISO 9797-1 MAC algorithm 3 (ANSI X9.19 retail MAC): DES CBC-MAC
// under the left key half K, then D(K', ·) and E(K, ·) on the last block, where K' is
// the right key half. It is safe for concurrent use.
type Retail struct {
	k, k2 cipher.Block
	pad   Padding
}

// NewRetail returns a retail MAC for a double-length (16-byte) DES key and padding
// method pad.
func NewRetail(key []byte, pad Padding) (*Retail, error) {
	if len(key) != 16 {
		return nil, fmt.Errorf("retail MAC: key is %d bytes, want 16 (double-length DES)", len(key))
	}
	if !pad.valid() {
		return nil, fmt.Errorf("retail MAC: %w: %d", ErrPadding, pad)
	}
	k, err := des.NewCipher(key[:8])
	if err != nil {
		return nil, fmt.Errorf("retail MAC: %w", err)
	}
	k2, err := des.NewCipher(key[8:])
	if err != nil {
		return nil, fmt.Errorf("retail MAC: %w", err)
	}
	return &Retail{k: k, k2: k2, pad: pad}, nil
}

// Size returns the MAC size, 8 bytes.
func (r *Retail) Size() int { return 8 }

func (r *Retail) sum(x, data []byte) {
	cbc(r.k, x, data, r.pad)
	r.k2.Decrypt(x, x)
	r.k.Encrypt(x, x)
}

// Sum appends the 8-byte MAC of data to dst.
func (r *Retail) Sum(dst, data []byte) []byte {
	n := len(dst)
	dst = growBy(dst, 8)
	r.sum(dst[n:], data)
	return dst
}

// Verify reports whether mac (MinVerifyLength to 8 bytes, a left-truncated MAC) is
// the MAC of data, comparing in constant time.
func (r *Retail) Verify(mac, data []byte) bool {
	if len(mac) < MinVerifyLength || len(mac) > 8 {
		return false
	}
	s := scratchPool.Get().(*[32]byte)
	x := s[:8]
	r.sum(x, data)
	ok := Equal(mac, x[:len(mac)])
	clear(s[:])
	scratchPool.Put(s)
	return ok
}

// Alg3 returns the 8-byte retail MAC of data under a 16-byte key.
func Alg3(key, data []byte, pad Padding) ([]byte, error) {
	r, err := NewRetail(key, pad)
	if err != nil {
		return nil, err
	}
	return r.Sum(nil, data), nil
}

// CMAC computes CMAC (NIST SP 800-38B, RFC 4493) with a 64-bit (TDES) or 128-bit
// (AES) block cipher. It is safe for concurrent use.
type CMAC struct {
	c      cipher.Block
	k1, k2 [16]byte
	bs     int
}

// NewCMAC returns a CMAC over c, whose block size must be 8 or 16 bytes.
func NewCMAC(c cipher.Block) (*CMAC, error) {
	bs := c.BlockSize()
	var rb byte
	switch bs {
	case 8:
		rb = 0x1B
	case 16:
		rb = 0x87
	default:
		return nil, fmt.Errorf("CMAC: cipher block size %d, want 8 or 16", bs)
	}
	m := &CMAC{c: c, bs: bs}
	var l [16]byte
	c.Encrypt(l[:bs], l[:bs])
	shift1(m.k1[:bs], l[:bs], rb)
	shift1(m.k2[:bs], m.k1[:bs], rb)
	clear(l[:])
	return m, nil
}

// shift1 sets dst = src << 1, XOR rb when the top bit of src was set.
func shift1(dst, src []byte, rb byte) {
	carry := src[0] >> 7
	for i := 0; i < len(src)-1; i++ {
		dst[i] = src[i]<<1 | src[i+1]>>7
	}
	dst[len(src)-1] = src[len(src)-1] << 1
	if carry == 1 {
		dst[len(src)-1] ^= rb
	}
}

// NewTDESCMAC returns a TDES CMAC for a 16 or 24-byte key.
func NewTDESCMAC(key []byte) (*CMAC, error) {
	if len(key) != 16 && len(key) != 24 {
		return nil, fmt.Errorf("TDES CMAC: key is %d bytes, want 16 or 24", len(key))
	}
	c, err := sym.NewTDES(key)
	if err != nil {
		return nil, fmt.Errorf("TDES CMAC: %w", err)
	}
	return NewCMAC(c)
}

// NewAESCMAC returns an AES CMAC for a 16, 24 or 32-byte key.
func NewAESCMAC(key []byte) (*CMAC, error) {
	c, err := sym.NewAES(key)
	if err != nil {
		return nil, fmt.Errorf("AES CMAC: %w", err)
	}
	return NewCMAC(c)
}

// Size returns the untruncated MAC size: the cipher block size.
func (m *CMAC) Size() int { return m.bs }

func (m *CMAC) sum(x, data []byte) {
	bs := m.bs
	clear(x)
	n := (len(data) + bs - 1) / bs
	if n == 0 {
		n = 1
	}
	for i := 0; i < n-1; i++ {
		sym.XOR(x, x, data[i*bs:])
		m.c.Encrypt(x, x)
	}
	last := data[(n-1)*bs:]
	if len(last) == bs {
		sym.XOR(x, x, last)
		sym.XOR(x, x, m.k1[:bs])
	} else {
		for i := range last {
			x[i] ^= last[i]
		}
		x[len(last)] ^= 0x80
		sym.XOR(x, x, m.k2[:bs])
	}
	m.c.Encrypt(x, x)
}

// Sum appends the full (block-size) CMAC of data to dst.
func (m *CMAC) Sum(dst, data []byte) []byte {
	n := len(dst)
	dst = growBy(dst, m.bs)
	m.sum(dst[n:], data)
	return dst
}

// SumTruncated appends the leftmost size bytes of the CMAC of data to dst.
func (m *CMAC) SumTruncated(dst, data []byte, size int) ([]byte, error) {
	if size < MinVerifyLength || size > m.bs {
		return dst, fmt.Errorf("CMAC: truncation to %d bytes, want %d to %d", size, MinVerifyLength, m.bs)
	}
	n := len(dst)
	dst = m.Sum(dst, data)
	clear(dst[n+size:])
	return dst[:n+size], nil
}

// Verify reports whether mac (MinVerifyLength bytes up to the block size: a
// left-truncated CMAC) is the CMAC of data, comparing in constant time.
func (m *CMAC) Verify(mac, data []byte) bool {
	if len(mac) < MinVerifyLength || len(mac) > m.bs {
		return false
	}
	s := scratchPool.Get().(*[32]byte)
	x := s[:m.bs]
	m.sum(x, data)
	ok := Equal(mac, x[:len(mac)])
	clear(s[:])
	scratchPool.Put(s)
	return ok
}

func growBy(dst []byte, n int) []byte {
	l := len(dst)
	if cap(dst)-l < n {
		nd := make([]byte, l, l+n)
		copy(nd, dst)
		dst = nd
	}
	return dst[:l+n]
}
