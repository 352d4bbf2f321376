// Package rating computes a merchant's risk rating, A (best) to E (worst), from what
// its transactions show, and the limits each rating allows. The policy (the score's
// weights, the score each grade allows, the limits per grade, how long a merchant
// must stay clean before it is upgraded) is a YAML file analysts edit and test like
// the rules: its test cases run with `switchyard rules test`.
//
// The score is a sum of points: each fact (Facts) times its weight. The grade is the
// first of A..E whose max_score the score does not pass. A computed grade worse than
// the current one applies at once; a better one only after the current grade has
// held for the policy's clean period, and one grade at a time. An analyst may pin a
// grade, with a reason, until a review date: the computed grade is still recorded.
//
// Book holds the current grades and their limits for the transaction path: one
// atomic pointer to an immutable map, read without a lock (Apply).
package rating

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/switchyard/switchyard/internal/boundfile"
	"github.com/switchyard/switchyard/risk"
)

// Grades from best to worst.
var Grades = []string{"A", "B", "C", "D", "E"}

func gradeIndex(g string) int {
	for i, x := range Grades {
		if x == g {
			return i
		}
	}
	return -1
}

// Worse reports whether grade a is worse than b.
func Worse(a, b string) bool { return gradeIndex(a) > gradeIndex(b) }

// Facts are what the journal and the registry say about a merchant over the
// policy's window.
type Facts struct {
	AgeDays      int     `json:"age_days" yaml:"age_days"`           // since the merchant was registered
	Transactions int     `json:"transactions" yaml:"transactions"`   // purchases, pre-authorizations and refunds answered
	Amount       int64   `json:"amount" yaml:"amount"`               // approved purchases, minor units
	DeclineRatio float64 `json:"decline_ratio" yaml:"decline_ratio"` // share of them declined (by anyone)
	RiskHitRatio float64 `json:"risk_hit_ratio" yaml:"risk_hit_ratio"`
	RefundRatio  float64 `json:"refund_ratio" yaml:"refund_ratio"` // approved refund amount / approved purchase amount
	NightShare   float64 `json:"night_share" yaml:"night_share"`   // share of transactions 23:00-05:00 local time
	CashOutHits  int     `json:"cash_out_alerts" yaml:"cash_out_alerts"`
	Incidents    int     `json:"incidents" yaml:"incidents"`
	Confirmed    int     `json:"confirmed_fraud" yaml:"confirmed_fraud"` // review cases confirmed as fraud
}

// Limits are the limits a grade allows, minor units; 0 leaves the registry's (or the
// tier's) limit as it is. A rating limit only ever lowers a limit.
type Limits struct {
	Single  int64 `json:"single,omitempty" yaml:"single"`
	Daily   int64 `json:"daily,omitempty" yaml:"daily"`
	Monthly int64 `json:"monthly,omitempty" yaml:"monthly"`
	SoftPOS int64 `json:"softpos,omitempty" yaml:"softpos"` // single limit on a SoftPOS terminal
}

// Weights are the points each fact adds to the score.
type Weights struct {
	// Young: points for a merchant registered today, falling linearly to 0 at
	// YoungDays.
	Young     float64 `yaml:"young"`
	YoungDays int     `yaml:"young_days"`
	// LowVolume: points when the window holds fewer than MinTransactions; the
	// ratios count only from MinTransactions on (a few declines are not a pattern).
	LowVolume       float64 `yaml:"low_volume"`
	MinTransactions int     `yaml:"min_transactions"`
	DeclineRatio    float64 `yaml:"decline_ratio"`  // per 1.0 of the ratio
	RiskHitRatio    float64 `yaml:"risk_hit_ratio"` // per 1.0
	RefundRatio     float64 `yaml:"refund_ratio"`   // per 1.0
	NightShare      float64 `yaml:"night_share"`    // per 1.0
	CashOutAlert    float64 `yaml:"cash_out_alert"` // per alert
	Incident        float64 `yaml:"incident"`       // per incident
	ConfirmedFraud  float64 `yaml:"confirmed_fraud"`
}

// GradePolicy is what one grade allows.
type GradePolicy struct {
	MaxScore float64 `yaml:"max_score"` // the highest score with this grade (ignored for E)
	Limits   Limits  `yaml:"limits"`
}

