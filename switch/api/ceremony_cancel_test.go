package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/keys"
)

// lastAudit is the key audit log's last entry.
func lastAudit(t *testing.T, c *apiclient.Client) keys.AuditEntry {
	t.Helper()
	var audit keys.AuditList
	if err := c.Do(context.Background(), "GET", "/api/v1/keys/audit", nil, &audit); err != nil {
		t.Fatal(err)
	}
	return audit.Entries[len(audit.Entries)-1]
}

// cancelPath is the cancel route of key id's ceremonies.
func cancelPath(id string) string { return "/api/v1/keys/" + id + "/cancel-ceremony" }

// TestCeremonyStrayStartCancelled: a ceremony started with another expiry (a stray
// or hostile start by olga) refuses the real custodians' component with 409 naming
// who holds it, since when, until when and how to cancel it; an admin who could not
// be its next custodian (carol, whose account olga has held) may not cancel it, nor
// may anybody without a reason or with a bidi override in it; one who could (dave) cancels it, audited with who,
// why and whose ceremony it was, and its components are gone: the real ceremony
// then starts and completes at once instead of 30 minutes later.
func TestCeremonyStrayStartCancelled(t *testing.T) {
	e := newCustodianEnv(t, false)
	ctx := context.Background()
	c0, k0 := component(t)
	c1, k1 := component(t)
	c2, k2 := component(t)
	stray := keys.SpecRequest{ID: "held.ZMK", Type: "ZMK", ExpiresAt: time.Now().Add(time.Hour).UTC().Truncate(time.Second)}
	real := keys.SpecRequest{ID: "held.ZMK", Type: "ZMK"}
	var resp keys.ComponentResponse
	if err := e.olga.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: stray, Components: 2, Component: c0, KCV: k0}, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Expires.IsZero() || resp.Expires.Before(time.Now().Add(29*time.Minute)) {
		t.Fatalf("the first component's answer says the ceremony expires %v, want in 30 minutes", resp.Expires)
	}
	err := e.alice.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: real, Components: 2, Component: c1, KCV: k1}, nil)
	for _, w := range []string{"started by olga at ", "1 of 2 components entered (olga); dropped at ", "olga, or any admin who could enter component 2, may cancel it sooner",
		"switchyard keys cancel-ceremony --id held.ZMK --kind import --reason TEXT"} {
		if status(err) != 409 || !strings.Contains(err.Error(), w) {
			t.Fatalf("alice's component for the real key: %v, want 409 with %q", err, w)
		}
	}
	before := auditLen(t, e.olga)
	if err := e.dave.Do(ctx, "POST", cancelPath("held.ZMK"), keys.CancelCeremonyRequest{Kind: "import", Reason: " "}, nil); status(err) != 400 || !strings.Contains(err.Error(), "reason") {
		t.Fatalf("a cancel without a reason: %v, want 400", err)
	}
	err = e.carol.Do(ctx, "POST", cancelPath("held.ZMK"), keys.CancelCeremonyRequest{Kind: "import", Reason: "not ours"}, nil)
	if status(err) != 400 || !strings.Contains(err.Error(), "carol may not cancel the import of held.ZMK") || !strings.Contains(err.Error(), "olga has held the account of") {
		t.Fatalf("carol's cancel: %v, want 400: olga has held carol's account", err)
	}
	err = e.dave.Do(ctx, "POST", cancelPath("held.ZMK"), keys.CancelCeremonyRequest{Kind: "import", Reason: "stray \u202etrats"}, nil)
	if status(err) != 400 || !strings.Contains(err.Error(), "U+202E") || !strings.Contains(err.Error(), "reason") {
		t.Fatalf("a cancel whose reason has a bidi override: %v, want 400 naming U+202E and the reason", err)
	}
	if n := auditLen(t, e.olga); n != before {
		t.Fatalf("the refused cancels wrote %d audit entries", n-before)
	}
	var cancelled keys.CancelCeremonyResponse
	if err := e.dave.Do(ctx, "POST", cancelPath("held.ZMK"), keys.CancelCeremonyRequest{Kind: "import", Reason: "stray start, blocks the bank-a ceremony"}, &cancelled); err != nil {
		t.Fatalf("dave's cancel: %v", err)
	}
	if cancelled.StartedBy != "olga" || cancelled.CancelledBy != "dave" || cancelled.Done != 1 || cancelled.Of != 2 {
		t.Fatalf("cancel answer %+v", cancelled)
	}
	last := lastAudit(t, e.olga)
	if last.Action != "cancel-ceremony" || last.Actor != "dave" || last.KeyID != "held.ZMK" ||
		!strings.Contains(last.Detail, "started by olga at ") || !strings.Contains(last.Detail, "cancelled: stray start, blocks the bank-a ceremony") ||
		strings.Contains(last.Detail, c0) || strings.Contains(last.Detail, k0) {
		t.Fatalf("audit entry of the cancel: %+v", last)
	}
	if err := e.dave.Do(ctx, "POST", cancelPath("held.ZMK"), keys.CancelCeremonyRequest{Kind: "import", Reason: "again"}, nil); status(err) != 404 {
		t.Fatalf("a second cancel: %v, want 404", err)
	}
	// The real ceremony: alice's component starts it, dave's completes it.
	if err := e.alice.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: real, Components: 2, Component: c1, KCV: k1}, &resp); err != nil || resp.Entered != 1 {
		t.Fatalf("alice's component after the cancel: %+v %v", resp, err)
	}
	if err := e.dave.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: real, Components: 2, Component: c2, KCV: k2}, &resp); err != nil || resp.Result == nil {
		t.Fatalf("dave's component: %+v %v", resp, err)
	}
	if want := xorKCV(t, c1, c2); resp.Result.KCV != want {
		t.Fatalf("formed KCV %s, want %s (alice's and dave's components, not olga's)", resp.Result.KCV, want)
	}
}

