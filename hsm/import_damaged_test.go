package hsm_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/tr31"
)

// TestImportRefusesADamagedTR31Block: a TR-31 block whose header was changed (its
// MAC then does not authenticate), whose MAC or encrypted key was altered, that
// was wrapped under another KEK, or that is cut short, is bad input (ErrInput: 400
// through the admin API), as a wrong KCV is. ImportKey returned the tr31 error
// unwrapped, which the admin API answered 500 and logged as an internal error.
// Nothing is stored.
func TestImportRefusesADamagedTR31Block(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	tmk := hsm.KeyRef{ID: "T0000001.TMK"}
	const keyHex = "3C5A7E9112B4D6F88F6D4B2A19E7C5A3"
	wrap := func(kekHex string) string {
		t.Helper()
		blk, err := tr31.Wrap(hx(t, kekHex), tr31.Header{Version: tr31.VersionB, Usage: tr31.UsagePIN, Algorithm: tr31.AlgTDES, ModeOfUse: tr31.ModeEncDec,
			KeyVersion: "00", Exportability: tr31.ExportNone}, hx(t, keyHex), nil)
		if err != nil {
			t.Fatal(err)
		}
		return blk
	}
	good := wrap(demoTMK)
	// swap changes the character at i to another of the same kind.
	swap := func(s string, i int) string {
		c := byte('A')
		if s[i] == 'A' {
			c = 'B'
		}
		if s[i] >= '0' && s[i] <= '9' {
			c = '0' + (s[i]-'0'+1)%10
		}
		return s[:i] + string(c) + s[i+1:]
	}
	for _, c := range []struct{ name, block string }{
		{"exportability changed in the header", strings.Replace(good, "00N00", "00E00", 1)},
		{"key version changed in the header", swap(good, 10)},
		{"MAC altered", swap(good, len(good)-1)},
		{"encrypted key altered", swap(good, 20)},
		{"wrapped under another KEK", wrap(demoZPK)},
		{"cut short", good[:len(good)-20]},
		{"lower-case hex", good[:16] + strings.ToLower(good[16:])},
	} {
		if c.block == good {
			t.Fatalf("%s: the block is unchanged", c.name)
		}
		res, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000001.DMG", Type: hsm.TPK, Owner: "T0000001"}, KEK: tmk, TR31: c.block})
		if !errors.Is(err, hsm.ErrInput) {
			t.Errorf("%s: stored %s, err %v; want ErrInput", c.name, res.Ref, err)
		}
	}
	if _, err := e.store.Versions("T0000001.DMG"); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("a damaged block left a key: %v", err)
	}
	if _, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000001.DMG", Type: hsm.TPK, Owner: "T0000001"}, KEK: tmk, TR31: good}); err != nil {
		t.Fatalf("the undamaged block: %v", err)
	}
}
