package hsm_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/kcv"
	"github.com/switchyard/switchyard/hsm/pinblock"
	"github.com/switchyard/switchyard/hsm/tr31"
	"github.com/switchyard/switchyard/keys"
)

func TestGenerateExportImport(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	tmk := hsm.KeyRef{ID: "T0000001.TMK"}
	// A new TPK for a terminal, delivered under its TMK in the WP-tag form HEXKEY:KCV.
	res, err := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000004.TPK", Type: hsm.TPK, Owner: "T0000001"}, Export: &hsm.ExportSpec{KEK: tmk, Format: hsm.ExportECB}})
	if err != nil {
		t.Fatal(err)
	}
	hexKey, kcvPart, ok := strings.Cut(res.Exported, ":")
	if !ok || kcvPart != res.KCV || len(hexKey) != 32 || strings.ToUpper(hexKey) != hexKey {
		t.Fatalf("ECB export %q", res.Exported)
	}
	enc := hx(t, hexKey)
	clear := make([]byte, 16)
	c := tdes(t, demoTMK)
	c.Decrypt(clear[:8], enc[:8])
	c.Decrypt(clear[8:], enc[8:])
	if k, _ := kcv.TDES(clear); k.String() != res.KCV {
		t.Fatalf("ECB-exported key has KCV %s, want %s", k, res.KCV)
	}
	for i, b := range clear {
		n := 0
		for x := b; x != 0; x &= x - 1 {
			n++
		}
		if n%2 != 1 {
			t.Fatalf("generated DES key byte %d has even parity", i)
		}
	}
	// TR-31 export under the TMK (TDES KEK: version B), and the KCV operation.
	blk, err := e.hsm.ExportKey(e.ctx, hsm.ExportKeyRequest{Key: res.Ref, ExportSpec: hsm.ExportSpec{KEK: tmk, Format: hsm.ExportTR31}})
	if err != nil {
		t.Fatal(err)
	}
	h, k2, err := tr31.Unwrap(hx(t, demoTMK), blk)
	if err != nil || !bytes.Equal(k2, clear) || h.Version != tr31.VersionB || h.Usage != tr31.UsagePIN {
		t.Fatalf("TR-31 export: %v %s", err, h)
	}
	if kc, _ := h.Block("KC"); kc != "00"+res.KCV {
		t.Fatalf("KC block %q", kc)
	}
	chk, err := e.hsm.KCV(e.ctx, res.Ref)
	if err != nil || chk.KCV != res.KCV || chk.Method != kcv.MethodTDES {
		t.Fatalf("KCV %v %v", chk, err)
	}
	// Import both forms under the TMK, the KCV must match: the ECB form as a new
	// version of the same key (an ECB value is never stored under a second key ID:
	// TestECBImportRefusesAStoredValue), the TR-31 block at another terminal.
	imp, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000004.TPK", Type: hsm.TPK, Owner: "T0000001"}, KEK: tmk, ECB: res.Exported})
	if err != nil || imp.KCV != res.KCV || imp.Ref.Version != 2 {
		t.Fatalf("ECB import: %v %v", imp, err)
	}
	imp2, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "imp2.TPK", Type: hsm.TPK, Owner: "T0000001"}, KEK: tmk, TR31: blk, KCV: res.KCV})
	if err != nil || imp2.KCV != res.KCV {
		t.Fatalf("TR-31 import: %v %v", imp2, err)
	}
	// The imported key took the exportability N of the TR-31 block: no further ECB export.
	if _, err := e.hsm.ExportKey(e.ctx, hsm.ExportKeyRequest{Key: imp2.Ref, ExportSpec: hsm.ExportSpec{KEK: tmk, Format: hsm.ExportTR31}}); !errors.Is(err, hsm.ErrPolicy) {
		t.Fatalf("re-export of a non-exportable key: %v", err)
	}
	// Wrong KCV, wrong usage, wrong KEK type, wrong key length.
	if _, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "bad.TPK", Type: hsm.TPK, Owner: "T0000001"}, KEK: tmk, ECB: hexKey + ":000000"}); !errors.Is(err, hsm.ErrKCVMismatch) {
		t.Fatalf("wrong KCV: %v", err)
	}
	if _, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "bad.TPK", Type: hsm.TPK, Owner: "T0000001"}, KEK: tmk, ECB: hexKey}); !errors.Is(err, hsm.ErrInput) {
		t.Fatalf("ECB without KCV: %v", err)
	}
	if _, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "bad.TAK", Type: hsm.TAK, Owner: "T0000001"}, KEK: tmk, TR31: blk}); !errors.Is(err, hsm.ErrKeyUsage) {
		t.Fatalf("P0 block imported as a TAK: %v", err)
	}
	if _, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "bad.TPK", Type: hsm.TPK}, KEK: hsm.KeyRef{ID: "T0000001.TPK"}, ECB: res.Exported}); !errors.Is(err, hsm.ErrKeyUsage) {
		t.Fatalf("TPK used as a KEK: %v", err)
	}
	if _, err := e.store.Key(e.ctx, hsm.KeyRef{ID: "bad.TPK"}); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("a failed import stored a key: %v", err)
	}
	// A BDK (exportability E) leaves only as a TR-31 block.
	if _, err := e.hsm.ExportKey(e.ctx, hsm.ExportKeyRequest{Key: hsm.KeyRef{ID: "BDK.FFFF9876543210E"}, ExportSpec: hsm.ExportSpec{KEK: hsm.KeyRef{ID: "demo.ZMK"}, Format: hsm.ExportECB}}); !errors.Is(err, hsm.ErrPolicy) {
		t.Fatalf("ECB export of a BDK: %v", err)
	}
	bb, err := e.hsm.ExportKey(e.ctx, hsm.ExportKeyRequest{Key: hsm.KeyRef{ID: "BDK.FFFF9876543210E"}, ExportSpec: hsm.ExportSpec{KEK: hsm.KeyRef{ID: "demo.ZMK"}, Format: hsm.ExportTR31}})
	if err != nil {
		t.Fatal(err)
	}
	if _, k, err := tr31.Unwrap(hx(t, "9BB091DF6B6162D3947AA46EDCFB312A"), bb); err != nil || hex.EncodeToString(k) != "0123456789abcdeffedcba9876543210" {
		t.Fatalf("BDK export: %v", err)
	}
	// An AES key never leaves under a TDES KEK.
	aesZPK, _ := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "a.ZPK", Type: hsm.ZPK, Algorithm: hsm.AES256}})
	if _, err := e.hsm.ExportKey(e.ctx, hsm.ExportKeyRequest{Key: aesZPK.Ref, ExportSpec: hsm.ExportSpec{KEK: tmk, Format: hsm.ExportTR31}}); !errors.Is(err, hsm.ErrPolicy) {
		t.Fatalf("AES key under TDES KEK: %v", err)
	}
	// Every event is in the audit log, which verifies.
	n, err := e.store.VerifyLog(e.ctx)
	if err != nil || n < len(keys.DemoKeys)+5 {
		t.Fatalf("audit log: %d entries, %v", n, err)
	}
	log, _ := e.store.AuditLog(1, 0)
	var exports int
	for _, en := range log {
		if en.Action == "export" {
			exports++
		}
		if strings.Contains(strings.ToUpper(en.Detail), strings.ToUpper(hexKey)) {
			t.Fatal("audit log holds key material")
		}
	}
	if exports != 2 {
		t.Fatalf("%d export events, want 2", exports)
	}
}

