// Package pinblock encodes and strictly decodes ISO 9564-1 PIN blocks: formats 0, 1 and
// 3 (8-byte blocks for DES/TDES) and format 4 (16-byte blocks for AES, enciphered as
// E(K, E(K, PIN field) XOR PAN field)).
//
// A clear PIN is a []byte of 4 to 12 ASCII digits. It is never turned into a string,
// never put into an error, and the caller wipes it with Wipe when done. Errors never
// carry PINs, clear PIN blocks or full PANs (PANs are masked first6/last4).
//
// The Append functions write into the spare capacity of dst and so let a hot path
// work without allocating; the others are conveniences that allocate.
package pinblock

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/internal/sym"
)

// Format is an ISO 9564-1 PIN block format number.
type Format uint8

// The supported PIN block formats.
const (
	// Format0 is ISO 9564-1 format 0 (ANSI X9.8): PIN field XOR PAN field, fill F.
	Format0 Format = 0
	// Format1 is ISO 9564-1 format 1: no PAN binding, random fill.
	Format1 Format = 1
	// Format3 is ISO 9564-1 format 3: like format 0 with random fill A-F.
	Format3 Format = 3
	// Format4 is ISO 9564-1 format 4: 16-byte AES block bound to the PAN.
	Format4 Format = 4
)

// PIN length limits of ISO 9564-1.
const (
	MinPINLength = 4
	MaxPINLength = 12
)

// Errors that a failed encode or decode wraps; test with errors.Is.
var (
	ErrFormat    = errors.New("unsupported PIN block format")
	ErrPINLength = errors.New("PIN length out of range (want 4-12 digits)")
	ErrPINDigits = errors.New("PIN has a non-digit")
	ErrControl   = errors.New("PIN block control field does not match the format")
	ErrFill      = errors.New("PIN block fill is wrong for the format")
	ErrPAN       = errors.New("bad PAN")
	ErrBlockSize = errors.New("PIN block has the wrong size for the format or cipher")
)

// String returns the format as "ISO-0", "ISO-1", "ISO-3" or "ISO-4".
func (f Format) String() string { return "ISO-" + strconv.Itoa(int(f)) }

// Valid reports whether f is one of the supported formats.
func (f Format) Valid() bool {
	switch f {
	case Format0, Format1, Format3, Format4:
		return true
	}
	return false
}

// BlockSize is the size in bytes of a PIN block of format f: 16 for format 4, else 8.
func (f Format) BlockSize() int {
	if f == Format4 {
		return 16
	}
	return 8
}

// MarshalText encodes f as its number ("0", "1", "3", "4").
func (f Format) MarshalText() ([]byte, error) {
	if !f.Valid() {
		return nil, fmt.Errorf("%w: %d", ErrFormat, int(f))
	}
	return []byte(strconv.Itoa(int(f))), nil
}

// UnmarshalText parses a format with ParseFormat.
func (f *Format) UnmarshalText(b []byte) error {
	p, err := ParseFormat(string(b))
	if err != nil {
		return err
	}
	*f = p
	return nil
}

// ParseFormat parses "0", "1", "3", "4", optionally prefixed by "ISO-" or "ISO".
func ParseFormat(s string) (Format, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	if u, ok := strings.CutPrefix(t, "ISO"); ok {
		t = strings.TrimPrefix(u, "-")
	}
	n, err := strconv.Atoi(t)
	if err != nil || n < 0 || n > 9 || !Format(n).Valid() {
		return 0, fmt.Errorf("%w: %q (want 0, 1, 3 or 4)", ErrFormat, s)
	}
	return Format(n), nil
}

// Wipe overwrites b (a clear PIN or PIN block) with zeros.
func Wipe(b []byte) { sym.Wipe(b) }

// CheckPIN checks that pin is 4 to 12 ASCII digits.
func CheckPIN(pin []byte) error {
	if len(pin) < MinPINLength || len(pin) > MaxPINLength {
		return ErrPINLength
	}
	for _, c := range pin {
		if c < '0' || c > '9' {
			return ErrPINDigits
		}
	}
	return nil
}

func checkPAN(pan string) error {
	if len(pan) < 8 || len(pan) > 19 || !sym.AllDigits(pan) {
		return fmt.Errorf("%w: %q is not 8 to 19 digits", ErrPAN, sym.MaskPAN(pan))
	}
	return nil
}

// panField8 returns the 8-byte account number field of formats 0 and 3: four zero
// nibbles and the 12 rightmost PAN digits excluding the check digit, left-padded with
// zeros when the PAN is shorter.
func panField8(pan string) (f [8]byte, err error) {
	if err := checkPAN(pan); err != nil {
		return f, err
	}
	body := pan[:len(pan)-1]
	var digits [16]byte // nibbles
	start := len(body) - 12
	for i := 0; i < 12; i++ {
		j := start + i
		if j >= 0 {
			digits[4+i] = body[j] - '0'
		}
	}
	for i := 0; i < 8; i++ {
		f[i] = digits[2*i]<<4 | digits[2*i+1]
	}
	return f, nil
}

