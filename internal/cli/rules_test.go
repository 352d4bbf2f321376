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
}
