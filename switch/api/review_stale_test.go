package api_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/switchyard/switchyard/switch/registry"
)

// A reviewer approves what he was shown. Here the reviewer reads CHG-A's preview
// (the merchant's per-transaction limit raised, its daily limit unchanged), then
// another change lowers the merchant's daily limit (fraud, approved by a second
// reviewer), then the first reviewer approves CHG-A: the approval is computed
// against the newer merchant and silently puts the old daily limit back (a patch
// replaces limits whole), a revert nobody reviewed. The approval should be refused
// (409: the target changed since the change was requested or previewed; request
// it again) rather than applied over a state the reviewer never saw.
func TestAPIApprovalOverNewerStateRefused(t *testing.T) {
	a := newAPIFixture(t)
	ctx := context.Background()
	op, op2 := a.client(registry.DemoOperatorToken), a.client(registry.DemoOperator2Token)
	rev, rev2 := a.client(registry.DemoReviewerToken), a.client(registry.DemoReviewer2Token)
	const mid = "000000000000001"
	m0, _ := a.reg.Merchant(mid)
	l0 := m0.Limits

	// CHG-A: the per-transaction limit raised; the rest of limits as they are now.
	raised := l0
	raised.PerTransaction = l0.PerTransaction * 2
	var chgA registry.Change
	if err := op.Do(ctx, "PATCH", "/api/v1/merchants/"+mid, registry.MerchantPatchRequest{
		MerchantPatch: registry.MerchantPatch{Limits: &raised}, Reason: "bigger tickets"}, &chgA); err != nil {
		t.Fatal(err)
	}
	// The reviewer reads the preview: only per_transaction changes.
	var pv registry.ChangePreview
	if err := rev.Do(ctx, "GET", "/api/v1/changes/"+chgA.ID, nil, &pv); err != nil {
		t.Fatal(err)
	}
	seenDaily := previewDaily(t, pv)
	if seenDaily[0] != l0.Daily || seenDaily[1] != l0.Daily {
		t.Fatalf("preview daily %v, want %d -> %d", seenDaily, l0.Daily, l0.Daily)
	}

	// Meanwhile the daily limit is lowered (reviewed by someone else).
	lowered := l0
	lowered.Daily = l0.Daily / 10
	var chgB registry.Change
	if err := op2.Do(ctx, "PATCH", "/api/v1/merchants/"+mid, registry.MerchantPatchRequest{
		MerchantPatch: registry.MerchantPatch{Limits: &lowered}, Reason: "fraud: cap the daily volume"}, &chgB); err != nil {
		t.Fatal(err)
	}
	if err := rev2.Do(ctx, "POST", "/api/v1/changes/"+chgB.ID+"/approve", nil, nil); err != nil {
		t.Fatal(err)
	}

	// The first reviewer now approves what he read.
	err := rev.Do(ctx, "POST", "/api/v1/changes/"+chgA.ID+"/approve", registry.ReasonRequest{Note: "only per_transaction changes"}, nil)
	m, _ := a.reg.Merchant(mid)
	if apiStatus(err) != 409 {
		t.Errorf("approval of %s after %s changed its merchant: %v (status %d), want 409; the daily limit is now %d (lowered to %d by %s, the preview showed %d -> %d)",
			chgA.ID, chgB.ID, err, apiStatus(err), m.Limits.Daily, lowered.Daily, chgB.ID, seenDaily[0], seenDaily[1])
	}
}

// previewDaily returns the daily limit before and after in a merchant change's preview.
func previewDaily(t *testing.T, pv registry.ChangePreview) [2]int64 {
	t.Helper()
	if len(pv.Effects) != 1 {
		t.Fatalf("preview effects = %d, want 1", len(pv.Effects))
	}
	var b, a registry.Merchant
	if err := json.Unmarshal(pv.Effects[0].Before, &b); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(pv.Effects[0].After, &a); err != nil {
		t.Fatal(err)
	}
	return [2]int64{b.Limits.Daily, a.Limits.Daily}
}
