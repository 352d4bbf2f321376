package risk

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRequireRulesRefusesEmptySet: with Options.RequireRules (the switch's default) a
// rules directory with no rule (empty, files renamed .YAML, files without rules) is
// refused at New with an error naming the directory and what it holds, and a reload
// to such a set is refused and counted while the rules in force stay. Without the
// option (risk.allow_empty_rules) the empty set loads; a missing directory is never
// an empty set.
func TestRequireRulesRefusesEmptySet(t *testing.T) {
	dir := t.TempDir()
	if _, err := New(dir, Options{RequireRules: true}); !errors.Is(err, ErrEmpty) ||
		!strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "no rule files") {
		t.Errorf("empty directory: %v, want ErrEmpty naming %s and no rule files", err, dir)
	}
	e, err := New(dir, Options{})
	if err != nil {
		t.Fatalf("empty directory allowed: %v", err)
	}
	e.Close()

	// Renamed to upper case: not read, and said so.
	if err := os.WriteFile(filepath.Join(dir, "10-big.YAML"), []byte(bigRound), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(dir, Options{RequireRules: true}); !errors.Is(err, ErrEmpty) || !strings.Contains(err.Error(), "not read: 10-big.YAML") {
		t.Errorf("only X.YAML: %v, want ErrEmpty naming 10-big.YAML as not read", err)
	}
	// A file with counters and no rule.
	if err := os.WriteFile(filepath.Join(dir, "00-counters.yaml"), []byte("rules: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(dir, Options{RequireRules: true}); !errors.Is(err, ErrEmpty) || !strings.Contains(err.Error(), "1 rule file(s) (00-counters.yaml) that declare no rule") {
		t.Errorf("a file without rules: %v", err)
	}

	// A reload to an empty set is refused, counted, and the rules stay.
	if err := os.Rename(filepath.Join(dir, "10-big.YAML"), filepath.Join(dir, "10-big.yaml")); err != nil {
		t.Fatal(err)
	}
	e, err = New(dir, Options{RequireRules: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	v1 := e.RuleSet().Version
	if err := os.Remove(filepath.Join(dir, "10-big.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Reload(); !errors.Is(err, ErrEmpty) {
		t.Errorf("reload to an empty set: %v, want ErrEmpty", err)
	}
	if e.RuleSet().Version != v1 || len(e.RuleSet().Rules) == 0 {
		t.Error("the empty set took effect")
	}
	if st := e.Stats(); st.ReloadsRefused != 1 || st.Reloads != 0 {
		t.Errorf("after the refused reload: %+v", st)
	}
	if st := e.LastReload(); !strings.Contains(st.Error, "no risk rule") || st.Version != v1 {
		t.Errorf("last reload %+v", st)
	}

	// A missing directory is an error of its own, with or without the option.
	missing := filepath.Join(dir, "rulez")
	for _, o := range []Options{{}, {RequireRules: true}} {
		if _, err := New(missing, o); err == nil || errors.Is(err, ErrEmpty) || !strings.Contains(err.Error(), "rules directory "+missing+" does not exist") {
			t.Errorf("missing directory (require %v): %v", o.RequireRules, err)
		}
	}
}
