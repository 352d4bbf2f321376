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
	loc := f.postForm(t, rev, "/console/changes/"+c.ID, "/console/changes/"+c.ID+"/approve", url.Values{}).Header.Get("Location")
	_, page := get(t, rev, f.srv.URL+loc)
	if !strings.Contains(page, "the names demo-operator and Demo-Operator read as one") {
		t.Fatalf("the change page after Demo-Operator's approval lacks the refusal:\n%s", page)
	}
	if pv, _ := f.reg.GetChange(c.ID); pv.Change.Status != registry.ChangePending {
		t.Fatalf("after Demo-Operator's approval: %s, want pending", pv.Change.Status)
	}
}