// Zone key change: after a rotation with a grace window, PIN blocks and MACs under
// the old version are still accepted until the window ends; new ones use the new key.
func TestRotationGrace(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	zpk := hsm.KeyRef{ID: "demo.ZPK"}
	oldBlock := pinUnder(t, demoZPK, pinblock.Format0, "1234")
	zak, _ := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "demo.ZAK", Type: hsm.ZAK, Owner: "demo"}})
	data := []byte("0210 response")
	oldMAC, _ := e.hsm.GenerateMAC(e.ctx, hsm.MACRequest{Key: zak.Ref, Data: data})

	for _, id := range []string{"demo.ZPK", "demo.ZAK"} {
		rec, _ := e.store.Key(e.ctx, hsm.KeyRef{ID: id})
		res, err := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: id, Type: rec.Type, Owner: "demo", Grace: time.Hour}})
		if err != nil || res.Ref.Version != 2 {
			t.Fatalf("rotate %s: %v %v", id, res, err)
		}
	}
	verify := func() error {
		return e.hsm.VerifyPIN(e.ctx, hsm.VerifyPINRequest{Key: zpk, Format: pinblock.Format0, PINBlock: oldBlock, PAN: pan, ReferencePIN: []byte("1234")})
	}
	if err := verify(); err != nil {
		t.Fatalf("old-version PIN block within grace: %v", err)
	}
	if err := e.hsm.VerifyMAC(e.ctx, hsm.MACRequest{Key: zak.Ref, Data: data}, oldMAC); err != nil {
		t.Fatalf("old-version MAC within grace: %v", err)
	}
	// New outbound work uses v2; v1 cannot be used outbound any more.
	newMAC, _ := e.hsm.GenerateMAC(e.ctx, hsm.MACRequest{Key: hsm.KeyRef{ID: "demo.ZAK"}, Data: data})
	if bytes.Equal(newMAC, oldMAC) {
		t.Fatal("new MAC equals the old: not the new version")
	}
	if _, err := e.hsm.GenerateMAC(e.ctx, hsm.MACRequest{Key: hsm.KeyRef{ID: "demo.ZAK", Version: 1}, Data: data}); !errors.Is(err, hsm.ErrKeyNotUsable) {
		t.Fatalf("outbound use of superseded v1: %v", err)
	}
	e.clock.Advance(2 * time.Hour)
	if err := verify(); err == nil || errors.Is(err, hsm.ErrPINMismatch) {
		t.Fatalf("old-version PIN block after grace: %v", err)
	}
	if err := e.hsm.VerifyMAC(e.ctx, hsm.MACRequest{Key: hsm.KeyRef{ID: "demo.ZAK"}, Data: data}, oldMAC); !errors.Is(err, hsm.ErrMACMismatch) {
		t.Fatalf("old-version MAC after grace: %v", err)
	}
	if err := e.hsm.VerifyMAC(e.ctx, hsm.MACRequest{Key: hsm.KeyRef{ID: "demo.ZAK"}, Data: data}, newMAC); err != nil {
		t.Fatal(err)
	}
	// A new version of another type under the same ID is refused.
	if _, err := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "demo.ZAK", Type: hsm.ZPK}}); !errors.Is(err, hsm.ErrInput) {
		t.Fatalf("type change on rotation: %v", err)
	}
}

