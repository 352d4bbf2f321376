package hsm_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/hsm"
)

// TestFormKeyRefusesAStoredValue: components carry no key type, as an ECB form does
// not. The same two components entered again formed the same key value under
// another ID and type: a ZMK that was also a TAK (MAC generation under it enciphers
// chosen blocks under the ZMK) and a TPK. FormKey now refuses a value stored under
// another key ID (ErrPolicy, naming that key's ID, never the value), whatever the
// components (other components of one key, parity bits flipped) and whatever the
// other key's type; the same key formed as a new version of its own ID still comes
// in, and so does a shared value asked for (AllowStoredValue: the demo loader's
// public keys).
func TestFormKeyRefusesAStoredValue(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	const keyHex = "3C5A7E9112B4D6F88F6D4B2A19E7C5A3"
	key := hx(t, keyHex)
	c1 := hx(t, "E4452875AABEC56C9278CE44D4932F84")
	c2 := make([]byte, 16)
	for i := range c2 {
		c2[i] = key[i] ^ c1[i]
	}
	form := func(spec hsm.KeySpec, comps ...[]byte) (hsm.KeyResult, error) {
		return e.hsm.FormKey(e.ctx, hsm.FormKeyRequest{KeySpec: spec, Components: comps})
	}
	zmk, err := form(hsm.KeySpec{ID: "bank-a.ZMK", Type: hsm.ZMK, Owner: "bank-a"}, c1, c2)
	if err != nil {
		t.Fatal(err)
	}

	// Other components of the same key, and the key with its parity bits flipped.
	d1 := make([]byte, 16)
	d2 := make([]byte, 16)
	flip := make([]byte, 16)
	for i := range d1 {
		d1[i] = c1[i] ^ 0x5A
		d2[i] = c2[i] ^ 0x5A
		flip[i] = c2[i] ^ 0x01
	}
	for _, c := range []struct {
		name  string
		spec  hsm.KeySpec
		comps [][]byte
	}{
		{"the same components as a TAK", hsm.KeySpec{ID: "bank-a.TAK", Type: hsm.TAK, Owner: "bank-a"}, [][]byte{c1, c2}},
		{"the same components as a TPK", hsm.KeySpec{ID: "T0000001.TPK9", Type: hsm.TPK, Owner: "T0000001"}, [][]byte{c2, c1}},
		{"the same components as another ZMK", hsm.KeySpec{ID: "bank-b.ZMK", Type: hsm.ZMK, Owner: "bank-b"}, [][]byte{c1, c2}},
		{"other components of the key as a ZAK", hsm.KeySpec{ID: "bank-a.ZAK", Type: hsm.ZAK, Owner: "bank-a"}, [][]byte{d1, d2}},
		{"the key with other parity bits as a DEK", hsm.KeySpec{ID: "bank-a.DEK", Type: hsm.DEK, Owner: "bank-a"}, [][]byte{c1, flip}},
	} {
		res, err := form(c.spec, c.comps...)
		if !errors.Is(err, hsm.ErrPolicy) || !strings.Contains(err.Error(), "stored as bank-a.ZMK v1") {
			t.Errorf("%s: formed %s (KCV %s), err %v; want ErrPolicy naming bank-a.ZMK v1", c.name, res.Ref, res.KCV, err)
		} else if strings.Contains(strings.ToUpper(err.Error()), keyHex[:16]) {
			t.Errorf("%s: the error shows the key: %v", c.name, err)
		}
		if _, err := e.store.Versions(c.spec.ID); !errors.Is(err, hsm.ErrKeyNotFound) {
			t.Errorf("%s: a refused key left %s in the store: %v", c.name, c.spec.ID, err)
		}
	}
	// A demo key's value (the issuer's ZPK) formed under another ID.
	zpk := hx(t, demoZPK)
	z2 := make([]byte, 16)
	for i := range z2 {
		z2[i] = zpk[i] ^ c1[i]
	}
	if res, err := form(hsm.KeySpec{ID: "copy.ZPK", Type: hsm.ZPK}, c1, z2); !errors.Is(err, hsm.ErrPolicy) || !strings.Contains(err.Error(), "demo.ZPK") {
		t.Errorf("demo.ZPK's value formed as copy.ZPK: %s, %v; want ErrPolicy naming demo.ZPK", res.Ref, err)
	}

	// The same key as a new version of its own ID is one key: it comes in.
	if re, err := form(hsm.KeySpec{ID: "bank-a.ZMK", Type: hsm.ZMK, Owner: "bank-a"}, d1, d2); err != nil || re.Ref.Version != 2 || re.KCV != zmk.KCV {
		t.Fatalf("the key formed again as bank-a.ZMK: %+v, %v; want version 2, KCV %s", re, err, zmk.KCV)
	}
	// Asked for (the demo loader), a stored value is formed under another ID.
	if _, err := e.hsm.FormKey(e.ctx, hsm.FormKeyRequest{KeySpec: hsm.KeySpec{ID: "shared.ZPK", Type: hsm.ZPK}, Components: [][]byte{c1, z2}, AllowStoredValue: true}); err != nil {
		t.Fatalf("a shared value with AllowStoredValue: %v", err)
	}
}
