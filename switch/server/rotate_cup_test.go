package server

import (
	"context"
	"encoding/hex"
	"testing"

	"github.com/switchyard/switchyard/switch/cup"
)

// TestRotateTaskMakesCUPTerminalSignIn: the keys.rotate task makes a new version of
// a UnionPay-style terminal's MAC key. The terminal still MACs under the version its
// sign-in gave it (in its grace period), so the switch answers and asks it in the
// header to sign in again (processing requirement 3); its sign-in then gets the new
// working keys and the next answer asks nothing: scheduled rotation of a terminal's
// working keys, delivered by the dialect's own sign-in.
func TestRotateTaskMakesCUPTerminalSignIn(t *testing.T) {
	s := start(t, demoConfig(t, t.TempDir()), nil)
	tmk, _ := hex.DecodeString("2315208C9110AD40F5B83C4A6E1D7F92") // T0000001's demo TMK
	term, err := cup.DialTerminal(s.ListenerAddr("cup"), "T0000001", "000000000000001", tmk)
	if err != nil {
		t.Fatal(err)
	}
	term.Device = t1CUPIdentity // the sign-in is checked as a transaction is
	defer term.Close()
	if ans, err := term.SignIn("003"); err != nil || ans.Str(39) != "00" {
		t.Fatalf("sign-in: %v", err)
	}
	balance := func() *cup.Frame {
		t.Helper()
		ans, err := term.Do(cup.Txn{Kind: "balance", PAN: "4761739001010119", Expiry: "2912"})
		if err != nil {
			t.Fatal(err)
		}
		return ans
	}
	if ans := balance(); ans.Header.ProcessingRequirement() != cup.ReqNone {
		t.Fatalf("before the rotation: %s", cup.Summary(ans))
	}
	out, err := s.rotateKeysTask(context.Background(), map[string]string{"keys": "T0000001.TAK", "grace": "1h"})
	if err != nil {
		t.Fatalf("keys.rotate: %v", err)
	}
	t.Logf("keys.rotate: %s", out)
	if ans := balance(); ans.Header.ProcessingRequirement() != cup.ReqSignIn {
		t.Fatalf("after the rotation: %s, want processing requirement 3 (sign in again)", cup.Summary(ans))
	}
	if ans, err := term.SignIn("003"); err != nil || ans.Str(39) != "00" {
		t.Fatalf("sign-in after the rotation: %v", err)
	}
	if ans := balance(); ans.Header.ProcessingRequirement() != cup.ReqNone || !ans.Has(64) {
		t.Fatalf("after signing in again: %s", cup.Summary(ans))
	}
}

// t1CUPIdentity is T0000001's identity as a cup sign-in's F62 carries it (DE 48 tags).
const t1CUPIdentity = "DI011SN-T0000001SI02089860000000000000001IM015860000000000001GL02039.904200,116.407400"