func TestStatusAndDates(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	now := e.clock.Now()
	res, err := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "later.ZPK", Type: hsm.ZPK, ActivateAt: now.Add(time.Hour), ExpiresAt: now.Add(48 * time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	src := pinUnder(t, demoTPK, pinblock.Format0, "1234")
	req := hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "T0000001.TPK"}, SourceFormat: pinblock.Format0, PINBlock: src, Dest: hsm.KeyRef{ID: "later.ZPK"}, DestFormat: pinblock.Format0, PAN: pan}
	if _, err := e.hsm.TranslatePIN(e.ctx, req); !errors.Is(err, hsm.ErrKeyNotUsable) {
		t.Fatalf("not yet active: %v", err)
	}
	// It can be distributed before activation.
	if _, err := e.hsm.ExportKey(e.ctx, hsm.ExportKeyRequest{Key: res.Ref, ExportSpec: hsm.ExportSpec{KEK: hsm.KeyRef{ID: "demo.ZMK"}, Format: hsm.ExportTR31}}); err != nil {
		t.Fatalf("export before activation: %v", err)
	}
	e.clock.Advance(2 * time.Hour)
	if _, err := e.hsm.TranslatePIN(e.ctx, req); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(48 * time.Hour)
	if _, err := e.hsm.TranslatePIN(e.ctx, req); !errors.Is(err, hsm.ErrKeyNotUsable) {
		t.Fatalf("expired: %v", err)
	}
	if _, err := e.store.SetStatus(e.ctx, hsm.KeyRef{ID: "T0000001.TPK", Version: 1}, hsm.StatusRevoked, "test"); err != nil {
		t.Fatal(err)
	}
	req.Dest = hsm.KeyRef{ID: "demo.ZPK"}
	if _, err := e.hsm.TranslatePIN(e.ctx, req); !errors.Is(err, hsm.ErrKeyNotUsable) {
		t.Fatalf("revoked source: %v", err)
	}
}