// TestCeremonyCancelOnlyByItsCustodians: once two components of three are in, only
// the ceremony's custodians may cancel it (two independent people's work is not
// another's to throw away); its own starter may cancel a ceremony of one.
func TestCeremonyCancelOnlyByItsCustodians(t *testing.T) {
	e := newCustodianEnv(t, false)
	ctx := context.Background()
	spec := keys.SpecRequest{ID: "three.ZMK", Type: "ZMK"}
	for _, who := range []*apiclient.Client{e.olga, e.dave} {
		c, k := component(t)
		if err := who.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 3, Component: c, KCV: k}, nil); err != nil {
			t.Fatal(err)
		}
	}
	err := e.erin.Do(ctx, "POST", cancelPath("three.ZMK"), keys.CancelCeremonyRequest{Kind: "import", Reason: "mine now"}, nil)
	if status(err) != 400 || !strings.Contains(err.Error(), "only its custodians may end it") {
		t.Fatalf("erin's cancel of a ceremony of two custodians: %v, want 400", err)
	}
	if err := e.dave.Do(ctx, "POST", cancelPath("three.ZMK"), keys.CancelCeremonyRequest{Kind: "import", Reason: "wrong forms"}, nil); err != nil {
		t.Fatalf("dave's cancel of his own ceremony: %v", err)
	}
	c, k := component(t)
	if err := e.alice.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c, KCV: k}, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.alice2.Do(ctx, "POST", cancelPath("three.ZMK"), keys.CancelCeremonyRequest{Kind: "import", Reason: "typed the wrong ID"}, nil); err != nil {
		t.Fatalf("the starter's cancel: %v", err)
	}
	if last := lastAudit(t, e.olga); last.Action != "cancel-ceremony" || last.Actor != "alice" {
		t.Fatalf("audit %+v, want alice's cancel", last)
	}
}

// TestExportCeremonyCancelled: an export split in three components, one taken (a
// stray start), refuses the real two-component export with 409 naming its holder;
// an independent admin cancels it (audited) and the real export starts a new split.
func TestExportCeremonyCancelled(t *testing.T) {
	e := newCustodianEnv(t, false)
	ctx := context.Background()
	c1, k1 := component(t)
	c2, k2 := component(t)
	spec := keys.SpecRequest{ID: "out.ZMK", Type: "ZMK"}
	e.alice.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c1, KCV: k1}, nil)
	if err := e.dave.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c2, KCV: k2}, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.olga.Do(ctx, "POST", "/api/v1/keys/out.ZMK/export-components", keys.ExportComponentsRequest{Components: 3}, nil); err != nil {
		t.Fatal(err)
	}
	err := e.dave.Do(ctx, "POST", "/api/v1/keys/out.ZMK/export-components", keys.ExportComponentsRequest{Components: 2}, nil)
	if status(err) != 409 || !strings.Contains(err.Error(), "started by olga at ") || !strings.Contains(err.Error(), "--kind export") {
		t.Fatalf("dave's export in 2: %v, want 409 naming olga and the cancel", err)
	}
	if err := e.dave.Do(ctx, "POST", cancelPath("out.ZMK"), keys.CancelCeremonyRequest{Kind: "export", Reason: "we export in 2"}, nil); err != nil {
		t.Fatalf("dave's cancel: %v", err)
	}
	if last := lastAudit(t, e.olga); last.Action != "cancel-ceremony" || last.Actor != "dave" || !strings.Contains(last.Detail, "export of out.ZMK v1 in 3 components started by olga") {
		t.Fatalf("audit %+v", last)
	}
	var d keys.ExportComponentResponse
	if err := e.dave.Do(ctx, "POST", "/api/v1/keys/out.ZMK/export-components", keys.ExportComponentsRequest{Components: 2}, &d); err != nil || d.Index != 1 || d.Of != 2 {
		t.Fatalf("dave's export after the cancel: %+v %v, want component 1 of 2 of a new split", d, err)
	}
}
