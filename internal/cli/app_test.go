package cli

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/server"
)

// TestAppDataMode: with --data the application commands read a stopped switch's
// packages and rollout, and refuse changes.
func TestAppDataMode(t *testing.T) {
	dir := t.TempDir()
	db, err := server.OpenDB(dir, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(db, nil, registry.Options{SeenFlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	reg.Close()
	db.Close()
	code, out, errs := runCLI(t, nil, "app", "list", "--data", dir)
	if code != 0 || !strings.HasPrefix(out, "NAME") {
		t.Fatalf("app list --data: %d %s %s", code, out, errs)
	}
	if code, out, errs := runCLI(t, nil, "app", "status", "--data", dir); code != 0 {
		t.Fatalf("app status --data: %d %s %s", code, out, errs)
	}
	if code, _, errs := runCLI(t, nil, "app", "withdraw", "--group", "g", "--data", dir); code == 0 || !strings.Contains(errs, "read-only") {
		t.Fatalf("app withdraw --data: %d %s", code, errs)
	}
}