func TestFormKeyComponents(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	c := [][]byte{hx(t, "0123456789ABCDEF0123456789ABCDEF"), hx(t, "FEDCBA9876543210FEDCBA9876543210"), hx(t, "1111111111111111EEEEEEEEEEEEEEEE")}
	res, err := e.hsm.FormKey(e.ctx, hsm.FormKeyRequest{KeySpec: hsm.KeySpec{ID: "cer.ZMK", Type: hsm.ZMK}, Components: c})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.ComponentKCVs) != 3 {
		t.Fatalf("component KCVs %v", res.ComponentKCVs)
	}
	k0, _ := kcv.TDES(c[0])
	if res.ComponentKCVs[0] != k0.String() {
		t.Fatalf("component 1 KCV %s, want %s", res.ComponentKCVs[0], k0)
	}
	x := make([]byte, 16)
	for _, ci := range c {
		for i := range x {
			x[i] ^= ci[i]
		}
	}
	kx, _ := kcv.TDES(x)
	if res.KCV != kx.String() {
		t.Fatalf("combined KCV %s, want %s", res.KCV, kx)
	}
	for _, bad := range [][][]byte{c[:1], append(c, c[0]), {c[0], c[1][:8]}} {
		if _, err := e.hsm.FormKey(e.ctx, hsm.FormKeyRequest{KeySpec: hsm.KeySpec{ID: "cer2.ZMK", Type: hsm.ZMK}, Components: bad}); !errors.Is(err, hsm.ErrInput) {
			t.Errorf("%d components: %v", len(bad), err)
		}
	}
	for _, spec := range []hsm.KeySpec{
		{ID: "bad id", Type: hsm.ZMK},
		{ID: "x", Type: "LMK"},
		{ID: "x", Type: hsm.TAK, Algorithm: hsm.AES128, MACAlgorithm: hsm.MACRetail},
		{ID: "x", Type: hsm.CVK, Algorithm: hsm.AES128},
		{ID: "x", Type: hsm.TPK, MACAlgorithm: hsm.MACCMAC},
		{ID: "x", Type: hsm.BDK, Owner: "not hex"},
		{ID: "audit", Type: hsm.ZPK},
	} {
		if _, err := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: spec}); !errors.Is(err, hsm.ErrInput) {
			t.Errorf("spec %+v: %v", spec, err)
		}
	}
}

// Sign-ins of one terminal at once each store new working keys under the same ID:
// an attempt whose version another stored first makes a new key for the next version
// instead of failing (the sign-in would have answered 96).
func TestConcurrentRotationsAllStored(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	// An attempt fails only when another stores that version, and each of the others
	// stores one: n <= 10 attempts at once always succeed.
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	versions := make(chan int, n)
	for range n {
		wg.Go(func() {
			res, err := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000004.TAK", Type: hsm.TAK, Owner: "T0000004", Grace: time.Hour}})
			if err != nil {
				errs <- err
				return
			}
			versions <- res.Ref.Version
		})
	}
	wg.Wait()
	close(errs)
	close(versions)
	for err := range errs {
		t.Errorf("concurrent rotation: %v", err)
	}
	seen := map[int]bool{}
	for v := range versions {
		if seen[v] {
			t.Errorf("version %d returned twice", v)
		}
		seen[v] = true
	}
	if vs, err := e.store.Versions("T0000004.TAK"); err != nil || len(vs) != n {
		t.Fatalf("%d versions stored, %v; want %d", len(vs), err, n)
	}
}

