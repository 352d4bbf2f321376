package console

import (
	"net/url"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/registry"
)

// TestTokenHolderCannotApproveAsLookAlikeUser: the holder of the operator token
// demo-operator requests a change through the API; a console account
// "Demo-Operator" cannot be added for him (the Users page refuses a name that
// reads as a token's, as the switch wires it: admin.Authenticator.HasName), and
// one that exists anyway (added before this check) cannot approve the change:
// the console shows why and the change stays pending. Before, the Users page
// refused only "demo-operator" itself, and "Demo-Operator" approved his own
// request.
func TestTokenHolderCannotApproveAsLookAlikeUser(t *testing.T) {
	f := newFixture(t)
	auth, err := admin.NewAuthenticator([]admin.Token{{Token: registry.DemoOperatorToken, Principal: admin.Principal{Name: "demo-operator", Role: admin.RoleOperator}}})
	if err != nil {
		t.Fatal(err)
	}
	f.con.o.TokenName = auth.HasName
	tokenOp := registry.Actor{Name: "demo-operator", Role: registry.RoleOperator}
	c, err := f.reg.RequestChange(tokenOp, registry.Change{Op: registry.OpTerminalSuspend, Target: "T0000002", Reason: "lost"})
	if err != nil {
		t.Fatal(err)
	}

	ad := f.client()
	f.login(t, ad, "admin", "admin-demo-pw")
	resp := f.postForm(t, ad, "/console/users", "/console/users", url.Values{"name": {"Demo-Operator"}, "role": {"reviewer"}, "password": {"a long password, really"}})
	if loc := resp.Header.Get("Location"); !strings.Contains(loc, "err=") || !strings.Contains(loc, "admin+token") {
		t.Fatalf("a user named Demo-Operator beside the token demo-operator: redirected to %q, want the refusal", loc)
	}
	if _, err := f.reg.User("Demo-Operator"); err == nil {
		t.Fatal("the user Demo-Operator was added")
	}

	// One that an earlier version let in.
	if _, err := f.reg.AddUser(registry.Actor{Name: registry.SystemActor}, "Demo-Operator", registry.RoleReviewer, "a long password, really"); err != nil {
		t.Fatal(err)
	}
	rev := f.client()
	f.login(t, rev, "Demo-Operator", "a long password, really")
	if _, page := get(t, rev, f.srv.URL+"/console/changes/"+c.ID); !strings.Contains(page, `id="own-change"`) || strings.Contains(page, `id="approve"`) {
		t.Fatalf("Demo-Operator is offered the approval of demo-operator's change:\n%s", page)
	}
	loc := f.postForm(t, rev, "/console/changes/"+c.ID, "/console/changes/"+c.ID+"/approve", url.Values{}).Header.Get("Location")
	_, page := get(t, rev, f.srv.URL+loc)
	if !strings.Contains(page, "the names demo-operator and Demo-Operator read as one") {
		t.Fatalf("the change page after Demo-Operator's approval lacks the refusal:\n%s", page)
	}
	if pv, _ := f.reg.GetChange(c.ID); pv.Change.Status != registry.ChangePending {
		t.Fatalf("after Demo-Operator's approval: %s, want pending", pv.Change.Status)
	}
}

// TestChangePageShowsLookAlikes: a change whose new value reads as the old one
// (terminal T0000001 moved from merchant 000000000000001 to 00000000000000I, a
// merchant renamed with a Cyrillic "о" for the Latin "o") is marked on the
// change page with the characters that differ, by code point: otherwise the
// reviewer sees a changed row whose two values look the same. The registration
// of a merchant whose ID reads as an existing one's is marked too ("Look again",
// registry.ChangePreview.Warnings). A plain change gets no mark. Before, there
// was none.
func TestChangePageShowsLookAlikes(t *testing.T) {
	f := newFixture(t)
	op := registry.Actor{Name: "operator", Role: registry.RoleOperator}
	rv := registry.Actor{Name: "reviewer", Role: registry.RoleReviewer}
	m, ok := f.reg.Merchant("000000000000001")
	if !ok {
		t.Fatal("no demo merchant 000000000000001")
	}
	twin := *m
	twin.ID, twin.Status = "00000000000000I", ""
	c, err := f.reg.RequestChange(op, registry.Change{Op: registry.OpMerchantRegister, Merchant: &twin, Reason: "new shop"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Approve(rv, c.ID, ""); err != nil {
		t.Fatal(err)
	}
	c, err = f.reg.RequestChange(op, registry.Change{Op: registry.OpMerchantRegister, Merchant: &registry.Merchant{ID: "O00000000000001",
		Name: "Another Grocery", MCC: m.MCC, Region: m.Region, Tier: m.Tier, Rating: m.Rating}, Reason: "another shop"})
	if err != nil {
		t.Fatal(err)
	}
	rc := f.client()
	f.login(t, rc, "reviewer", "reviewer-demo-pw")
	if _, page := get(t, rc, f.srv.URL+"/console/changes/"+c.ID); !strings.Contains(page, `class="warn look-alike-id"`) ||
		!strings.Contains(page, "new merchant O00000000000001 reads as existing merchant ") {
		t.Fatalf("the registration of a look-alike merchant ID is not marked:\n%s", page)
	}
	twinID := twin.ID
	move, err := f.reg.RequestChange(op, registry.Change{Op: registry.OpTerminalChange, Target: "T0000001",
		TerminalPatch: &registry.TerminalPatch{MerchantID: &twinID}, Reason: "moved"})
	if err != nil {
		t.Fatal(err)
	}
	name := strings.Replace(m.Name, "o", "\u043e", 1) // "Demo Grocery" with a Cyrillic о
	rename, err := f.reg.RequestChange(op, registry.Change{Op: registry.OpMerchantChange, Target: m.ID,
		MerchantPatch: &registry.MerchantPatch{Name: &name}, Reason: "typo"})
	if err != nil {
		t.Fatal(err)
	}
	tier := "enterprise"
	if m.Tier == tier {
		tier = "micro"
	}
	plain, err := f.reg.RequestChange(op, registry.Change{Op: registry.OpMerchantChange, Target: "000000000000002",
		MerchantPatch: &registry.MerchantPatch{Tier: &tier}, Reason: "grew"})
	if err != nil {
		t.Fatal(err)
	}
	c2 := f.client()
	f.login(t, c2, "reviewer", "reviewer-demo-pw")
	for _, tc := range []struct {
		id, want string
	}{
		{move.ID, "U&#43;0049 &#39;I&#39; where the other has U&#43;0031 &#39;1&#39; (character 15)"},
		{rename.ID, "U&#43;043E &#39;о&#39; where the other has U&#43;006F &#39;o&#39; (character 4)"},
	} {
		_, page := get(t, c2, f.srv.URL+"/console/changes/"+tc.id)
		if !strings.Contains(page, `class="warn look-alike"`) || !strings.Contains(page, tc.want) {
			t.Fatalf("change %s's page lacks the look-alike mark %q:\n%s", tc.id, tc.want, page)
		}
	}
	if _, page := get(t, c2, f.srv.URL+"/console/changes/"+plain.ID); strings.Contains(page, "look-alike") {
		t.Fatalf("a plain change is marked look-alike:\n%s", page)
	}
}
