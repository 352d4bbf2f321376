package tr31

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/switchyard/switchyard/hsm/mac"
	"github.com/switchyard/switchyard/internal/sym"
)

// keys are the key block encryption and authentication keys derived from a KBPK.
type keys struct {
	enc, auth cipher.Block
	cmac      *mac.CMAC // versions B and D
}

func checkKBPK(v Version, kbpk []byte) error {
	switch v {
	case VersionA, VersionB, VersionC:
		if len(kbpk) != 16 && len(kbpk) != 24 {
			return fmt.Errorf("%w: version %c needs a TDES key block protection key of 16 or 24 bytes, got %d bytes", ErrBlock, v, len(kbpk))
		}
	case VersionD:
		if len(kbpk) != 16 && len(kbpk) != 24 && len(kbpk) != 32 {
			return fmt.Errorf("%w: version D needs an AES key block protection key of 16, 24 or 32 bytes, got %d bytes", ErrBlock, len(kbpk))
		}
	default:
		return fmt.Errorf("%w: version %q is not supported", ErrBlock, rune(v))
	}
	return nil
}

// deriveKeys derives KBEK and KBAK from the KBPK for version v (TR-31:2018 A.3).
func deriveKeys(v Version, kbpk []byte) (keys, error) {
	var k keys
	if err := checkKBPK(v, kbpk); err != nil {
		return k, err
	}
	switch v {
	case VersionA, VersionC:
		// Key variant binding: KBEK = KBPK XOR 0x45.., KBAK = KBPK XOR 0x4D..
		e := make([]byte, len(kbpk))
		a := make([]byte, len(kbpk))
		defer sym.Wipe(e)
		defer sym.Wipe(a)
		for i := range kbpk {
			e[i] = kbpk[i] ^ 0x45
			a[i] = kbpk[i] ^ 0x4D
		}
		var err error
		if k.enc, err = sym.NewTDES(e); err != nil {
			return k, err
		}
		if k.auth, err = sym.NewTDES(a); err != nil {
			return k, err
		}
		return k, nil
	}
	// Key derivation binding: CMAC-based KDF (NIST SP 800-108 counter mode) with the
	// 8-byte derivation data counter | usage (0000 enc, 0001 MAC) | 00 | algorithm | bits.
	var newBlock func([]byte) (cipher.Block, error)
	var alg uint16
	switch {
	case v == VersionB && len(kbpk) == 16:
		newBlock, alg = sym.NewTDES, 0x0000
	case v == VersionB && len(kbpk) == 24:
		newBlock, alg = sym.NewTDES, 0x0001
	case len(kbpk) == 16:
		newBlock, alg = sym.NewAES, 0x0002
	case len(kbpk) == 24:
		newBlock, alg = sym.NewAES, 0x0003
	default:
		newBlock, alg = sym.NewAES, 0x0004
	}
	pc, err := newBlock(kbpk)
	if err != nil {
		return k, err
	}
	m, err := mac.NewCMAC(pc)
	if err != nil {
		return k, err
	}
	bits := uint16(len(kbpk) * 8)
	derive := func(usage uint16) ([]byte, error) {
		out := make([]byte, 0, len(kbpk)+16)
		for i := byte(1); len(out) < len(kbpk); i++ {
			dd := []byte{i, byte(usage >> 8), byte(usage), 0, byte(alg >> 8), byte(alg), byte(bits >> 8), byte(bits)}
			out = m.Sum(out, dd)
		}
		sym.Wipe(out[len(kbpk):cap(out)])
		return out[:len(kbpk)], nil
	}
	e, _ := derive(0x0000)
	defer sym.Wipe(e)
	a, _ := derive(0x0001)
	defer sym.Wipe(a)
	if k.enc, err = newBlock(e); err != nil {
		return k, err
	}
	if k.auth, err = newBlock(a); err != nil {
		return k, err
	}
	if k.cmac, err = mac.NewCMAC(k.auth); err != nil {
		return k, err
	}
	return k, nil
}

func keyLengthOK(alg byte, n int) bool {
	switch alg {
	case AlgTDES:
		return n == 16 || n == 24
	case AlgDES:
		return n == 8
	case AlgAES:
		return n == 16 || n == 24 || n == 32
	case AlgHMAC:
		return n >= 16 && n <= 64
	}
	return n > 0
}