// TestTMKWrapsOnlyItsTerminalsKeys: a terminal master key is held by its terminal,
// so a key wrapped under it is that terminal's. Until 7 December 2026 one admin
// could export the BDK, the ZMK, the issuer's ZPK, another terminal's TMK or MAC key
// under any terminal's TMK, and unwrap them with the TMK's value. A ZMK still wraps
// them, and a TMK its own terminal's working keys (the key change's TPK, a group
// TMK's terminals' keys: LT.TMK for LT000510).
func TestTMKWrapsOnlyItsTerminalsKeys(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	tmk := hsm.ExportSpec{KEK: hsm.KeyRef{ID: "T0000001.TMK"}, Format: hsm.ExportTR31}
	zmk := hsm.ExportSpec{KEK: hsm.KeyRef{ID: "demo.ZMK"}, Format: hsm.ExportTR31}
	for _, id := range []string{"BDK.FFFF9876543210E", "demo.ZMK", "demo.ZPK", "T0000003.TMK", "T0000002.TAK", "T0000003.TPK"} {
		if _, err := e.hsm.ExportKey(e.ctx, hsm.ExportKeyRequest{Key: hsm.KeyRef{ID: id}, ExportSpec: tmk}); !errors.Is(err, hsm.ErrPolicy) {
			t.Errorf("%s exported under T0000001.TMK: %v; want ErrPolicy", id, err)
		}
	}
	for _, id := range []string{"BDK.FFFF9876543210E", "demo.ZPK", "T0000003.TMK", "T0000002.TAK"} {
		if _, err := e.hsm.ExportKey(e.ctx, hsm.ExportKeyRequest{Key: hsm.KeyRef{ID: id}, ExportSpec: zmk}); err != nil {
			t.Errorf("%s under the ZMK: %v", id, err)
		}
	}
	if _, err := e.hsm.ExportKey(e.ctx, hsm.ExportKeyRequest{Key: hsm.KeyRef{ID: "T0000001.TPK"}, ExportSpec: tmk}); err != nil {
		t.Errorf("the terminal's own TPK under its TMK: %v", err)
	}
	gen := func(spec hsm.KeySpec, kek string) error {
		_, err := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: spec, Export: &hsm.ExportSpec{KEK: hsm.KeyRef{ID: kek}, Format: hsm.ExportECB}})
		return err
	}
	// A new version of another terminal's MAC key, asked for as this terminal's, is
	// still that terminal's; a new zone key never leaves under a TMK.
	if err := gen(hsm.KeySpec{ID: "T0000002.TAK", Type: hsm.TAK, MACAlgorithm: hsm.MACRetail, Owner: "T0000001"}, "T0000001.TMK"); !errors.Is(err, hsm.ErrPolicy) {
		t.Errorf("a new version of T0000002.TAK under T0000001.TMK: %v; want ErrPolicy", err)
	}
	if err := gen(hsm.KeySpec{ID: "T0000001.ZPK", Type: hsm.ZPK, Owner: "T0000001"}, "T0000001.TMK"); !errors.Is(err, hsm.ErrPolicy) {
		t.Errorf("a ZPK under a TMK: %v; want ErrPolicy", err)
	}
	for _, c := range []struct {
		spec hsm.KeySpec
		kek  string
	}{
		{hsm.KeySpec{ID: "T0000001.TPK", Type: hsm.TPK, Owner: "T0000001"}, "T0000001.TMK"},
		{hsm.KeySpec{ID: "T0000001.TAK", Type: hsm.TAK, MACAlgorithm: hsm.MACRetail, Owner: "T0000001"}, "T0000001.TMK"},
		{hsm.KeySpec{ID: "LT000510.TPK", Type: hsm.TPK, Owner: "LT000510"}, "LT.TMK"},
	} {
		if err := gen(c.spec, c.kek); err != nil {
			t.Errorf("%s under %s: %v", c.spec.ID, c.kek, err)
		}
	}
}

func TestKeyIDAndOwnerHoldNoCardNumber(t *testing.T) {
	for _, id := range []string{"z4761739001010267", "4761739001010119.TPK"} {
		err := hsm.CheckKeyID(id)
		if !errors.Is(err, hsm.ErrInput) || !strings.Contains(err.Error(), "card number") || strings.Contains(err.Error(), "73900101") {
			t.Errorf("CheckKeyID(%q) = %v, want hsm.ErrInput quoting it masked", id, err)
		}
	}
	if err := hsm.CheckKeyID("LT000001.TPK"); err != nil {
		t.Errorf("CheckKeyID(LT000001.TPK) = %v", err)
	}
	spec := hsm.KeySpec{ID: "k1", Type: hsm.TPK, Owner: "T4761739001010119"}
	if err := spec.Normalize(); !errors.Is(err, hsm.ErrInput) || !strings.Contains(err.Error(), `owner "T476173******0119"`) {
		t.Errorf("an owner holding a card number: %v", err)
	}
}
