package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/registry"
)

// TestAPIExpiredChange: a change older than registry.change_ttl (7 days by
// default) is answered 410 naming its age when approved, listed under
// ?status=expired and not under pending, and can still be rejected.
func TestAPIExpiredChange(t *testing.T) {
	a := newAPIFixture(t)
	ctx := context.Background()
	op, rev := a.client(registry.DemoOperatorToken), a.client(registry.DemoReviewerToken)
	var chg registry.Change
	if err := op.Do(ctx, "POST", "/api/v1/terminals/T0000001/suspend", registry.ReasonRequest{Reason: "lost"}, &chg); err != nil {
		t.Fatal(err)
	}
	a.clock.Advance(registry.DefaultChangeTTL + time.Hour)
	code, body := a.raw(t, "POST", "/api/v1/changes/"+chg.ID+"/approve", registry.DemoReviewerToken, "application/json", `{}`)
	if code != http.StatusGone || !strings.Contains(body, "expired: requested 7d1h ago by") {
		t.Fatalf("approve of an 8-day-old change: %d %s, want 410 naming its age", code, body)
	}
	var list []registry.Change
	if err := rev.Do(ctx, "GET", "/api/v1/changes?status=expired", nil, &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != chg.ID || list[0].Status != registry.ChangeExpired {
		t.Errorf("?status=expired: %+v", list)
	}
	if err := rev.Do(ctx, "GET", "/api/v1/changes?status=pending", nil, &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("?status=pending lists the expired change: %+v", list)
	}
	if err := rev.Do(ctx, "POST", "/api/v1/changes/"+chg.ID+"/reject", registry.ReasonRequest{Note: "stale"}, nil); err != nil {
		t.Errorf("reject of the expired change: %v", err)
	}
}
