package ruleset

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeRules writes name -> content into a new directory and returns it.
func writeRules(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// The example of the issue must work as is.
const bigRound = `rules:
  - {id: big-round, condition: "txn.amount >= 500000 && txn.amount % 100000 == 0",
     action: decline, response_code: "05", reason: round-amount}
`

func purchase(amount int) *Input {
	in := &Input{}
	in.Txn = Txn{MTI: "0200", ProcCode: "000000", Type: TxnPurchase, Amount: amount, Currency: "156", BIN: "476173",
		CardHash: "c0ffee00c0ffee00c0ffee00", Time: time.Date(2025, 6, 4, 6, 0, 0, 0, time.UTC)}
	in.Terminal = Terminal{ID: "T0000001", Kind: "pos", Status: "active"}
	in.Merchant = Merchant{ID: "000000000000001", MCC: "5411", Tier: "standard", Status: "active"}
	return in
}

func TestExampleRuleAsIs(t *testing.T) {
	rs, err := Load(writeRules(t, map[string]string{"analyst.yaml": bigRound}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := rs.Rule("big-round")
	if r == nil || r.Mode != ModeEnforce || r.Action != ActionDecline || r.ResponseCode != "05" || r.Reason != "round-amount" || r.Score != 0 {
		t.Fatalf("big-round compiled to %+v", r)
	}
	for _, c := range []struct {
		amount int
		want   Action
	}{{500000, ActionDecline}, {600000, ActionDecline}, {499999 + 1, ActionDecline}, {550000, ActionAllow}, {400000, ActionAllow}} {
		d := rs.evaluate(purchase(c.amount), nil, nil, nil)
		if d.Action != c.want {
			t.Errorf("amount %d: %s, want %s", c.amount, d.Action, c.want)
		}
		if c.want == ActionDecline && (d.ResponseCode != "05" || d.Reason != "round-amount" || d.Rule != "big-round" || d.Version != rs.Version) {
			t.Errorf("amount %d: decision %+v", c.amount, d)
		}
	}
}

func TestDefaults(t *testing.T) {
	rs, err := Load(writeRules(t, map[string]string{"a.yaml": `
owner: team-a
rules:
  - {id: d, condition: "txn.amount > 10", action: decline}
  - {id: r, condition: "txn.amount > 10", action: review, owner: bob}
`}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d, r := rs.Rule("d"), rs.Rule("r")
	if d.ResponseCode != "05" || d.Reason != "d" || d.Mode != ModeEnforce || d.Owner != "team-a" || d.Line != 4 {
		t.Errorf("decline defaults: %+v", d)
	}
	if r.ResponseCode != "" || r.Reason != "r" || r.Owner != "bob" {
		t.Errorf("review defaults: %+v", r)
	}
	if rs.TimeZone != "UTC" {
		t.Errorf("time zone %s, want UTC by default", rs.TimeZone)
	}
}

// problems loads files that must fail and returns the problems as text.
func problems(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := writeRules(t, files)
	_, err := Load(dir, LoadOptions{})
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("Load: %v, want a *LoadError", err)
	}
	return strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), "")
}

func TestLoadErrorsNameFileAndLine(t *testing.T) {
	cases := []struct {
		name, file string
		want       []string
	}{
		{"unknown name", `rules:
  - {id: a, condition: "txn.amout > 5", action: decline}
`, []string{"x.yaml:2:", "rule a: condition: type txn has no field amout"}},
		{"wrong type", `rules:
  - id: a
    condition: txn.amount + "x" > 1
    action: decline
`, []string{"x.yaml:3:", "mismatched types int and string"}},
		{"not bool", `rules:
  - {id: a, condition: "txn.amount", action: decline}
`, []string{"x.yaml:2:", "expected bool"}},
		{"unknown counter", `counters:
  - {name: card_1h, dimension: card, window: 1h}
rules:
  - id: a
    condition: |
      txn.amount > 5 &&
        velocity.card_10m > 3
    action: decline
`, []string{"x.yaml:7:", "unknown counter velocity.card_10m (declared: card_1h)"}},
		{"card number in an id", `rules:
  - {id: "r4761739001010267", condition: "txn.amount > 1", action: decline}
`, []string{"x.yaml:2:", `rule id "r476173******0267": want letters, digits and _ . : - (at most 64), and no card number`}},
		{"card number as reason", `rules:
  - {id: a, condition: "txn.amount > 1", action: decline, reason: "4761739001010267"}
`, []string{"x.yaml:2:", `rule a: reason "476173******0267"`}},
		{"remainder by a constant zero", `rules:
  - id: a
    condition: txn.amount % (2 - 2) == 1
    action: decline
`, []string{"x.yaml:3:", "rule a: condition: division by zero: the right of % is a constant 0"}},
		{"division by a constant zero", `rules:
  - {id: a, condition: "txn.amount / -0.0 > 1", action: decline}
`, []string{"x.yaml:2:", "division by zero: the right of / is a constant 0"}},
		{"velocity by index", `counters:
  - {name: card_1h, dimension: card, window: 1h}
rules:
  - {id: a, condition: "velocity[0] > 3", action: decline}
`, []string{"x.yaml:4", "velocity is read as velocity.COUNTER"}},
		{"outcome in a rule", `rules:
  - {id: a, condition: "outcome.approved", action: decline}
`, []string{"x.yaml:2:", "outcome is only available in a counter's where filter"}},
		{"unknown counter in a where", `counters:
  - {name: c, dimension: card, window: 1h, where: "velocity.card_24h == 0"}
rules:
  - {id: a, condition: "velocity.c > 1", action: decline}
`, []string{"x.yaml:2", "counter c: where: unknown counter velocity.card_24h (declared: c)"}},
		{"a where reading velocity that retracts", `counters:
  - {name: n, dimension: card, window: 24h}
  - {name: c, dimension: acquirer, window: 10m, where: "outcome.approved && velocity.n == 0"}
rules:
  - {id: a, condition: "velocity.c > 1", action: alert}
`, []string{"x.yaml:3: counter c: a where filter that reads velocity cannot retract (void, reversal)", "give retract: []"}},
		{"lists in a where", `counters:
  - {name: c, dimension: card, window: 1h, where: "!lists.allow_card"}
rules:
  - {id: a, condition: "velocity.c > 1", action: decline}
`, []string{"x.yaml:2", "lists is not available in a counter's where filter"}},
		{"syntax", `rules:
  - {id: a, condition: "txn.amount >", action: decline}
`, []string{"x.yaml:2:", "rule a: condition:"}},
		{"bad action and mode", `rules:
  - id: a
    condition: "true"
    action: block
  - {id: b, condition: "true", action: review, mode: dry}
`, []string{`x.yaml:4: rule a: unknown action "block"`, `x.yaml:5: rule b: mode "dry"`}},
		{"missing fields", `rules:
  - {description: nothing}
`, []string{"x.yaml:2: rule #1: id missing", "action missing", "condition missing"}},
		{"duplicate id", `rules:
  - {id: a, condition: "true", action: alert}
  - {id: a, condition: "true", action: alert}
`, []string{"x.yaml:3: rule id a is used twice (first at"}},
		{"typo in a field", `rules:
  - id: a
    conditon: "true"
    action: alert
`, []string{"x.yaml:3: field conditon not found in type rule"}},
		{"yaml syntax", "rules:\n  - {id: a, condition: \"true\"\n", []string{"x.yaml:"}},
		{"response code on review", `rules:
  - {id: a, condition: "true", action: review, response_code: "05"}
`, []string{"x.yaml:2: rule a: response_code applies only to action decline"}},
		{"approve code on decline", `rules:
  - {id: a, condition: "true", action: decline, response_code: "00"}
`, []string{`response_code "00"`}},
		{"reason with spaces", `rules:
  - {id: a, condition: "true", action: decline, reason: "round amount"}
`, []string{`reason "round amount"`}},
		{"bad counter", `counters:
  - {name: c, dimension: pan, measure: avg, window: 3x}
rules:
  - {id: a, condition: "true", action: alert}
`, []string{`x.yaml:2: counter c: unknown dimension "pan"`, `unknown measure "avg"`, `window "3x"`}},
		{"bad thresholds", `thresholds: {review: 50, decline: 40}
rules:
  - {id: a, condition: "true", action: alert, score: 10}
`, []string{"x.yaml:1: thresholds: review (50) must be below decline (40)"}},
		{"bad time literal", `rules:
  - {id: a, condition: 'time_between(txn.local_time, "22:70", "06:00")', action: alert}
`, []string{`x.yaml:2:`, `"22:70" is not a time`}},
		{"bad test", `rules:
  - id: a
    condition: "true"
    action: alert
    tests:
      - {input: {txn: {amonut: 5}}, expect: hit}
      - {velocity: {nope: 1}, expect: hit}
      - {expect: maybe}
`, []string{"x.yaml:6: rule a: test \"case 1\": input: field amonut not found", "x.yaml:7: rule a: test \"case 2\": velocity: unknown counter nope", `x.yaml:8: rule a: test "case 3": expect "maybe"`}},
		{"two time zones", "timezone: Asia/Shanghai\nrules: []\n", []string{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "two time zones" {
				got := problems(t, map[string]string{"a.yaml": c.file, "b.yaml": "timezone: Europe/Paris\nrules: []\n"})
				if !strings.Contains(got, `b.yaml:1: timezone "Europe/Paris" differs from "Asia/Shanghai"`) {
					t.Errorf("got:\n%s", got)
				}
				return
			}
			got := problems(t, map[string]string{"x.yaml": c.file})
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("problems do not contain %q:\n%s", w, got)
				}
			}
		})
	}
}

