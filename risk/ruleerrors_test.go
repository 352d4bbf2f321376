package risk

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
)

// TestRuleErrorsByRuleAndLogged: run-time errors are counted by rule (the metric's
// rule label), and each failing rule gets one log line a minute naming it and its
// error, with a card number the error quotes (device.id is a terminal's free
// text) masked; a rule with on_error: review still reviews.
func TestRuleErrorsByRuleAndLogged(t *testing.T) {
	dir := writeRules(t, map[string]string{"a.yaml": `
rules:
  - {id: quotes-device, condition: "int(device.id) > 5", action: decline, reason: quotes-device}
  - {id: divides, condition: "txn.amount / merchant.single_limit > 2", action: decline, reason: divides, on_error: review}
  - {id: fine, condition: "txn.amount > 1000000", action: decline, reason: fine}
counters:
  - {name: bad_filter, dimension: terminal, window: 10m, where: "int(device.id) > 5"}
`})
	var buf bytes.Buffer
	e, err := New(dir, Options{Logger: zerolog.New(&buf)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	// Every rule and counter is listed from the load, at 0: an alert reading the
	// metric with increase() sees the first error.
	if got, want := e.RuleErrors(), map[string]int64{"quotes-device": 0, "divides": 0, "fine": 0, "counter bad_filter": 0}; !maps.Equal(got, want) {
		t.Errorf("errors by rule at load %v, want %v", got, want)
	}
	in := &Input{}
	in.Txn = Txn{MTI: "0200", ProcCode: "000000", Type: TxnPurchase, Amount: 5000, CardHash: "c0ffee", Time: time.Now().UTC()}
	in.Terminal = Terminal{ID: "T0000001", Kind: "pos", Status: "active"}
	in.Merchant = Merchant{ID: "000000000000001", Tier: "standard", Status: "active"}
	in.Device.ID = "4111111111111111 x"
	for range 5 {
		d := e.Evaluate(in)
		if d.Action != ActionReview || d.Rule != "divides" {
			t.Fatalf("decision %+v: want review by divides (on_error: review)", d)
		}
		e.Observe(in, Outcome{Approved: true, ResponseCode: "00"})
	}
	want := map[string]int64{"quotes-device": 5, "divides": 5, "fine": 0, "counter bad_filter": 5}
	if got := e.RuleErrors(); !maps.Equal(got, want) {
		t.Errorf("errors by rule %v, want %v", got, want)
	}
	if st := e.Stats(); st.RunErrors != 15 {
		t.Errorf("run errors %d, want 15", st.RunErrors)
	}
	if strings.Contains(buf.String(), "4111111111111111") {
		t.Errorf("a card number in the log:\n%s", buf.String())
	}
	lines := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		rule, _ := m["rule"].(string)
		if rule == "" {
			continue
		}
		lines[rule]++
		msg, _ := m["error"].(string)
		if m["level"] != "warn" || msg == "" {
			t.Errorf("log line %s: want a warning with the error", l)
		}
		if rule == "quotes-device" && !strings.Contains(msg, "411111******1111") {
			t.Errorf("quotes-device error %q: want the card number masked 6/4", msg)
		}
	}
	for k, n := range want {
		if n == 0 {
			continue
		}
		if lines[k] != 1 {
			t.Errorf("%d log lines for %s, want 1 (a minute's worth): %v", lines[k], k, lines)
		}
	}
}

// TestRuleErrorsListsReloadedRules: a rule a reload adds is listed at 0 from the
// reload, and a rule it removes keeps its count (a counter never goes back).
func TestRuleErrorsListsReloadedRules(t *testing.T) {
	dir := writeRules(t, map[string]string{"a.yaml": `
rules:
  - {id: quotes-device, condition: "int(device.id) > 5", action: decline, reason: quotes-device}
`})
	e, err := New(dir, Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	in := &Input{}
	in.Txn = Txn{MTI: "0200", ProcCode: "000000", Type: TxnPurchase, Amount: 5000, CardHash: "c0ffee", Time: time.Now().UTC()}
	in.Device.ID = "x"
	e.Evaluate(in)
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(`
rules:
  - {id: fine, condition: "txn.amount > 1000000", action: decline, reason: fine}
counters:
  - {name: per_terminal, dimension: terminal, window: 10m}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"quotes-device": 1, "fine": 0, "counter per_terminal": 0}
	if got := e.RuleErrors(); !maps.Equal(got, want) {
		t.Errorf("errors by rule after reload %v, want %v", got, want)
	}
}

// TestRuleErrorTextMaskedAndBounded: a run-time error that quotes a card number
// glued to letters (device.id is a terminal's free text, up to 999 bytes) comes
// out of Evaluate, and goes to the log, with the number masked (MaskField: until
// the fifteenth release of 8 December 2026 the log masked with MaskText, which
// leaves digits inside words) and cut to MaxRuleErrorText bytes: the pipeline
// journals the decision's errors as they are.
func TestRuleErrorTextMaskedAndBounded(t *testing.T) {
	dir := writeRules(t, map[string]string{"a.yaml": `
rules:
  - {id: quotes-device, condition: "int(device.id) > 5", action: decline, reason: quotes-device, on_error: review}
`})
	var buf bytes.Buffer
	e, err := New(dir, Options{Logger: zerolog.New(&buf)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	in := &Input{}
	in.Txn = Txn{MTI: "0200", ProcCode: "000000", Type: TxnPurchase, Amount: 5000, CardHash: "c0ffee", Time: time.Now().UTC()}
	in.Device.ID = "DEV4111111111111111" + strings.Repeat("é", 400)
	d := e.Evaluate(in)
	if d.Action != ActionReview || len(d.Errors) != 1 {
		t.Fatalf("decision %+v: want review by quotes-device's on_error, one error", d)
	}
	msg := d.Errors[0].Error
	if strings.Contains(msg, "4111111111111111") || !strings.Contains(msg, "DEV411111******1111") {
		t.Errorf("error %q: want the card number masked 6/4", msg)
	}
	if len(msg) > MaxRuleErrorText || !strings.HasSuffix(msg, "…") || !utf8.ValidString(msg) {
		t.Errorf("error of %d bytes %q: want at most %d, cut at a character with …", len(msg), msg, MaxRuleErrorText)
	}
	if strings.Contains(buf.String(), "4111111111111111") || !strings.Contains(buf.String(), "DEV411111******1111") {
		t.Errorf("log: want the card number masked:\n%s", buf.String())
	}
	if s := "division by zero"; RuleErrorText(s) != s {
		t.Errorf("RuleErrorText(%q) = %q, want it unchanged", s, RuleErrorText(s))
	}
}

// TestEvaluateWithoutErrorsAllocatesNoMore: the run-time errors cost only the
// decisions that have some: Engine.Evaluate of a transaction on which no rule
// fails allocates no more than the rule set's own Evaluate.
func TestEvaluateWithoutErrorsAllocatesNoMore(t *testing.T) {
	e, err := New("../rules", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	in := &benchInputs(1, time.Now())[0]
	if d := e.Evaluate(in); len(d.Errors) != 0 {
		t.Fatalf("errors %+v: want a transaction no rule fails on", d.Errors)
	}
	rs := e.rs.Load()
	own := testing.AllocsPerRun(200, func() { rs.Evaluate(in, e.store, e.lists) })
	got := testing.AllocsPerRun(200, func() { e.Evaluate(in) })
	t.Logf("allocs: engine %v, rule set %v", got, own)
	if got > own {
		t.Errorf("Engine.Evaluate allocates %v times, the rule set's Evaluate %v", got, own)
	}
}
