package dukpt

import (
	"crypto/aes"
	"encoding/hex"
	"fmt"
	"math/bits"
	"strings"

	"github.com/switchyard/switchyard/internal/sym"
)

// Sizes of AES DUKPT values (X9.24-3:2017).
const (
	AESKSNLength        = 12 // bytes of an AES KSN (24 hex digits)
	InitialKeyIDLength  = 8  // bytes of the initial key ID (BDK ID and derivation ID)
	MaxAESCounterOnes   = 16 // most one-bits a valid AES counter has
	aesKSNHexDigits     = 2 * AESKSNLength
	derivationDataBytes = 16
)

// AESKSN is an AES DUKPT key serial number: an 8-byte initial key ID (4-byte BDK ID,
// 4-byte derivation ID) and a 32-bit transaction counter.
type AESKSN [AESKSNLength]byte

// ParseAESKSN parses an AES KSN of exactly 24 hex digits and checks that its
// transaction counter is non-zero with at most 16 one-bits (X9.24-3:2017 6.1).
func ParseAESKSN(s string) (AESKSN, error) {
	var k AESKSN
	if len(s) != aesKSNHexDigits {
		return k, fmt.Errorf("%w: AES KSN %q is %d hex digits, want 24", ErrKSN, s, len(s))
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return AESKSN{}, fmt.Errorf("%w: AES KSN %q is not hex", ErrKSN, s)
	}
	if err := k.Validate(); err != nil {
		return AESKSN{}, err
	}
	return k, nil
}

// Validate checks that the counter of k is non-zero and has at most 16 one-bits.
func (k AESKSN) Validate() error {
	c := k.Counter()
	if c == 0 {
		return fmt.Errorf("%w: AES KSN %s has transaction counter 0", ErrKSN, k)
	}
	if n := bits.OnesCount32(c); n > MaxAESCounterOnes {
		return fmt.Errorf("%w: AES KSN %s has %d one-bits in its counter, at most %d are valid", ErrKSN, k, n, MaxAESCounterOnes)
	}
	return nil
}

// InitialKeyID returns the 8-byte initial key ID (BDK ID and derivation ID).
func (k AESKSN) InitialKeyID() [InitialKeyIDLength]byte {
	var id [InitialKeyIDLength]byte
	copy(id[:], k[:8])
	return id
}

// Counter returns the 32-bit transaction counter.
func (k AESKSN) Counter() uint32 {
	return uint32(k[8])<<24 | uint32(k[9])<<16 | uint32(k[10])<<8 | uint32(k[11])
}

// DeviceID returns the initial key ID as 16 upper-case hex digits: the KSN minus the
// counter, under which a device's counter is tracked.
func (k AESKSN) DeviceID() string { return strings.ToUpper(hex.EncodeToString(k[:8])) }

// String returns the KSN as 24 upper-case hex digits.
func (k AESKSN) String() string { return strings.ToUpper(hex.EncodeToString(k[:])) }

// KeyType is the algorithm and length of an AES DUKPT derived key (X9.24-3 6.2.2).
type KeyType uint16

// The AES DUKPT key types; the values are the algorithm indicators of the key
// derivation data.
const (
	TDES2  KeyType = 0 // double-length TDES
	TDES3  KeyType = 1 // triple-length TDES
	AES128 KeyType = 2
	AES192 KeyType = 3
	AES256 KeyType = 4
)

// Length returns the key length in bytes, or 0 for an unknown type.
func (t KeyType) Length() int {
	switch t {
	case TDES2, AES128:
		return 16
	case TDES3, AES192:
		return 24
	case AES256:
		return 32
	}
	return 0
}

// String names the key type.
func (t KeyType) String() string {
	switch t {
	case TDES2:
		return "2TDEA"
	case TDES3:
		return "3TDEA"
	case AES128:
		return "AES-128"
	case AES192:
		return "AES-192"
	case AES256:
		return "AES-256"
	}
	return fmt.Sprintf("keytype(%d)", uint16(t))
}

// AESKeyTypeForLength returns the AES key type of a 16, 24 or 32-byte key.
func AESKeyTypeForLength(n int) (KeyType, error) {
	switch n {
	case 16:
		return AES128, nil
	case 24:
		return AES192, nil
	case 32:
		return AES256, nil
	}
	return 0, fmt.Errorf("AES DUKPT: key is %d bytes, want 16, 24 or 32 (AES)", n)
}

// Usage is the key usage indicator of an AES DUKPT derived key (X9.24-3 6.3.2).
type Usage uint16

// The AES DUKPT key usages.
const (
	UsageKeyEncryption     Usage = 0x0002
	UsagePINEncryption     Usage = 0x1000
	UsageMACGeneration     Usage = 0x2000
	UsageMACVerification   Usage = 0x2001
	UsageMACBoth           Usage = 0x2002
	UsageDataEncrypt       Usage = 0x3000
	UsageDataDecrypt       Usage = 0x3001
	UsageDataBoth          Usage = 0x3002
	usageKeyDerivation     Usage = 0x8000
	usageInitialKeyDerived Usage = 0x8001
)

// String names the usage.
func (u Usage) String() string {
	switch u {
	case UsageKeyEncryption:
		return "key encryption"
	case UsagePINEncryption:
		return "PIN encryption"
	case UsageMACGeneration:
		return "MAC generation"
	case UsageMACVerification:
		return "MAC verification"
	case UsageMACBoth:
		return "MAC generation and verification"
	case UsageDataEncrypt:
		return "data encryption"
	case UsageDataDecrypt:
		return "data decryption"
	case UsageDataBoth:
		return "data encryption and decryption"
	}
	return fmt.Sprintf("usage(%#04x)", uint16(u))
}

