package ruleset

import (
	"bytes"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/switchyard/switchyard/risk/state"
	"go.yaml.in/yaml/v3"
)

// DefaultTestTime is txn.time of a rule test that gives none:
// Wednesday 2025-06-04 06:00 UTC (14:00 in Asia/Shanghai).
var DefaultTestTime = time.Date(2025, 6, 4, 6, 0, 0, 0, time.UTC)

// ExpectDecision is what a rule test expects of the whole rule set's
// decision; empty fields are not checked.
type ExpectDecision struct {
	Action       string `yaml:"action" json:"action,omitempty"`               // decline, review, alert or allow
	ResponseCode string `yaml:"response_code" json:"response_code,omitempty"` // DE 39
	Reason       string `yaml:"reason" json:"reason,omitempty"`               // DE 48 RS
	Rule         string `yaml:"rule" json:"rule,omitempty"`                   // the deciding rule
}

// TestCase is one test of a rule: an input, optionally counter values or a
// history of earlier transactions, and whether the rule must hit.
type TestCase struct {
	Name     string         // shown in results
	Rule     string         // the rule under test
	File     string         // rule file
	Line     int            // line of the case
	Input    Input          // the transaction, test_base merged in
	Velocity map[string]int // counter values given by name
	History  []HistoryStep  // earlier transactions replayed first
	// Expect is "hit" or "miss".
	Expect   string
	Decision *ExpectDecision // optional expectation of the whole set's decision

	velocity map[int]int
}

// HistoryStep is a run of earlier transactions a test replays through the
// counters before its own input is evaluated.
type HistoryStep struct {
	Input   Input         // the transaction, the case's input merged in
	Outcome *Outcome      // nil: what the rules decide (declined with their code, else approved)
	Repeat  int           // how many copies
	Every   time.Duration // between copies
	Ago     time.Duration // the first copy this long before the case
	// VaryCard gives each repetition its own card hash (for distinct_cards).
	VaryCard bool
	// Retracts, when set (void, reversal or refund), makes each copy the void,
	// reversal or refund of the latest transaction observed before it and not yet
	// taken back: it is observed itself (its txn_type is Retracts) and then
	// retracts that one from the counters (Retraction, whole amount).
	Retracts string
}

// compileTests decodes the tests of pf's rules and attaches them to the rules.
func (c *compiler) compileTests(rs *RuleSet, pf *parsedFile) {
	base := deref(&pf.doc.TestBase)
	for i, rd := range pf.doc.Rules {
		r := rs.Rule(rd.ID)
		if r == nil {
			continue
		}
		ruleNode := item(pf.root, "rules", i)
		for j, td := range rd.Tests {
			node := item(ruleNode, "tests", j)
			tc := TestCase{Name: td.Name, Rule: r.ID, File: pf.name, Line: node.Line, Velocity: td.Velocity, Expect: td.Expect, Decision: td.Decision}
			if tc.Name == "" {
				tc.Name = fmt.Sprintf("case %d", j+1)
			}
			what := fmt.Sprintf("rule %s: test %q", r.ID, tc.Name)
			switch tc.Expect {
			case "hit", "miss":
			case "":
				c.errorf(pf.name, node.Line, "%s: expect missing (hit or miss)", what)
			default:
				c.errorf(pf.name, keyLine(node, "expect"), "%s: expect %q: want hit or miss", what, tc.Expect)
			}
			if d := tc.Decision; d != nil && d.Action != "" && Action(d.Action).Rank() == 0 {
				c.errorf(pf.name, keyLine(node, "decision"), "%s: decision action %q: want decline, review, alert or allow", what, d.Action)
			}
			if d := tc.Decision; d != nil && d.Rule != "" && !rs.decides(d.Rule) {
				// A typo would only fail at run time, as if the set decided otherwise.
				c.errorf(pf.name, keyLine(node, "decision"), "%s: decision rule %q: no rule or thresholds of the set has that id", what, d.Rule)
			}
			caseInput := mergeNodes(base, deref(&td.Input))
			in, err := decodeInput(caseInput)
			if err != nil {
				c.errorf(pf.name, keyLine(node, "input"), "%s: input: %v", what, err)
				continue
			}
			if in.Txn.Time.IsZero() {
				in.Txn.Time = DefaultTestTime
			}
			tc.Input = in
			tc.velocity = map[int]int{}
			for name, v := range td.Velocity {
				ctr := rs.counterByName[name]
				if ctr == nil {
					c.errorf(pf.name, keyLine(node, "velocity"), "%s: velocity: unknown counter %s", what, name)
					continue
				}
				tc.velocity[ctr.Index] = v
			}
			for k, hd := range td.History {
				hn := item(node, "history", k)
				step := HistoryStep{Outcome: hd.Outcome, Repeat: hd.Repeat, VaryCard: hd.VaryCard, Every: time.Second, Retracts: hd.Retracts}
				if step.Retracts != "" && retractBit(step.Retracts) == 0 {
					c.errorf(pf.name, hn.Line, "%s: history step %d: retracts %q: want void, reversal or refund", what, k+1, hd.Retracts)
				}
				hin, err := decodeInput(mergeNodes(caseInput, deref(&hd.Input)))
				if err != nil {
					c.errorf(pf.name, hn.Line, "%s: history step %d: input: %v", what, k+1, err)
					continue
				}
				step.Input = hin
				if step.Repeat == 0 {
					step.Repeat = 1
				}
				if step.Repeat < 0 || step.Repeat > 100000 {
					c.errorf(pf.name, hn.Line, "%s: history step %d: repeat %d: want 1 to 100000", what, k+1, hd.Repeat)
				}
				if hd.Every != "" {
					if step.Every, err = ParseWindow(hd.Every); err != nil {
						c.errorf(pf.name, hn.Line, "%s: history step %d: every %v", what, k+1, err)
					}
				}
				step.Ago = time.Duration(step.Repeat) * step.Every
				if hd.Ago != "" {
					if step.Ago, err = ParseWindow(hd.Ago); err != nil {
						c.errorf(pf.name, hn.Line, "%s: history step %d: ago %v", what, k+1, err)
					}
				}
				if o := step.Outcome; o != nil && o.ResponseCode == "" {
					o.ResponseCode = "00"
					if !o.Approved {
						o.ResponseCode = "05"
					}
				}
				tc.History = append(tc.History, step)
			}
			r.Tests = append(r.Tests, tc)
		}
	}
}

