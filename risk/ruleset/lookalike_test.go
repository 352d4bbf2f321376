package ruleset

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLookAlikeRuleFiles: a rule file the loader skips because its extension is in
// upper case, or because it sits in a subdirectory, is a warning naming it (rules check
// said OK without it, and the rule never ran); rating/ and backups are not.
func TestLookAlikeRuleFiles(t *testing.T) {
	const rule = "rules:\n  - {id: RULE, condition: \"txn.amount > 1\", action: review}\n"
	dir := writeRules(t, map[string]string{
		"a.yaml":    strings.Replace(rule, "RULE", "a", 1),
		"B.YAML":    strings.Replace(rule, "RULE", "b", 1),
		"d.yaml~":   strings.Replace(rule, "RULE", "d", 1),
		"notes.txt": "x\n",
	})
	for _, sub := range []string{"new", "rating"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, sub, "c.yaml"), []byte(strings.Replace(rule, "RULE", "c", 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range rs.Warnings {
		if !strings.Contains(w.Message, "has no tests") {
			got = append(got, w.String())
		}
	}
	want := []string{
		filepath.Join(dir, "B.YAML") + ": not read: rule files end in .yaml or .yml, in lower case",
		filepath.Join(dir, "new") + ": a directory of *.yaml files, not read: rule files are read only directly in the rules directory",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || len(rs.Rules) != 1 {
		t.Errorf("%d rule(s), warnings:\n%s\nwant:\n%s", len(rs.Rules), strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
