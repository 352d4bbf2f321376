package pipeline

import (
	"testing"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/risk/profile"
	"github.com/switchyard/switchyard/switch/registry"
)

// TestRulesSeeMerchantProfile: the rules' input carries the merchant's learned
// profile from the Set, swapped in without a restart, and the tier's defaults
// (learned false) before and without one.
func TestRulesSeeMerchantProfile(t *testing.T) {
	for _, withSet := range []bool{false, true} {
		set := profile.NewSet(nil)
		var seen []risk.Profile
		h := newHarness(t, withRisk, withTerminal(termNoKey), func(h *harness, c *Config) {
			if withSet {
				c.Profiles = set
			}
		})
		h.terms.decide = func(req registry.CheckRequest) registry.CheckResult {
			return registry.CheckResult{Terminal: &termNoKey, Merchant: &registry.Merchant{ID: testMID, Tier: registry.TierMicro}}
		}
		h.risk.decide = func(in *risk.Input) risk.Decision {
			seen = append(seen, in.Merchant.Profile)
			return risk.Decision{Action: risk.ActionAllow}
		}
		h.do(h.purchase(100))
		set.Swap(&profile.Table{Merchants: map[string]risk.Profile{testMID: {Learned: true, Days: 30, P90Amount: 4321}}})
		h.do(h.purchase(100))
		if len(seen) != 2 {
			t.Fatalf("set %v: the rules saw %d transactions, want 2", withSet, len(seen))
		}
		micro := profile.TierDefaults[registry.TierMicro]
		if seen[0].Learned || seen[0].P90Amount != micro.P90Amount {
			t.Errorf("set %v: before any table the rules saw %+v, want the micro defaults", withSet, seen[0])
		}
		if got := seen[1]; withSet && (!got.Learned || got.P90Amount != 4321) {
			t.Errorf("after the swap the rules saw %+v, want the learned profile", got)
		}
	}
}
