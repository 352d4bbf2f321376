package server

import (
	"bytes"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/registry"
)

// TestWarnTokenUsersLookAlike: the start's warning about an admin token and a
// console user of one name also finds a user whose name reads as the token's
// ("Alice" for alice), which the review now treats as one person. Before, only
// the identical name was found.
func TestWarnTokenUsersLookAlike(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg, err := registry.New(db, nil, registry.Options{SeenFlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	if _, err := reg.AddUser(registry.Actor{Name: registry.SystemActor}, "Alice", registry.RoleReviewer, "alice's long password"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	s := &Server{Registry: reg, log: zerolog.New(&buf)}
	s.warnTokenUsers([]admin.Token{{Token: "t1", Principal: admin.Principal{Name: "alice", Role: admin.RoleOperator}},
		{Token: "t2", Principal: admin.Principal{Name: "bob", Role: admin.RoleReviewer}}})
	out := buf.String()
	if !strings.Contains(out, `"token":"alice"`) || !strings.Contains(out, `"user":"Alice"`) {
		t.Fatalf("no warning for the token alice beside the user Alice: %q", out)
	}
	if strings.Contains(out, `"token":"bob"`) {
		t.Fatalf("a warning for the token bob: %q", out)
	}
}
