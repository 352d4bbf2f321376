package hsm_test

import (
	"errors"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/kcv"
	"github.com/switchyard/switchyard/hsm/tr31"
)

// TestExportComponentsExportability pins the rule of ExportComponents (its comment
// gives the source): a key of TR-31 exportability E (a ZMK, the usual key given to a
// partner in components) and one of S (a TPK) split into components that XOR to a
// key of the stored KCV; a key of exportability N (a TPK imported from a block that
// says N) is refused with ErrPolicy and no component.
func TestExportComponentsExportability(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	zmk, err := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "bank-x.ZMK", Type: hsm.ZMK, Owner: "bank-x"}})
	if err != nil {
		t.Fatal(err)
	}
	tpk, err := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000009.TPK", Type: hsm.TPK, Owner: "T0000009"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct {
		res  hsm.KeyResult
		want byte
	}{{zmk, tr31.ExportTrusted}, {tpk, tr31.ExportSensitive}} {
		rec, err := e.store.Key(e.ctx, k.res.Ref)
		if err != nil {
			t.Fatal(err)
		}
		if h, _, err := tr31.ParseHeader(rec.Block); err != nil || h.Exportability != k.want {
			t.Fatalf("%s: exportability %c (%v), the test expects %c", k.res.Ref, h.Exportability, err, k.want)
		}
		comps, _, err := e.hsm.ExportComponents(e.ctx, k.res.Ref, 2)
		if err != nil {
			t.Fatalf("%s (exportability %c): %v", k.res.Ref, k.want, err)
		}
		key := make([]byte, len(comps[0]))
		for i := range key {
			key[i] = comps[0][i] ^ comps[1][i]
		}
		if c, err := kcv.Compute(key, rec.Algorithm.KCVMethod()); err != nil || c.String() != rec.KCV {
			t.Errorf("%s: components combine to KCV %s (%v), the key's is %s", k.res.Ref, c, err, rec.KCV)
		}
	}

	blk, err := tr31.Wrap(hx(t, demoTMK), tr31.Header{Version: tr31.VersionB, Usage: tr31.UsagePIN, Algorithm: tr31.AlgTDES, ModeOfUse: tr31.ModeEncDec,
		KeyVersion: "00", Exportability: tr31.ExportNone}, hx(t, "C1D0F8FB4958670DBA40AB1F3752EF0D"), nil)
	if err != nil {
		t.Fatal(err)
	}
	none, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000008.TPK", Type: hsm.TPK, Owner: "T0000001"}, KEK: hsm.KeyRef{ID: "T0000001.TMK"}, TR31: blk})
	if err != nil {
		t.Fatal(err)
	}
	if comps, _, err := e.hsm.ExportComponents(e.ctx, none.Ref, 2); !errors.Is(err, hsm.ErrPolicy) || comps != nil {
		t.Fatalf("exportability N split: %d components, err %v, want ErrPolicy", len(comps), err)
	}
}
