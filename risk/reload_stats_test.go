package risk

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A reload refused for a problem keeps the rules in force, says why with
// file:line, and is counted apart from the reloads that took effect (the switch
// exports both as switchyard_risk_rules_reloads_total). An always-true enforced
// decline is such a problem: it never reaches the running switch.
func TestReloadCountsRefusals(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "90-analyst.yaml")
	if err := os.WriteFile(file, []byte(bigRound), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := New(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	v1 := e.RuleSet().Version
	if st := e.Stats(); st.Reloads != 0 || st.ReloadsRefused != 0 {
		t.Fatalf("after the initial load: %+v", st)
	}
	for i, bad := range []string{
		strings.Replace(bigRound, "txn.amount >= 500000", "txn.amount >= ", 1),
		"rules:\n  - {id: everything, condition: \"txn.amount > 0 || true\", action: decline}\n",
	} {
		if err := os.WriteFile(file, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Reload(); err == nil || !strings.Contains(err.Error(), "90-analyst.yaml:2") {
			t.Errorf("bad file %d: reload error %v, want one naming 90-analyst.yaml:2", i, err)
		}
		if e.RuleSet().Version != v1 {
			t.Fatalf("bad file %d took effect", i)
		}
		if st := e.LastReload(); st.Error == "" || st.Version != v1 {
			t.Errorf("bad file %d: last reload %+v", i, st)
		}
		if d := e.Evaluate(purchase(1000)); d.Declined() {
			t.Errorf("bad file %d: a 10.00 purchase is declined: %s", i, d.Summary())
		}
	}
	if st := e.Stats(); st.Reloads != 0 || st.ReloadsRefused != 2 {
		t.Errorf("after two refusals: %+v", st)
	}
	if err := os.WriteFile(file, []byte(bigRound), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.Reloads != 1 || st.ReloadsRefused != 2 || e.LastReload().Error != "" {
		t.Errorf("after a good reload: %+v, last %+v", st, e.LastReload())
	}
}
