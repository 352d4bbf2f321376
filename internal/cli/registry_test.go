package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/server"
)

// TestDataModeIsReadOnly: with --data, anyone can claim any $SWITCHYARD_ACTOR, so a
// request as alice and an approval as bob would look like two people's work. The
// offline mode reads, and refuses every change.
func TestDataModeIsReadOnly(t *testing.T) {
	dir := t.TempDir()
	db, err := server.OpenDB(dir, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(db, nil, registry.Options{SeenFlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := registry.LoadDemoFleet(reg, 200); err != nil {
		t.Fatal(err)
	}
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	run := func(actor string, args ...string) (int, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		env := &Env{Stdout: &out, Stderr: &errb, Ctx: context.Background(), Getenv: func(k string) string {
			if k == "SWITCHYARD_ACTOR" {
				return actor
			}
			return ""
		}}
		code := runRegistry(env, args[0], append(args[1:], "--data", dir))
		return code, out.String(), errb.String()
	}
	for _, c := range [][]string{
		{"alice", "terminal", "suspend", "T0000001", "--reason", "test"},
		{"bob", "change", "approve", "CHG-1"},
		{"alice", "alert-rule", "set", "all", "--threshold", "1m", "--action", "suspend"},
		{"alice", "merchant", "freeze", "000000000000001"},
	} {
		code, out, errs := run(c[0], c[1:]...)
		if code == 0 || !strings.Contains(errs, "read-only") {
			t.Errorf("%v offline: exit %d\nstdout %s\nstderr %s", c, code, out, errs)
		}
	}
	code, out, errs := run("alice", "terminal", "show", "T0000001")
	if code != 0 || !strings.Contains(out, "active") {
		t.Errorf("terminal show offline: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	// For people, with times in the acquirer's zone (the default, Asia/Shanghai).
	if !strings.Contains(out, "Terminal:") || !strings.Contains(out, " +08:00") || strings.HasPrefix(out, "{") {
		t.Errorf("terminal show offline is not for people in the acquirer's zone:\n%s", out)
	}
	if code, out, errs := run("alice", "change", "list"); code != 0 || strings.Contains(out, "CHG-") {
		t.Errorf("change list offline: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
}

// TestDataModeNamesTheMissingLMK: a data directory whose keys are under a real LMK,
// read with --data and no LMK given, says to give one (it said only that the KCVs
// differ, from the demo LMK it had tried).
func TestDataModeNamesTheMissingLMK(t *testing.T) {
	dir := t.TempDir()
	db, err := server.OpenDB(dir, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	store, err := keys.NewStore(db, keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hsm.NewSoftware(context.Background(), store, randomKey(t), hsm.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errb, Ctx: context.Background(), Getenv: func(string) string { return "" }}
	if code := runRegistry(env, "terminal", []string{"list", "--data", dir}); code == 0 || !strings.Contains(errb.String(), "SWITCHYARD_LMK_FILE") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

func randomKey(t *testing.T) []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// TestRegistryBadTimezone: the registry commands show times in the acquirer's zone,
// $SWITCHYARD_TIMEZONE: one that is not a zone is said before the switch is asked,
// as journal and settle say it.
func TestRegistryBadTimezone(t *testing.T) {
	api := newFakeAdmin(t, nil)
	vars := map[string]string{"SWITCHYARD_ADMIN": api.URL, "SWITCHYARD_TOKEN": "t", "SWITCHYARD_TIMEZONE": "Mars/Olympus_Mons"}
	code, out, errs := runCLI(t, vars, "merchant", "show", "000000000000001")
	if code != 1 || !strings.Contains(errs, `SWITCHYARD_TIMEZONE "Mars/Olympus_Mons" is not an IANA time zone`) || out != "" {
		t.Errorf("merchant show with a bad zone: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	if calls := api.Calls(); len(calls) > 0 {
		t.Errorf("asked the switch with a bad zone: %q", calls)
	}
}