// PANField returns the 16-byte format 4 PAN field: nibble M = PAN length - 12 (0 for
// PANs of 12 digits or fewer), then the PAN left-justified (right-justified in 12 digits
// with leading zeros when shorter than 12), then zeros.
func PANField(pan string) (f [16]byte, err error) {
	if err := checkPAN(pan); err != nil {
		return f, err
	}
	var n [32]byte
	if len(pan) >= 12 {
		n[0] = byte(len(pan) - 12)
		for i := 0; i < len(pan); i++ {
			n[1+i] = pan[i] - '0'
		}
	} else {
		off := 1 + 12 - len(pan)
		for i := 0; i < len(pan); i++ {
			n[off+i] = pan[i] - '0'
		}
	}
	for i := 0; i < 16; i++ {
		f[i] = n[2*i]<<4 | n[2*i+1]
	}
	return f, nil
}

func randReader(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}

// Encode returns the clear PIN block of format 0, 1 or 3 (8 bytes) or the clear PIN
// field of format 4 (16 bytes). Formats 1, 3 and 4 take their fill from rnd (nil means
// crypto/rand). pan is ignored for format 1 and unused by the format 4 PIN field.
// The caller wipes the result.
func Encode(f Format, pin []byte, pan string, rnd io.Reader) ([]byte, error) {
	return AppendEncode(nil, f, pin, pan, rnd)
}

// AppendEncode appends the clear block that Encode returns to dst.
func AppendEncode(dst []byte, f Format, pin []byte, pan string, rnd io.Reader) ([]byte, error) {
	if !f.Valid() {
		return dst, fmt.Errorf("%w: %d", ErrFormat, int(f))
	}
	if err := CheckPIN(pin); err != nil {
		return dst, fmt.Errorf("encode %s PIN block: %w", f, err)
	}
	var panF [8]byte
	if f == Format0 || f == Format3 {
		var err error
		if panF, err = panField8(pan); err != nil {
			return dst, fmt.Errorf("encode %s PIN block: %w", f, err)
		}
	}
	n := len(dst)
	bs := f.BlockSize()
	dst = grow(dst, bs)
	out := dst[n : n+bs]
	// Random material for the fill, read into the block area first.
	switch f {
	case Format1, Format4:
		if _, err := io.ReadFull(randReader(rnd), out); err != nil {
			sym.Wipe(out)
			return dst[:n], fmt.Errorf("encode %s PIN block: random fill: %w", f, err)
		}
	case Format3:
		if err := fillAF(out, randReader(rnd)); err != nil {
			sym.Wipe(out)
			return dst[:n], fmt.Errorf("encode %s PIN block: random fill: %w", f, err)
		}
	}
	// Nibbles of the PIN field (first 16 nibbles).
	var nib [16]byte
	nib[0] = byte(f)
	nib[1] = byte(len(pin))
	for i, c := range pin {
		nib[2+i] = c - '0'
	}
	for i := 2 + len(pin); i < 16; i++ {
		switch f {
		case Format0:
			nib[i] = 0xF
		case Format4:
			nib[i] = 0xA
		case Format1, Format3:
			// Random nibble i of the fill read above (already in A-F for format 3).
			if i%2 == 0 {
				nib[i] = out[i/2] >> 4
			} else {
				nib[i] = out[i/2] & 0xF
			}
		}
	}
	for i := 0; i < 8; i++ {
		out[i] = (nib[2*i]<<4 | nib[2*i+1]) ^ panF[i]
	}
	sym.Wipe(nib[:])
	return dst, nil
}

// fillAF fills both nibbles of each byte of b with uniformly random nibbles in A-F.
func fillAF(b []byte, rnd io.Reader) error {
	var buf [16]byte
	defer sym.Wipe(buf[:])
	pos, have := 0, 0
	for i := 0; i < 2*len(b); i++ {
		for {
			if pos >= 2*have {
				k := len(buf)
				if _, err := io.ReadFull(rnd, buf[:k]); err != nil {
					return err
				}
				pos, have = 0, k
			}
			v := buf[pos/2]
			if pos%2 == 0 {
				v >>= 4
			}
			v &= 0xF
			pos++
			if v < 12 { // 12 values map evenly onto the 6 values A-F
				if i%2 == 0 {
					b[i/2] = (10 + v%6) << 4
				} else {
					b[i/2] |= 10 + v%6
				}
				break
			}
		}
	}
	return nil
}

// Decode strictly decodes a clear PIN block of format 0, 1 or 3 or a clear format 4
// PIN field and returns the PIN as ASCII digits, which the caller wipes. It checks the
// control nibble, the PIN length (4-12), the digits and the fill of the format.
func Decode(f Format, clear []byte, pan string) ([]byte, error) {
	return AppendDecode(nil, f, clear, pan)
}

