package api_test

import (
	"strings"
	"testing"

	"github.com/switchyard/switchyard/switch/registry"
)

// The users' routes are the admins': an operator gets 403; the answers never
// carry the password hash; a disabled user cannot log in.
func TestUserRoutes(t *testing.T) {
	a := newAPIFixture(t)
	body := `{"name":"zoe","role":"reviewer","password":"zoe's long password"}`
	if st, out := a.raw(t, "POST", "/api/v1/users", registry.DemoOperatorToken, "application/json", body); st != 403 {
		t.Fatalf("operator adds a user: %d %s", st, out)
	}
	st, out := a.raw(t, "POST", "/api/v1/users", registry.DemoAdminToken, "application/json", body)
	if st != 201 || strings.Contains(out, "argon2") || !strings.Contains(out, `"reviewer"`) {
		t.Fatalf("admin adds zoe: %d %s", st, out)
	}
	if st, out := a.raw(t, "POST", "/api/v1/users", registry.DemoAdminToken, "application/json", `{"name":"yan","role":"operator","password":"short"}`); st != 400 {
		t.Fatalf("short password: %d %s", st, out)
	}
	if st, out := a.raw(t, "POST", "/api/v1/users/zoe/password", registry.DemoAdminToken, "application/json", `{"password":"a new long password"}`); st != 200 {
		t.Fatalf("passwd: %d %s", st, out)
	}
	if _, err := a.reg.CheckPassword("zoe", "a new long password"); err != nil {
		t.Fatalf("new password: %v", err)
	}
	if st, out := a.raw(t, "POST", "/api/v1/users/zoe/disable", registry.DemoAdminToken, "", ""); st != 200 || !strings.Contains(out, `"disabled": true`) {
		t.Fatalf("disable: %d %s", st, out)
	}
	if _, err := a.reg.CheckPassword("zoe", "a new long password"); err == nil {
		t.Fatal("a disabled user logs in")
	}
	st, out = a.raw(t, "GET", "/api/v1/users", registry.DemoAdminToken, "", "")
	if st != 200 || !strings.Contains(out, `"zoe"`) || strings.Contains(out, "argon2") {
		t.Fatalf("list: %d %s", st, out)
	}
	if st, _ := a.raw(t, "POST", "/api/v1/users/nobody/disable", registry.DemoAdminToken, "", ""); st != 404 {
		t.Fatalf("disable nobody: %d", st)
	}
}

// A refused approval answers 403 with the registry's reason: the token that made
// a console user may not approve that user's request, and the answer names who
// held whose account and what to do; an independent token approves it.
func TestApprovalRefusalExplained(t *testing.T) {
	a := newAPIFixture(t)
	if st, out := a.raw(t, "POST", "/api/v1/users", registry.DemoAdminToken, "application/json", `{"name":"olaf","role":"operator","password":"olaf's long password"}`); st != 201 {
		t.Fatalf("admin adds olaf: %d %s", st, out)
	}
	c, err := a.reg.RequestChange(registry.Actor{Name: "olaf", Role: registry.RoleOperator}, registry.Change{Op: registry.OpTerminalSuspend, Target: "T0000002", Reason: "lost"})
	if err != nil {
		t.Fatal(err)
	}
	st, out := a.raw(t, "POST", "/api/v1/changes/"+c.ID+"/approve", registry.DemoAdminToken, "application/json", `{}`)
	if st != 403 {
		t.Fatalf("demo-admin approves olaf's change: %d %s, want 403", st, out)
	}
	for _, want := range []string{"may not be approved by demo-admin: demo-admin has held the account of olaf", "ask another reviewer"} {
		if !strings.Contains(out, want) {
			t.Fatalf("the refusal %s lacks %q", out, want)
		}
	}
	if st, out := a.raw(t, "POST", "/api/v1/changes/"+c.ID+"/approve", registry.DemoReviewerToken, "application/json", `{}`); st != 200 || !strings.Contains(out, `"approved"`) {
		t.Fatalf("demo-reviewer approves olaf's change: %d %s", st, out)
	}
}

// A console user may not take the name of an admin token (409, nothing added):
// the oplog records names only, so an admin could otherwise act under the name
// of a token's holder, who could not show it was not him.
func TestUserNameOfATokenRefused(t *testing.T) {
	a := newAPIFixture(t)
	body := `{"name":"demo-reviewer","role":"operator","password":"somebody's long password"}`
	if st, out := a.raw(t, "POST", "/api/v1/users", registry.DemoAdminToken, "application/json", body); st != 409 || !strings.Contains(out, "admin token") {
		t.Fatalf("a user named as the demo reviewer's token: %d %s, want 409", st, out)
	}
	if _, err := a.reg.User("demo-reviewer"); err == nil {
		t.Fatal("the user was added")
	}
}
