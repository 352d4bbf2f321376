package hsm_test

import (
	"errors"
	"testing"
	"time"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/pinblock"
	"github.com/switchyard/switchyard/hsm/tr31"
)

// A TR-31 block's mode of use is part of what the sender authorised: a key sent as
// verify-only (V), unwrap-only (D) or encrypt-only (E) must not be stored with the
// wider mode of its type's profile (C, B, B). ImportKey checks the usage and the
// algorithm of the block but not its mode of use.
func TestImportHonoursTR31ModeOfUse(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	tmk := hsm.KeyRef{ID: "T0000001.TMK"}
	wrap := func(usage string, mode byte, keyHex string) string {
		t.Helper()
		blk, err := tr31.Wrap(hx(t, demoTMK), tr31.Header{Version: tr31.VersionB, Usage: usage, Algorithm: tr31.AlgTDES, ModeOfUse: mode,
			Exportability: tr31.ExportNone}, hx(t, keyHex), nil)
		if err != nil {
			t.Fatal(err)
		}
		return blk
	}

	// A verify-only MAC key (M3 V) imported as a TAK must not generate MACs.
	if _, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "v.TAK", Type: hsm.TAK, Owner: "T0000001"}, KEK: tmk,
		TR31: wrap(tr31.UsageMACAlg3, tr31.ModeVerify, "0123456789ABCDEFFEDCBA9876543210")}); err != nil {
		t.Logf("verify-only MAC key refused at import (acceptable): %v", err)
	} else if _, err := e.hsm.GenerateMAC(e.ctx, hsm.MACRequest{Key: hsm.KeyRef{ID: "v.TAK"}, Data: []byte("forged 0210")}); !errors.Is(err, hsm.ErrKeyUsage) {
		t.Errorf("a TAK imported from a verify-only (M3 V) block generates MACs: err %v", err)
	}

	// An encrypt-only PIN key (P0 E) imported as a TPK must not decrypt PIN blocks.
	if _, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "e.TPK", Type: hsm.TPK, Owner: "T0000001"}, KEK: tmk,
		TR31: wrap(tr31.UsagePIN, tr31.ModeEncrypt, demoTPK)}); err != nil {
		t.Logf("encrypt-only PIN key refused at import (acceptable): %v", err)
	} else if _, err := e.hsm.TranslatePIN(e.ctx, hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "e.TPK"}, SourceFormat: pinblock.Format0,
		PINBlock: pinUnder(t, demoTPK, pinblock.Format0, "1234"), Dest: hsm.KeyRef{ID: "demo.ZPK"}, DestFormat: pinblock.Format0, PAN: pan}); !errors.Is(err, hsm.ErrKeyUsage) {
		t.Errorf("a TPK imported from an encrypt-only (P0 E) block decrypts PIN blocks: err %v", err)
	}

	// An unwrap-only KEK (K0 D) imported as a ZMK must not wrap (export) keys. It
	// comes under the zone's ZMK: never under a TMK (TestImportFollowsTheWrapHierarchy).
	blk, err := tr31.Wrap(hx(t, "9BB091DF6B6162D3947AA46EDCFB312A"), tr31.Header{Version: tr31.VersionB, Usage: tr31.UsageKEK, Algorithm: tr31.AlgTDES, ModeOfUse: tr31.ModeDecrypt,
		Exportability: tr31.ExportNone}, hx(t, "3C5A7E9112B4D6F88F6D4B2A19E7C5A3"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "d.ZMK", Type: hsm.ZMK}, KEK: hsm.KeyRef{ID: "demo.ZMK"},
		TR31: blk}); err != nil {
		t.Logf("unwrap-only KEK refused at import (acceptable): %v", err)
	} else if _, err := e.hsm.ExportKey(e.ctx, hsm.ExportKeyRequest{Key: hsm.KeyRef{ID: "demo.ZPK"},
		ExportSpec: hsm.ExportSpec{KEK: hsm.KeyRef{ID: "d.ZMK"}, Format: hsm.ExportTR31}}); !errors.Is(err, hsm.ErrKeyUsage) {
		t.Errorf("a ZMK imported from an unwrap-only (K0 D) block exports keys under it: err %v", err)
	}
}

