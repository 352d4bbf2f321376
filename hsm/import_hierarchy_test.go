package hsm_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/tr31"
)

// wrapAs returns keyHex as a TR-31 version B block under the TDES KEK kekHex, with
// the usage, algorithm and mode of use of a key of type kt (a TAK: retail MAC).
func wrapAs(t testing.TB, kekHex string, kt hsm.KeyType, keyHex string) string {
	t.Helper()
	mac := hsm.MACAlgorithm("")
	if kt == hsm.TAK || kt == hsm.ZAK {
		mac = hsm.MACRetail
	}
	prof, err := hsm.ProfileFor(kt, hsm.TDES2KEY, mac)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := tr31.Wrap(hx(t, kekHex), tr31.Header{Version: tr31.VersionB, Usage: prof.Usage, Algorithm: prof.Algorithm, ModeOfUse: prof.ModeOfUse,
		KeyVersion: "00", Exportability: tr31.ExportNone}, hx(t, keyHex), nil)
	if err != nil {
		t.Fatal(err)
	}
	return blk
}

// TestImportFollowsTheWrapHierarchy: a key comes in under a terminal's TMK only
// where it could leave under it (hsm.CheckWrap): that terminal's TPK, TAK or TDK.
// ImportKey checked none of it: whoever held one terminal's TMK (in the demo,
// LT.TMK, shared by 2,000 terminals) wrapped a ZMK of their choice under it, one
// admin imported it, and the dual-control ZMK was exported under it, readable by
// them. Every other type is refused (ErrPolicy, naming the type and the TMK), in a
// TR-31 block or an ECB form, for a new ID or as a new version of another
// terminal's key; nothing is stored. A ZMK still wraps any key.
func TestImportFollowsTheWrapHierarchy(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	tmk := hsm.KeyRef{ID: "T0000001.TMK"}
	chosen := "3C5A7E9112B4D6F88F6D4B2A19E7C5A3" // the attacker's key (no demo key)

	for _, kt := range []hsm.KeyType{hsm.ZMK, hsm.TMK, hsm.ZPK, hsm.ZAK, hsm.BDK, hsm.CVK, hsm.DEK} {
		id := "evil." + string(kt)
		spec := hsm.KeySpec{ID: id, Type: kt, Owner: "T0000001"}
		if kt == hsm.BDK {
			spec.Owner = "ABCDEF"
		}
		res, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: spec, KEK: tmk, TR31: wrapAs(t, demoTMK, kt, chosen)})
		if !errors.Is(err, hsm.ErrPolicy) || !strings.Contains(err.Error(), "a "+string(kt)+" may not be imported under the terminal master key T0000001.TMK") {
			t.Errorf("a %s imported under the TMK: %+v, %v; want ErrPolicy naming the %s and the TMK", kt, res, err, kt)
		}
		if _, err := e.store.Key(e.ctx, hsm.KeyRef{ID: id}); !errors.Is(err, hsm.ErrKeyNotFound) {
			t.Errorf("%s stored: %v", id, err)
		}
	}
	// The trial's attack: with the ZMK refused, nothing exports the issuer's ZMK.
	if out, err := e.hsm.ExportKey(e.ctx, hsm.ExportKeyRequest{Key: hsm.KeyRef{ID: "demo.ZMK"},
		ExportSpec: hsm.ExportSpec{KEK: hsm.KeyRef{ID: "evil.ZMK"}, Format: hsm.ExportTR31}}); err == nil {
		t.Fatalf("demo.ZMK exported under the imported evil.ZMK: %s", out)
	}

	// An ECB form of a zone PIN key (a type ECB imports allow) under the TMK.
	if res, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "evil2.ZPK", Type: hsm.ZPK, Owner: "T0000001"}, KEK: tmk,
		ECB: ecbUnder(t, demoTMK, chosen)}); !errors.Is(err, hsm.ErrPolicy) || !strings.Contains(err.Error(), "a ZPK may not be imported") {
		t.Errorf("a ZPK's ECB form imported under the TMK: %+v, %v; want ErrPolicy", res, err)
	}
	// Another terminal's TPK, and a new version of another terminal's TAK given
	// this terminal as its owner.
	if res, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000002.TPK", Type: hsm.TPK, Owner: "T0000002"}, KEK: tmk,
		TR31: wrapAs(t, demoTMK, hsm.TPK, chosen)}); !errors.Is(err, hsm.ErrPolicy) {
		t.Errorf("T0000002's TPK imported under T0000001's TMK: %+v, %v; want ErrPolicy", res, err)
	}
	if res, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000002.TAK", Type: hsm.TAK, Owner: "T0000001"}, KEK: tmk,
		TR31: wrapAs(t, demoTMK, hsm.TAK, chosen)}); !errors.Is(err, hsm.ErrPolicy) {
		t.Errorf("a new version of T0000002.TAK imported under T0000001's TMK: %+v, %v; want ErrPolicy", res, err)
	}

	// What the hierarchy allows still comes in: the terminal's own TPK and TAK
	// under its TMK, and a zone key under the ZMK.
	for _, kt := range []hsm.KeyType{hsm.TPK, hsm.TAK} {
		if _, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000001.new" + string(kt), Type: kt, Owner: "T0000001"}, KEK: tmk,
			TR31: wrapAs(t, demoTMK, kt, chosen)}); err != nil {
			t.Errorf("T0000001's %s under its TMK: %v", kt, err)
		}
	}
	if _, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "partner.ZMK", Type: hsm.ZMK, Owner: "partner"}, KEK: hsm.KeyRef{ID: "demo.ZMK"},
		TR31: wrapAs(t, "9BB091DF6B6162D3947AA46EDCFB312A", hsm.ZMK, chosen)}); err != nil {
		t.Errorf("a ZMK under the ZMK: %v", err)
	}
}
