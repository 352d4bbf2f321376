package pipeline

import (
	"fmt"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/journal"
)

// TestRuleErrorsJournaled: the rules that failed at run time on a transaction
// are in its journal record (rule_errors), as the rule hits are: an operator
// reading the journal sees that a rule failed for it (until the fifteenth release
// of 8 December 2026 only the metrics, the log and rules explain said so). A card
// number an error quotes never reaches the record, each error is bounded, and at
// most journal.MaxRuleErrors are kept, the last saying how many more failed. A
// transaction on which no rule failed journals none.
func TestRuleErrorsJournaled(t *testing.T) {
	h := newHarness(t, withRisk)
	errs := []risk.RuleError{
		{Rule: "quotes-device", Error: `strconv.Atoi: parsing "DEV4111111111111111` + strings.Repeat("x", 900) + `": invalid syntax`},
		{Rule: "divides", Error: "division by zero"},
	}
	h.risk.decide = func(*risk.Input) risk.Decision {
		return risk.Decision{Action: risk.ActionAllow, Version: "v1", Errors: errs}
	}
	rec := h.record(h.approved(1000).RRN)
	if len(rec.RuleErrors) != 2 || rec.RuleErrors[0].ID != "quotes-device" || rec.RuleErrors[1] != (journal.RuleError{ID: "divides", Error: "division by zero"}) {
		t.Fatalf("rule errors %+v: want quotes-device's and divides'", rec.RuleErrors)
	}
	if msg := rec.RuleErrors[0].Error; strings.Contains(msg, "4111111111111111") || !strings.Contains(msg, "DEV411111******1111") || len(msg) > risk.MaxRuleErrorText {
		t.Errorf("error of %d bytes %q: want the card number masked, at most %d bytes", len(msg), msg, risk.MaxRuleErrorText)
	}

	errs = nil
	for i := range journal.MaxRuleErrors + 4 {
		errs = append(errs, risk.RuleError{Rule: fmt.Sprintf("r%d", i), Error: "division by zero"})
	}
	rec = h.record(h.approved(1000).RRN)
	if n := len(rec.RuleErrors); n != journal.MaxRuleErrors || rec.RuleErrors[n-2].ID != fmt.Sprintf("r%d", n-2) ||
		!strings.HasPrefix(rec.RuleErrors[n-1].Error, "5 more rules failed") {
		t.Errorf("rule errors %+v: want the first %d and how many more failed", rec.RuleErrors, journal.MaxRuleErrors-1)
	}

	h.risk.decide = nil
	if rec = h.record(h.approved(1000).RRN); rec.RuleErrors != nil {
		t.Errorf("rule errors %+v of a transaction no rule failed on", rec.RuleErrors)
	}
}
