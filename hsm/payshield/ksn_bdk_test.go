package payshield_test

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/payshield"
	"github.com/switchyard/switchyard/hsm/pinblock"
	"github.com/switchyard/switchyard/keys"
)

// TestClientKSNNotOfTheNamedBDK: a KSN sent with a BDK handle whose KSN prefix it is
// not under is refused by the client with hsm.ErrKSNNotOfBDK (the switch answers 63
// ksn-not-bound), no G0 sent, and the device's own request then goes through under
// its BDK (its counter untouched).
func TestClientKSNNotOfTheNamedBDK(t *testing.T) {
	var g0 atomic.Int32
	addr, _ := serve(t, payshield.ServerOptions{BeforeCommand: func(_ context.Context, code string) {
		if code == "G0" {
			g0.Add(1)
		}
	}})
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{addr}})
	c1, c2 := bytes.Repeat([]byte{0x5A}, 16), unhex("A4A5A6A7A8A9AAABACADAEAFB0B1B2B3")
	if _, err := e.client.FormKey(e.ctx, hsm.FormKeyRequest{KeySpec: hsm.KeySpec{ID: "other.BDK", Type: hsm.BDK, Owner: "AAAA9876543210E"}, Components: [][]byte{c1, c2}}); err != nil {
		t.Fatalf("FK other.BDK: %v", err)
	}
	req := hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "other.BDK"}, KSN: "FFFF9876543210E00001", SourceFormat: pinblock.Format0,
		PINBlock: unhex("1B9C1845EB993A7A"), Dest: hsm.KeyRef{ID: keys.DemoIssuer + ".ZPK"}, DestFormat: pinblock.Format0, PAN: "4012345678909"}
	if _, err := e.client.TranslatePIN(e.ctx, req); !errors.Is(err, hsm.ErrKSNNotOfBDK) {
		t.Fatalf("KSN of the demo key set under other.BDK: %v, want ErrKSNNotOfBDK", err)
	}
	if n := g0.Load(); n != 0 {
		t.Fatalf("%d G0 sent for a KSN not of its BDK", n)
	}
	req.Source = hsm.KeyRef{ID: "BDK.FFFF9876543210E"}
	out, err := e.client.TranslatePIN(e.ctx, req)
	if err != nil {
		t.Fatalf("the same KSN under its own BDK after the refusal: %v", err)
	}
	if got := tdesECB(t, demoHex(keys.DemoIssuer+".ZPK"), out, true); !bytes.Equal(got, unhex("041274EDCBA9876F")) {
		t.Fatalf("clear block %X under the ZPK, want 041274EDCBA9876F", got)
	}
}
