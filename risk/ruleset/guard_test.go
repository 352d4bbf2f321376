package ruleset

import (
	"strings"
	"testing"
)

// A division by zero is a run-time error (the rule counts as not hit and the
// decision lists it), as docs/rules.md says: not +Inf, which compares greater than
// any limit and would decline every transaction of a merchant whose limit is 0
// ("none set").
func TestDivisionByZeroIsARunError(t *testing.T) {
	rs, err := Load(writeRules(t, map[string]string{"a.yaml": `
rules:
  - {id: ratio-int, condition: "txn.amount / merchant.single_limit > 2", action: decline}
  - {id: ratio-float, condition: "txn.amount / merchant.profile.daily_avg > 2.5", action: decline}
  - {id: ratio-float-int, condition: "merchant.profile.daily_avg / velocity.c > 1", action: decline}
  - {id: zero-by-zero, condition: "!(merchant.single_limit / merchant.daily_limit < 1)", action: decline}
counters:
  - {name: c, dimension: card, window: 1h}
`}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in := purchase(5000) // single_limit, daily_limit and the profile are 0
	d := rs.evaluate(in, nil, nil, nil)
	if d.Action != ActionAllow || len(d.Hits) != 0 {
		t.Errorf("a division by zero hit: %+v", d)
	}
	if len(d.Errors) != 4 {
		t.Fatalf("errors %+v, want one per rule", d.Errors)
	}
	for _, e := range d.Errors {
		if !strings.Contains(e.Error, "division by zero") {
			t.Errorf("rule %s: error %q does not say division by zero", e.Rule, e.Error)
		}
	}
	// Divisions that are not by zero keep their meaning: / gives a float.
	in.Merchant.SingleLimit, in.Merchant.DailyLimit, in.Merchant.Profile.DailyAvg = 2000, 4000, 1000
	d = rs.evaluate(in, nil, nil, nil)
	if _, ok := d.Hit("ratio-int"); !ok { // 5000/2000 = 2.5 > 2
		t.Errorf("5000/2000 > 2 did not hit: %+v", d)
	}
	if _, ok := d.Hit("ratio-float"); !ok { // 5000/1000.0 = 5 > 2.5
		t.Errorf("5000/1000.0 > 2.5 did not hit: %+v", d)
	}
	if _, ok := d.Hit("zero-by-zero"); ok { // 2000/4000 = 0.5 < 1
		t.Errorf("2000/4000 < 1 negated hit: %+v", d)
	}
}

// A score expression that divides by zero, or gives a negative score, must not lower
// the file's summed score under its thresholds (a negative score would let other
// hits through): the rule's hit scores 0 and the decision lists the error.
func TestScoreExpressionGuards(t *testing.T) {
	rs, err := Load(writeRules(t, map[string]string{"a.yaml": `
thresholds: {decline: 50}
rules:
  - {id: base, condition: "txn.amount > 0", action: alert, score: 60}
  - {id: ratio, condition: "txn.amount > 0", action: alert, score: "txn.amount / merchant.single_limit"}
  - {id: negative, condition: "txn.amount > 0", action: alert, score: "10 - txn.amount"}
`}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d := rs.evaluate(purchase(5000), nil, nil, nil)
	if d.Action != ActionDecline || d.Rule != "score:a" || d.Score != 60 {
		t.Errorf("decision %+v, want the threshold's decline with score 60", d)
	}
	var got []string
	for _, e := range d.Errors {
		got = append(got, e.Rule+": "+e.Error)
	}
	want := []string{"ratio: score: division by zero", "negative: score: -4990 is negative"}
	if len(got) != len(want) {
		t.Fatalf("errors %q, want %q", got, want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("error %q, want it to begin %q", got[i], want[i])
		}
	}
}

// Counter windows and resolutions that make no sense are refused with the line of
// the key, the value and what would do: a window that wraps around int64 (it loaded
// as some other window), under the 1 s resolution, over a year, or more buckets
// than a read in the authorization path should sum.
func TestCounterWindowLimits(t *testing.T) {
	counter := func(spec string) map[string]string {
		return map[string]string{"a.yaml": "counters:\n  - name: c\n    dimension: card\n" + spec +
			"rules:\n  - {id: r, condition: \"velocity.c > 5\", action: decline}\n"}
	}
	for _, c := range []struct{ spec, want string }{
		{"    window: 200000000d\n", `a.yaml:4: counter c: window "200000000d": too long`},
		{"    window: 9999999999w\n", `a.yaml:4: counter c: window "9999999999w": too long`},
		{"    window: 10ms\n", "a.yaml:4: counter c: window 10ms is shorter than 1s"},
		{"    window: 1000000h\n", "a.yaml:4: counter c: window 1000000h is longer than 366d"},
		{"    window: 400d\n", "a.yaml:4: counter c: window 400d is longer than 366d"},
		{"    window: 1h\n    resolution: 500ms\n", "a.yaml:5: counter c: resolution 500ms is shorter than 1s"},
		{"    window: 1h\n    resolution: 2h\n", "a.yaml:5: counter c: resolution 2h is longer than the window 1h"},
		{"    window: 30d\n    resolution: 1s\n", "a.yaml:5: counter c: window 30d at resolution 1s is 2592000 buckets, more than 10000: use a resolution of at least 4m20s"},
	} {
		got := problems(t, counter(c.spec))
		if !strings.Contains(got, c.want) {
			t.Errorf("%q:\n%s\nwant %q", c.spec, got, c.want)
		}
		// The rule reading the refused counter is not told that it does not exist.
		if strings.Contains(got, "unknown counter") || !strings.Contains(got, "velocity.c is declared with a problem") {
			t.Errorf("%q: the rule's problem is misleading:\n%s", c.spec, got)
		}
	}
	// The limits themselves load.
	for _, spec := range []string{"    window: 1s\n", "    window: 366d\n", "    window: 30d\n    resolution: 260s\n", "    window: 52w\n"} {
		if _, err := Load(writeRules(t, counter(spec)), LoadOptions{}); err != nil {
			t.Errorf("%q: %v", spec, err)
		}
	}
}

// A condition that reads nothing of the transaction is caught at load: an enforced
// decline that is always true would decline all traffic, so it is refused; always
// false, or always true with another action or in shadow mode, is a warning. A decline
// or review rule whose tests all expect a hit is warned about: such tests pass for
// "txn.amount >= 0" too.
func TestConstantConditionsAndOneSidedTests(t *testing.T) {
	got := problems(t, map[string]string{"a.yaml": `
rules:
  - {id: t1, condition: "true", action: decline}
  - {id: t2, condition: "txn.amount > 5 || true", action: decline}
  - {id: t3, condition: "1 == 1 && 2 > 1", action: decline}
`})
	for _, want := range []string{
		`a.yaml:3: rule t1: condition "true" is always true: the rule would decline every transaction`,
		`a.yaml:4: rule t2: condition "txn.amount > 5 || true" is always true`,
		`a.yaml:5: rule t3: condition "1 == 1 && 2 > 1" is always true`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems:\n%s\nwant %q", got, want)
		}
	}
	rs, err := Load(writeRules(t, map[string]string{"a.yaml": `
rules:
  - {id: w1, condition: "false", action: decline, tests: [{expect: miss}]}
  - {id: w2, condition: "true", action: decline, mode: shadow, tests: [{expect: hit}, {expect: miss}]}
  - {id: w3, condition: "len([1, 2]) > 1", action: alert, tests: [{expect: hit}]}
  - {id: w4, condition: "txn.amount >= 0", action: decline, tests: [{expect: hit}, {input: {txn: {amount: 9}}, expect: hit}]}
  - {id: ok1, condition: 'in_list("watch", "merchant", merchant.id)', action: review, tests: [{expect: miss}]}
  - {id: ok2, condition: "let t = txn; t.amount > 5", action: decline, tests: [{expect: miss}]}
`}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var warnings []string
	for _, w := range rs.Warnings {
		warnings = append(warnings, w.String())
	}
	all := strings.Join(warnings, "\n")
	for _, want := range []string{
		`a.yaml:3: rule w1: condition "false" is always false: the rule never hits`,
		`a.yaml:4: rule w2: condition "true" is always true: the rule hits every transaction`,
		`a.yaml:5: rule w3: condition "len([1, 2]) > 1" is always true`,
		`a.yaml:6: rule w4: no test expects a miss`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings:\n%s\nwant %q", all, want)
		}
	}
	if strings.Contains(all, "ok1") || strings.Contains(all, "ok2") || len(warnings) != 4 {
		t.Errorf("warnings:\n%s\nwant exactly the four above", all)
	}
}

// A condition that reads nothing of the transaction and fails when run fails on
// every transaction: with on_error decline it declined every purchase, and
// `rules check --strict` said OK. It is refused whatever its on_error and mode.
// A condition that reads the input through $env is not constant.
func TestConstantConditionThatFailsRefused(t *testing.T) {
	got := problems(t, map[string]string{"a.yaml": `
rules:
  - {id: f1, condition: 'int("abc") > 0', action: decline, on_error: decline}
  - {id: f2, condition: 'int("abc") > 0', action: alert, mode: shadow}
  - {id: f3, condition: '[1, 2][5] == 1', action: review, on_error: review}
  - {id: ok, condition: '$env.txn.amount / $env.merchant.single_limit > 2', action: review, tests: [{expect: miss}]}
`})
	for _, want := range []string{
		`a.yaml:3: rule f1: condition "int(\"abc\") > 0" reads nothing of the transaction and fails on every transaction: invalid operation: int(abc)` + "\n",
		`a.yaml:4: rule f2: condition "int(\"abc\") > 0" reads nothing of the transaction and fails on every transaction: invalid operation: int(abc)` + "\n",
		`a.yaml:5: rule f3: condition "[1, 2][5] == 1" reads nothing of the transaction and fails on every transaction: index out of range`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems:\n%s\nwant %q", got, want)
		}
	}
	if strings.Contains(got, "rule ok") {
		t.Errorf("problems:\n%s\nwant none for rule ok", got)
	}
}
