package termclient

import (
	"crypto/des"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/switchyard/switchyard/hsm/dukpt"
	"github.com/switchyard/switchyard/hsm/kcv"
	"github.com/switchyard/switchyard/hsm/mac"
	"github.com/switchyard/switchyard/hsm/pinblock"
	"github.com/switchyard/switchyard/switch/message"
)

// This file is the terminal's side of the cryptography, for demo and test terminals
// (the `term` command, tests, the bench): it works on clear test keys, which a real
// terminal keeps in its secure element.

func tdesKey(keyHex string) ([]byte, error) {
	k, err := hex.DecodeString(keyHex)
	if err != nil || (len(k) != 16 && len(k) != 24) {
		return nil, fmt.Errorf("key is not 16 or 24 bytes of hex")
	}
	if len(k) == 16 {
		k = append(k, k[:8]...)
	}
	return k, nil
}

// PINBlockTPK returns an ISO 9564 format 0 PIN block encrypted under a TDES terminal
// PIN key.
func PINBlockTPK(tpkHex, pin, pan string) ([]byte, error) {
	k, err := tdesKey(tpkHex)
	if err != nil {
		return nil, fmt.Errorf("TPK: %w", err)
	}
	c, err := des.NewTripleDESCipher(k)
	if err != nil {
		return nil, err
	}
	p := []byte(pin)
	defer pinblock.Wipe(p)
	return pinblock.Encrypt(c, pinblock.Format0, p, pan, nil)
}

// PINBlockDUKPT returns a format 0 PIN block under the TDES DUKPT PIN key of ksn (20
// hex digits), derived from the BDK as the terminal's key would be from its IPEK.
func PINBlockDUKPT(bdkHex, ksn, pin, pan string) ([]byte, error) {
	bdk, err := hex.DecodeString(bdkHex)
	if err != nil {
		return nil, fmt.Errorf("BDK is not hex")
	}
	k, err := dukpt.ParseKSN(ksn)
	if err != nil {
		return nil, err
	}
	pk, err := dukpt.DeriveWorkingKey(bdk, k, dukpt.PINVariant)
	if err != nil {
		return nil, err
	}
	return PINBlockTPK(hex.EncodeToString(pk), pin, pan)
}

// RetailMAC returns a function computing the ISO 9797-1 algorithm 3 retail MAC
// (padding method 1) under a double-length TDES key, as message.Pack wants it.
func RetailMAC(keyHex string) (message.MACFunc, error) {
	k, err := hex.DecodeString(keyHex)
	if err != nil || len(k) != 16 {
		return nil, fmt.Errorf("TAK is not 16 bytes of hex")
	}
	return func(data []byte) ([8]byte, error) {
		var out [8]byte
		m, err := mac.Alg3(k, data, mac.Padding1)
		if err != nil {
			return out, err
		}
		copy(out[:], m)
		return out, nil
	}, nil
}

// WorkingKey decrypts a working key that the switch sent under the terminal's TDES
// master key in DE 48 WP or WM (HEXKEY:KCV, the key in ECB form), checks its check
// value and returns the clear key in hex, as a terminal installs it.
func WorkingKey(tmkHex, wire string) (string, error) {
	k, err := tdesKey(tmkHex)
	if err != nil {
		return "", fmt.Errorf("TMK: %w", err)
	}
	c, err := des.NewTripleDESCipher(k)
	if err != nil {
		return "", err
	}
	encHex, kcvHex, ok := strings.Cut(wire, ":")
	enc, err := hex.DecodeString(encHex)
	if !ok || err != nil || len(enc) != 16 {
		return "", fmt.Errorf("working key %q is not HEXKEY:KCV with a 16-byte key", wire)
	}
	key := make([]byte, len(enc))
	for i := 0; i < len(enc); i += 8 {
		c.Decrypt(key[i:], enc[i:])
	}
	check, err := kcv.TDES(key)
	if err != nil {
		return "", err
	}
	if !strings.EqualFold(check.String(), kcvHex) {
		return "", fmt.Errorf("working key's check value %s, the decrypted key gives %s: another TMK?", kcvHex, check)
	}
	return strings.ToUpper(hex.EncodeToString(key)), nil
}
