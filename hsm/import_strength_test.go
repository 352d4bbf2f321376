package hsm_test

import (
	"errors"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/tr31"
	"github.com/switchyard/switchyard/internal/sym"
)

// TestImportRefusesAWeakerKEK: a key may not come in under a KEK weaker than
// itself, as it may not leave under one (checkExport). ImportKey unwrapped a TR-31
// version D block under the demo TDES-2KEY TMK (its 16 bytes taken as an AES-128
// key block protection key) holding an AES-256 BDK, and stored the BDK: a key of 256
// bits whose only protection in transit had been 112-bit TDES key material, under
// the TDES key used as an AES key besides. A block's version must also suit its
// KEK: B (A, C) under a TDES KEK, D under an AES one.
func TestImportRefusesAWeakerKEK(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	tmk := hsm.KeyRef{ID: "T0000001.TMK"}
	kbpk := hx(t, demoTMK)
	sym.SetOddParity(kbpk) // the TMK as stored: AES uses the parity bits too
	aes256 := hx(t, "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
	blk, err := tr31.Wrap(kbpk, tr31.Header{Version: tr31.VersionD, Usage: tr31.UsageBDK, Algorithm: tr31.AlgAES, ModeOfUse: tr31.ModeDerive,
		Exportability: tr31.ExportNone}, aes256, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "aes.BDK", Type: hsm.BDK, Algorithm: hsm.AES256, Owner: "1234567890123456"}, KEK: tmk, TR31: blk})
	if !errors.Is(err, hsm.ErrPolicy) {
		t.Fatalf("AES-256 BDK under the TDES-2KEY TMK: %+v, %v; want ErrPolicy", res, err)
	}
	// A TDES-3KEY key under the TDES-2KEY TMK (version B) is refused too.
	tdes3 := hx(t, "0123456789ABCDEFFEDCBA9876543210F1F1F1F1F1F1F1F1")
	blk, err = tr31.Wrap(kbpk, tr31.Header{Version: tr31.VersionB, Usage: tr31.UsagePIN, Algorithm: tr31.AlgTDES, ModeOfUse: tr31.ModeEncDec,
		Exportability: tr31.ExportNone}, tdes3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "t3.TPK", Type: hsm.TPK, Algorithm: hsm.TDES3KEY, Owner: "T0000001"}, KEK: tmk, TR31: blk}); !errors.Is(err, hsm.ErrPolicy) {
		t.Fatalf("TDES-3KEY TPK under the TDES-2KEY TMK: %+v, %v; want ErrPolicy", res, err)
	}
	// A TDES key in a version D block under the TDES TMK: the TMK used as an AES key.
	blk, err = tr31.Wrap(kbpk, tr31.Header{Version: tr31.VersionD, Usage: tr31.UsagePIN, Algorithm: tr31.AlgTDES, ModeOfUse: tr31.ModeEncDec,
		Exportability: tr31.ExportNone}, hx(t, demoTPK), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "d.TPK", Type: hsm.TPK, Owner: "T0000001"}, KEK: tmk, TR31: blk}); !errors.Is(err, hsm.ErrPolicy) {
		t.Fatalf("version D block under the TDES TMK: %+v, %v; want ErrPolicy", res, err)
	}
	// The usual case still comes in: a TDES-2KEY key, version B, under the TMK.
	blk, err = tr31.Wrap(kbpk, tr31.Header{Version: tr31.VersionB, Usage: tr31.UsagePIN, Algorithm: tr31.AlgTDES, ModeOfUse: tr31.ModeEncDec,
		Exportability: tr31.ExportNone}, hx(t, demoTPK), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "b.TPK", Type: hsm.TPK, Owner: "T0000001"}, KEK: tmk, TR31: blk}); err != nil {
		t.Fatalf("TDES-2KEY TPK, version B, under the TMK: %v", err)
	}
}