// decides reports whether id is that of a rule or thresholds of rs: what can be a
// decision's deciding rule.
func (rs *RuleSet) decides(id string) bool {
	if rs.Rule(id) != nil {
		return true
	}
	for _, t := range rs.Thresholds {
		if t != nil && t.ID == id {
			return true
		}
	}
	return false
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return deref(n.Content[0])
	}
	return n
}

// mergeNodes deep-merges mapping b over mapping a; anything else in b
// replaces a.
func mergeNodes(a, b *yaml.Node) *yaml.Node {
	a, b = deref(a), deref(b)
	if a == nil || a.Kind == 0 {
		return b
	}
	if b == nil || b.Kind == 0 {
		return a
	}
	if a.Kind != yaml.MappingNode || b.Kind != yaml.MappingNode {
		return b
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: b.Line, Column: b.Column}
	for i := 0; i+1 < len(a.Content); i += 2 {
		k, v := a.Content[i], a.Content[i+1]
		if bv := keyNode(b, k.Value); bv != nil {
			v = mergeNodes(v, bv)
		}
		out.Content = append(out.Content, k, v)
	}
	for i := 0; i+1 < len(b.Content); i += 2 {
		if keyNode(a, b.Content[i].Value) == nil {
			out.Content = append(out.Content, b.Content[i], b.Content[i+1])
		}
	}
	return out
}

var yamlLinePrefix = regexp.MustCompile(`line \d+: `)

var inputReflect = reflect.TypeFor[Input]()

// decodeInput decodes a test input mapping strictly (unknown names are errors;
// see strictyaml.go).
func decodeInput(n *yaml.Node) (Input, error) {
	var in Input
	if n == nil || n.Kind == 0 {
		return in, nil
	}
	if !reparseAlways && onlyKnownFields(n, inputReflect) {
		if err := n.Decode(&in); err == nil {
			return in, nil
		}
		in = Input{} // the strict way words the error
	}
	b, err := yaml.Marshal(n)
	if err != nil {
		return in, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&in); err != nil {
		msg := yamlLinePrefix.ReplaceAllString(err.Error(), "")
		msg = strings.NewReplacer("yaml: unmarshal errors:\n  ", "", "\n  ", "; ", "ruleset.", "", "state.", "").Replace(msg)
		return in, fmt.Errorf("%s", msg)
	}
	return in, nil
}

// TestResult is the outcome of one rule test.
type TestResult struct {
	Rule     string   `json:"rule"`              // the rule under test
	Case     string   `json:"case"`              // the case's name
	File     string   `json:"file"`              // rule file
	Line     int      `json:"line"`              // line of the case
	Passed   bool     `json:"passed"`            // whether every expectation held
	Failure  string   `json:"failure,omitempty"` // what did not, with the values the rule saw
	Decision Decision `json:"decision"`          // the whole set's decision
}

// RunTests runs every test of every rule, each on fresh in-memory counters.
func (rs *RuleSet) RunTests() []TestResult {
	var out []TestResult
	for _, r := range rs.Rules {
		for i := range r.Tests {
			out = append(out, rs.runTest(r, &r.Tests[i]))
		}
	}
	return out
}

