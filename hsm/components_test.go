package hsm_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/kcv"
)

// TestFormKeyComponentsModuloParity: DES ignores the low bit of every key byte, so
// components that differ only in those parity bits are one key, and a component of
// parity bits only is the all-zero key. FormKey compared the components' raw bytes:
// two custodians' equal components with one's parity bits flipped formed the key
// 0101...01 (odd parity of the all-zero key, a DES weak key, KCV 8CA64D of the
// published all-zero DES key check), and a component 0101...01 with another left
// that custodian's component as the key. AES keys have no parity bit: a zero
// component is refused, a component differing in one bit is not equal.
func TestFormKeyComponentsModuloParity(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	c := hx(t, "0123456789ABCDEFFEDCBA9876543210")
	flipped := append([]byte(nil), c...)
	for i := range flipped {
		flipped[i] ^= 0x01
	}
	parityOnly := bytes.Repeat([]byte{0x01}, 16)
	for _, tc := range []struct {
		name  string
		alg   hsm.Algorithm
		comps [][]byte
	}{
		{"equal but for parity", hsm.TDES2KEY, [][]byte{c, flipped}},
		{"all-zero component (parity bits only)", hsm.TDES2KEY, [][]byte{parityOnly, c}},
		{"all-zero component", hsm.TDES2KEY, [][]byte{c, make([]byte, 16)}},
		{"of three, two equal but for parity", hsm.TDES2KEY, [][]byte{c, hx(t, "C1D0F8FB4958670DBA40AB1F3752EF0D"), flipped}},
		{"of three, combining to parity bits only", hsm.TDES2KEY, [][]byte{c, hx(t, "C1D0F8FB4958670DBA40AB1F3752EF0D"), xor3(c, hx(t, "C1D0F8FB4958670DBA40AB1F3752EF0D"), parityOnly)}},
		{"AES all-zero component", hsm.AES128, [][]byte{c, make([]byte, 16)}},
	} {
		res, err := e.hsm.FormKey(e.ctx, hsm.FormKeyRequest{KeySpec: hsm.KeySpec{ID: "c.ZMK", Type: hsm.ZMK, Algorithm: tc.alg}, Components: tc.comps})
		if !errors.Is(err, hsm.ErrInput) {
			t.Errorf("%s: formed %s with KCV %s (components' KCVs %v), err %v; want ErrInput", tc.name, res.Ref, res.KCV, res.ComponentKCVs, err)
		}
	}
	// AES has no parity: components one bit apart are two components.
	res, err := e.hsm.FormKey(e.ctx, hsm.FormKeyRequest{KeySpec: hsm.KeySpec{ID: "a.ZMK", Type: hsm.ZMK, Algorithm: hsm.AES128}, Components: [][]byte{c, flipped}})
	if err != nil {
		t.Fatalf("AES components differing in their low bits: %v", err)
	}
	// The key is 0101...01 as an AES-128 key: its CMAC KCV.
	if want := aesKCV(t, parityOnly); res.KCV != want {
		t.Fatalf("AES key from two components: KCV %s, want %s", res.KCV, want)
	}
}

func xor3(a, b, c []byte) []byte {
	out := make([]byte, len(a))
	for i := range out {
		out[i] = a[i] ^ b[i] ^ c[i]
	}
	return out
}

func aesKCV(t *testing.T, key []byte) string {
	t.Helper()
	k, err := kcv.AES(key)
	if err != nil {
		t.Fatal(err)
	}
	return k.String()
}
