package dukpt

import "fmt"

// A BDK is found from a KSN by its KSN prefix: the leading hex digits that carry the
// key set ID (the BDK's identity). The prefix must never cover a counter bit: the TDES
// counter's top bit shares the 15th hex digit with the last bit of the initial key
// serial number, so comparing text would stop matching once the counter passes
// 0x100000. These helpers compare the identifying bits only.

// TDESPrefixDigits is the most hex digits of a TDES KSN prefix: the 59 bits before the
// counter end in the 15th digit, whose low bit is the counter's top bit.
const TDESPrefixDigits = 15

// AESPrefixDigits is the most hex digits of an AES KSN prefix: the 64-bit initial key
// ID (BDK ID and derivation ID) before the 32-bit counter.
const AESPrefixDigits = 16

// PrefixDigits returns the most hex digits of a KSN prefix for a TDES or AES BDK.
func PrefixDigits(aes bool) int {
	if aes {
		return AESPrefixDigits
	}
	return TDESPrefixDigits
}

// AppendKSNPrefix appends to dst the leading hex digits of ksn that can identify its
// BDK, upper-cased, with the counter bit they share cleared: 15 digits of a 20-digit
// TDES KSN, 16 of a 24-digit AES KSN, all of a KSN of another length (which the
// caller refuses). It does not allocate when dst has room for 24 bytes.
func AppendKSNPrefix(dst []byte, ksn string) []byte {
	n := len(ksn)
	switch n {
	case tdesKSNHexDigits:
		n = TDESPrefixDigits
	case aesKSNHexDigits:
		n = AESPrefixDigits
	}
	start := len(dst)
	for i := range n {
		dst = append(dst, upperHex(ksn[i]))
	}
	if len(ksn) == tdesKSNHexDigits {
		dst[start+TDESPrefixDigits-1] = clearLowBit(dst[start+TDESPrefixDigits-1])
	}
	return dst
}

// NormalizePrefix returns the identifying part of a BDK's KSN prefix (hex digits):
// upper-cased, cut to PrefixDigits, and for TDES with the counter's top bit cleared
// from a 15th digit, so that it compares equal to AppendKSNPrefix of every KSN under
// the BDK whatever the counter.
func NormalizePrefix(prefix string, aes bool) string {
	return string(appendPrefix(make([]byte, 0, len(prefix)), prefix, aes))
}

// appendPrefix appends NormalizePrefix(prefix, aes) to dst.
func appendPrefix(dst []byte, prefix string, aes bool) []byte {
	start := len(dst)
	for i := 0; i < len(prefix) && i < PrefixDigits(aes); i++ {
		dst = append(dst, upperHex(prefix[i]))
	}
	if !aes && len(dst)-start == TDESPrefixDigits {
		dst[len(dst)-1] = clearLowBit(dst[len(dst)-1])
	}
	return dst
}

// PrefixMatches reports whether ksn belongs to the BDK with KSN prefix prefix (TDES or
// AES): their identifying bits are equal, the counter's are not compared.
func PrefixMatches(ksn, prefix string, aes bool) bool {
	var kb, pb [aesKSNHexDigits]byte
	if len(ksn) > len(kb) || len(prefix) > len(pb) {
		return false
	}
	k := AppendKSNPrefix(kb[:0], ksn)
	p := appendPrefix(pb[:0], prefix, aes)
	return len(k) >= len(p) && string(k[:len(p)]) == string(p)
}

func upperHex(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - ('a' - 'A')
	}
	return c
}

// clearLowBit clears the low bit of an upper-case hex digit; other bytes are returned
// unchanged.
func clearLowBit(c byte) byte {
	var v byte
	switch {
	case '0' <= c && c <= '9':
		v = c - '0'
	case 'A' <= c && c <= 'F':
		v = c - 'A' + 10
	default:
		return c
	}
	return "0123456789ABCDEF"[v&^1]
}

// DeviceCounter returns the device (the initial key serial number) and the
// transaction counter of a TDES (20 hex digits) or AES (24) KSN: the pair a DUKPT
// replay check compares.
func DeviceCounter(ksn string) (device string, counter uint32, err error) {
	switch len(ksn) {
	case 20:
		k, err := ParseKSN(ksn)
		if err != nil {
			return "", 0, err
		}
		return k.DeviceID(), k.Counter(), nil
	case 24:
		k, err := ParseAESKSN(ksn)
		if err != nil {
			return "", 0, err
		}
		return k.DeviceID(), k.Counter(), nil
	default:
		return "", 0, fmt.Errorf("KSN %q is %d characters, want 20 or 24 hex digits", ksn, len(ksn))
	}
}
