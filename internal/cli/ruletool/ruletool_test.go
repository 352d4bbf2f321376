package ruletool

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/listreview"
	"github.com/switchyard/switchyard/switch/registry"
)

const bigRound = `rules:
  - {id: big-round, condition: "txn.amount >= 500000 && txn.amount % 100000 == 0",
     action: decline, response_code: "05", reason: round-amount}
`

func run(t *testing.T, env ToolEnv, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, env, &out, &errb)
	return code, out.String(), errb.String()
}

func rulesDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCheck(t *testing.T) {
	code, out, _ := run(t, ToolEnv{}, "check", "../../../rules")
	if code != ExitOK || !strings.Contains(out, "OK: version") || strings.Contains(out, "warning: ") {
		t.Errorf("check of the default pack: %d\n%s", code, out)
	}
	bad := rulesDir(t, map[string]string{"a.yaml": "rules:\n  - {id: a, condition: \"txn.amount >= \", action: decline}\n  - {id: b, condition: \"txn.nope\", action: decline}\n"})
	code, out, _ = run(t, ToolEnv{}, "check", bad)
	if code != ExitProblems || !strings.Contains(out, "a.yaml:2:") || !strings.Contains(out, "a.yaml:3:") || !strings.Contains(out, "2 problem(s)") {
		t.Errorf("check of a bad dir: %d\n%s", code, out)
	}
	code, out, _ = run(t, ToolEnv{}, "check", bad, "--format", "json")
	var ans struct {
		OK       bool
		Problems []risk.Problem
	}
	if err := json.Unmarshal([]byte(out), &ans); err != nil || code != ExitProblems || ans.OK || len(ans.Problems) != 2 || ans.Problems[0].Line != 2 {
		t.Errorf("json check: %d %v %s", code, err, out)
	}
	// --json, as the other commands take it, is --format json; the later of the two wins.
	if _, js, _ := run(t, ToolEnv{}, "check", bad, "--json"); js != out {
		t.Errorf("check --json:\n%s\nwant (--format json):\n%s", js, out)
	}
	if _, text, _ := run(t, ToolEnv{}, "check", bad, "--json", "--format", "text"); strings.HasPrefix(text, "{") || !strings.Contains(text, "2 problem(s)") {
		t.Errorf("check --json --format text: want text\n%s", text)
	}
	warn := rulesDir(t, map[string]string{"a.yaml": bigRound})
	if code, out, _ := run(t, ToolEnv{}, "check", warn); code != ExitOK || !strings.Contains(out, "warning: ") || !strings.Contains(out, "has no tests") {
		t.Errorf("check with a warning: %d\n%s", code, out)
	}
	if code, _, _ := run(t, ToolEnv{}, "check", "--strict", warn); code != ExitProblems {
		t.Errorf("strict check with a warning: %d", code)
	}
	if code, _, errs := run(t, ToolEnv{}, "check"); code != ExitUsage || !strings.Contains(errs, "one rules directory") {
		t.Errorf("check without a dir: %d %s", code, errs)
	}
	// check counts the tests test runs: the rating policy's too (it said 154
	// where test ran 162), and a rating policy that does not load is a problem.
	_, out, _ = run(t, ToolEnv{}, "check", "../../../rules")
	_, tout, _ := run(t, ToolEnv{}, "test", "../../../rules", "--format", "json")
	var ran struct{ Passed, Failed int }
	if err := json.Unmarshal([]byte(tout), &ran); err != nil {
		t.Fatalf("test --format json: %v\n%s", err, tout)
	}
	if want := fmt.Sprintf(" %d test(s)", ran.Passed+ran.Failed); !strings.Contains(out, want) {
		t.Errorf("check counts other tests than test runs (%d):\n%s", ran.Passed+ran.Failed, out)
	}
	// A counter's on_error is checked like a rule's (file:line, what it takes).
	badOnError := rulesDir(t, map[string]string{"a.yaml": "counters:\n  - {name: c, dimension: card, window: 10m, where: \"txn.amount > 0\",\n     on_error: fail}\nrules:\n  - {id: a, condition: \"velocity.c > 1\", action: review}\n"})
	if code, out, _ := run(t, ToolEnv{}, "check", badOnError); code != ExitProblems || !strings.Contains(out, `a.yaml:3: counter c: on_error "fail": want miss`) {
		t.Errorf("check of a counter with on_error: fail: %d\n%s", code, out)
	}
	badRating := rulesDir(t, map[string]string{"a.yaml": "rules:\n  - {id: a, condition: \"txn.amount > 1\", action: decline}\n", "rating/policy.yaml": "weights: [\n"})
	if code, out, _ := run(t, ToolEnv{}, "check", badRating); code != ExitProblems || !strings.Contains(out, "policy.yaml") {
		t.Errorf("check with a broken rating policy: %d\n%s", code, out)
	}
}

