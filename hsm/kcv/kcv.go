// Package kcv computes key check values: for DES/TDES keys the leftmost 3 bytes of the
// encryption of 8 zero bytes (ANSI X9.24-1, "legacy" KCV), for AES keys the leftmost
// 3 bytes of the AES-CMAC of 16 zero bytes (X9.24-1:2017 / TR-31 "CMAC" KCV). A KCV is
// stored together with its Method so that it can be checked again later.
package kcv

import (
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/switchyard/switchyard/hsm/mac"
	"github.com/switchyard/switchyard/internal/sym"
)

// Method is how a KCV was computed.
type Method string

// The KCV methods.
const (
	// MethodTDES encrypts 8 zero bytes under the DES/TDES key (ANSI X9.24-1,
	// TR-31 KCV algorithm "00").
	MethodTDES Method = "TDES-ZERO"
	// MethodCMAC computes the CMAC of one zero block under the key (AES keys; TR-31
	// KCV algorithm "01").
	MethodCMAC Method = "CMAC"
)

// Length is the length of a KCV in bytes (6 hex digits).
const Length = 3

// Valid reports whether m is a known method.
func (m Method) Valid() bool { return m == MethodTDES || m == MethodCMAC }

// KCV is a key check value with the method that produced it.
type KCV struct {
	Value  []byte `json:"-"`      // the 3 check bytes
	Method Method `json:"method"` // how they were computed
}

// String returns the KCV as 6 upper-case hex digits.
func (k KCV) String() string { return strings.ToUpper(hex.EncodeToString(k.Value)) }

// Equal reports, in constant time, whether k and o have the same method and value.
func (k KCV) Equal(o KCV) bool {
	return k.Method == o.Method && subtle.ConstantTimeCompare(k.Value, o.Value) == 1
}

// TDES returns the KCV of a DES (8-byte) or TDES (16 or 24-byte) key.
func TDES(key []byte) (KCV, error) {
	c, err := sym.NewTDES(key)
	if err != nil {
		return KCV{}, fmt.Errorf("KCV: %w", err)
	}
	var b [8]byte
	c.Encrypt(b[:], b[:])
	return KCV{Value: b[:Length:Length], Method: MethodTDES}, nil
}

// AES returns the CMAC KCV of a 16, 24 or 32-byte AES key.
func AES(key []byte) (KCV, error) {
	m, err := mac.NewAESCMAC(key)
	if err != nil {
		return KCV{}, fmt.Errorf("KCV: %w", err)
	}
	out := m.Sum(nil, make([]byte, 16))
	return KCV{Value: out[:Length:Length], Method: MethodCMAC}, nil
}

// Compute returns the KCV of key with method m.
func Compute(key []byte, m Method) (KCV, error) {
	switch m {
	case MethodTDES:
		return TDES(key)
	case MethodCMAC:
		return AES(key)
	}
	return KCV{}, fmt.Errorf("KCV: unknown method %q (want %s or %s)", m, MethodTDES, MethodCMAC)
}

// Parse parses a KCV of 6 hex digits (or more, of which the first 6 count) with
// method m.
func Parse(s string, m Method) (KCV, error) {
	if !m.Valid() {
		return KCV{}, fmt.Errorf("KCV: unknown method %q", m)
	}
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) < Length {
		return KCV{}, fmt.Errorf("KCV %q: want at least 6 hex digits", s)
	}
	return KCV{Value: b[:Length:Length], Method: m}, nil
}
