package rating

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/risk"
)

func TestRepositoryPolicy(t *testing.T) {
	p, err := LoadPolicy("../../rules/rating/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Tests) == 0 {
		t.Fatal("the policy has no tests")
	}
	for _, r := range p.RunTests() {
		if !r.Passed {
			t.Errorf("%s (line %d): %s", r.Name, r.Line, r.Failure)
		}
	}
}

func TestParsePolicyErrors(t *testing.T) {
	for yamlText, want := range map[string]string{
		"grades: {A: {max_score: 1}}": "grades.B: missing",
		"bogus: 1":                    "field bogus not found",
		"grades: {A: {max_score: 5}, B: {max_score: 4}, C: {max_score: 9}, D: {max_score: 10}, E: {}}":       "grades.B.max_score",
		"grades: {A: {max_score: 1}, B: {max_score: 2}, C: {max_score: 3}, D: {max_score: 4}, E: {}, F: {}}": "grades.F",
	} {
		if _, err := ParsePolicy([]byte(yamlText), "p.yaml"); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "p.yaml") {
			t.Errorf("%s: err %v, want %q", yamlText, err, want)
		}
	}
}

func TestDecide(t *testing.T) {
	p, err := LoadPolicy("../../rules/rating/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	day := 24 * time.Hour
	t0 := time.Date(2026, 1, 10, 3, 30, 0, 0, time.UTC)
	clean := Facts{AgeDays: 400, Transactions: 900, DeclineRatio: 0.03}
	bad := Facts{AgeDays: 400, Transactions: 900, DeclineRatio: 0.7}
	s, changed := p.Decide(nil, "M", clean, t0)
	if !changed || s.Grade != "A" {
		t.Fatalf("first: %+v", s)
	}
	s, changed = p.Decide(&s, "M", bad, t0.Add(day))
	if !changed || s.Grade != "E" || s.Limits.Single != 50000 {
		t.Fatalf("downgrade at once: %+v", s)
	}
	// Clean again: kept E until 14 days, then one grade at a time.
	s2, changed := p.Decide(&s, "M", clean, t0.Add(5*day))
	if changed || s2.Grade != "E" || !strings.Contains(s2.Why, "clean days") {
		t.Fatalf("early upgrade: %+v", s2)
	}
	s3, changed := p.Decide(&s2, "M", clean, t0.Add(15*day))
	if !changed || s3.Grade != "D" {
		t.Fatalf("upgrade after the clean period: %+v", s3)
	}
	// A pin holds against the computation, and lapses at its review date.
	s3.Pin = &Pin{Grade: "B", Reason: "known seasonal refunds", By: "ana", At: t0, Until: t0.Add(40 * day)}
	s4, _ := p.Decide(&s3, "M", bad, t0.Add(16*day))
	if s4.Grade != "B" || s4.Computed.Grade != "E" {
		t.Fatalf("pinned: %+v", s4)
	}
	s5, _ := p.Decide(&s4, "M", bad, t0.Add(41*day))
	if s5.Pin != nil || s5.Grade != "E" || !strings.Contains(s5.Why, "lapsed") {
		t.Fatalf("lapsed pin: %+v", s5)
	}
}

func TestBookApply(t *testing.T) {
	var b Book
	m := risk.Merchant{ID: "M1", Rating: "B", SingleLimit: 300000, DailyLimit: 0}
	b.Apply(&m, false) // empty book: unchanged
	if m.Rating != "B" || m.SingleLimit != 300000 {
		t.Fatalf("empty book: %+v", m)
	}
	b.Set([]State{{Merchant: "M1", Grade: "E", Limits: Limits{Single: 50000, Daily: 500000, SoftPOS: 20000}}})
	b.Apply(&m, false)
	if m.Rating != "E" || m.SingleLimit != 50000 || m.DailyLimit != 500000 {
		t.Fatalf("E: %+v", m)
	}
	sp := risk.Merchant{ID: "M1", SingleLimit: 100000}
	b.Apply(&sp, true)
	if sp.SingleLimit != 20000 {
		t.Fatalf("E on SoftPOS: %+v", sp)
	}
	low := risk.Merchant{ID: "M1", SingleLimit: 10000}
	b.Apply(&low, false)
	if low.SingleLimit != 10000 {
		t.Fatalf("a rating never raises a limit: %+v", low)
	}
	if n := testing.AllocsPerRun(100, func() { b.Apply(&m, true) }); n != 0 {
		t.Fatalf("Apply allocates %v", n)
	}
}
