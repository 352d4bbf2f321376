package hsm_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
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

// TestFormKeyComponentPartsSplitTheKey: split knowledge holds part by part. A
// component whose half (a DES key of a TDES-2KEY key, parity bits ignored) is all
// zero leaves that half of the key to the other custodian alone; components whose
// halves cancel give a key with an all-zero half (known to all) or, for a
// TDES-3KEY key, equal first and last parts (a double-length key in triple-length
// form). FormKey formed all of them. Each is refused (ErrInput), the error naming
// the component and the part, never a value; both backends apply CheckComponents.
func TestFormKeyComponentPartsSplitTheKey(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	a := hx(t, "0123456789ABCDEF")
	b := hx(t, "FEDCBA9876543210")
	c := hx(t, "C1D0F8FB4958670D")
	d := hx(t, "3C5A7E9112B4D6F8")
	parityOnly := bytes.Repeat([]byte{0x01}, 8)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, tc := range []struct {
		name  string
		alg   hsm.Algorithm
		comps [][]byte
		want  string
	}{
		{"component with an all-zero second half", hsm.TDES2KEY, [][]byte{cat(a, make([]byte, 8)), cat(c, d)}, "component 1's second half is all zero"},
		{"component with a first half of parity bits only", hsm.TDES2KEY, [][]byte{cat(a, b), cat(parityOnly, d)}, "component 2's first half is all zero"},
		{"TDES-3KEY component with an all-zero middle part", hsm.TDES3KEY, [][]byte{cat(a, b, c), cat(d, make([]byte, 8), a)}, "component 2's second part is all zero"},
		{"AES component with an all-zero half", hsm.AES128, [][]byte{cat(a, b), cat(make([]byte, 8), d)}, "component 2's first half is all zero"},
		{"halves cancel into an all-zero first half", hsm.TDES2KEY, [][]byte{cat(a, b), cat(a, d)}, "key whose first half is all zero"},
		{"of three, halves cancel into an all-zero second half", hsm.TDES2KEY, [][]byte{cat(a, b), cat(c, d), cat(d, xor3(b, d, make([]byte, 8)))}, "key whose second half is all zero"},
		{"halves cancel into equal halves (single DES)", hsm.TDES2KEY, [][]byte{cat(a, b), cat(c, xor3(a, b, c))}, "two halves are equal"},
		{"TDES-3KEY first and last parts equal", hsm.TDES3KEY, [][]byte{cat(a, b, c), cat(d, a, xor3(a, c, d))}, "first and last parts are equal"},
	} {
		res, err := e.hsm.FormKey(e.ctx, hsm.FormKeyRequest{KeySpec: hsm.KeySpec{ID: "p.ZMK", Type: hsm.ZMK, Algorithm: tc.alg}, Components: tc.comps})
		if !errors.Is(err, hsm.ErrInput) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: formed %s with KCV %s, err %v; want ErrInput saying %q", tc.name, res.Ref, res.KCV, err, tc.want)
			continue
		}
		for _, comp := range tc.comps {
			if strings.Contains(strings.ToUpper(err.Error()), strings.ToUpper(hex.EncodeToString(comp[:8]))) {
				t.Errorf("%s: the error shows a component: %v", tc.name, err)
			}
		}
	}
	// Components with no zero part that form a proper key still do.
	if _, err := e.hsm.FormKey(e.ctx, hsm.FormKeyRequest{KeySpec: hsm.KeySpec{ID: "p.ZMK", Type: hsm.ZMK, Algorithm: hsm.TDES3KEY},
		Components: [][]byte{cat(a, b, c), cat(d, a, b)}}); err != nil {
		t.Fatalf("proper TDES-3KEY components: %v", err)
	}
}