func TestTest(t *testing.T) {
	code, out, _ := run(t, ToolEnv{}, "test", "../../../rules")
	if code != ExitOK || !strings.Contains(out, " passed, 0 failed\n") || strings.Contains(out, "FAIL") || strings.Contains(out, "without tests") {
		t.Errorf("test of the default pack: %d\n%s", code, out)
	}
	failing := rulesDir(t, map[string]string{"a.yaml": `rules:
  - id: big
    condition: txn.amount > 1000
    action: decline
    tests:
      - {name: should hit, input: {txn: {amount: 500}}, expect: hit}
      - {name: misses, input: {txn: {amount: 500}}, expect: miss}
`})
	code, out, _ = run(t, ToolEnv{}, "test", failing, "-v")
	if code != ExitProblems || !strings.Contains(out, "FAIL big / should hit (") || !strings.Contains(out, "txn.amount=500") ||
		!strings.Contains(out, "ok   big / misses") || !strings.Contains(out, "1 passed, 1 failed") {
		t.Errorf("failing test: %d\n%s", code, out)
	}
	code, out, _ = run(t, ToolEnv{}, "test", "../../../rules", "--run", "^softpos-limit$", "--format", "json")
	var ans struct{ Passed, Failed int }
	if err := json.Unmarshal([]byte(out), &ans); err != nil || code != ExitOK || ans.Passed != 4 || ans.Failed != 0 {
		t.Errorf("json test: %d %v %s", code, err, out)
	}

}

// TestTestNothingRan: a test run that ran no test fails (exit 1, saying why) rather
// than passing "0 passed, 0 failed": an empty directory, rules without tests, or a
// --run that matches nothing (a typo in a rule's id) proved nothing.
func TestTestNothingRan(t *testing.T) {
	for _, c := range []struct {
		name string
		dir  string
		args []string
		want string
	}{
		{"empty directory", t.TempDir(), nil, "has no rule tests"},
		{"rules without tests", rulesDir(t, map[string]string{"a.yaml": bigRound}), nil, "has no rule tests"},
		{"--run matches nothing", "../../../rules", []string{"--run", "^sofpos-limit$"}, `--run "^sofpos-limit$" matches no rule with tests`},
	} {
		code, out, _ := run(t, ToolEnv{}, append([]string{"test", c.dir}, c.args...)...)
		if code != ExitProblems || !strings.Contains(out, "0 passed, 0 failed") || !strings.Contains(out, "no test ran: ") || !strings.Contains(out, c.want) {
			t.Errorf("%s: %d, want %d and %q:\n%s", c.name, code, ExitProblems, c.want, out)
		}
		if code, _, _ := run(t, ToolEnv{}, append([]string{"test", c.dir, "--format", "json"}, c.args...)...); code != ExitProblems {
			t.Errorf("%s, --format json: %d, want %d", c.name, code, ExitProblems)
		}
	}
}

// memHistory is an in-memory journal: test data for the History interface.
type memHistory struct{ recs []risk.Record }

func (h *memHistory) Range(ctx context.Context, from, to time.Time, fn func(risk.Record) error) error {
	for _, r := range h.recs {
		if !r.Time.Before(from) && r.Time.Before(to) {
			if err := fn(r); err != nil {
				return err
			}
		}
	}
	return nil
}

func (h *memHistory) ByRRN(ctx context.Context, rrn string) (risk.Record, error) {
	for _, r := range h.recs {
		if r.RRN == rrn {
			return r, nil
		}
	}
	return risk.Record{}, fmt.Errorf("RRN %s: %w", rrn, risk.ErrNotFound)
}

