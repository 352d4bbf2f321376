package hsm_test

import (
	"errors"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/tr31"
)

// TestSingleLengthKeyMasquerading: a TDES-2KEY key of two equal halves is single
// DES (E(K1, D(K1, E(K1, x))) = E(K1, x)): 56 bits passing for 112, as the same key's
// KCV shows (that of the single-length key 0123456789ABCDEF, D5D44F). FormKey and
// ImportKey (ECB and TR-31) stored such keys; they are refused (ErrInput, payShield's
// error 75) unless KeySpec.SingleLength asks for one, and so is a TDES-3KEY key whose
// middle part repeats the first or the last. Halves differing only in parity bits
// are equal keys.
func TestSingleLengthKeyMasquerading(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	const single = "0123456789ABCDEF0123456789ABCDEF"
	parityFlipped := "0123456789ABCDEF0022446688AACCEE" // the same DES key, other parity bits
	comps := func(keyHex string) [][]byte {
		key := hx(t, keyHex)
		c1 := hx(t, "C1D0F8FB4958670DBA40AB1F3752EF0DF1E2D3C4B5A69788")[:len(key)]
		c2 := make([]byte, len(key))
		for i := range c2 {
			c2[i] = key[i] ^ c1[i]
		}
		return [][]byte{c1, c2}
	}
	for _, tc := range []struct {
		name, key string
		alg       hsm.Algorithm
	}{
		{"TDES-2KEY equal halves", single, hsm.TDES2KEY},
		{"TDES-2KEY halves equal but for parity", parityFlipped, hsm.TDES2KEY},
		{"TDES-3KEY K1 = K2", "0123456789ABCDEF0123456789ABCDEFFEDCBA9876543210", hsm.TDES3KEY},
		{"TDES-3KEY K2 = K3", "FEDCBA98765432100123456789ABCDEF0123456789ABCDEF", hsm.TDES3KEY},
	} {
		res, err := e.hsm.FormKey(e.ctx, hsm.FormKeyRequest{KeySpec: hsm.KeySpec{ID: "m.ZPK", Type: hsm.ZPK, Algorithm: tc.alg}, Components: comps(tc.key)})
		if !errors.Is(err, hsm.ErrInput) {
			t.Errorf("FormKey, %s: formed %s with KCV %s, err %v; want ErrInput", tc.name, res.Ref, res.KCV, err)
		}
	}
	// T0000009's own TMK (the same demo value as T0000001.TMK).
	tmk := hsm.KeyRef{ID: "T0000009.TMK"}
	const single2 = "FEDCBA9876543210FEDCBA9876543210" // not the key formed above
	res, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000009.TPK", Type: hsm.TPK, Owner: "T0000009"}, KEK: tmk, ECB: ecbUnder(t, demoTMK, single2)})
	if !errors.Is(err, hsm.ErrInput) {
		t.Errorf("ImportKey ECB of equal halves: stored %s with KCV %s, err %v; want ErrInput", res.Ref, res.KCV, err)
	}
	blk, err := tr31.Wrap(hx(t, demoTMK), tr31.Header{Version: tr31.VersionB, Usage: tr31.UsagePIN, Algorithm: tr31.AlgTDES, ModeOfUse: tr31.ModeEncDec,
		Exportability: tr31.ExportNone}, hx(t, single), nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err = e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000009.TPK", Type: hsm.TPK, Owner: "T0000009"}, KEK: tmk, TR31: blk})
	if !errors.Is(err, hsm.ErrInput) {
		t.Errorf("ImportKey TR-31 of equal halves: stored %s with KCV %s, err %v; want ErrInput", res.Ref, res.KCV, err)
	}
	// Asked for, a single-length key in double-length form is formed (the KCV of the
	// single-length DES key 0123456789ABCDEF, D5D44F).
	res, err = e.hsm.FormKey(e.ctx, hsm.FormKeyRequest{KeySpec: hsm.KeySpec{ID: "s.ZPK", Type: hsm.ZPK, SingleLength: true}, Components: comps(single)})
	if err != nil || res.KCV != "D5D44F" {
		t.Fatalf("FormKey of a single-length key asked for: %+v, %v; want KCV D5D44F", res, err)
	}
}
