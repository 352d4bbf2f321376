package payshield_test

import (
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/payshield"
	"github.com/switchyard/switchyard/hsm/pinblock"
	"github.com/switchyard/switchyard/keys"
)

// The cost of the HSM's network hop: the same operations through the software HSM
// in the process and through the payShield client to hsm serve over loopback TCP.

func benchOps(b *testing.B, h hsm.HSM, e *env) {
	pb := tdesECB(b, demoHex("T0000001.TPK"), unhex("041274EDCBA9876F"), false)
	pin := hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "T0000001.TPK"}, PINBlock: pb, SourceFormat: pinblock.Format0,
		Dest: hsm.KeyRef{ID: keys.DemoIssuer + ".ZPK"}, DestFormat: pinblock.Format0, PAN: "4012345678909"}
	mreq := hsm.MACRequest{Key: hsm.KeyRef{ID: "T0000002.TAK"}, Data: make([]byte, 200)}
	m, err := h.GenerateMAC(e.ctx, mreq)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("TranslatePIN", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := h.TranslatePIN(e.ctx, pin); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("VerifyMAC", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := h.VerifyMAC(e.ctx, mreq, m); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

func BenchmarkSoftware(b *testing.B) {
	addr, _ := serve(b, payshield.ServerOptions{})
	e := newEnv(b, payshield.ClientOptions{Addrs: []string{addr}})
	benchOps(b, e.sw, e)
}

func BenchmarkPayShield(b *testing.B) {
	addr, _ := serve(b, payshield.ServerOptions{})
	e := newEnv(b, payshield.ClientOptions{Addrs: []string{addr}})
	benchOps(b, e.client, e)
}