func (u Usage) working() bool {
	switch u {
	case UsageKeyEncryption, UsagePINEncryption, UsageMACGeneration, UsageMACVerification,
		UsageMACBoth, UsageDataEncrypt, UsageDataDecrypt, UsageDataBoth:
		return true
	}
	return false
}

// deriveAES runs the X9.24-3 6.3.1 derivation: AES-ECB of the derivation data under
// key, with the block counter incremented for each 16 bytes of output.
func deriveAES(key []byte, usage Usage, kt KeyType, ksnData []byte) ([]byte, error) {
	c, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	n := kt.Length()
	if n == 0 {
		return nil, fmt.Errorf("unknown derived key type %d", uint16(kt))
	}
	var dd [derivationDataBytes]byte
	dd[0] = 0x01 // version
	dd[2], dd[3] = byte(usage>>8), byte(usage)
	dd[4], dd[5] = byte(uint16(kt)>>8), byte(kt)
	bitsLen := uint16(n * 8)
	dd[6], dd[7] = byte(bitsLen>>8), byte(bitsLen)
	copy(dd[8:], ksnData)
	out := make([]byte, (n+15)/16*16)
	for i := 0; i*16 < n; i++ {
		dd[1] = byte(i + 1) // key block counter
		c.Encrypt(out[i*16:], dd[:])
	}
	sym.Wipe(out[n:])
	return out[:n:n], nil
}

// AESInitialKey derives the initial key from an AES BDK (16, 24 or 32 bytes) and an
// initial key ID (X9.24-3:2017 6.3.3). The initial key has the BDK's type.
func AESInitialKey(bdk []byte, ikid [InitialKeyIDLength]byte) ([]byte, error) {
	kt, err := AESKeyTypeForLength(len(bdk))
	if err != nil {
		return nil, fmt.Errorf("AES DUKPT initial key: BDK: %w", err)
	}
	k, err := deriveAES(bdk, usageInitialKeyDerived, kt, ikid[:])
	if err != nil {
		return nil, fmt.Errorf("AES DUKPT initial key: %w", err)
	}
	return k, nil
}

// AESTransactionKeyFromInitial derives the transaction derivation key for ksn from
// the initial key (X9.24-3:2017 6.1 and 6.4): one derivation per counter one-bit,
// from the most significant down.
func AESTransactionKeyFromInitial(ik []byte, ksn AESKSN) ([]byte, error) {
	kt, err := AESKeyTypeForLength(len(ik))
	if err != nil {
		return nil, fmt.Errorf("AES DUKPT transaction key: initial key: %w", err)
	}
	if err := ksn.Validate(); err != nil {
		return nil, err
	}
	key := append([]byte(nil), ik...)
	counter := ksn.Counter()
	var data [8]byte
	copy(data[:4], ksn[4:8])
	var working uint32
	for mask := uint32(1) << 31; mask != 0; mask >>= 1 {
		if counter&mask == 0 {
			continue
		}
		working |= mask
		data[4], data[5], data[6], data[7] = byte(working>>24), byte(working>>16), byte(working>>8), byte(working)
		next, err := deriveAES(key, usageKeyDerivation, kt, data[:])
		sym.Wipe(key)
		if err != nil {
			return nil, fmt.Errorf("AES DUKPT transaction key for KSN %s: %w", ksn, err)
		}
		key = next
	}
	return key, nil
}

// AESTransactionKey derives the transaction derivation key for ksn from the BDK.
func AESTransactionKey(bdk []byte, ksn AESKSN) ([]byte, error) {
	ik, err := AESInitialKey(bdk, ksn.InitialKeyID())
	if err != nil {
		return nil, err
	}
	defer sym.Wipe(ik)
	return AESTransactionKeyFromInitial(ik, ksn)
}

// AESWorkingKey derives the working key of the given usage and type from a
// transaction derivation key (X9.24-3:2017 6.3.3). The working key may not be
// stronger than the derivation key.
func AESWorkingKey(txnKey []byte, ksn AESKSN, usage Usage, kt KeyType) ([]byte, error) {
	dkt, err := AESKeyTypeForLength(len(txnKey))
	if err != nil {
		return nil, fmt.Errorf("AES DUKPT working key: derivation key: %w", err)
	}
	if !usage.working() {
		return nil, fmt.Errorf("AES DUKPT working key: %s is not a working key usage", usage)
	}
	if kt.Length() == 0 {
		return nil, fmt.Errorf("AES DUKPT working key: unknown key type %d", uint16(kt))
	}
	if strength(kt) > strength(dkt) {
		return nil, fmt.Errorf("AES DUKPT working key: %s is stronger than the %s derivation key", kt, dkt)
	}
	var data [8]byte
	copy(data[:4], ksn[4:8])
	c := ksn.Counter()
	data[4], data[5], data[6], data[7] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
	k, err := deriveAES(txnKey, usage, kt, data[:])
	if err != nil {
		return nil, fmt.Errorf("AES DUKPT %s key for KSN %s: %w", usage, ksn, err)
	}
	return k, nil
}

// DeriveAESWorkingKey derives the working key of the given usage and type for ksn
// from the BDK.
func DeriveAESWorkingKey(bdk []byte, ksn AESKSN, usage Usage, kt KeyType) ([]byte, error) {
	t, err := AESTransactionKey(bdk, ksn)
	if err != nil {
		return nil, err
	}
	defer sym.Wipe(t)
	return AESWorkingKey(t, ksn, usage, kt)
}

// strength orders key types by security strength (bits).
func strength(t KeyType) int {
	switch t {
	case TDES2:
		return 80
	case TDES3:
		return 112
	case AES128:
		return 128
	case AES192:
		return 192
	case AES256:
		return 256
	}
	return 0
}
