package registry

import (
	"slices"
	"testing"
)

// TestKeyUsers: the registry answers which terminals (not closed) name a key ID in
// their TMK, TPK or TAK, in ID order, as records are created, changed and closed,
// and the same after a restart (switch/cup asks it to tell a terminal's own key
// from one others use); asking allocates nothing.
func TestKeyUsers(t *testing.T) {
	f := newFixture(t)
	check := func(when string, want map[string][]string) {
		t.Helper()
		for id, w := range want {
			if got := f.reg.KeyUsers(id); !slices.Equal(got, w) {
				t.Errorf("%s: KeyUsers(%s) = %v, want %v", when, id, got, w)
			}
		}
	}
	lt := f.reg.KeyUsers("LT.TPK")
	if len(lt) != testLoadTerminals || lt[0] != "LT000001" || !slices.IsSorted(lt) {
		t.Errorf("KeyUsers(LT.TPK): %d terminals from %v, want the %d load terminals in order", len(lt), lt[:min(len(lt), 3)], testLoadTerminals)
	}
	check("demo", map[string][]string{"T0000001.TPK": {"T0000001"}, "T0000003.TMK": {"T0000003"}, "T0000002.TAK": {"T0000002"}, "NO.SUCH.KEY": nil})

	t9, _ := f.reg.Terminal("T0000009")
	k := t9.Keys
	k.TPK, k.TAK, k.MACRequired = "T0000001.TPK", "T0000001.TPK", true // one key in two fields: one user
	f.apply(t, Change{Op: OpTerminalChange, Target: "T0000009", TerminalPatch: &TerminalPatch{Keys: &k}})
	f.apply(t, Change{Op: OpTerminalRegister, Terminal: &Terminal{ID: "T0000000", MerchantID: "000000000000001", Kind: KindPOS,
		Keys: KeyRefs{TPK: "T0000001.TPK", PINMode: PINModeTPK}}})
	want := map[string][]string{"T0000001.TPK": {"T0000000", "T0000001", "T0000009"}, "T0000009.TPK": nil, "T0000009.TMK": {"T0000009"}}
	check("after a change and a register", want)
	f.reopen(t)
	check("after a restart", want)

	f.apply(t, Change{Op: OpTerminalClose, Target: "T0000009"})
	check("after T0000009 closed", map[string][]string{"T0000001.TPK": {"T0000000", "T0000001"}, "T0000009.TMK": nil})
	if n := testing.AllocsPerRun(100, func() { _ = f.reg.KeyUsers("T0000001.TPK") }); n != 0 {
		t.Errorf("KeyUsers allocates %v times", n)
	}
}
