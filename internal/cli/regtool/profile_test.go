package regtool

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/risk/profile"
	"github.com/switchyard/switchyard/risk/ruleset"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/registry"
)

// TestMerchantProfileCommand: `switchyard merchant profile ID` shows the tier's
// defaults before any refresh, --refresh recomputes (operators only), then the
// learned profile, as a table (the time it was computed in the acquirer's zone) and as
// JSON.
func TestMerchantProfileCommand(t *testing.T) {
	e := newEnv(t)
	sh, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	e.loc = sh
	auth, err := admin.NewAuthenticator(api.DemoTokens())
	if err != nil {
		t.Fatal(err)
	}
	set := profile.NewSet(nil)
	computed := time.Date(2026, 12, 1, 19, 0, 0, 0, time.UTC)
	e.handler = api.New(api.Options{Auth: auth, Registry: e.reg, Profiles: set, RefreshProfiles: func(context.Context) (any, error) {
		set.Swap(&profile.Table{ComputedAt: computed, Options: profile.Options{MinDays: 7, MinTransactions: 100},
			Merchants: map[string]ruleset.Profile{"000000000000002": {Learned: true, Days: 30, Transactions: 2400, P50Amount: 1800, NewCardShare: 0.25}}})
		return nil, nil
	}})
	out := e.mustRun(t, registry.DemoAnalystToken, "merchant", "profile", "000000000000002")
	for _, want := range []string{"tier defaults of tier micro", "never", "p90_amount", "8000", "new_card_share"} {
		if !strings.Contains(out, want) {
			t.Errorf("before a refresh: output lacks %q:\n%s", want, out)
		}
	}
	if code, _, errs := e.run(t, registry.DemoAnalystToken, "merchant", "profile", "000000000000002", "--refresh"); code != ExitError || !strings.Contains(errs, "403") && !strings.Contains(strings.ToLower(errs), "forbidden") && !strings.Contains(errs, "role") {
		t.Errorf("--refresh as an analyst: exit %d, %q; want a refusal", code, errs)
	}
	out = e.mustRun(t, registry.DemoOperatorToken, "merchant", "profile", "000000000000002", "--refresh")
	for _, want := range []string{"learned", "computed             2026-12-02 03:00:00.000 +08:00, window", "1800", "25.0%"} {
		if !strings.Contains(out, want) {
			t.Errorf("after a refresh: output lacks %q:\n%s", want, out)
		}
	}
	var v profile.View
	if err := json.Unmarshal([]byte(e.mustRun(t, registry.DemoReviewerToken, "merchant", "profile", "000000000000002", "--json")), &v); err != nil {
		t.Fatal(err)
	}
	if v.Source != "learned" || v.Profile.P50Amount != 1800 || !v.ComputedAt.Equal(computed) {
		t.Errorf("--json: %+v", v)
	}
	if code, _, _ := e.run(t, registry.DemoOperatorToken, "merchant", "profile"); code != ExitUsage {
		t.Errorf("no ID: exit %d, want usage", code)
	}
	if code, _, errs := e.run(t, registry.DemoOperatorToken, "merchant", "profile", "999999999999999"); code != ExitError || !strings.Contains(errs, "does not exist") {
		t.Errorf("unknown merchant: exit %d, %q", code, errs)
	}
}