// Wrap returns key wrapped under kbpk as a key block of version h.Version (B or D)
// with header h. A PB optional block is added when the header needs padding to the
// cipher block size. The payload padding comes from rnd (nil means crypto/rand).
func Wrap(kbpk []byte, h Header, key []byte, rnd io.Reader) (string, error) {
	if h.Version != VersionB && h.Version != VersionD {
		return "", fmt.Errorf("%w: wrap supports versions B and D only, not %q (A and C are deprecated)", ErrBlock, rune(h.Version))
	}
	if h.KeyVersion == "" {
		h.KeyVersion = "00"
	}
	if err := h.validate(); err != nil {
		return "", err
	}
	if !keyLengthOK(h.Algorithm, len(key)) {
		return "", fmt.Errorf("%w: a %d-byte key does not fit algorithm %c", ErrBlock, len(key), h.Algorithm)
	}
	for _, b := range h.Blocks {
		if b.ID == "PB" {
			return "", fmt.Errorf("%w: the caller may not supply a PB block; Wrap adds it", ErrHeader)
		}
	}
	k, err := deriveKeys(h.Version, kbpk)
	if err != nil {
		return "", err
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	bs := h.Version.blockSize()
	hlen := fixedHeaderLen
	for _, b := range h.Blocks {
		hlen += optLen(len(b.Data))
	}
	if hlen%bs != 0 {
		n := bs - hlen%bs
		if n < 4 {
			n += bs
		}
		h.Blocks = append(h.Blocks, OptionalBlock{ID: "PB", Data: strings.Repeat("0", n-4)})
		hlen += n
	}
	plen := 2 + len(key)
	if plen%bs != 0 {
		plen += bs - plen%bs
	}
	payload := make([]byte, plen)
	defer sym.Wipe(payload)
	payload[0], payload[1] = byte(len(key)*8>>8), byte(len(key)*8)
	copy(payload[2:], key)
	if _, err := io.ReadFull(rnd, payload[2+len(key):]); err != nil {
		return "", fmt.Errorf("TR-31 wrap: random padding: %w", err)
	}
	total := hlen + 2*plen + h.Version.macHexLen()
	if total > maxBlockLen {
		return "", fmt.Errorf("%w: key block would be %d characters, more than %d", ErrBlock, total, maxBlockLen)
	}
	header := h.encode(total)
	macIn := make([]byte, 0, len(header)+plen)
	macIn = append(append(macIn, header...), payload...)
	tag := k.cmac.Sum(nil, macIn)
	sym.Wipe(macIn)
	enc := make([]byte, plen)
	cipher.NewCBCEncrypter(k.enc, tag).CryptBlocks(enc, payload)
	return header + strings.ToUpper(hex.EncodeToString(enc)) + strings.ToUpper(hex.EncodeToString(tag)), nil
}

// Unwrap authenticates and decrypts a key block of version A, B, C or D under kbpk
// and returns its header and the key. The caller wipes the key.
func Unwrap(kbpk []byte, block string) (Header, []byte, error) {
	h, hlen, err := ParseHeader(block)
	if err != nil {
		return h, nil, err
	}
	k, err := deriveKeys(h.Version, kbpk)
	if err != nil {
		return h, nil, err
	}
	bs := h.Version.blockSize()
	ml := h.Version.macHexLen()
	body := block[hlen:]
	if len(body) < ml+2*bs {
		return h, nil, fmt.Errorf("%w: %d characters after the header, want an encrypted key of at least %d and a %d-character MAC", ErrBlock, len(body), 2*bs, ml)
	}
	encHex, macHex := body[:len(body)-ml], body[len(body)-ml:]
	if !upperHex(encHex) || !upperHex(macHex) {
		return h, nil, fmt.Errorf("%w: encrypted key or MAC (offset %d) is not upper-case hex", ErrBlock, hlen)
	}
	if len(encHex)%(2*bs) != 0 {
		return h, nil, fmt.Errorf("%w: encrypted key is %d hex characters, not a multiple of the %d-byte cipher block", ErrBlock, len(encHex), bs)
	}
	enc, _ := hex.DecodeString(encHex)
	tag, _ := hex.DecodeString(macHex)
	payload := make([]byte, len(enc))
	defer sym.Wipe(payload)
	switch h.Version {
	case VersionA, VersionC:
		// MAC: TDES CBC-MAC over the header characters and the binary encrypted key,
		// leftmost 4 bytes; the CBC IV for the key is the first 8 header characters.
		macIn := make([]byte, 0, hlen+len(enc))
		macIn = append(append(macIn, block[:hlen]...), enc...)
		want, err := mac.Alg1(k.auth, macIn, mac.Padding1)
		if err != nil {
			return h, nil, err
		}
		if !mac.Equal(want[:4], tag) {
			return h, nil, ErrMAC
		}
		cipher.NewCBCDecrypter(k.enc, []byte(block[:8])).CryptBlocks(payload, enc)
	default:
		cipher.NewCBCDecrypter(k.enc, tag).CryptBlocks(payload, enc)
		macIn := make([]byte, 0, hlen+len(payload))
		macIn = append(append(macIn, block[:hlen]...), payload...)
		ok := k.cmac.Verify(tag, macIn)
		sym.Wipe(macIn)
		if !ok {
			return h, nil, ErrMAC
		}
	}
	bitsLen := int(payload[0])<<8 | int(payload[1])
	if bitsLen%8 != 0 || bitsLen == 0 || 2+bitsLen/8 > len(payload) {
		return h, nil, fmt.Errorf("%w: key length field says %d bits, the payload holds %d bytes", ErrBlock, bitsLen, len(payload)-2)
	}
	n := bitsLen / 8
	if !keyLengthOK(h.Algorithm, n) {
		return h, nil, fmt.Errorf("%w: a %d-byte key does not fit algorithm %c", ErrBlock, n, h.Algorithm)
	}
	key := make([]byte, n)
	copy(key, payload[2:])
	return h, key, nil
}
