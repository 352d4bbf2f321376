package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/listreview"
	"github.com/switchyard/switchyard/switch/registry"
)

// TestAllowListAdditionReviewed: one analyst alone cannot exempt a card from the
// fraud rules. An allow-list addition is answered 202 with the change that makes
// it, is not on the lists (nor in the rules' flags) until a reviewer other than
// the analyst approves it, and then names both. A deny-list addition stays
// immediate; a deny-list removal, a deny re-add that ends the entry sooner and
// an edit of another list are reviewed; an allow-list removal is immediate. An
// operator may not request list changes.
func TestAllowListAdditionReviewed(t *testing.T) {
	f := newFixture(t)
	lists, err := risk.NewLists(nil)
	if err != nil {
		t.Fatal(err)
	}
	lr := listreview.New(f.reg, lists, listreview.Options{})
	auth, err := admin.NewAuthenticator(api.DemoTokens())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Options{Auth: auth, Registry: f.reg, Lists: lists, ListReview: lr}))
	t.Cleanup(srv.Close)
	ctx := context.Background()
	an := &apiclient.Client{BaseURL: srv.URL, Token: registry.DemoAnalystToken}
	rev := &apiclient.Client{BaseURL: srv.URL, Token: registry.DemoReviewerToken}
	const card = "Zk3hC0lludingCardHash00"
	flags := func() risk.ListFlags { return lists.Flags("", card, "", "", "", time.Now().UnixNano()) }

	var ans risk.AddAnswer
	if err := an.Do(ctx, http.MethodPost, "/api/v1/risk/lists", risk.AddListEntry{List: "allow", Kind: "card", Value: card, TTL: "30d", Note: "VIP"}, &ans); err != nil {
		t.Fatal(err)
	}
	if !ans.PendingReview || !strings.HasPrefix(ans.Change, "CHG-") || !strings.Contains(ans.Why, "exempts") {
		t.Fatalf("allow-list addition answered %+v, want pending review with a change", ans)
	}
	if _, on := lists.Entry("allow", "card", card); on || flags().AllowCard {
		t.Fatal("the allow-list addition took effect before its review")
	}
	var pv registry.ChangePreview
	if err := rev.Do(ctx, http.MethodGet, "/api/v1/changes/"+ans.Change, nil, &pv); err != nil || len(pv.Effects) != 1 || pv.Effects[0].Type != "list-entry" {
		t.Fatalf("preview: %+v %v", pv, err)
	}
	if err := an.Do(ctx, http.MethodPost, "/api/v1/changes/"+ans.Change+"/approve", nil, nil); err == nil {
		t.Fatal("the analyst approved his own allow-list addition")
	}
	if _, err := f.reg.Approve(registry.Actor{Name: "demo-analyst", Role: registry.RoleAdmin}, ans.Change, ""); err == nil {
		t.Fatal("the requester approved his own allow-list addition under another role")
	}
	if err := rev.Do(ctx, http.MethodPost, "/api/v1/changes/"+ans.Change+"/approve", registry.ReasonRequest{Note: "known customer"}, nil); err != nil {
		t.Fatal(err)
	}
	e, on := lists.Entry("allow", "card", card)
	if !on || !flags().AllowCard || e.AddedBy != "demo-analyst, approved by demo-reviewer ("+ans.Change+")" || e.Note != "VIP" {
		t.Fatalf("after the approval: %+v on=%v", e, on)
	}

	// A deny-list addition is immediate.
	deny := risk.AddListEntry{List: "deny", Kind: "card", Value: card + "X", TTL: "30d"}
	if err := an.Do(ctx, http.MethodPost, "/api/v1/risk/lists", deny, reset(&ans)); err != nil || ans.PendingReview || ans.AddedBy != "demo-analyst" {
		t.Fatalf("deny-list addition: %+v %v, want immediate", ans, err)
	}
	// ... but ending it sooner is a removal in disguise.
	deny.TTL = "1h"
	if err := an.Do(ctx, http.MethodPost, "/api/v1/risk/lists", deny, reset(&ans)); err != nil || !ans.PendingReview || !strings.Contains(ans.Why, "sooner") {
		t.Fatalf("deny-list entry shortened: %+v %v, want pending review", ans, err)
	}
	// A deny-list removal is reviewed.
	var rm risk.RemoveAnswer
	if err := an.Do(ctx, http.MethodDelete, "/api/v1/risk/lists/deny/card/"+card+"X", nil, reset(&rm)); err != nil || !rm.PendingReview || rm.Removed {
		t.Fatalf("deny-list removal: %+v %v, want pending review", rm, err)
	}
	if _, on := lists.Entry("deny", "card", card+"X"); !on {
		t.Fatal("the deny-list removal took effect before its review")
	}
	if err := rev.Do(ctx, http.MethodPost, "/api/v1/changes/"+rm.Change+"/approve", nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, on := lists.Entry("deny", "card", card+"X"); on {
		t.Fatal("the approved deny-list removal was not applied")
	}
	// Another list may exempt as well: reviewed.
	if err := an.Do(ctx, http.MethodPost, "/api/v1/risk/lists", risk.AddListEntry{List: "vip", Kind: "merchant", Value: "000000000000001"}, reset(&ans)); err != nil || !ans.PendingReview {
		t.Fatalf("vip-list addition: %+v %v, want pending review", ans, err)
	}
	// An allow-list removal only tightens: immediate.
	if err := an.Do(ctx, http.MethodDelete, "/api/v1/risk/lists/allow/card/"+card, nil, reset(&rm)); err != nil || !rm.Removed || rm.PendingReview {
		t.Fatalf("allow-list removal: %+v %v, want immediate", rm, err)
	}
	// Only analysts and admins request list changes.
	if _, err := f.reg.RequestChange(registry.Actor{Name: "demo-operator", Role: registry.RoleOperator}, registry.Change{Op: listreview.OpAdd,
		Target: "allow/card/" + card, Ext: []byte(`{"entry":{"list":"allow","kind":"card","value":"` + card + `"}}`)}); err == nil {
		t.Fatal("an operator requested an allow-list addition")
	}
}

// reset zeroes *v before an answer is decoded into it, and returns v.
func reset[T any](v *T) *T {
	var zero T
	*v = zero
	return v
}