// AppendDecode appends the PIN that Decode returns to dst.
func AppendDecode(dst []byte, f Format, clear []byte, pan string) ([]byte, error) {
	if !f.Valid() {
		return dst, fmt.Errorf("%w: %d", ErrFormat, int(f))
	}
	if len(clear) != f.BlockSize() {
		return dst, fmt.Errorf("decode %s PIN block: %w: %d bytes, want %d", f, ErrBlockSize, len(clear), f.BlockSize())
	}
	var panF [8]byte
	if f == Format0 || f == Format3 {
		var err error
		if panF, err = panField8(pan); err != nil {
			return dst, fmt.Errorf("decode %s PIN block: %w", f, err)
		}
	}
	var nib [16]byte
	defer sym.Wipe(nib[:])
	for i := 0; i < 8; i++ {
		b := clear[i] ^ panF[i]
		nib[2*i], nib[2*i+1] = b>>4, b&0xF
	}
	if nib[0] != byte(f) {
		return dst, fmt.Errorf("decode %s PIN block: %w", f, ErrControl)
	}
	l := int(nib[1])
	if l < MinPINLength || l > MaxPINLength {
		return dst, fmt.Errorf("decode %s PIN block: %w", f, ErrPINLength)
	}
	for i := 2; i < 2+l; i++ {
		if nib[i] > 9 {
			return dst, fmt.Errorf("decode %s PIN block: %w", f, ErrPINDigits)
		}
	}
	for i := 2 + l; i < 16; i++ {
		ok := true
		switch f {
		case Format0:
			ok = nib[i] == 0xF
		case Format3:
			ok = nib[i] >= 0xA
		case Format4:
			ok = nib[i] == 0xA
		}
		if !ok {
			return dst, fmt.Errorf("decode %s PIN block: %w", f, ErrFill)
		}
	}
	for i := 2; i < 2+l; i++ {
		dst = append(dst, '0'+nib[i])
	}
	return dst, nil
}

// grow makes sure dst has room for n more bytes and returns dst extended by n.
func grow(dst []byte, n int) []byte {
	l := len(dst)
	if cap(dst)-l < n {
		nd := make([]byte, l, l+n+16)
		copy(nd, dst)
		dst = nd
	}
	return dst[:l+n]
}

// Encrypt encodes pin in format f and enciphers it under c: ECB for formats 0, 1 and 3
// (c has an 8-byte block: DES or TDES) and E(K, E(K, PIN field) XOR PAN field) for
// format 4 (c has a 16-byte block: AES).
func Encrypt(c cipher.Block, f Format, pin []byte, pan string, rnd io.Reader) ([]byte, error) {
	return AppendEncrypt(nil, c, f, pin, pan, rnd)
}

// AppendEncrypt appends the enciphered PIN block that Encrypt returns to dst.
func AppendEncrypt(dst []byte, c cipher.Block, f Format, pin []byte, pan string, rnd io.Reader) ([]byte, error) {
	if f.Valid() && c.BlockSize() != f.BlockSize() {
		return dst, fmt.Errorf("encrypt %s PIN block: %w: cipher block is %d bytes, format needs %d", f, ErrBlockSize, c.BlockSize(), f.BlockSize())
	}
	n := len(dst)
	out, err := AppendEncode(dst, f, pin, pan, rnd)
	if err != nil {
		return out, err
	}
	blk := out[n:]
	c.Encrypt(blk, blk)
	if f == Format4 {
		panF, err := PANField(pan)
		if err != nil {
			sym.Wipe(blk)
			return out[:n], fmt.Errorf("encrypt %s PIN block: %w", f, err)
		}
		sym.XOR(blk, blk, panF[:])
		c.Encrypt(blk, blk)
	}
	return out, nil
}

// Decrypt deciphers block under c and strictly decodes it (see Encrypt and Decode).
// The caller wipes the returned PIN.
func Decrypt(c cipher.Block, f Format, block []byte, pan string) ([]byte, error) {
	return AppendDecrypt(nil, c, f, block, pan)
}

// AppendDecrypt appends the PIN that Decrypt returns to dst. It uses the spare capacity
// of dst as scratch space for the clear block and wipes it before returning.
func AppendDecrypt(dst []byte, c cipher.Block, f Format, block []byte, pan string) ([]byte, error) {
	if !f.Valid() {
		return dst, fmt.Errorf("%w: %d", ErrFormat, int(f))
	}
	bs := f.BlockSize()
	if len(block) != bs || c.BlockSize() != bs {
		return dst, fmt.Errorf("decrypt %s PIN block: %w: block %d bytes, cipher block %d, want %d", f, ErrBlockSize, len(block), c.BlockSize(), bs)
	}
	n := len(dst)
	dst = grow(dst, bs)
	scratch := dst[n : n+bs]
	c.Decrypt(scratch, block)
	if f == Format4 {
		panF, err := PANField(pan)
		if err != nil {
			sym.Wipe(scratch)
			return dst[:n], fmt.Errorf("decrypt %s PIN block: %w", f, err)
		}
		sym.XOR(scratch, scratch, panF[:])
		c.Decrypt(scratch, scratch)
	}
	var clearBlk [16]byte
	copy(clearBlk[:], scratch)
	sym.Wipe(scratch) // before AppendDecode reuses the same bytes for the PIN
	defer sym.Wipe(clearBlk[:])
	return AppendDecode(dst[:n], f, clearBlk[:bs], pan)
}