func TestPrecedenceShadowAndTieBreak(t *testing.T) {
	dir := writeRules(t, map[string]string{
		"a.yaml": `rules:
  - {id: allow-all, condition: "true", action: allow}
  - {id: alert-big, condition: "txn.amount > 100", action: alert}
  - {id: review-big, condition: "txn.amount > 1000", action: review}
  - {id: shadow-decline, condition: "txn.amount > 100", action: decline, response_code: "59", mode: shadow}
  - {id: decline-huge, condition: "txn.amount > 10000", action: decline, response_code: "61", reason: huge}
`,
		"b.yaml": `rules:
  - {id: decline-huge-too, condition: "txn.amount > 10000", action: decline, response_code: "05"}
`})
	rs, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		amount         int
		action         Action
		rule, code     string
		hits           int
		shadowRecorded bool
	}{
		{50, ActionAllow, "allow-all", "", 1, false},
		{500, ActionAlert, "alert-big", "", 3, true},
		{5000, ActionReview, "review-big", "", 4, true},
		{50000, ActionDecline, "decline-huge", "61", 6, true},
	}
	for _, c := range cases {
		d := rs.evaluate(purchase(c.amount), nil, nil, nil)
		if d.Action != c.action || d.Rule != c.rule || d.ResponseCode != c.code || len(d.Hits) != c.hits {
			t.Errorf("amount %d: %s", c.amount, d.Summary())
		}
		h, ok := d.Hit("shadow-decline")
		if ok != c.shadowRecorded || (ok && (h.Mode != ModeShadow || h.Reason != "shadow-decline")) {
			t.Errorf("amount %d: shadow hit %v %+v", c.amount, ok, h)
		}
	}
}

