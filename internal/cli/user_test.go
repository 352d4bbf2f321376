package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/registry"
)

// TestUserCommand runs `switchyard user add|passwd|disable|list` against the
// admin API's real handler over a registry: the password comes from standard
// input, the user can then log in with it, a disabled one cannot, and an
// operator's token is refused.
func TestUserCommand(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg, err := registry.New(db, nil, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	auth, err := admin.NewAuthenticator(api.DemoTokens())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Options{Auth: auth, Registry: reg}))
	defer srv.Close()
	run := func(token, stdin string, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		env := &Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Ctx: context.Background(),
			Getenv: func(k string) string {
				return map[string]string{"SWITCHYARD_ADMIN": srv.URL, "SWITCHYARD_TOKEN": token}[k]
			}}
		return Main(env, append([]string{"user"}, args...)), out.String(), errb.String()
	}
	if code, _, errs := run(registry.DemoOperatorToken, "long password 1\n", "add", "alice", "operator"); code == 0 || !strings.Contains(errs, "403") {
		t.Fatalf("operator adds a user: exit %d %s", code, errs)
	}
	if code, out, errs := run(registry.DemoAdminToken, "long password 1\n", "add", "alice", "operator"); code != 0 || strings.Contains(out, "argon2") ||
		!strings.HasPrefix(out, "user alice added, role operator") {
		t.Fatalf("add: exit %d %s %s", code, out, errs)
	}
	if code, _, errs := run(registry.DemoAdminToken, "", "passwd", "alice"); code == 0 || !strings.Contains(errs, "standard input") {
		t.Fatalf("passwd without input: exit %d %s", code, errs)
	}
	if code, _, errs := run(registry.DemoAdminToken, "long password 2\n", "passwd", "alice"); code != 0 {
		t.Fatalf("passwd: %s", errs)
	}
	if _, err := reg.CheckPassword("alice", "long password 2"); err != nil {
		t.Fatalf("alice logs in with the new password: %v", err)
	}
	if code, _, errs := run(registry.DemoAdminToken, "", "disable", "alice"); code != 0 {
		t.Fatalf("disable: %s", errs)
	}
	if _, err := reg.CheckPassword("alice", "long password 2"); err == nil {
		t.Fatal("a disabled user logs in")
	}
	// For people a table (it printed JSON whatever was asked); --json the JSON.
	code, out, errs := run(registry.DemoAdminToken, "", "list")
	if code != 0 || !strings.HasPrefix(out, "NAME") || !regexp.MustCompile(`(?m)^alice +operator +disabled +demo-admin +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \+08:00`).MatchString(out) ||
		strings.Contains(out, "{") {
		t.Fatalf("list: %d %s %s", code, out, errs)
	}
	if code, out, _ := run(registry.DemoAdminToken, "", "list", "--json"); code != 0 || !strings.Contains(out, `"alice"`) || !strings.Contains(out, `"disabled": true`) {
		t.Fatalf("list --json: %d %s", code, out)
	}
	var users []registry.User
	if _, out, _ := run(registry.DemoAdminToken, "", "list", "--json"); json.Unmarshal([]byte(out), &users) != nil || len(users) != 1 || !users[0].Disabled {
		t.Fatalf("list --json does not parse as the users: %s", out)
	}
	if code, out, _ := run(registry.DemoAdminToken, "", "enable", "alice"); code != 0 || out != "user alice enabled\n" {
		t.Fatalf("enable: %d %q", code, out)
	}
	if code, out, _ := run(registry.DemoAdminToken, "", "disable", "--json", "alice"); code != 0 || !strings.Contains(out, `"disabled": true`) {
		t.Fatalf("disable --json: %d %s", code, out)
	}
	if code, _, errs := run(registry.DemoAdminToken, "", "list", "stray"); code != 2 || !strings.Contains(errs, "want 0 argument") {
		t.Fatalf("list stray: %d %s", code, errs)
	}
}
