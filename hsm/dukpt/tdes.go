// Package dukpt implements the host side of DUKPT: TDES DUKPT per ANSI X9.24-1:2009
// (IPEK from BDK and KSN, the current transaction key for a KSN, and its PIN, MAC
// request, MAC response and data variants) and AES DUKPT per ANSI X9.24-3:2017
// (initial key from BDK and initial key ID, transaction derivation key for a KSN,
// and working keys for PIN encryption, MAC generation/verification and data
// encryption). KSNs are parsed strictly from hex.
//
// Returned keys are fresh slices that the caller may wipe; errors never contain keys.
package dukpt

import (
	"crypto/des"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"strings"

	"github.com/switchyard/switchyard/internal/sym"
)

// Sizes of TDES DUKPT values.
const (
	KSNLength        = 10       // bytes of a TDES KSN (20 hex digits)
	CounterBits      = 21       // bits of the TDES transaction counter
	MaxCounterOnes   = 10       // most one-bits a valid TDES counter has
	counterMask      = 0x1FFFFF // low 21 bits
	TDESKeyLength    = 16       // bytes of a TDES DUKPT key (double length)
	tdesKSNHexDigits = 2 * KSNLength
)

// ErrKSN is wrapped by every KSN parsing or validation error.
var ErrKSN = errors.New("bad KSN")

// KSN is a TDES DUKPT key serial number: a 59-bit initial KSN (key set ID, device
// ID) and a 21-bit transaction counter.
type KSN [KSNLength]byte

// ParseKSN parses a TDES KSN of exactly 20 hex digits and checks that its
// transaction counter is non-zero with at most 10 one-bits (X9.24-1 A.2: an
// originating device never uses other counters).
func ParseKSN(s string) (KSN, error) {
	var k KSN
	if len(s) != tdesKSNHexDigits {
		return k, fmt.Errorf("%w: TDES KSN %q is %d hex digits, want 20", ErrKSN, s, len(s))
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return KSN{}, fmt.Errorf("%w: TDES KSN %q is not hex", ErrKSN, s)
	}
	if err := k.Validate(); err != nil {
		return KSN{}, err
	}
	return k, nil
}

// Validate checks that the counter of k is non-zero and has at most 10 one-bits.
func (k KSN) Validate() error {
	c := k.Counter()
	if c == 0 {
		return fmt.Errorf("%w: TDES KSN %s has transaction counter 0 (that is the initial KSN)", ErrKSN, k)
	}
	if n := bits.OnesCount32(c); n > MaxCounterOnes {
		return fmt.Errorf("%w: TDES KSN %s has %d one-bits in its counter, at most %d are valid", ErrKSN, k, n, MaxCounterOnes)
	}
	return nil
}

// Counter returns the 21-bit transaction counter.
func (k KSN) Counter() uint32 {
	return (uint32(k[7])<<16 | uint32(k[8])<<8 | uint32(k[9])) & counterMask
}

// Initial returns k with the transaction counter cleared: the initial KSN, which
// identifies the device (its key set ID and device ID).
func (k KSN) Initial() KSN {
	k[7] &^= 0x1F
	k[8], k[9] = 0, 0
	return k
}

// DeviceID returns the initial KSN as 20 upper-case hex digits: the KSN minus the
// counter, under which a device's counter is tracked.
func (k KSN) DeviceID() string { return k.Initial().String() }

// String returns the KSN as 20 upper-case hex digits.
func (k KSN) String() string { return strings.ToUpper(hex.EncodeToString(k[:])) }

var (
	keyMaskC0 = [16]byte{0xC0, 0xC0, 0xC0, 0xC0, 0, 0, 0, 0, 0xC0, 0xC0, 0xC0, 0xC0, 0, 0, 0, 0}
)

// Variant selects a TDES DUKPT working key variant of X9.24-1:2009.
type Variant uint8

// The TDES DUKPT working key variants.
const (
	PINVariant          Variant = iota + 1 // PIN encryption: XOR 00..FF in bytes 7 and 15
	MACRequestVariant                      // MAC, request (and both ways): XOR 00..FF00 in bytes 6 and 14
	MACResponseVariant                     // MAC, response: XOR in bytes 4 and 12
	DataRequestVariant                     // data encryption, request: XOR in bytes 5 and 13, then one-way function
	DataResponseVariant                    // data encryption, response: XOR in bytes 3 and 11, then one-way function
)

// String names the variant.
func (v Variant) String() string {
	switch v {
	case PINVariant:
		return "PIN"
	case MACRequestVariant:
		return "MAC request"
	case MACResponseVariant:
		return "MAC response"
	case DataRequestVariant:
		return "data request"
	case DataResponseVariant:
		return "data response"
	}
	return fmt.Sprintf("variant(%d)", uint8(v))
}

func (v Variant) byteIndex() int {
	switch v {
	case PINVariant:
		return 7
	case MACRequestVariant:
		return 6
	case MACResponseVariant:
		return 4
	case DataRequestVariant:
		return 5
	case DataResponseVariant:
		return 3
	}
	return -1
}

func checkBDK(bdk []byte) error {
	if len(bdk) != TDESKeyLength {
		return fmt.Errorf("TDES DUKPT: BDK is %d bytes, want 16 (double-length TDES)", len(bdk))
	}
	return nil
}

