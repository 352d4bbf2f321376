package hsm_test

import (
	"crypto/aes"
	"errors"
	"fmt"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/dukpt"
	"github.com/switchyard/switchyard/hsm/pinblock"
)

// The BDK is found by the key set ID bits of the KSN, never by counter bits: the TDES
// counter's top bit shares the 15th hex digit with the demo BDK's prefix
// FFFF9876543210E, so counters from 0x100000 up once failed (issue 12, item 1).
// Counters below and across the boundary and the largest valid one, found by prefix
// and by explicit handle, in increasing order (each advances the replay counter).
func TestTranslateDUKPTCounterTopBit(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	const bdkHex = "0123456789ABCDEFFEDCBA9876543210"
	for _, c := range []uint32{0x0FFC00, 0x100000, 0x100001, 0x17FC00, 0x1FF800} {
		ksnText := fmt.Sprintf("FFFF9876543210%06X", 0xE00000|c)
		ksn, err := dukpt.ParseKSN(ksnText)
		if err != nil {
			t.Fatal(err)
		}
		pk, err := dukpt.DeriveWorkingKey(hx(t, bdkHex), ksn, dukpt.PINVariant)
		if err != nil {
			t.Fatal(err)
		}
		blk, err := pinblock.Encrypt(tdes(t, fmt.Sprintf("%X", pk)), pinblock.Format0, []byte("1234"), pan, nil)
		if err != nil {
			t.Fatal(err)
		}
		req := hsm.TranslatePINRequest{KSN: ksnText, SourceFormat: pinblock.Format0, PINBlock: blk,
			Dest: hsm.KeyRef{ID: "demo.ZPK"}, DestFormat: pinblock.Format0, PAN: pan}
		if c == 0x17FC00 {
			req.Source = hsm.KeyRef{ID: "BDK.FFFF9876543210E"}
		}
		out, err := e.hsm.TranslatePIN(e.ctx, req)
		if err != nil {
			t.Fatalf("counter %06X (KSN %s): %v", c, ksnText, err)
		}
		if p, err := pinblock.Decrypt(tdes(t, demoZPK), pinblock.Format0, out, pan); err != nil || string(p) != "1234" {
			t.Fatalf("counter %06X: translated PIN %v", c, err)
		}
	}
	// A KSN differing in the last key set ID bit (D = 1101 against E = 1110 in the
	// bits above the counter) still belongs to no BDK.
	_, err := e.hsm.TranslatePIN(e.ctx, hsm.TranslatePINRequest{KSN: "FFFF9876543210C00001", SourceFormat: pinblock.Format0, PINBlock: make([]byte, 8),
		Dest: hsm.KeyRef{ID: "demo.ZPK"}, DestFormat: pinblock.Format0, PAN: pan})
	if !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("KSN of another key set: %v", err)
	}
	// A BDK prefix that reaches into the counter is refused when the key is formed.
	for _, s := range []hsm.KeySpec{
		{ID: "long.BDK", Type: hsm.BDK, Owner: "AAAA9876543210E0"},
		{ID: "long.BDK", Type: hsm.BDK, Algorithm: hsm.AES128, Owner: "12345678901234560"},
	} {
		if err := s.Normalize(); !errors.Is(err, hsm.ErrInput) {
			t.Errorf("owner %s (%s): %v, want ErrInput", s.Owner, s.Algorithm, err)
		}
	}
}

// AES DUKPT: the 64-bit initial key ID identifies the BDK, the 32-bit counter is
// never compared, up to the largest valid counter (16 one-bits).
func TestTranslateAESDUKPTCounterRange(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	bdkHex := "FEDCBA9876543210F1F1F1F1F1F1F1F1"
	e.form(hsm.KeySpec{ID: "aes.BDK", Type: hsm.BDK, Algorithm: hsm.AES128, Owner: "1234567890123456"}, bdkHex)
	zpk, err := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "aes.ZPK", Type: hsm.ZPK, Algorithm: hsm.AES128}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ks := range []string{"1234567890123456000FFFF0", "123456789012345680000000", "1234567890123456FFFF0000"} {
		ksn, err := dukpt.ParseAESKSN(ks)
		if err != nil {
			t.Fatal(err)
		}
		pk, _ := dukpt.DeriveAESWorkingKey(hx(t, bdkHex), ksn, dukpt.UsagePINEncryption, dukpt.AES128)
		c, _ := aes.NewCipher(pk)
		blk, _ := pinblock.Encrypt(c, pinblock.Format4, []byte("1234"), pan, nil)
		out, err := e.hsm.TranslatePIN(e.ctx, hsm.TranslatePINRequest{KSN: ks, SourceFormat: pinblock.Format4, PINBlock: blk, Dest: zpk.Ref, DestFormat: pinblock.Format4, PAN: pan})
		if err != nil {
			t.Fatalf("KSN %s: %v", ks, err)
		}
		if err := e.hsm.VerifyPIN(e.ctx, hsm.VerifyPINRequest{Key: zpk.Ref, Format: pinblock.Format4, PINBlock: out, PAN: pan, ReferencePIN: []byte("1234")}); err != nil {
			t.Fatalf("KSN %s: %v", ks, err)
		}
	}
}

// A KSN given with a BDK handle (the switch names the terminal's BDK) must be under
// that BDK's KSN prefix: another key set's KSN is ErrKSNNotOfBDK (an ErrKeyUsage,
// which the switch answers 63 ksn-not-bound), refused before anything is decrypted
// and without touching the device's counter, so the device's own request still
// goes through under its BDK.
func TestTranslateDUKPTKSNNotOfTheNamedBDK(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	other := e.form(hsm.KeySpec{ID: "other.BDK", Type: hsm.BDK, Owner: "AAAA9876543210E"}, "FEDCBA98765432100123456789ABCDEF")
	req := hsm.TranslatePINRequest{Source: other, KSN: "FFFF9876543210E00001", SourceFormat: pinblock.Format0, PINBlock: hx(t, "1B9C1845EB993A7A"),
		Dest: hsm.KeyRef{ID: "demo.ZPK"}, DestFormat: pinblock.Format0, PAN: "4012345678909"}
	_, err := e.hsm.TranslatePIN(e.ctx, req)
	if !errors.Is(err, hsm.ErrKSNNotOfBDK) || !errors.Is(err, hsm.ErrKeyUsage) {
		t.Fatalf("KSN of the demo key set under other.BDK: %v, want ErrKSNNotOfBDK", err)
	}
	req.Source = hsm.KeyRef{ID: "BDK.FFFF9876543210E"}
	out, err := e.hsm.TranslatePIN(e.ctx, req)
	if err != nil {
		t.Fatalf("the same KSN under its own BDK after the refusal: %v", err)
	}
	if p, err := pinblock.Decrypt(tdes(t, demoZPK), pinblock.Format0, out, "4012345678909"); err != nil || string(p) != "1234" {
		t.Fatalf("translated PIN %q, %v", p, err)
	}
}