// Policy is the rating policy file.
type Policy struct {
	Owner       string                 `yaml:"owner"`
	WindowDays  int                    `yaml:"window_days"`        // how far back the facts look (default 30)
	CleanDays   int                    `yaml:"upgrade_after_days"` // a grade holds this long before an upgrade (default 14)
	PinDays     int                    `yaml:"pin_review_days"`    // a pin lapses for review after this (default 30)
	Weights     Weights                `yaml:"weights"`
	Grades      map[string]GradePolicy `yaml:"grades"`
	Tests       []PolicyTest           `yaml:"tests"`
	CashOutRule string                 `yaml:"cash_out_rules"` // rule ID prefix that counts as a cash-out alert (default "cashout-")

	file string
}

// PolicyTest is a test case of the policy file: facts and the grade they must get.
type PolicyTest struct {
	Name   string `yaml:"name"`
	Facts  Facts  `yaml:"facts"`
	Expect string `yaml:"expect"`
	Line   int    `yaml:"-"`
}

// ParsePolicy reads and checks a policy file; errors name the file and the key.
func ParsePolicy(data []byte, name string) (*Policy, error) {
	var p Policy
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var root yaml.Node
	if yaml.Unmarshal(data, &root) == nil {
		lineTests(&root, p.Tests)
	}
	p.file = name
	if p.WindowDays == 0 {
		p.WindowDays = 30
	}
	if p.CleanDays == 0 {
		p.CleanDays = 14
	}
	if p.PinDays == 0 {
		p.PinDays = 30
	}
	if p.CashOutRule == "" {
		p.CashOutRule = "cashout-"
	}
	if p.Weights.YoungDays == 0 {
		p.Weights.YoungDays = 90
	}
	var errs []string
	if p.WindowDays < 1 || p.WindowDays > 90 {
		errs = append(errs, fmt.Sprintf("window_days: %d: want 1 to 90", p.WindowDays))
	}
	if p.CleanDays < 0 || p.PinDays < 1 {
		errs = append(errs, "upgrade_after_days must be >= 0 and pin_review_days >= 1")
	}
	prev := math.Inf(-1)
	for _, g := range Grades {
		gp, ok := p.Grades[g]
		if !ok {
			errs = append(errs, fmt.Sprintf("grades.%s: missing (want A, B, C, D and E)", g))
			continue
		}
		if g != "E" && gp.MaxScore <= prev {
			errs = append(errs, fmt.Sprintf("grades.%s.max_score: %v: want more than the better grade's %v", g, gp.MaxScore, prev))
		}
		prev = gp.MaxScore
		l := gp.Limits
		if l.Single < 0 || l.Daily < 0 || l.Monthly < 0 || l.SoftPOS < 0 {
			errs = append(errs, fmt.Sprintf("grades.%s.limits: negative limit", g))
		}
	}
	for g := range p.Grades {
		if gradeIndex(g) < 0 {
			errs = append(errs, fmt.Sprintf("grades.%s: not a grade (want A to E)", g))
		}
	}
	for i, t := range p.Tests {
		if gradeIndex(t.Expect) < 0 {
			errs = append(errs, fmt.Sprintf("tests[%d] %q: expect %q: want A to E", i, t.Name, t.Expect))
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return nil, fmt.Errorf("%s: %s", name, strings.Join(errs, "; "))
	}
	return &p, nil
}

func lineTests(root *yaml.Node, tests []PolicyTest) {
	if len(root.Content) == 0 {
		return
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "tests" {
			for j, n := range m.Content[i+1].Content {
				if j < len(tests) {
					tests[j].Line = n.Line
				}
			}
		}
	}
}

// PolicyFile is where a rules directory keeps the rating policy.
func PolicyFile(rulesDir string) string { return filepath.Join(rulesDir, "rating", "policy.yaml") }

// MaxPolicySize is the largest policy file LoadPolicy reads (the default is about
// 10 KB), as for the rule files beside it.
const MaxPolicySize = 1 << 20

// LoadPolicy reads a policy file: a regular file (or a symlink to one) of at most
// MaxPolicySize bytes. A named pipe in its place would block the open until
// something wrote to it (rules check and test hung), a device would be read whole.
func LoadPolicy(path string) (*Policy, error) {
	b, err := boundfile.Read(path, MaxPolicySize)
	if err != nil {
		return nil, fmt.Errorf("rating policy: %w", err)
	}
	return ParsePolicy(b, path)
}

// Term is one fact's part of a score.
type Term struct {
	Fact   string  `json:"fact"`
	Value  float64 `json:"value"`
	Weight float64 `json:"weight"`
	Points float64 `json:"points"`
}

// Score is a computed score with the terms behind it.
type Score struct {
	Grade  string  `json:"grade"`
	Points float64 `json:"score"`
	Terms  []Term  `json:"terms"`
}

// Compute scores facts under the policy.
func (p *Policy) Compute(f Facts) Score {
	w := p.Weights
	var s Score
	add := func(name string, v, weight float64) {
		if v == 0 || weight == 0 {
			s.Terms = append(s.Terms, Term{Fact: name, Value: v, Weight: weight})
			return
		}
		pts := math.Round(v*weight*100) / 100
		s.Terms = append(s.Terms, Term{Fact: name, Value: v, Weight: weight, Points: pts})
		s.Points += pts
	}
	young := 0.0
	if w.YoungDays > 0 && f.AgeDays < w.YoungDays {
		young = 1 - float64(f.AgeDays)/float64(w.YoungDays)
	}
	add("young", math.Round(young*100)/100, w.Young)
	ratios := f.Transactions >= w.MinTransactions
	low := 0.0
	if !ratios {
		low = 1
	}
	add("low_volume", low, w.LowVolume)
	ratio := func(v float64) float64 {
		if !ratios {
			return 0
		}
		return math.Round(v*1000) / 1000
	}
	add("decline_ratio", ratio(f.DeclineRatio), w.DeclineRatio)
	add("risk_hit_ratio", ratio(f.RiskHitRatio), w.RiskHitRatio)
	add("refund_ratio", ratio(math.Min(f.RefundRatio, 1)), w.RefundRatio)
	add("night_share", ratio(f.NightShare), w.NightShare)
	add("cash_out_alerts", float64(f.CashOutHits), w.CashOutAlert)
	add("incidents", float64(f.Incidents), w.Incident)
	add("confirmed_fraud", float64(f.Confirmed), w.ConfirmedFraud)
	s.Points = math.Round(s.Points*100) / 100
	s.Grade = "E"
	for _, g := range Grades[:4] {
		if s.Points <= p.Grades[g].MaxScore {
			s.Grade = g
			break
		}
	}
	return s
}

// TestResult is the outcome of one policy test case.
type TestResult struct {
	Name    string
	Line    int
	Passed  bool
	Failure string
}

// RunTests runs the policy file's test cases.
func (p *Policy) RunTests() []TestResult {
	var out []TestResult
	for _, t := range p.Tests {
		s := p.Compute(t.Facts)
		r := TestResult{Name: t.Name, Line: t.Line, Passed: s.Grade == t.Expect}
		if !r.Passed {
			r.Failure = fmt.Sprintf("got grade %s (score %.2f), want %s", s.Grade, s.Points, t.Expect)
		}
		out = append(out, r)
	}
	return out
}

// File is the policy's file name.
func (p *Policy) File() string { return p.file }

// Pin is an analyst's pinned grade.
type Pin struct {
	Grade  string    `json:"grade"`
	Reason string    `json:"reason"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Until  time.Time `json:"review_by"` // the pin lapses then, for review
}

// State is a merchant's rating: the grade in force, since when, the last computed
// score and facts, and a pin.
type State struct {
	Merchant string    `json:"merchant"`
	Grade    string    `json:"grade"` // in force
	Since    time.Time `json:"since"` // when this grade took effect
	Computed Score     `json:"computed"`
	Facts    Facts     `json:"facts"`
	At       time.Time `json:"computed_at"`
	Pin      *Pin      `json:"pin,omitempty"`
	Limits   Limits    `json:"limits"` // those of Grade under the policy
	Why      string    `json:"why,omitempty"`
}

// Decide returns the state after a computation of s at now (prev nil for a merchant
// never rated) and whether the grade in force changed.
func (p *Policy) Decide(prev *State, merchant string, f Facts, now time.Time) (State, bool) {
	sc := p.Compute(f)
	n := State{Merchant: merchant, Computed: sc, Facts: f, At: now.UTC()}
	if prev != nil {
		n.Grade, n.Since, n.Pin = prev.Grade, prev.Since, prev.Pin
	}
	lapsed := ""
	if n.Pin != nil && !now.Before(n.Pin.Until) {
		lapsed = fmt.Sprintf("pin %s by %s lapsed for review on %s", n.Pin.Grade, n.Pin.By, n.Pin.Until.Format(time.DateOnly))
		n.Pin = nil
	}
	switch {
	case n.Pin != nil:
		n.Grade = n.Pin.Grade
		n.Why = "pinned by " + n.Pin.By + ": " + n.Pin.Reason
	case prev == nil || prev.Grade == "":
		n.Grade, n.Since, n.Why = sc.Grade, now.UTC(), "first rating"
	case Worse(sc.Grade, prev.Grade):
		n.Grade, n.Since, n.Why = sc.Grade, now.UTC(), fmt.Sprintf("downgraded at once: score %.2f", sc.Points)
	case Worse(prev.Grade, sc.Grade):
		if now.Sub(prev.Since) >= time.Duration(p.CleanDays)*24*time.Hour {
			up := Grades[gradeIndex(prev.Grade)-1]
			n.Grade, n.Since, n.Why = up, now.UTC(), fmt.Sprintf("upgraded one grade after %d clean days: score %.2f", p.CleanDays, sc.Points)
		} else {
			n.Why = fmt.Sprintf("computed %s, kept %s until %d clean days have passed (since %s)", sc.Grade, prev.Grade, p.CleanDays, prev.Since.Format(time.DateOnly))
		}
	default:
		n.Why = "unchanged"
	}
	if lapsed != "" {
		n.Why = lapsed + "; " + n.Why
	}
	n.Limits = p.Grades[n.Grade].Limits
	changed := prev == nil || prev.Grade != n.Grade
	return n, changed
}

// Book is the grades and limits in force, for the transaction path.
type Book struct {
	m atomic.Pointer[map[string]entry]
}

type entry struct {
	grade  string
	limits Limits
}

// Set replaces the book's content with states.
func (b *Book) Set(states []State) {
	m := make(map[string]entry, len(states))
	for _, s := range states {
		m[s.Merchant] = entry{s.Grade, s.Limits}
	}
	b.m.Store(&m)
}

// Put sets one merchant's grade (a copy of the map: changes are rare).
func (b *Book) Put(s State) {
	old := b.m.Load()
	m := make(map[string]entry, 1)
	if old != nil {
		m = make(map[string]entry, len(*old)+1)
		for k, v := range *old {
			m[k] = v
		}
	}
	m[s.Merchant] = entry{s.Grade, s.Limits}
	b.m.Store(&m)
}

// Grade returns a merchant's grade in force ("" when unrated).
func (b *Book) Grade(merchant string) string {
	if m := b.m.Load(); m != nil {
		return (*m)[merchant].grade
	}
	return ""
}

// Apply gives the rules a merchant's grade and lowers its limits to those of its
// grade (the SoftPOS limit to the single limit of a SoftPOS transaction). A merchant
// not rated keeps what the registry gave it. It takes no lock and allocates nothing.
func (b *Book) Apply(m *risk.Merchant, softpos bool) {
	p := b.m.Load()
	if p == nil {
		return
	}
	e, ok := (*p)[m.ID]
	if !ok {
		return
	}
	m.Rating = e.grade
	lower := func(cur *int, lim int64) {
		if lim > 0 && (*cur == 0 || int64(*cur) > lim) {
			*cur = int(lim)
		}
	}
	lower(&m.SingleLimit, e.limits.Single)
	if softpos {
		lower(&m.SingleLimit, e.limits.SoftPOS)
	}
	lower(&m.DailyLimit, e.limits.Daily)
	lower(&m.MonthlyLimit, e.limits.Monthly)
}

// ErrNotRated is returned for a merchant without a rating.
var ErrNotRated = errors.New("merchant not rated yet")