// journal runs 600 purchases at the demo grocery through the default pack,
// one a minute from start; every 50th is a round 6,000.00.
func journal(t *testing.T, start time.Time) *memHistory {
	e, err := risk.New("../../../rules", risk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	h := &memHistory{}
	for i := 0; i < 600; i++ {
		var in risk.Input
		amount := 1234 + i*10
		if i%50 == 0 {
			amount = 600000
		}
		in.Txn = risk.Txn{MTI: "0200", ProcCode: "000000", Type: risk.TxnPurchase, Amount: amount, Currency: "156", BIN: "476173",
			CardHash: fmt.Sprintf("card%06d", i), RRN: fmt.Sprintf("%012d", i+1), Time: start.Add(time.Duration(i) * time.Minute)}
		in.Txn.SetEntryMode("051")
		in.Terminal = risk.Terminal{ID: "T0000001", Kind: "pos", Status: "active", Bound: true, AgeDays: 100}
		in.Merchant = risk.Merchant{ID: "000000000000001", MCC: "5411", Tier: "standard", Status: "active"}
		d := e.Evaluate(&in)
		out := risk.OutcomeOf(&d, "00")
		e.Observe(&in, out)
		h.recs = append(h.recs, risk.Record{Time: in.Txn.Time, RRN: in.Txn.RRN, Input: in, Outcome: out, Decision: d})
	}
	return h
}

func TestBacktestFormats(t *testing.T) {
	start := time.Date(2025, 6, 4, 0, 0, 0, 0, time.UTC)
	h := journal(t, start)
	cand := rulesDir(t, map[string]string{"a.yaml": bigRound})
	no := false
	env := ToolEnv{History: h, Location: time.UTC, Terminal: &no}
	args := []string{"backtest", "--rules", cand, "--from", "2025-06-04", "--to", "2025-06-05"}

	code, out, errs := run(t, env, args...)
	if code != ExitOK || !strings.Contains(out, "Reported: 600 transaction(s)") || !strings.Contains(out, "with these rules: 12 (72000.00 156)") || !strings.Contains(out, "6000.00 156") ||
		!strings.Contains(out, "Changed decisions (12)") || !strings.Contains(out, "decline 05 big-round") || !strings.Contains(errs, "backtest: 100%") {
		t.Errorf("table: %d\n%s\n%s", code, out, errs)
	}
	code, out, _ = run(t, env, append(args, "--format", "json", "--no-progress")...)
	var rep risk.BacktestReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != ExitOK {
		t.Fatalf("json: %d %v", code, err)
	}
	if rep.Transactions != 600 || rep.Changed != 12 || len(rep.Rules) != 1 || rep.Rules[0].Hits != 12 || rep.Rules[0].WouldDeclineAmount != 12*600000 {
		t.Errorf("json report %+v", rep)
	}
	code, out, _ = run(t, env, append(args, "--format", "csv", "--no-progress", "--changes", "5")...)
	parts := strings.Split(out, "\n\n")
	if code != ExitOK || len(parts) != 2 {
		t.Fatalf("csv: %d\n%s", code, out)
	}
	rules, err := csv.NewReader(strings.NewReader(parts[0])).ReadAll()
	if err != nil || len(rules) != 2 || rules[1][0] != "big-round" || rules[1][3] != "12" || rules[1][7] != "7200000" || rules[1][9] != "156:7200000" {
		t.Errorf("csv rules %v %v", rules, err)
	}
	changes, err := csv.NewReader(strings.NewReader(parts[1])).ReadAll()
	if err != nil || len(changes) != 6 || changes[1][10] != "decline" || changes[1][12] != "big-round" || changes[1][13] != "156" {
		t.Errorf("csv changes %v %v", changes, err)
	}
	// A terminal gets a redrawn bar.
	yes := true
	env.Terminal = &yes
	if _, _, errs := run(t, env, args...); !strings.Contains(errs, "\rbacktest [") || !strings.Contains(errs, "100%") {
		t.Errorf("progress bar: %q", errs)
	}
	// Usage errors.
	if code, _, errs := run(t, env, "backtest", "--rules", cand, "--from", "yesterday", "--to", "now"); code != ExitUsage || !strings.Contains(errs, `time "yesterday"`) {
		t.Errorf("bad time: %d %s", code, errs)
	}
	if code, _, errs := run(t, ToolEnv{}, args...); code != ExitProblems || !strings.Contains(errs, "no journal") {
		t.Errorf("no history: %d %s", code, errs)
	}
}

func TestExplainCommand(t *testing.T) {
	start := time.Date(2025, 6, 4, 0, 0, 0, 0, time.UTC)
	h := journal(t, start)
	env := ToolEnv{History: h, Location: time.UTC, RulesDir: "../../../rules"}
	code, out, errs := run(t, env, "explain", "000000000101")
	if code != ExitOK || !strings.Contains(out, "RRN 000000000101") || !strings.Contains(out, "the same version") ||
		!strings.Contains(out, "not hit: ") || !strings.Contains(out, "counters rebuilt from 100 earlier") {
		t.Errorf("explain: %d\n%s%s", code, out, errs)
	}
	cand := rulesDir(t, map[string]string{"a.yaml": bigRound})
	code, out, _ = run(t, env, "explain", "--rules", cand, "000000000101", "--all")
	if code != ExitOK || !strings.Contains(out, "DIFFERENT version") || !strings.Contains(out, "HIT  big-round") ||
		!strings.Contains(out, "saw txn.amount=600000") {
		t.Errorf("explain with a candidate: %d\n%s", code, out)
	}
	code, out, _ = run(t, env, "explain", "000000000101", "--format", "json")
	var ex risk.Explanation
	if err := json.Unmarshal([]byte(out), &ex); err != nil || code != ExitOK || ex.Record.RRN != "000000000101" {
		t.Errorf("json explain: %d %v", code, err)
	}
	if code, _, errs := run(t, env, "explain", "424242424242"); code != ExitProblems || !strings.Contains(errs, "no such transaction") {
		t.Errorf("unknown RRN: %d %s", code, errs)
	}
}

func TestListsCommands(t *testing.T) {
	lists, err := risk.NewLists(nil)
	if err != nil {
		t.Fatal(err)
	}
	auth, _ := admin.NewAuthenticator([]admin.Token{{Token: "t", Principal: admin.Principal{Name: "anna", Role: admin.RoleAnalyst}}})
	env := ToolEnv{Admin: &apiclient.Client{Handler: api.New(api.Options{Auth: auth, Lists: lists}), Token: "t"}, Location: time.UTC}
	if code, out, errs := run(t, env, "lists", "add", "deny", "bin", "476173", "--ttl", "7d", "--note", "test BIN"); code != ExitOK || !strings.Contains(out, "added deny/bin/476173 (expires") {
		t.Errorf("add: %d %s %s", code, out, errs)
	}
	if code, _, errs := run(t, env, "lists", "add", "deny", "card", "4761739001010119"); code != ExitProblems || !strings.Contains(errs, "never a PAN") {
		t.Errorf("add a PAN: %d %s", code, errs)
	}
	code, out, _ := run(t, env, "lists")
	if code != ExitOK || !strings.Contains(out, "deny  bin   476173") || !strings.Contains(out, "anna") || !strings.Contains(out, "1 entry") {
		t.Errorf("show: %d\n%s", code, out)
	}
	// --json, as the other commands take it, is --format json.
	_, asFormat, _ := run(t, env, "lists", "show", "--format", "json")
	var entries []risk.ListEntry
	if code, out, errs := run(t, env, "lists", "--json"); code != ExitOK || out != asFormat || json.Unmarshal([]byte(out), &entries) != nil || len(entries) != 1 {
		t.Errorf("lists --json: %d %s %s\nwant (--format json):\n%s", code, out, errs, asFormat)
	}
	// A deny-list removal is a change for review: refused where no registry runs.
	if code, _, errs := run(t, env, "lists", "remove", "deny", "bin", "476173"); code != ExitProblems || !strings.Contains(errs, "review") {
		t.Errorf("remove from deny without a registry: %d %s", code, errs)
	}
	if code, _, errs := run(t, env, "lists", "remove", "allow", "bin", "476173"); code != ExitProblems || !strings.Contains(errs, "404") {
		t.Errorf("remove an absent allow entry: %d %s", code, errs)
	}
	if _, err := lists.Add("anna", risk.ListEntry{List: "allow", Kind: "bin", Value: "476173"}); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := run(t, env, "lists", "remove", "allow", "bin", "476173"); code != ExitOK || !strings.Contains(out, "removed allow/bin/476173") {
		t.Errorf("remove from allow: %d %s", code, out)
	}
	code, out, _ = run(t, env, "lists", "audit")
	if code != ExitOK || strings.Count(out, "anna") != 3 || !strings.Contains(out, "remove") {
		t.Errorf("audit: %d\n%s", code, out)
	}
	if code, _, _ := run(t, ToolEnv{}, "lists"); code != ExitProblems {
		t.Errorf("lists without an admin API: %d", code)
	}
	if code, _, _ := run(t, env, "frobnicate"); code != ExitUsage {
		t.Errorf("unknown command: %d", code)
	}
}

// TestListsCommandsUnderReview: lists add of an allow entry says it is pending
// review and names the change a reviewer approves; lists remove of a deny entry
// likewise; the deny addition is made at once.
func TestListsCommandsUnderReview(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg, err := registry.New(db, nil, registry.Options{SeenFlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	lists, err := risk.NewLists(nil)
	if err != nil {
		t.Fatal(err)
	}
	auth, _ := admin.NewAuthenticator([]admin.Token{{Token: "t", Principal: admin.Principal{Name: "anna", Role: admin.RoleAnalyst}}})
	env := ToolEnv{Admin: &apiclient.Client{Handler: api.New(api.Options{Auth: auth, Registry: reg, Lists: lists,
		ListReview: listreview.New(reg, lists, listreview.Options{})}), Token: "t"}, Location: time.UTC}
	code, out, errs := run(t, env, "lists", "add", "allow", "card", "Zk3hC0lludingCardHash00", "--ttl", "30d", "--note", "VIP")
	if code != ExitOK || !strings.Contains(out, "allow/card/Zk3hC0lludingCardHash00 (expires") ||
		!strings.Contains(out, "pending review, change CHG-1") || !strings.Contains(out, "switchyard change approve CHG-1") {
		t.Errorf("add to allow: %d %s %s", code, out, errs)
	}
	if _, on := lists.Entry("allow", "card", "Zk3hC0lludingCardHash00"); on {
		t.Error("the allow entry took effect before its review")
	}
	if code, out, errs := run(t, env, "lists", "add", "deny", "bin", "476173"); code != ExitOK || !strings.Contains(out, "added deny/bin/476173") {
		t.Errorf("add to deny: %d %s %s", code, out, errs)
	}
	if code, out, errs := run(t, env, "lists", "remove", "deny", "bin", "476173"); code != ExitOK || !strings.Contains(out, "removal pending review, change CHG-2") {
		t.Errorf("remove from deny: %d %s %s", code, out, errs)
	}
}

// lists show, add and audit print their times as journal does, in the acquirer's zone
// with the offset (before: "2026-12-02 01:30" without a zone, RFC 3339, and
// "2026-12-02 01:30:00"); --json keeps the API's.
func TestListsTimesInTheAcquirersZone(t *testing.T) {
	sh, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	lists, err := risk.NewLists(nil)
	if err != nil {
		t.Fatal(err)
	}
	auth, _ := admin.NewAuthenticator([]admin.Token{{Token: "t", Principal: admin.Principal{Name: "anna", Role: admin.RoleAnalyst}}})
	env := ToolEnv{Admin: &apiclient.Client{Handler: api.New(api.Options{Auth: auth, Lists: lists}), Token: "t"}, Location: sh}
	local := `\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \+08:00`
	code, out, errs := run(t, env, "lists", "add", "deny", "bin", "476173", "--expires", "2099-12-01T17:30:00Z")
	if code != ExitOK || !strings.Contains(out, "added deny/bin/476173 (expires 2099-12-02 01:30:00.000 +08:00)") {
		t.Fatalf("add: %d %s %s", code, out, errs)
	}
	code, out, _ = run(t, env, "lists")
	if code != ExitOK || !regexp.MustCompile(`(?m)^deny +bin +476173 +2099-12-02 01:30:00\.000 \+08:00 +anna +`+local).MatchString(out) {
		t.Errorf("show:\n%s", out)
	}
	code, out, _ = run(t, env, "lists", "audit")
	if code != ExitOK || !regexp.MustCompile(`(?m)^`+local+` +anna +add +deny`).MatchString(out) {
		t.Errorf("audit:\n%s", out)
	}
	if _, out, _ := run(t, env, "lists", "--json"); !strings.Contains(out, `"2099-12-01T17:30:00Z"`) {
		t.Errorf("lists --json:\n%s", out)
	}
}

// TestExplainFallbackPack: without --rules, where the rules directory does not exist,
// explain re-evaluates with the fallback pack (the one built into the binary); a
// --rules directory that does not exist is still an error.
func TestExplainFallbackPack(t *testing.T) {
	h := journal(t, time.Date(2025, 6, 4, 0, 0, 0, 0, time.UTC))
	missing := filepath.Join(t.TempDir(), "rules")
	env := ToolEnv{History: h, Location: time.UTC, RulesDir: missing, Fallback: os.DirFS("../../../rules")}
	if code, out, errs := run(t, env, "explain", "000000000101"); code != ExitOK || !strings.Contains(out, "the same version") {
		t.Errorf("explain with the fallback pack: %d\n%s%s", code, out, errs)
	}
	env.Fallback = nil
	if code, _, errs := run(t, env, "explain", "000000000101"); code != ExitProblems || !strings.Contains(errs, missing) {
		t.Errorf("explain without rules: %d %s", code, errs)
	}
}

// Backtest dates are days of the acquirer's zone, as settlement's are: the flags say
// which zone, and the report's times carry its offset (issue 12, item 6).
func TestBacktestDatesInAcquirerZone(t *testing.T) {
	sh, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2025, 6, 4, 0, 0, 0, 0, sh)
	h := journal(t, start)
	cand := rulesDir(t, map[string]string{"a.yaml": bigRound})
	no := false
	env := ToolEnv{History: h, Location: sh, Terminal: &no}
	if _, _, errs := run(t, env, "backtest", "-h"); !strings.Contains(errs, "in Asia/Shanghai, the acquirer's zone") {
		t.Errorf("backtest -h does not say which zone a date is in:\n%s", errs)
	}
	code, out, errs := run(t, env, "backtest", "--rules", cand, "--from", "2025-06-04", "--to", "2025-06-05", "--no-progress")
	if code != ExitOK || !strings.Contains(out, "from 2025-06-04 00:00:00.000 +08:00 to 2025-06-05 00:00:00.000 +08:00") || !strings.Contains(out, "Reported: 600 transaction(s)") {
		t.Fatalf("backtest of a Shanghai day: %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "\n2025-06-04 00:50:00.000 +08:00  000000000051  T0000001") {
		t.Errorf("changed decisions' times not as journal shows them:\n%s", out)
	}
	// CSV keeps RFC 3339 for the spreadsheet, in the acquirer's zone.
	code, out, _ = run(t, env, "backtest", "--rules", cand, "--from", "2025-06-04", "--to", "2025-06-05", "--no-progress", "--format", "csv")
	if code != ExitOK || !strings.Contains(out, "\n2025-06-04T00:50:00+08:00,000000000051,") {
		t.Errorf("csv changes' times:\n%s", out)
	}
	// explain shows the transaction's time as journal does (before: "2025-06-04 00:50:00 CST").
	code, out, errs = run(t, env, "explain", "--rules", cand, "000000000051")
	if code != ExitOK || !strings.Contains(out, "RRN 000000000051 at 2025-06-04 00:50:00.000 +08:00: purchase") {
		t.Errorf("explain: %d\n%s%s", code, out, errs)
	}
}

// TestBacktestByLabel: when the journal's records carry the bench's labels, backtest
// reports per label the attempts, the candidate rules' declines and the rate, so that
// two packs can be compared on the same traffic.
func TestBacktestByLabel(t *testing.T) {
	start := time.Date(2025, 6, 4, 0, 0, 0, 0, time.UTC)
	h := journal(t, start)
	for i := range h.recs {
		switch {
		case h.recs[i].Input.Txn.Amount == 600000:
			h.recs[i].Label = "round-fraud"
		case i%3 == 0:
			h.recs[i].Label = "legitimate"
		}
	}
	strict := rulesDir(t, map[string]string{"a.yaml": bigRound})
	lax := rulesDir(t, map[string]string{"a.yaml": "rules:\n  - {id: nothing, condition: \"txn.amount < 0\", action: decline}\n"})
	no := false
	env := ToolEnv{History: h, Location: time.UTC, Terminal: &no}
	back := func(dir string) risk.BacktestReport {
		code, out, errs := run(t, env, "backtest", "--rules", dir, "--from", "2025-06-04", "--to", "2025-06-05", "--format", "json", "--no-progress")
		var rep risk.BacktestReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil || code != ExitOK {
			t.Fatalf("json: %d %v %s", code, err, errs)
		}
		return rep
	}
	byLabel := func(rep risk.BacktestReport) map[string]risk.LabelStats {
		m := map[string]risk.LabelStats{}
		for _, l := range rep.Labels {
			m[l.Label] = *l
		}
		return m
	}
	a, b := byLabel(back(strict)), byLabel(back(lax))
	if len(a) != 2 || a["round-fraud"].Attempts != 12 || a["round-fraud"].Declined != 12 || a["round-fraud"].Rate != 1 ||
		a["legitimate"].Declined != 0 || a["legitimate"].Attempts == 0 {
		t.Errorf("strict pack by label: %+v", a)
	}
	if b["round-fraud"].Declined != 0 || b["round-fraud"].Rate != 0 || b["round-fraud"].Attempts != 12 {
		t.Errorf("lax pack by label: %+v", b)
	}
	code, out, _ := run(t, env, "backtest", "--rules", strict, "--from", "2025-06-04", "--to", "2025-06-05", "--no-progress")
	if code != ExitOK || !strings.Contains(out, "By label") || !regexp.MustCompile(`round-fraud\s+12\s+0\s+12\s+100.00%`).MatchString(out) {
		t.Errorf("table:\n%s", out)
	}
	// Without labels there is no such table.
	for i := range h.recs {
		h.recs[i].Label = ""
	}
	if _, out, _ := run(t, env, "backtest", "--rules", strict, "--from", "2025-06-04", "--to", "2025-06-05", "--no-progress"); strings.Contains(out, "By label") {
		t.Errorf("a journal without labels gets a label table:\n%s", out)
	}
}

// TestBacktestRangeBackwards: --from at or after --to is a bad command line (exit 2)
// said in the acquirer's zone, not a backtest failure (exit 1) in UTC after the rules
// were compiled.
func TestBacktestRangeBackwards(t *testing.T) {
	sh, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	no := false
	env := ToolEnv{History: &memHistory{}, Location: sh, Terminal: &no}
	cand := rulesDir(t, map[string]string{"a.yaml": bigRound})
	for _, r := range [][2]string{{"2025-06-05", "2025-06-04"}, {"2025-06-04", "2025-06-04"}} {
		code, out, errs := run(t, env, "backtest", "--rules", cand, "--from", r[0], "--to", r[1], "--no-progress")
		if code != ExitUsage || out != "" || !strings.Contains(errs, "--to "+r[1]+" 00:00:00.000 +08:00 is not after --from "+r[0]+" 00:00:00.000 +08:00") {
			t.Errorf("--from %s --to %s: %d, want %d\n%s%s", r[0], r[1], code, ExitUsage, out, errs)
		}
	}
}

// TestParseTimeRelative: "24h" and "-24h" both mean a day ago, as in `journal --from`;
// "+1h" is ahead.
func TestParseTimeRelative(t *testing.T) {
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	tl := &tool{env: ToolEnv{Now: func() time.Time { return now }, Location: time.UTC}}
	for in, want := range map[string]time.Time{
		"24h": now.Add(-24 * time.Hour), "-24h": now.Add(-24 * time.Hour), "7d": now.Add(-7 * 24 * time.Hour),
		"+1h": now.Add(time.Hour), "now": now,
	} {
		if got, err := tl.parseTime(in); err != nil || !got.Equal(want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

// A backtest must not pass a rule that fails at run time off as one that never
// hits, and must not say "No decision would change" about a range it found nothing in.
func TestBacktestRunErrorsAndEmptyRange(t *testing.T) {
	start := time.Date(2025, 6, 4, 0, 0, 0, 0, time.UTC)
	h := journal(t, start)
	cand := rulesDir(t, map[string]string{"a.yaml": `
counters:
  - {name: odd, dimension: card, window: 1h, where: "txn.amount % (merchant.single_limit) == 1"}
rules:
  - {id: third-finding, condition: 'device.findings[2] == "root"', action: decline}
  - {id: odd-cards, condition: "velocity.odd > 3", action: decline}
`})
	no := false
	env := ToolEnv{History: h, Location: time.UTC, Terminal: &no}
	code, out, errs := run(t, env, "backtest", "--rules", cand, "--from", "2025-06-04", "--to", "2025-06-05", "--no-progress")
	for _, want := range []string{
		"Run-time errors: 1200 ",
		"third-finding: 600 transaction(s), first RRN 000000000001: index out of range",
		"counter odd: 600 transaction(s)",
	} {
		if code != ExitOK || !strings.Contains(out, want) {
			t.Errorf("backtest: %d, want %q in\n%s\n%s", code, want, out, errs)
		}
	}
	code, out, _ = run(t, env, "backtest", "--rules", cand, "--from", "2025-06-04", "--to", "2025-06-05", "--no-progress", "--format", "json")
	var rep risk.BacktestReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != ExitOK {
		t.Fatalf("json: %d %v", code, err)
	}
	if rep.RunErrors != 1200 || rep.Rules[0].Errors != 600 || rep.CounterErrors["counter odd"] != 600 {
		t.Errorf("json report: run errors %d, rules %+v, counters %v", rep.RunErrors, rep.Rules[0], rep.CounterErrors)
	}
	// A day with no traffic.
	code, out, _ = run(t, env, "backtest", "--rules", cand, "--from", "2024-01-01", "--to", "2024-01-02", "--no-progress")
	if code != ExitOK || !strings.Contains(out, "No transactions from 2024-01-01") || strings.Contains(out, "No decision would change") {
		t.Errorf("empty range: %d\n%s", code, out)
	}
}

// TestOutputEscapesControls: a terminal ID from the journal, a rule's reason from
// its file and a list entry's note (stored by an older version: the API refuses
// it now) carrying escape sequences (an OSC 52 clipboard write, a screen clear)
// print as visible escapes in explain, backtest, check and lists; --format json
// keeps the bytes (JSON escapes them). Before, all wrote the bytes, and the
// operator's terminal acted on them.
func TestOutputEscapesControls(t *testing.T) {
	const osc = "\x1b]52;c;eA==\a"
	e, err := risk.New("../../../rules", risk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var in risk.Input
	in.Txn = risk.Txn{MTI: "0200", ProcCode: "000000", Type: risk.TxnPurchase, Amount: 600000, Currency: "156", BIN: "476173",
		CardHash: "card000001", RRN: "000000000001", Time: time.Date(2025, 6, 4, 1, 0, 0, 0, time.UTC)}
	in.Txn.SetEntryMode("051")
	in.Terminal = risk.Terminal{ID: "T1" + osc, Kind: "pos", Status: "active", Bound: true, AgeDays: 100}
	in.Merchant = risk.Merchant{ID: "000000000000001", MCC: "5411", Tier: "standard", Status: "active"}
	d := e.Evaluate(&in)
	h := &memHistory{recs: []risk.Record{{Time: in.Txn.Time, RRN: in.Txn.RRN, Input: in, Outcome: risk.OutcomeOf(&d, "00"), Decision: d}}}
	cand := rulesDir(t, map[string]string{"a.yaml": bigRound})
	no := false
	env := ToolEnv{History: h, Location: time.UTC, Terminal: &no, RulesDir: "../../../rules"}
	raw := func(name, out string, want ...string) {
		t.Helper()
		if strings.ContainsAny(out, "\x1b\a") {
			t.Errorf("%s wrote raw control bytes:\n%q", name, out)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s lacks %q:\n%q", name, w, out)
			}
		}
	}
	code, out, errs := run(t, env, "explain", "--rules", cand, "000000000001", "--all")
	if code != ExitOK {
		t.Fatalf("explain: %d %s %s", code, out, errs)
	}
	raw("explain", out, `on terminal T1\x1b]52;c;eA==\x07 (pos)`)
	if _, out, _ := run(t, env, "explain", "--rules", cand, "000000000001", "--format", "json"); !strings.Contains(out, `T1\u001b]52;c;eA==\u0007`) {
		t.Errorf("explain --format json lost the bytes:\n%s", out)
	}
	code, out, errs = run(t, env, "backtest", "--rules", cand, "--from", "2025-06-04", "--to", "2025-06-05")
	if code != ExitOK {
		t.Fatalf("backtest: %d %s %s", code, out, errs)
	}
	raw("backtest", out, `T1\x1b]52;c;eA==\x07`)
	bad := rulesDir(t, map[string]string{"a.yaml": strings.Replace(bigRound, "txn.amount >= 500000", `txn.amount >= \"\e[2J\"`, 1)})
	_, out, _ = run(t, env, "check", bad)
	raw("check", out, `\x1b[2J`)

	lists, err := risk.NewLists(nil)
	if err != nil {
		t.Fatal(err)
	}
	auth, _ := admin.NewAuthenticator([]admin.Token{{Token: "t", Principal: admin.Principal{Name: "anna", Role: admin.RoleAnalyst}}})
	env = ToolEnv{Admin: &apiclient.Client{Handler: api.New(api.Options{Auth: auth, Lists: lists}), Token: "t"}, Location: time.UTC}
	// The API refuses such a note (since 6 December 2026), naming the code point
	// without writing the bytes; what an older version stored is added directly.
	if code, out, errs := run(t, env, "lists", "add", "deny", "bin", "476173", "--note", "from "+osc); code == ExitOK ||
		!strings.Contains(errs, "U+001B") || strings.ContainsAny(out+errs, "\x1b\a") {
		t.Fatalf("lists add with escape sequences in its note: %d %q %q, want refused naming U+001B", code, out, errs)
	}
	entry, err := risk.AddListEntry{List: "deny", Kind: "bin", Value: "476173", Note: "from " + osc}.Entry(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lists.Add("anna", entry); err != nil {
		t.Fatal(err)
	}
	_, out, _ = run(t, env, "lists")
	raw("lists", out, `from \x1b]52;c;eA==\x07`+"\n")
	_, out, _ = run(t, env, "lists", "audit")
	raw("lists audit", out, `from \x1b]52;c;eA==\x07`+"\n")
}

// TestListsHelp: "rules lists -h" shows the lists commands (show, add, remove,
// audit) and exits 0 without an admin API; it showed the flags of "lists show"
// alone, or, with no API configured, failed.
func TestListsHelp(t *testing.T) {
	for _, h := range []string{"-h", "--help", "help"} {
		code, out, errs := run(t, ToolEnv{}, "lists", h)
		if code != ExitOK || !strings.Contains(out, "lists add LIST KIND VALUE") || !strings.Contains(out, "lists audit") {
			t.Errorf("rules lists %s: exit %d\n%s%s", h, code, out, errs)
		}
	}
}

// TestCommandHelp: "rules COMMAND -h" starts with the command's synopsis and
// description from the rules usage, and the commands that read the journal or the
// lists say where (the admin API, or --data); it printed Go's "Usage of switchyard
// rules backtest:" and the flags alone, and an operator could not tell that backtest
// needs the running switch or a data directory.
func TestCommandHelp(t *testing.T) {
	for cmd, want := range map[string][]string{
		"check":      {"Usage: switchyard rules check DIR [--strict]", "compile and lint", "-strict"},
		"backtest":   {"Usage: switchyard rules backtest --rules DIR --from T --to T", "replay the journal", "--admin URL", "--data DIR", "-warmup"},
		"explain":    {"Usage: switchyard rules explain RRN", "--admin URL"},
		"lists add":  {"Usage: switchyard rules lists add LIST KIND VALUE", "-note"},
		"lists show": {"Usage: switchyard rules lists [show]", "-kind"},
	} {
		code, out, errs := run(t, ToolEnv{}, append(strings.Fields(cmd), "-h")...)
		all := out + errs
		for _, w := range want {
			if code != ExitOK || !strings.Contains(all, w) {
				t.Errorf("rules %s -h: exit %d, want %q in:\n%s", cmd, code, w, all)
			}
		}
		if strings.Contains(all, "Usage of") || (cmd == "check") != !strings.Contains(all, "--admin URL") {
			t.Errorf("rules %s -h:\n%s", cmd, all)
		}
	}
}

// TestAmountsByCurrency: a backtest's sums are shown per currency with its
// decimals, never added together: 3500 fen and 1000 yen are "35.00 156, 1000
// 392" (before, "45.00").
func TestAmountsByCurrency(t *testing.T) {
	if got := amounts(map[string]int64{"392": 1000, "156": 3500}); got != "35.00 156, 1000 392" {
		t.Errorf("amounts: %q", got)
	}
	if got := amounts(nil); got != "0.00" {
		t.Errorf("no amounts: %q", got)
	}
	if got := minorByCurrency(map[string]int64{"392": 1000, "156": 3500}); got != "156:3500 392:1000" {
		t.Errorf("CSV cell: %q", got)
	}
}

// TestUnknownFormat: a --format a command does not write is a bad command line (exit
// 2) naming the formats it does, not a text report with exit 0 that a script takes for
// the CSV or JSON it asked for.
func TestUnknownFormat(t *testing.T) {
	start := time.Date(2025, 6, 4, 0, 0, 0, 0, time.UTC)
	env := ToolEnv{History: journal(t, start), Location: time.UTC, RulesDir: "../../../rules", Admin: &apiclient.Client{}}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "../../../rules", "--format", "csv"}, `--format "csv": want text or json`},
		{[]string{"test", "../../../rules", "--format", "xml"}, `--format "xml": want text or json`},
		{[]string{"explain", "000000000101", "--format", "table"}, `--format "table": want text or json`},
		{[]string{"lists", "--format", "csv"}, `--format "csv": want table or json`},
		{[]string{"lists", "audit", "--format", "csv"}, `--format "csv": want table or json`},
	} {
		code, out, errs := run(t, env, c.args...)
		if code != ExitUsage || out != "" || !strings.Contains(errs, c.want) {
			t.Errorf("%v: %d, want %d and %q\n%s%s", c.args, code, ExitUsage, c.want, out, errs)
		}
	}
}
