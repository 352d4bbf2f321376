package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/config"
)

// copyRules copies the default rule pack into a directory the test may edit.
func copyRules(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files, _ := filepath.Glob("../../rules/*.yaml")
	if len(files) == 0 {
		t.Fatal("no rule files")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const bigRound = `rules:
  - {id: big-round, condition: "txn.amount >= 500000 && txn.amount % 100000 == 0",
     action: decline, response_code: "05", reason: round-amount}
`

// TestAnalystWorkflow is the "done when": add a rule to a running switch, see it
// decline with its reason, break the file and keep the rules, backtest the change.
func TestAnalystWorkflow(t *testing.T) {
	rules := copyRules(t)
	f := startDemo(t, func(c *config.Config) { c.RulesDir = rules })
	// Before: a round 5,000.00 at the grocery is approved.
	if r := f.send(pos(500000)); r.RC != "00" {
		t.Fatalf("before the rule: %+v", r)
	}
	if err := os.WriteFile(filepath.Join(rules, "90-analyst.yaml"), []byte(bigRound), 0o644); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("switch log:\n%s", tail(f.logs.String(), 3000))
		}
	}()
	attempt := 0
	waitFor(t, "the new rule to load", func() bool {
		attempt++
		tx := pos(500000)
		tx.PAN = testPAN(5000 + attempt) // a new card each time: the same one would trip card velocity
		r := f.send(tx)
		return r.RC == "05" && r.Reason == "round-amount"
	})
	// Break the file: the switch keeps the previous rules and says why, with file:line.
	if err := os.WriteFile(filepath.Join(rules, "90-analyst.yaml"), []byte(strings.Replace(bigRound, "txn.amount %", "txn.amount_typo %", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refusal to be logged", func() bool { return strings.Contains(f.logs.String(), "90-analyst.yaml:") })
	tx := pos(600000)
	tx.PAN = testPAN(501)
	if r := f.send(tx); r.RC != "05" || r.Reason != "round-amount" {
		t.Fatalf("the previous rules must stay: %+v", r)
	}
	// rules check names the same problem.
	out, code := cliLocal("rules", "check", rules)
	if code == 0 || !strings.Contains(out, "90-analyst.yaml:") {
		t.Fatalf("rules check: %d %s", code, out)
	}
	// Backtest the rule on the journal: the approved 5,000.00 would have been declined.
	good := t.TempDir()
	if err := os.WriteFile(filepath.Join(good, "90-analyst.yaml"), []byte(bigRound), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code = f.cli(tokAnalyst, "rules", "backtest", "--rules", good, "--from", time.Now().Add(-time.Hour).Format(time.RFC3339), "--to", time.Now().Add(time.Minute).Format(time.RFC3339), "--format", "json")
	if code != 0 || !strings.Contains(out, "big-round") {
		t.Fatalf("backtest: %d %s", code, out)
	}
	// Explain a decline of the rule.
	tx = pos(700000)
	tx.PAN = testPAN(502)
	r := f.send(tx)
	out, code = f.cli(tokAnalyst, "rules", "explain", r.RRN, "--rules", good)
	if code != 0 || !strings.Contains(out, "big-round") || !strings.Contains(out, "txn.amount") {
		t.Fatalf("explain %s: %d %s", r.RRN, code, out)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	waitForLong(t, what, 10*time.Second, ok)
}

func waitForLong(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (%.400s)", what, lastSAF)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestBacktestOfRulesInForceChangesNothing: a backtest of the very rules that
// decided the journal's transactions lists no changed decision. A card used again
// and again at the grocery is declined by rules that share their reason with a later
// rule (card-velocity-10m with card-velocity-24h; cashout-repeat-card with the alert
// cashout-repeat-card-score); until the sixth release of 6 December 2026 the decision read
// back from the journal named the later rule, and each such decline was listed as changed.
// The grocery's 22 purchases with one card: from the 6th declined by card-velocity-10m,
// from the 21st card-velocity-24h hits too.
func TestBacktestOfRulesInForceChangesNothing(t *testing.T) {
	rules := copyRules(t)
	f := startDemo(t, func(c *config.Config) { c.RulesDir = rules })
	declined := 0
	for i := 0; i < 22; i++ {
		tx := pos(int64(2000 + i*100))
		tx.PAN = testPAN(7001)
		if r := f.send(tx); r.RC != "00" {
			declined++
		}
	}
	if declined == 0 {
		t.Fatal("no purchase of the repeated card was declined: the test shows nothing")
	}
	out, code := f.cli(tokAnalyst, "rules", "backtest", "--rules", rules, "--from", time.Now().Add(-time.Hour).Format(time.RFC3339),
		"--to", time.Now().Add(time.Minute).Format(time.RFC3339), "--format", "json", "--no-progress")
	var rep struct {
		Transactions   int `json:"transactions"`
		DeclinesBefore int `json:"declines_before"`
		DeclinesAfter  int `json:"declines_after"`
		Changed        int `json:"changed"`
		Changes        []struct {
			RRN           string
			Before, After struct{ Rule, Reason string }
		} `json:"changes"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 {
		t.Fatalf("backtest: %d %v\n%s", code, err, out)
	}
	if rep.Transactions < 22 || rep.DeclinesBefore != declined || rep.DeclinesAfter != declined || rep.Changed != 0 {
		t.Errorf("backtest of the rules in force: %d transaction(s), declines %d before and %d after (%d declined), %d changed, want none: %+v",
			rep.Transactions, rep.DeclinesBefore, rep.DeclinesAfter, declined, rep.Changed, rep.Changes)
	}
}

// TestExplainOfAProbe: a purchase of nothing, which the switch declines itself (13)
// before the rules while journaling its facts for the counters, is not explained as
// if the rules had decided it.
func TestExplainOfAProbe(t *testing.T) {
	f := startDemo(t, nil)
	r := f.send(pos(0))
	if r.RC != "13" {
		t.Fatalf("a purchase of nothing: %+v", r)
	}
	out, code := f.cli(tokAnalyst, "rules", "explain", r.RRN)
	if code != 1 || !strings.Contains(out, "RRN "+r.RRN+" is in the journal but never reached the rules (answered 13)") {
		t.Errorf("explain of a probe: %d\n%s", code, out)
	}
}

// TestBacktestAndExplainReadTheLists: the CLI's backtest and explain read the
// switch's deny and allow lists, as the rules did live and as the console's backtest
// does. Until the sixth release of 6 December 2026 they ran on empty lists: every
// decline of a deny-listed card, BIN, terminal or merchant showed as a changed
// decision ("decline 05 deny-bin" to "allow"), allow-listed cards lost their
// exemptions, and explain showed deny-bin not hit on a transaction it declined.
func TestBacktestAndExplainReadTheLists(t *testing.T) {
	rules := copyRules(t)
	f := startDemo(t, func(c *config.Config) { c.RulesDir = rules })
	pan := testPAN(7101)
	if out, code := f.cli(tokAnalyst, "rules", "lists", "add", "deny", "bin", pan[:6], "--note", "e2e"); code != 0 {
		t.Fatalf("lists add: %d %s", code, out)
	}
	tx := pos(1000)
	tx.PAN = pan
	r := f.send(tx)
	if r.RC != "05" || r.Reason != "deny-bin" {
		t.Fatalf("a purchase of a deny-listed BIN: %+v", r)
	}
	out, code := f.cli(tokAnalyst, "rules", "backtest", "--rules", rules, "--from", time.Now().Add(-time.Hour).Format(time.RFC3339),
		"--to", time.Now().Add(time.Minute).Format(time.RFC3339), "--format", "json", "--no-progress")
	var rep struct {
		Transactions   int `json:"transactions"`
		DeclinesBefore int `json:"declines_before"`
		DeclinesAfter  int `json:"declines_after"`
		Changed        int `json:"changed"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 {
		t.Fatalf("backtest: %d %v\n%s", code, err, out)
	}
	if rep.Transactions != 1 || rep.DeclinesBefore != 1 || rep.DeclinesAfter != 1 || rep.Changed != 0 {
		t.Errorf("backtest of the rules in force over a deny-listed BIN's decline: %+v, want 1 transaction declined before and after, none changed", rep)
	}
	out, code = f.cli(tokAnalyst, "rules", "explain", r.RRN, "--rules", rules)
	if code != 0 || !strings.Contains(out, "HIT  deny-bin") {
		t.Errorf("explain of a deny-listed BIN's decline: %d\n%s", code, out)
	}
}