func (rs *RuleSet) runTest(r *Rule, tc *TestCase) TestResult {
	res := TestResult{Rule: r.ID, Case: tc.Name, File: tc.File, Line: tc.Line}
	store := state.NewVelocity(nil, 0, 0)
	t0 := tc.Input.Txn.Time
	type observed struct {
		in  Input
		out Outcome
	}
	var done []observed // transactions observed and not taken back, for retracts
	// A where filter of a counter the rule reads that fails at run time on the
	// history leaves the transaction out of the count (as live, on_error: miss):
	// a test would pass "expect: miss" on a count its history never made.
	reads := r.velMask | r.scoreMask
	whereErrs, firstWhereErr := 0, ""
	noteWhere := func(errs []RuleError) {
		for _, e := range errs {
			if c := rs.counterByName[strings.TrimPrefix(e.Rule, "counter ")]; c != nil && reads&(1<<c.Index) != 0 {
				if whereErrs++; firstWhereErr == "" {
					firstWhereErr = e.Rule + ": " + e.Error
				}
			}
		}
	}
	for _, step := range tc.History {
		for i := 0; i < step.Repeat; i++ {
			in := step.Input
			in.Txn.Time = t0.Add(-step.Ago + time.Duration(i)*step.Every)
			if step.VaryCard {
				in.Txn.CardHash = fmt.Sprintf("%s-%d", in.Txn.CardHash, i)
			}
			if step.Retracts != "" {
				in.Txn.Type = step.Retracts
			}
			out := Outcome{Approved: true, ResponseCode: "00"}
			if step.Outcome != nil {
				out = *step.Outcome
			} else if d := rs.evaluate(&in, store, nil, &overrides{lists: true}); d.Declined() {
				out = Outcome{ResponseCode: d.ResponseCode, RiskDeclined: true}
			}
			noteWhere(rs.Observe(&in, out, store))
			if step.Retracts == "" {
				done = append(done, observed{in, out})
			} else if len(done) > 0 {
				o := done[len(done)-1]
				done = done[:len(done)-1]
				noteWhere(rs.Retract(&o.in, o.out, Retraction{Kind: step.Retracts}, store))
			}
		}
	}
	ov := &overrides{velocity: tc.velocity, lists: true}
	env, dbt := rs.prepare(&tc.Input, store, nil, ov)
	d := rs.decide(env, dbt)
	res.Decision = d
	var problems []string
	h, hit := d.Hit(r.ID)
	switch {
	case tc.Expect == "hit" && !hit:
		problems = append(problems, "expected the rule to hit, it did not")
	case tc.Expect == "miss" && hit:
		problems = append(problems, fmt.Sprintf("expected the rule not to hit, it hit (%s, %s)", h.Action, h.Reason))
	}
	for _, e := range d.Errors {
		if e.Rule == r.ID {
			problems = append(problems, "run-time error: "+e.Error)
		}
	}
	if whereErrs > 0 {
		problems = append(problems, fmt.Sprintf("history: the where filter failed at run time on %d transaction(s), left out of the count; first: %s", whereErrs, firstWhereErr))
	}
	if x := tc.Decision; x != nil {
		if x.Action != "" && string(d.Action) != x.Action {
			problems = append(problems, fmt.Sprintf("decision action %s, want %s", d.Action, x.Action))
		}
		if x.ResponseCode != "" && d.ResponseCode != x.ResponseCode {
			problems = append(problems, fmt.Sprintf("decision response code %q, want %q", d.ResponseCode, x.ResponseCode))
		}
		if x.Reason != "" && d.Reason != x.Reason {
			problems = append(problems, fmt.Sprintf("decision reason %q, want %q", d.Reason, x.Reason))
		}
		if x.Rule != "" && d.Rule != x.Rule {
			problems = append(problems, fmt.Sprintf("deciding rule %q, want %q", d.Rule, x.Rule))
		}
	}
	if len(problems) == 0 {
		res.Passed = true
		return res
	}
	var b strings.Builder
	b.WriteString(strings.Join(problems, "; "))
	b.WriteString("\n    values seen:")
	for _, v := range rs.RefValues(r, env) {
		fmt.Fprintf(&b, " %s=%s", v.Name, v.Text())
	}
	b.WriteString("\n    decision: ")
	b.WriteString(d.Summary())
	res.Failure = b.String()
	return res
}

// Summary is a one-line description of d.
func (d *Decision) Summary() string {
	var b strings.Builder
	b.WriteString(string(d.Action))
	if d.ResponseCode != "" {
		b.WriteString(" " + d.ResponseCode)
	}
	if d.Rule != "" {
		fmt.Fprintf(&b, " by %s (%s)", d.Rule, d.Reason)
	}
	if len(d.Hits) > 0 {
		hits := make([]string, 0, len(d.Hits))
		for _, h := range d.Hits {
			s := h.Rule
			if h.Mode == ModeShadow {
				s += "[shadow]"
			}
			hits = append(hits, s)
		}
		sort.Strings(hits)
		b.WriteString("; hits: " + strings.Join(hits, ", "))
	}
	return b.String()
}
