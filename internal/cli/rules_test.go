package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A mistyped --data must be an error (the rules commands, and journal since 5
// December 2026), not a new empty database whose journal backtests to "No
// decision would change" or lists no records.
func TestRulesDataDirMustExist(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "dta")
	for _, args := range [][]string{
		{"rules", "backtest", "--rules", "../../rules", "--from", "-24h", "--to", "now", "--no-progress", "--data", missing},
		{"rules", "explain", "000000000001", "--data", missing},
		{"rules", "lists", "--data", missing},
		{"journal", "--data", missing},
	} {
		code, out, errs := runCLI(t, nil, args...)
		if code == 0 || !strings.Contains(errs, "--data "+missing+": ") || !strings.Contains(errs, "no such file or directory") {
			t.Errorf("%v: exit %d\n%s\n%s", args[:2], code, out, errs)
		}
		if _, err := os.Stat(missing); err == nil {
			t.Fatalf("%v created %s", args[:2], missing)
		}
	}
	file := filepath.Join(t.TempDir(), "data.txt")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCLI(t, nil, "rules", "lists", "--data", file); code == 0 || !strings.Contains(errs, "not a directory") {
		t.Errorf("a file as --data: exit %d %s", code, errs)
	}
	// An existing directory that holds no switch's data (--data ., --data /etc) is
	// refused too, and left as it was: no database made in it, no permission
	// tightened (it was 0755).
	other := t.TempDir()
	if err := os.Chmod(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(other, "notes.txt"), 0o644); err != nil { // past the umask
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"rules", "lists", "--data", other},
		{"journal", "--data", other},
		{"merchant", "list", "--data", other},
		{"oplog", "--data", other},
		{"settle", "--date", "2026-12-01", "--data", other},
	} {
		code, out, errs := runCLI(t, nil, args...)
		if code == 0 || !strings.Contains(errs, "--data "+other+": not a switch's data directory") {
			t.Errorf("%v: exit %d\n%s\n%s", args[:2], code, out, errs)
		}
	}
	ents, err := os.ReadDir(other)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Errorf("the directory was written to: %v", ents)
	}
	for _, p := range []string{other, filepath.Join(other, "notes.txt")} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o044 == 0 {
			t.Errorf("%s: its permissions were changed (%v, %v)", p, fi.Mode(), err)
		}
	}
}

// TestRulesCheckEmptySet: `rules check` of a directory without a rule exits 1 (the
// switch refuses such a set at start and on reload), naming the directory and what
// it holds, in text and JSON; --allow-empty makes it a pass with the warning; a
// directory that does not exist is a problem of its own, not an empty set.
func TestRulesCheckEmptySet(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "10-velocity.YAML"), []byte("rules: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, nil, "rules", "check", dir)
	if code != 1 || !strings.Contains(out, "rules directory "+dir+": no risk rule: found no rule files") || !strings.Contains(out, "not read: 10-velocity.YAML") {
		t.Errorf("empty set: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, _ = runCLI(t, nil, "rules", "check", "--json", dir)
	if code != 1 || !strings.Contains(out, `"ok": false`) || !strings.Contains(out, "no risk rule") {
		t.Errorf("empty set, json: exit %d, stdout %q", code, out)
	}
	code, out, errs = runCLI(t, nil, "rules", "check", "--allow-empty", dir)
	if code != 0 || !strings.Contains(out, "OK") || !strings.Contains(out, "0 rule(s)") {
		t.Errorf("empty set allowed: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	missing := filepath.Join(dir, "rulez")
	code, out, _ = runCLI(t, nil, "rules", "check", "--allow-empty", missing)
	if code != 1 || !strings.Contains(out, "rules directory "+missing+" does not exist") {
		t.Errorf("missing directory: exit %d, stdout %q", code, out)
	}
	if code, _, _ := runCLI(t, nil, "rules", "check", "--allow-empty"); code != 2 {
		t.Errorf("no directory: exit %d, want 2", code)
	}
}
