package payshield_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/payshield"
	"github.com/switchyard/switchyard/hsm/tr31"
)

// TestClientImportFollowsTheWrapHierarchy: the client applies the export hierarchy
// to imports (hsm.CheckImportWrap) before it sends A6, as the software HSM does: a
// payShield imports under a TMK whatever it is given. Under T0000001's TMK a ZMK, a
// BDK or a zone PIN key (TR-31 or ECB) of the importer's choice, or another
// terminal's TPK, is refused (ErrPolicy, naming the type) with no A6 sent; the
// terminal's own TPK still comes in.
func TestClientImportFollowsTheWrapHierarchy(t *testing.T) {
	var a6 atomic.Int64
	addr, _ := serve(t, payshield.ServerOptions{BeforeCommand: func(_ context.Context, code string) {
		if code == "A6" {
			a6.Add(1)
		}
	}})
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{addr}})
	tmk := hsm.KeyRef{ID: "T0000001.TMK"}
	const chosen = "3C5A7E9112B4D6F88F6D4B2A19E7C5A3" // the attacker's key (no demo key)
	wrap := func(usage string, mode byte) string {
		t.Helper()
		blk, err := tr31.Wrap(unhex(demoHex("T0000001.TMK")), tr31.Header{Version: tr31.VersionB, Usage: usage, Algorithm: tr31.AlgTDES,
			ModeOfUse: mode, KeyVersion: "00", Exportability: tr31.ExportNone}, unhex(chosen), nil)
		if err != nil {
			t.Fatal(err)
		}
		return blk
	}
	ecbForm := fmt.Sprintf("%X%X:%X", tdesECB(t, demoHex("T0000001.TMK"), unhex(chosen)[:8], false), tdesECB(t, demoHex("T0000001.TMK"), unhex(chosen)[8:], false),
		tdesECB(t, chosen, make([]byte, 8), false)[:3])
	for _, c := range []struct {
		name string
		req  hsm.ImportKeyRequest
		want string
	}{
		{"a ZMK", hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "evil.ZMK", Type: hsm.ZMK, Owner: "T0000001"}, KEK: tmk, TR31: wrap(tr31.UsageKEK, tr31.ModeEncDec)}, "a ZMK may not be imported"},
		{"a BDK", hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "evil.BDK", Type: hsm.BDK, Owner: "ABCDEF"}, KEK: tmk, TR31: wrap(tr31.UsageBDK, tr31.ModeDerive)}, "a BDK may not be imported"},
		{"a ZPK's ECB form", hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "evil.ZPK", Type: hsm.ZPK, Owner: "T0000001"}, KEK: tmk, ECB: ecbForm}, "a ZPK may not be imported"},
		{"another terminal's TPK", hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000002.TPK", Type: hsm.TPK, Owner: "T0000002"}, KEK: tmk, TR31: wrap(tr31.UsagePIN, tr31.ModeEncDec)}, "T0000002.TPK"},
	} {
		res, err := e.client.ImportKey(e.ctx, c.req)
		if !errors.Is(err, hsm.ErrPolicy) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s under T0000001's TMK: %+v, %v; want ErrPolicy saying %q", c.name, res, err, c.want)
		}
	}
	if n := a6.Load(); n != 0 {
		t.Errorf("%d A6 command(s) sent for keys the hierarchy refuses, want none", n)
	}
	if _, err := e.client.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000001.NEWTPK", Type: hsm.TPK, Owner: "T0000001"}, KEK: tmk,
		TR31: wrap(tr31.UsagePIN, tr31.ModeEncDec)}); err != nil {
		t.Fatalf("T0000001's own TPK under its TMK: %v", err)
	}
}
