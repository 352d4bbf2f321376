package ruleset

import (
	"strings"
	"testing"
)

// TestRuleTestWhereFailsInHistory: a rule test whose history the rule's counter
// never counted because the counter's where failed at run time (division by zero)
// fails, saying so, instead of passing "expect: miss" on a count of 0; a counter the
// rule does not read failing is not the test's business.
func TestRuleTestWhereFailsInHistory(t *testing.T) {
	rs, err := Load(writeRules(t, map[string]string{"a.yaml": `
counters:
  - {name: c, dimension: card, window: 1h, where: "txn.amount / merchant.single_limit > 0"}
  - {name: other, dimension: card, window: 1h, where: "txn.amount / merchant.single_limit > 0"}
rules:
  - id: many
    condition: velocity.c > 3
    action: review
    tests:
      - {name: broken history, input: {txn: {card_hash: abc}, merchant: {single_limit: 0}}, history: [{repeat: 5}], expect: miss}
      - {name: good history, input: {txn: {amount: 500, card_hash: abc}, merchant: {single_limit: 10}}, history: [{repeat: 5}], expect: hit}
  - id: reads-other
    condition: velocity.other > 3 || txn.amount > 0
    action: alert
    tests:
      - {name: hit, input: {txn: {amount: 5}, merchant: {single_limit: 10}}, expect: hit}
  - id: unrelated
    condition: txn.amount > 100
    action: alert
    tests:
      - {name: unrelated, input: {txn: {amount: 5, card_hash: abc}, merchant: {single_limit: 0}}, history: [{repeat: 2}], expect: miss}
`}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]TestResult{}
	for _, r := range rs.RunTests() {
		got[r.Case] = r
	}
	if r := got["broken history"]; r.Passed || !strings.Contains(r.Failure, "history: the where filter failed at run time on 5 transaction(s)") || !strings.Contains(r.Failure, "counter c: division by zero") {
		t.Errorf("broken history: passed %v, failure %q", r.Passed, r.Failure)
	}
	for _, name := range []string{"good history", "hit", "unrelated"} {
		if r := got[name]; !r.Passed {
			t.Errorf("%s: %s", name, r.Failure)
		}
	}
}

// TestRuleTestDecisionRuleUnknown: a case whose decision names a rule the set does not
// have (a typo) is a load problem with file:line, not a run-time failure that reads as
// if the set decided otherwise; a thresholds id is a rule a decision can name.
func TestRuleTestDecisionRuleUnknown(t *testing.T) {
	files := map[string]string{"a.yaml": `
thresholds: {id: a-score, review: 10}
rules:
  - id: big
    condition: txn.amount > 100
    action: review
    score: 10
    tests:
      - {name: typo, input: {txn: {amount: 500}}, expect: hit, decision: {rule: bgi}}
`}
	_, err := Load(writeRules(t, files), LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), `a.yaml:9: rule big: test "typo": decision rule "bgi": no rule or thresholds of the set has that id`) {
		t.Errorf("a decision naming no rule: %v", err)
	}
	files["a.yaml"] = strings.Replace(files["a.yaml"], "rule: bgi", "rule: big", 1)
	if _, err := Load(writeRules(t, files), LoadOptions{}); err != nil {
		t.Errorf("a decision naming the rule: %v", err)
	}
	files["a.yaml"] = strings.Replace(files["a.yaml"], "rule: big", "rule: a-score", 1)
	if _, err := Load(writeRules(t, files), LoadOptions{}); err != nil {
		t.Errorf("a decision naming the thresholds: %v", err)
	}
}