// IPEK derives the initial PIN encryption key (initial key) from a double-length
// BDK and a KSN (whose counter is ignored), per X9.24-1:2009 A.6.
func IPEK(bdk []byte, ksn KSN) ([]byte, error) {
	if err := checkBDK(bdk); err != nil {
		return nil, err
	}
	init := ksn.Initial()
	var data [8]byte
	copy(data[:], init[:8])
	ipek := make([]byte, 16)
	c, err := sym.NewTDES(bdk)
	if err != nil {
		return nil, fmt.Errorf("TDES DUKPT IPEK: %w", err)
	}
	c.Encrypt(ipek[:8], data[:])
	var k2 [16]byte
	sym.XOR(k2[:], bdk, keyMaskC0[:])
	c2, err := sym.NewTDES(k2[:])
	sym.Wipe(k2[:])
	if err != nil {
		return nil, fmt.Errorf("TDES DUKPT IPEK: %w", err)
	}
	c2.Encrypt(ipek[8:], data[:])
	return ipek, nil
}

// nrkgp is the non-reversible key generation process of X9.24-1:2009 A.2: it
// replaces key (16 bytes) with the key derived from it and the 8-byte data.
func nrkgp(key *[16]byte, data *[8]byte) error {
	var out [16]byte
	half := func(dst []byte, k []byte) error {
		c, err := des.NewCipher(k[:8])
		if err != nil {
			return err
		}
		var r [8]byte
		sym.XOR(r[:], data[:], k[8:])
		c.Encrypt(r[:], r[:])
		sym.XOR(dst, r[:], k[8:])
		return nil
	}
	if err := half(out[8:], key[:]); err != nil {
		return err
	}
	var k2 [16]byte
	sym.XOR(k2[:], key[:], keyMaskC0[:])
	err := half(out[:8], k2[:])
	sym.Wipe(k2[:])
	if err != nil {
		return err
	}
	*key = out
	sym.Wipe(out[:])
	return nil
}

// TransactionKeyFromIPEK derives the current transaction key for ksn from the
// initial key (X9.24-1:2009 A.3 and A.6, the host's "future key" derivation).
func TransactionKeyFromIPEK(ipek []byte, ksn KSN) ([]byte, error) {
	if len(ipek) != TDESKeyLength {
		return nil, fmt.Errorf("TDES DUKPT: initial key is %d bytes, want 16", len(ipek))
	}
	if err := ksn.Validate(); err != nil {
		return nil, err
	}
	var key [16]byte
	copy(key[:], ipek)
	init := ksn.Initial()
	var reg [8]byte // the rightmost 64 bits of the KSN, counter bits set one at a time
	copy(reg[:], init[2:])
	counter := ksn.Counter()
	for bit := uint32(1) << (CounterBits - 1); bit != 0; bit >>= 1 {
		if counter&bit == 0 {
			continue
		}
		reg[5] |= byte(bit >> 16)
		reg[6] |= byte(bit >> 8)
		reg[7] |= byte(bit)
		if err := nrkgp(&key, &reg); err != nil {
			sym.Wipe(key[:])
			return nil, fmt.Errorf("TDES DUKPT transaction key for KSN %s: %w", ksn, err)
		}
	}
	out := make([]byte, 16)
	copy(out, key[:])
	sym.Wipe(key[:])
	return out, nil
}

// TransactionKey derives the current transaction key (before any variant) for ksn
// from the BDK.
func TransactionKey(bdk []byte, ksn KSN) ([]byte, error) {
	ipek, err := IPEK(bdk, ksn)
	if err != nil {
		return nil, err
	}
	defer sym.Wipe(ipek)
	return TransactionKeyFromIPEK(ipek, ksn)
}

// WorkingKey returns the working key of variant v for a transaction key: the
// transaction key XOR the variant constant, and for the data variants additionally
// the one-way function of X9.24-1:2009 (each half TDES-encrypted under the variant
// key itself).
func WorkingKey(txnKey []byte, v Variant) ([]byte, error) {
	if len(txnKey) != TDESKeyLength {
		return nil, fmt.Errorf("TDES DUKPT: transaction key is %d bytes, want 16", len(txnKey))
	}
	i := v.byteIndex()
	if i < 0 {
		return nil, fmt.Errorf("TDES DUKPT: unknown key variant %d", uint8(v))
	}
	out := make([]byte, 16)
	copy(out, txnKey)
	out[i] ^= 0xFF
	out[8+i] ^= 0xFF
	if v == DataRequestVariant || v == DataResponseVariant {
		c, err := sym.NewTDES(out)
		if err != nil {
			return nil, fmt.Errorf("TDES DUKPT data key: %w", err)
		}
		c.Encrypt(out[:8], out[:8])
		c.Encrypt(out[8:], out[8:])
	}
	return out, nil
}

// DeriveWorkingKey derives the working key of variant v for ksn from the BDK.
func DeriveWorkingKey(bdk []byte, ksn KSN, v Variant) ([]byte, error) {
	t, err := TransactionKey(bdk, ksn)
	if err != nil {
		return nil, err
	}
	defer sym.Wipe(t)
	return WorkingKey(t, v)
}
