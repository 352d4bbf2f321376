package cli

import (
	"bytes"
	"context"
	"net/http/httptest"
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
	if code, out, errs := run(registry.DemoAdminToken, "long password 1\n", "add", "alice", "operator"); code != 0 || strings.Contains(out, "argon2") {
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
	if code, out, _ := run(registry.DemoAdminToken, "", "list"); code != 0 || !strings.Contains(out, `"alice"`) || !strings.Contains(out, `"disabled": true`) {
		t.Fatalf("list: %d %s", code, out)
	}
}
