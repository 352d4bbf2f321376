package hsm_test

import (
	"errors"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/tr31"
)

// TestImportRefusesAComponentBlock: a TR-31 block whose key version is "c1" holds
// one component of a key, not the key (TR-31 key version number). ImportKey took it
// for the key: one custodian's component, wrapped under the terminal's TMK, became a
// TPK known to that custodian alone, with no ceremony. It is refused (ErrPolicy); the
// same block with key version 00 is imported.
func TestImportRefusesAComponentBlock(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	tmk := hsm.KeyRef{ID: "T0000009.TMK"} // the same demo value as T0000001.TMK
	comp := "C1D0F8FB4958670DBA40AB1F3752EF0D"
	wrap := func(kv string) string {
		t.Helper()
		blk, err := tr31.Wrap(hx(t, demoTMK), tr31.Header{Version: tr31.VersionB, Usage: tr31.UsagePIN, Algorithm: tr31.AlgTDES, ModeOfUse: tr31.ModeEncDec,
			KeyVersion: kv, Exportability: tr31.ExportNone}, hx(t, comp), nil)
		if err != nil {
			t.Fatal(err)
		}
		return blk
	}
	for _, kv := range []string{"c1", "c2"} {
		res, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000009.TPK", Type: hsm.TPK, Owner: "T0000009"}, KEK: tmk, TR31: wrap(kv)})
		if !errors.Is(err, hsm.ErrPolicy) {
			t.Errorf("block of key version %s imported as %s (KCV %s, the component's): err %v, want ErrPolicy", kv, res.Ref, res.KCV, err)
		}
	}
	if _, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000009.TPK", Type: hsm.TPK, Owner: "T0000009"}, KEK: tmk, TR31: wrap("00")}); err != nil {
		t.Fatalf("block of key version 00: %v", err)
	}
}
