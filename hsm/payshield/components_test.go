package payshield_test

import (
	"bytes"
	"context"
	"errors"
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
// client sent both before.
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