// A superseded version whose grace window has ended must never be used again. The
// store derives "superseded" from the presence of a newer current version, so when
// the newest version is revoked (or expires) the retired one becomes current again
// and encrypts PINs outbound.
func TestRetiredVersionNotRevivedByRevokingItsSuccessor(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	zpk := hsm.KeyRef{ID: "demo.ZPK"}
	if _, err := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "demo.ZPK", Type: hsm.ZPK, Owner: "demo", Grace: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Hour) // v1's grace window is over
	v1, _ := e.store.Key(e.ctx, hsm.KeyRef{ID: "demo.ZPK", Version: 1})
	if v1.Status != hsm.StatusSuperseded || v1.Usable(e.clock.Now(), hsm.Inbound) == nil {
		t.Fatalf("sanity: v1 %s, grace until %s", v1.Status, v1.GraceUntil)
	}
	if _, err := e.store.SetStatus(e.ctx, hsm.KeyRef{ID: "demo.ZPK", Version: 2}, hsm.StatusRevoked, "suspected compromise"); err != nil {
		t.Fatal(err)
	}
	out, err := e.hsm.TranslatePIN(e.ctx, hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "T0000001.TPK"}, SourceFormat: pinblock.Format0,
		PINBlock: pinUnder(t, demoTPK, pinblock.Format0, "1234"), Dest: zpk, DestFormat: pinblock.Format0, PAN: pan})
	if err == nil {
		cur, _ := e.store.Key(e.ctx, zpk)
		t.Errorf("after revoking v2, PIN 1234 went out under demo.ZPK v%d, superseded at %s and past its grace window (%s); clear under the v1 key: %s",
			cur.Version, e.clock.Now().Add(-2*time.Hour).Format(time.RFC3339), v1.GraceUntil.Format(time.RFC3339), clearPIN(t, demoZPK, pinblock.Format0, out))
	} else if !errors.Is(err, hsm.ErrKeyNotUsable) {
		t.Fatalf("translate after revoking v2: %v", err)
	}
}

// Two custodians who enter the same component (a copied form, or one custodian
// replaying the other's) form the all-zero key, which odd parity turns into the DES
// weak key 0101...01: FormKey must refuse a key whose components cancel out.
func TestFormKeyRefusesComponentsThatCancel(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	c := hx(t, "0123456789ABCDEFFEDCBA9876543210")
	res, err := e.hsm.FormKey(e.ctx, hsm.FormKeyRequest{KeySpec: hsm.KeySpec{ID: "same.ZMK", Type: hsm.ZMK}, Components: [][]byte{c, append([]byte(nil), c...)}})
	if err == nil {
		t.Errorf("two equal components formed %s with KCV %s (components' KCVs %v): the key is 01010101010101010101010101010101, a DES weak key", res.Ref, res.KCV, res.ComponentKCVs)
	}
	// Of three components, two equal ones cancel out: the key is the third
	// custodian's component, known to that custodian alone (no split knowledge).
	c3 := hx(t, "C1D0F8FB4958670DBA40AB1F3752EF0D")
	res, err = e.hsm.FormKey(e.ctx, hsm.FormKeyRequest{KeySpec: hsm.KeySpec{ID: "same3.ZMK", Type: hsm.ZMK}, Components: [][]byte{c, c3, append([]byte(nil), c...)}})
	if err == nil {
		t.Errorf("components 1 and 3 equal formed %s with KCV %s: the key is component 2 alone", res.Ref, res.KCV)
	}
}

// TestECBImportKeepsKeyTypes: an ECB form carries no key type, so one key's ECB export
// re-imported as another type would serve two purposes (the terminal's TPK as a TDK:
// DecryptData gives its PIN blocks in the clear; as a ZMK: keys exported under it).
// Only the working keys exchanged that way may come in ECB.
func TestECBImportKeepsKeyTypes(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	tmk := hsm.KeyRef{ID: "T0000001.TMK"}
	ecb, err := e.hsm.ExportKey(e.ctx, hsm.ExportKeyRequest{Key: hsm.KeyRef{ID: "T0000001.TPK"}, ExportSpec: hsm.ExportSpec{KEK: tmk, Format: hsm.ExportECB}})
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []hsm.KeyType{hsm.TDK, hsm.ZMK, hsm.TMK, hsm.DEK} {
		_, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000001.X" + string(typ), Type: typ, Owner: "T0000001"}, KEK: tmk, ECB: ecb})
		if !errors.Is(err, hsm.ErrPolicy) {
			t.Errorf("the TPK's ECB export imported as a %s: err %v, want ErrPolicy", typ, err)
		}
	}
	// A TPK still comes in ECB (a terminal's working key under its TMK): here a new
	// key re-sent, a new version of its own ID. (Not T0000001's demo TPK: the demo
	// fleet stores that public value under four IDs, and an ECB value is never
	// stored under a second ID: TestECBImportRefusesAStoredValue.)
	gen, err := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000004.TPK", Type: hsm.TPK, Owner: "T0000001"},
		Export: &hsm.ExportSpec{KEK: tmk, Format: hsm.ExportECB}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000004.TPK", Type: hsm.TPK, Owner: "T0000001"}, KEK: tmk, ECB: gen.Exported}); err != nil {
		t.Errorf("a TPK imported from ECB: %v", err)
	}
}
