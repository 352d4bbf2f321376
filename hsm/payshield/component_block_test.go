package payshield_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/payshield"
	"github.com/switchyard/switchyard/hsm/tr31"
)

// TestClientRefusesAComponentBlock: a TR-31 block of key version "c1" holds a key
// component, not a key; the client refuses it (ErrPolicy, as the software HSM) before
// it sends A6, whose answer a payShield may give for it. It sent it before.
func TestClientRefusesAComponentBlock(t *testing.T) {
	var a6 atomic.Int64
	addr, _ := serve(t, payshield.ServerOptions{BeforeCommand: func(_ context.Context, code string) {
		if code == "A6" {
			a6.Add(1)
		}
	}})
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{addr}})
	blk, err := tr31.Wrap(unhex(demoHex("T0000009.TMK")), tr31.Header{Version: tr31.VersionB, Usage: tr31.UsagePIN, Algorithm: tr31.AlgTDES,
		ModeOfUse: tr31.ModeEncDec, KeyVersion: "c1", Exportability: tr31.ExportNone}, unhex("C1D0F8FB4958670DBA40AB1F3752EF0D"), nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.client.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000009.TPK", Type: hsm.TPK, Owner: "T0000009"},
		KEK: hsm.KeyRef{ID: "T0000009.TMK"}, TR31: blk})
	if !errors.Is(err, hsm.ErrPolicy) {
		t.Errorf("component block imported as %s (KCV %s): err %v, want ErrPolicy", res.Ref, res.KCV, err)
	}
	if n := a6.Load(); n != 0 {
		t.Errorf("%d A6 command(s) sent with a component's block, want none", n)
	}
}