func TestThresholdsAndScoreExpressions(t *testing.T) {
	rs, err := Load(writeRules(t, map[string]string{"s.yaml": `
thresholds: {review: 30, decline: 50, response_code: "59", reason: too-risky}
rules:
  - {id: a, condition: "txn.amount > 100", action: alert, score: 20}
  - {id: b, condition: "txn.manual", action: alert, score: "txn.amount > 1000 ? 40 : 10"}
  - {id: c, condition: "txn.chip", action: alert, score: 100, mode: shadow}
`, "t.yaml": `
thresholds: {id: other, review: 10, mode: shadow}
rules:
  - {id: d, condition: "txn.amount > 100", action: allow, score: 15}
`}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in := purchase(500)
	in.Txn.Manual = true
	d := rs.evaluate(in, nil, nil, nil) // a 20 + b 10 = 30: review
	if d.Action != ActionReview || d.Rule != "score:s" || d.Score != 45 {
		t.Errorf("score 30: %s score %d", d.Summary(), d.Score)
	}
	if h, _ := d.Hit("other"); h.Mode != ModeShadow || h.Action != ActionReview || h.Score != 15 {
		t.Errorf("shadow threshold: %+v", h)
	}
	in.Txn.Amount = 5000 // a 20 + b 40 = 60: decline
	d = rs.evaluate(in, nil, nil, nil)
	if d.Action != ActionDecline || d.ResponseCode != "59" || d.Reason != "too-risky" || d.Rule != "score:s" {
		t.Errorf("score 60: %s", d.Summary())
	}
	in = purchase(500)
	in.Txn.Chip = true // a 20 enforced; with shadow c 120: a shadow decline only
	d = rs.evaluate(in, nil, nil, nil)
	if d.Action != ActionAlert {
		t.Errorf("shadow score acted: %s", d.Summary())
	}
	if h, ok := d.Hit("score:s"); !ok || h.Mode != ModeShadow || h.Action != ActionDecline || h.Score != 120 {
		t.Errorf("shadow score hit: %+v %v", h, ok)
	}
}

// A file's sum of scores saturates instead of wrapping around: a huge score (a
// constant, or an expression of the amount) and another must still cross the
// decline threshold, enforced or shadow, and the decision's score stays the
// largest int rather than turning negative.
func TestScoreSumSaturates(t *testing.T) {
	rs, err := Load(writeRules(t, map[string]string{"s.yaml": `
thresholds: {decline: 60}
rules:
  - {id: a, condition: "txn.amount > 100", action: alert, score: 9223372036854775800}
  - {id: b, condition: "txn.amount > 100", action: alert, score: 70}
`, "t.yaml": `
thresholds: {decline: 60}
rules:
  - {id: c, condition: "txn.amount > 100", action: alert, score: "txn.amount * 46116860184273879", mode: shadow}
  - {id: d, condition: "txn.amount > 100", action: alert, score: 70, mode: shadow}
`}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d := rs.evaluate(purchase(200), nil, nil, nil)
	if d.Action != ActionDecline || d.Rule != "score:s" || d.Score != math.MaxInt {
		t.Errorf("enforced: %s score %d, want decline by score:s at %d", d.Summary(), d.Score, math.MaxInt)
	}
	if h, ok := d.Hit("score:s"); !ok || h.Score != math.MaxInt {
		t.Errorf("score:s hit %+v %v", h, ok)
	}
	if h, ok := d.Hit("score:t"); !ok || h.Mode != ModeShadow || h.Action != ActionDecline || h.Score != math.MaxInt {
		t.Errorf("shadow score:t hit %+v %v, want a shadow decline", h, ok)
	}
}

func TestLocalTimeAndHelpers(t *testing.T) {
	rs, err := Load(writeRules(t, map[string]string{"a.yaml": `
timezone: Asia/Shanghai
rules:
  - {id: night, condition: 'time_between(txn.local_time, "22:30", "06:00")', action: alert}
  - {id: sunday, condition: 'txn.weekday == 0 && hour_between(txn.local_hour, 9, 12)', action: alert}
  - {id: far, condition: 'geo_distance(binding.lat, binding.lon, terminal.lat, terminal.lon) > 1000000', action: alert}
  - {id: under, condition: 'just_under(txn.amount, 100000, 5)', action: alert}
  - {id: listed, condition: 'in_list("watch", "terminal", terminal.id)', action: alert}
`}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in := purchase(96000)
	in.Txn.Time = time.Date(2025, 6, 7, 14, 45, 0, 0, time.UTC) // Saturday 22:45 in Beijing
	in.Binding.Lat, in.Binding.Lon = 31.2304, 121.4737          // Shanghai
	in.Terminal.Lat, in.Terminal.Lon = 39.9042, 116.4074        // Beijing, 1,067 km
	d := rs.evaluate(in, nil, nil, nil)
	for _, id := range []string{"night", "far", "under"} {
		if _, ok := d.Hit(id); !ok {
			t.Errorf("%s did not hit: %s", id, d.Summary())
		}
	}
	for _, id := range []string{"sunday", "listed"} {
		if _, ok := d.Hit(id); ok {
			t.Errorf("%s hit: %s", id, d.Summary())
		}
	}
	in.Txn.Time = time.Date(2025, 6, 8, 2, 0, 0, 0, time.UTC) // Sunday 10:00 in Beijing
	d = rs.evaluate(in, nil, nil, nil)
	if _, ok := d.Hit("sunday"); !ok {
		t.Errorf("sunday did not hit: %s", d.Summary())
	}
	if _, ok := d.Hit("night"); ok {
		t.Errorf("night hit at 10:00: %s", d.Summary())
	}
	if g := GeoDistance(39.9042, 116.4074, 31.2304, 121.4737); g < 1060000 || g > 1075000 {
		t.Errorf("Beijing-Shanghai %f m", g)
	}
}

func TestVersionIsContentHash(t *testing.T) {
	a := Version([]SourceFile{{Name: "x/a.yaml", Data: []byte(bigRound)}})
	b := Version([]SourceFile{{Name: "y/a.yaml", Data: []byte(bigRound)}})
	c := Version([]SourceFile{{Name: "x/a.yaml", Data: []byte(bigRound + "\n")}})
	d := Version([]SourceFile{{Name: "x/b.yaml", Data: []byte(bigRound)}})
	if a != b || a == c || a == d || len(a) != 16 {
		t.Errorf("versions %s %s %s %s", a, b, c, d)
	}
}

func TestRuleFileSelection(t *testing.T) {
	dir := writeRules(t, map[string]string{
		"b.yaml":      "rules:\n  - {id: b, condition: \"true\", action: alert}\n",
		"a.yml":       "rules:\n  - {id: a, condition: \"true\", action: alert}\n",
		".a.yaml.swp": "garbage", "c.yaml~": "garbage", "notes.txt": "garbage", "#d.yaml": "garbage",
	})
	rs, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Rules) != 2 || rs.Rules[0].ID != "a" || rs.Rules[1].ID != "b" {
		t.Errorf("rules %v", rs.Rules)
	}
	if _, err := Load(filepath.Join(dir, "missing"), LoadOptions{}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing dir: %v", err)
	}
}

func TestSetEntryModeAndTxnType(t *testing.T) {
	var x Txn
	x.SetEntryMode("071")
	if !x.Contactless || !x.PINPresent || x.Chip {
		t.Errorf("071: %+v", x)
	}
	x.SetEntryMode("052")
	if !x.Chip || x.PINPresent || x.Contactless {
		t.Errorf("052: %+v", x)
	}
	x.SetEntryMode("012")
	if !x.Manual {
		t.Errorf("012: %+v", x)
	}
	for _, c := range [][3]string{{"0200", "000000", TxnPurchase}, {"0200", "020000", TxnVoid}, {"0200", "200000", TxnRefund},
		{"0200", "310000", TxnBalance}, {"0200", "312000", TxnBalance}, {"0200", "300000", TxnBalance}, {"0100", "000000", TxnPreauth}, {"0400", "000000", TxnReversal}, {"0800", "", ""}} {
		if got := TxnTypeOf(c[0], c[1]); got != c[2] {
			t.Errorf("TxnTypeOf(%s, %s) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}

func writeFileBytes(dir, name string, b []byte) error {
	return os.WriteFile(filepath.Join(dir, name), b, 0o644)
}

// Errors inside folded, literal and plain expressions point at the line and
// column of the file, and a typo in a key does not hide them.
func TestExpressionErrorColumns(t *testing.T) {
	got := problems(t, map[string]string{"x.yaml": `rules:
  - id: a
    condition: >-
      txn.amount > 5 &&
      txn.amout < 7
    action: alert
  - id: b
    condition: |
      txn.amount > 5 &&
        txn.amout < 7
    action: alert
  - id: c
    condition: txn.amount > 5 && txn.amout < 7
    action: alert
    tests:
      - {name: over 5,000.00, expect: hit}
`})
	for _, want := range []string{"x.yaml:5:11: rule a:", "x.yaml:10:13: rule b:", "x.yaml:13:38: rule c:",
		"x.yaml:16: field 000.00 not found in type test (inside { }, a comma ends a value"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems do not contain %q:\n%s", want, got)
		}
	}
}
