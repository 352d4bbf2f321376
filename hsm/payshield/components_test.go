package payshield_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/payshield"
)

// TestClientFormKeyChecksComponents: the client applies the software HSM's component
// checks (hsm.CheckComponents) before it sends FK, whose body carries the clear
// components: a payShield forms whatever it is given. Two components equal but for
// their DES parity bits (the key 0101...01, a DES weak key) and an all-zero component
// (the other custodian's component is the key) are ErrInput and send no FK; the
// client sent both before. So are, since 8 December 2026, a component with an
// all-zero half and components whose halves cancel into one.
func TestClientFormKeyChecksComponents(t *testing.T) {
	var fk atomic.Int64
	addr, _ := serve(t, payshield.ServerOptions{BeforeCommand: func(_ context.Context, code string) {
		if code == "FK" {
			fk.Add(1)
		}
	}})
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{addr}})
	c := unhex("0123456789ABCDEFFEDCBA9876543210")
	flipped := append([]byte(nil), c...)
	for i := range flipped {
		flipped[i] ^= 0x01
	}
	before := fk.Load()
	for name, comps := range map[string][][]byte{
		"equal but for parity": {c, flipped},
		"all-zero component":   {bytes.Repeat([]byte{0x01}, 16), c},
		// Since 8 December 2026: one custodian would know half the key.
		"component with an all-zero half":     {append(append([]byte(nil), c[:8]...), make([]byte, 8)...), unhex("C1D0F8FB4958670DBA40AB1F3752EF0D")},
		"halves cancel into an all-zero half": {c, append(append([]byte(nil), c[:8]...), unhex("3C5A7E9112B4D6F8")...)},
	} {
		res, err := e.client.FormKey(e.ctx, hsm.FormKeyRequest{KeySpec: hsm.KeySpec{ID: "c.ZMK", Type: hsm.ZMK}, Components: comps})
		if !errors.Is(err, hsm.ErrInput) {
			t.Errorf("%s: formed %s with KCV %s, err %v; want ErrInput", name, res.Ref, res.KCV, err)
		}
	}
	if n := fk.Load() - before; n != 0 {
		t.Errorf("%d FK command(s) with refused components reached the HSM, want none", n)
	}
}

// TestClientRefusesMasqueradingKeys: the client refuses, before FK or A6, a TDES-2KEY
// key of two equal halves (single DES passing for double length; a payShield's error
// 75): formed from components, or imported in an ECB form whose enciphered halves are
// equal. It sent both.
func TestClientRefusesMasqueradingKeys(t *testing.T) {
	var sent atomic.Int64
	addr, _ := serve(t, payshield.ServerOptions{BeforeCommand: func(_ context.Context, code string) {
		if code == "FK" || code == "A6" {
			sent.Add(1)
		}
	}})
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{addr}})
	before := sent.Load()
	key := unhex("0123456789ABCDEF0123456789ABCDEF")
	c1 := unhex("C1D0F8FB4958670DBA40AB1F3752EF0D")
	c2 := make([]byte, 16)
	for i := range c2 {
		c2[i] = key[i] ^ c1[i]
	}
	if res, err := e.client.FormKey(e.ctx, hsm.FormKeyRequest{KeySpec: hsm.KeySpec{ID: "m.ZPK", Type: hsm.ZPK}, Components: [][]byte{c1, c2}}); !errors.Is(err, hsm.ErrInput) {
		t.Errorf("FK of equal halves: %s KCV %s, err %v; want ErrInput", res.Ref, res.KCV, err)
	}
	half := tdesECB(t, demoHex("T0000009.TMK"), key[:8], false)
	ecb := fmt.Sprintf("%X%X:D5D44F", half, half)
	if res, err := e.client.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000009.TPK", Type: hsm.TPK, Owner: "T0000009"},
		KEK: hsm.KeyRef{ID: "T0000009.TMK"}, ECB: ecb}); !errors.Is(err, hsm.ErrInput) {
		t.Errorf("A6 of an ECB form of equal halves: %s KCV %s, err %v; want ErrInput", res.Ref, res.KCV, err)
	}
	if n := sent.Load() - before; n != 0 {
		t.Errorf("%d FK/A6 command(s) sent with a masquerading key, want none", n)
	}
}
