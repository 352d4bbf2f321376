package api_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/risk/profile"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/registry"
)

// TestMerchantProfileRoutes: every reader role reads a merchant's profile (learned
// or its tier's defaults, and when computed); only operators refresh.
func TestMerchantProfileRoutes(t *testing.T) {
	f := newFixture(t)
	auth, err := admin.NewAuthenticator(api.DemoTokens())
	if err != nil {
		t.Fatal(err)
	}
	set := profile.NewSet(nil)
	computed := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	refreshes := 0
	srv := httptest.NewServer(api.New(api.Options{Auth: auth, Registry: f.reg, Profiles: set,
		RefreshProfiles: func(context.Context) (any, error) {
			refreshes++
			set.Swap(&profile.Table{ComputedAt: computed, Options: profile.Options{MinDays: 7, MinTransactions: 100},
				Merchants: map[string]risk.Profile{"000000000000001": {Learned: true, Days: 30, Transactions: 9000, P90Amount: 12345}}})
			return map[string]int{"merchants": 1}, nil
		}}))
	defer srv.Close()
	client := func(tok string) *apiclient.Client { return &apiclient.Client{BaseURL: srv.URL, Token: tok} }
	ctx := context.Background()
	var v profile.View
	for _, tok := range []string{registry.DemoOperatorToken, registry.DemoReviewerToken, registry.DemoAnalystToken} {
		if err := client(tok).Do(ctx, "GET", "/api/v1/merchants/000000000000002/profile", nil, &v); err != nil {
			t.Fatalf("GET profile as %s: %v", tok, err)
		}
		if v.Source != "tier defaults" || v.Tier != "micro" || v.Profile.Learned || v.Profile.P90Amount != profile.TierDefaults["micro"].P90Amount || !v.ComputedAt.IsZero() {
			t.Errorf("noodle stall before any refresh: %+v", v)
		}
	}
	if err := client(registry.DemoOperatorToken).Do(ctx, "GET", "/api/v1/merchants/999999999999999/profile", nil, &v); apiStatus(err) != 404 {
		t.Errorf("unknown merchant: %v, want 404", err)
	}
	for _, tok := range []string{registry.DemoReviewerToken, registry.DemoAnalystToken} {
		if err := client(tok).Do(ctx, "POST", "/api/v1/risk/profiles/refresh", nil, nil); apiStatus(err) != 403 {
			t.Errorf("refresh as %s: %v, want 403", tok, err)
		}
	}
	if err := client(registry.DemoOperatorToken).Do(ctx, "POST", "/api/v1/risk/profiles/refresh", nil, nil); err != nil || refreshes != 1 {
		t.Fatalf("refresh as an operator: %v (%d refreshes)", err, refreshes)
	}
	if err := client(registry.DemoAnalystToken).Do(ctx, "GET", "/api/v1/merchants/000000000000001/profile", nil, &v); err != nil {
		t.Fatal(err)
	}
	if v.Source != "learned" || !v.Profile.Learned || v.Profile.P90Amount != 12345 || !v.ComputedAt.Equal(computed) || v.MinDays != 7 {
		t.Errorf("grocery after the refresh: %+v", v)
	}
}
