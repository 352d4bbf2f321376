package e2e

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/switchyard/switchyard/risk/profile"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/server"
)

// TestMerchantProfileThroughTheBinary: a demo switch serves the grocery's tier
// defaults until a refresh (by an operator, through the CLI) learns its profile from
// the purchases just made; the table is saved in the data directory.
func TestMerchantProfileThroughTheBinary(t *testing.T) {
	f := startDemo(t, func(c *config.Config) { c.Risk.Profiles.MinDays, c.Risk.Profiles.MinTransactions = 1, 3 })
	out, code := f.cli(tokAnalyst, "merchant", "profile", "000000000000001", "--json")
	var v profile.View
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil {
		t.Fatalf("merchant profile: exit %d: %s", code, out)
	}
	if v.Profile.Learned || v.Tier != "standard" || v.Profile.P50Amount != profile.TierDefaults["standard"].P50Amount {
		t.Errorf("before any traffic: %+v, want the standard tier's defaults", v)
	}
	for _, amount := range []int64{1200, 1500, 1800, 2100} {
		if r := f.send(pos(amount)); r.RC != "00" {
			t.Fatalf("purchase of %d: %s %s", amount, r.RC, r.Reason)
		}
	}
	if out, code := f.cli(tokAnalyst, "merchant", "profile", "000000000000001", "--refresh"); code == 0 {
		t.Errorf("an analyst refreshed the profiles: %s", out)
	}
	out, code = f.cli(tokOperator, "merchant", "profile", "000000000000001", "--refresh", "--json")
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil {
		t.Fatalf("merchant profile --refresh: exit %d: %s", code, out)
	}
	p := v.Profile
	if !p.Learned || v.Source != "learned" || p.Transactions != 4 || p.Days != 1 || p.P50Amount < 1485 || p.P50Amount > 1515 || p.NewCardShare != 0.25 {
		t.Errorf("after 4 purchases of one card and a refresh: %+v", v)
	}
	if _, err := os.Stat(server.ProfilesFile(f.dir)); err != nil {
		t.Errorf("profiles not saved: %v", err)
	}
}
