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
