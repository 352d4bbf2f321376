package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/switch/cases"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/registry"
)

const reviewOdd = `rules:
  - {id: review-odd-amount, condition: "txn.amount == 123400", action: review, reason: odd-amount}
`

// TestReviewCase: a transaction that hits a review rule is approved and opens a case;
// an analyst assigns and decides it through the CLI as confirmed fraud; the card is
// then declined by the deny list, the merchant has an incident and the operation log
// has both steps.
func TestReviewCase(t *testing.T) {
	rules := copyRules(t)
	if err := os.WriteFile(filepath.Join(rules, "90-review.yaml"), []byte(reviewOdd), 0o644); err != nil {
		t.Fatal(err)
	}
	f := startDemo(t, func(c *config.Config) { c.RulesDir = rules })
	defer func() {
		if t.Failed() {
			t.Logf("switch log:\n%s", tail(f.logs.String(), 3000))
		}
	}()
	tx := pos(123400)
	tx.PAN = testPAN(7001)
	r := f.send(tx)
	if r.RC != "00" || r.RRN == "" {
		t.Fatalf("review lets the transaction through to the issuer: %+v", r)
	}

	out, code := f.cli(tokAnalyst, "case", "list", "--rrn", r.RRN, "--json")
	var list []cases.Case
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 {
		t.Fatalf("case list: %d %s", code, out)
	}
	c := list[0]
	if c.Status != cases.StatusOpen || c.Rule != "review-odd-amount" || c.TID != "T0000001" || c.Amount != 123400 ||
		c.PANMasked != tx.PAN[:6]+"******"+tx.PAN[len(tx.PAN)-4:] || c.CardHash == "" {
		t.Fatalf("case: %+v", c)
	}
	if strings.Contains(out, tx.PAN) {
		t.Fatal("the case holds the clear PAN")
	}
	out, code = f.cli(tokOperator, "case", "show", c.ID)
	if code != 0 || !strings.Contains(out, "HIT review-odd-amount") || !strings.Contains(out, "saw txn.amount=123400") {
		t.Fatalf("case show: %d %s", code, out)
	}

	// Deciding needs an assignment, and operators do neither.
	if out, code := f.cli(tokAnalyst, "case", "decide", c.ID, "--verdict", "confirmed-fraud"); code == 0 || !strings.Contains(out, "assign it first") {
		t.Fatalf("decide an open case: %d %s", code, out)
	}
	if out, code := f.cli(tokOperator, "case", "assign", c.ID); code == 0 || !strings.Contains(out, "403") {
		t.Fatalf("an operator assigns: %d %s", code, out)
	}
	if out, code := f.cli(tokAnalyst, "case", "assign", c.ID); code != 0 || !strings.Contains(out, "assigned to demo-analyst") {
		t.Fatalf("case assign: %d %s", code, out)
	}
	out, code = f.cli(tokAnalyst, "case", "decide", c.ID, "--verdict", "confirmed-fraud", "--note", "cardholder denies it")
	if code != 0 || !strings.Contains(out, "on the deny list") || !strings.Contains(out, "incident INC-") {
		t.Fatalf("case decide: %d %s", code, out)
	}
	if out, code := f.cli(tokAnalyst, "case", "decide", c.ID, "--verdict", "cleared"); code == 0 || !strings.Contains(out, "already decided") {
		t.Fatalf("deciding twice: %d %s", code, out)
	}

	// The card is now declined by the deny list.
	tx2 := pos(1000)
	tx2.PAN = tx.PAN
	if r := f.send(tx2); r.RC != "05" || r.Reason != "deny-card" {
		t.Fatalf("the confirmed card after the decision: %+v", r)
	}
	incs, err := f.s.Registry.Incidents(registry.IncidentFilter{Reason: registry.ReasonConfirmedFraud})
	if err != nil || len(incs) != 1 || incs[0].MerchantID != "000000000000001" || incs[0].Case != c.ID {
		t.Fatalf("merchant incident: %v %+v", err, incs)
	}
	ops, err := f.s.Registry.Oplog(registry.OplogFilter{Target: c.ID})
	if err != nil || len(ops) != 2 || ops[0].Action != "case.assign" || ops[1].Action != "case.decide" || ops[1].Actor != "demo-analyst" {
		t.Fatalf("oplog: %v %+v", err, ops)
	}
	resp, err := http.Get("http://" + f.s.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "switchyard_cases_open 0") || !strings.Contains(string(body), `switchyard_cases_decided_total{verdict="confirmed-fraud"} 1`) {
		t.Fatalf("metrics:\n%s", body)
	}
}
