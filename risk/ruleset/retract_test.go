package ruleset

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/risk/state"
)

// Counters keyed by the merchant's group, the BIN and the region count across the
// terminals and merchants that share the value; the card alone counts across every
// merchant and terminal.
func TestNewDimensions(t *testing.T) {
	rs, err := Load(writeRules(t, map[string]string{"d.yaml": `
counters:
  - {name: group_n, dimension: merchant_group, window: 10m}
  - {name: bin_n, dimension: bin, window: 10m}
  - {name: region_n, dimension: region, window: 10m}
  - {name: card_n, dimension: card, window: 10m}
  - {name: bin_group_n, dimension: [bin, merchant_group], window: 10m}
rules:
  - {id: r, condition: "velocity.group_n + velocity.bin_n + velocity.region_n + velocity.card_n + velocity.bin_group_n >= 0", action: alert}
`}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	store := state.NewVelocity(nil, 0, 0)
	ok := Outcome{Approved: true, ResponseCode: "00"}
	mk := func(tid, mid, group, region, bin, card string) *Input {
		in := purchase(100)
		in.Terminal.ID, in.Merchant.ID, in.Merchant.Group, in.Terminal.Region, in.Txn.BIN, in.Txn.CardHash = tid, mid, group, region, bin, card
		return in
	}
	rs.Observe(mk("T0000001", "000000000000001", "CHAIN-1", "CN-BJ", "476173", "c1"), ok, store)
	rs.Observe(mk("T0000002", "000000000000002", "CHAIN-1", "CN-SH", "476173", "c1"), ok, store)
	rs.Observe(mk("T0000003", "000000000000003", "", "CN-BJ", "622202", "c1"), ok, store)
	probe := mk("T0000009", "000000000000009", "CHAIN-1", "CN-BJ", "476173", "c1")
	env := rs.Prepare(probe, store, nil)
	want := map[string]int{"group_n": 2, "bin_n": 2, "region_n": 2, "card_n": 3, "bin_group_n": 2}
	for name, w := range want {
		if got := env.Velocity[rs.counterByName[name].Index]; got != w {
			t.Errorf("velocity.%s = %d, want %d", name, got, w)
		}
	}
	// A merchant without a group is in no group counter (not in one group of all
	// ungrouped merchants).
	env = rs.Prepare(mk("T0000003", "000000000000003", "", "CN-BJ", "622202", "c9"), store, nil)
	if got := env.Velocity[rs.counterByName["group_n"].Index]; got != 0 {
		t.Errorf("ungrouped merchant: group_n = %d, want 0", got)
	}
}

func TestDimensionAndRetractProblems(t *testing.T) {
	for _, c := range []struct{ counter, want string }{
		{`{name: x, dimension: chain, window: 10m}`, `d.yaml:2: counter x: unknown dimension "chain" (want card, terminal, merchant, device, merchant_group, bin, region or acquirer)`},
		{`{name: x, dimension: terminal, window: 10m, retract: [void, cancel]}`, `d.yaml:2: counter x: retract: unknown kind "cancel" (want void, reversal or refund)`},
		{`{name: x, dimension: terminal, window: 10m, retract: [void, void]}`, `counter x: retract: void given twice`},
		{`{name: x, dimension: terminal, measure: distinct_cards, window: 10m, retract: void}`, `counter x: retract: a distinct_cards counter cannot retract`},
		{`{name: x, dimension: terminal, window: 10m, retract: {void: true}}`, `counter x: retract: want a list of void, reversal and refund`},
	} {
		got := problems(t, map[string]string{"d.yaml": "counters:\n  - " + c.counter + "\nrules:\n  - {id: r, condition: \"velocity.x > 0\", action: alert}\n"})
		if !strings.Contains(got, c.want) {
			t.Errorf("%s:\n got %s\nwant %s", c.counter, got, c.want)
		}
	}
}

func TestRetractDefaults(t *testing.T) {
	rs, err := Load(writeRules(t, map[string]string{"d.yaml": `
counters:
  - {name: approved_n, dimension: terminal, window: 10m, where: 'outcome.approved && txn.txn_type == "purchase"'}
  - {name: approved_sum, dimension: terminal, measure: sum, window: 10m, where: 'txn.txn_type == "purchase" and outcome.approved'}
  - {name: attempts, dimension: terminal, window: 10m, where: 'txn.txn_type == "purchase"'}
  - {name: declined, dimension: terminal, window: 10m, where: '!outcome.approved'}
  - {name: either, dimension: terminal, window: 10m, where: 'outcome.approved || txn.amount > 5'}
  - {name: cards, dimension: terminal, measure: distinct_cards, window: 10m, where: 'outcome.approved'}
  - {name: refunds_too, dimension: terminal, measure: sum, window: 10m, where: 'outcome.approved', retract: [void, reversal, refund]}
  - {name: none, dimension: terminal, window: 10m, where: 'outcome.approved', retract: []}
rules:
  - {id: r, condition: "velocity.approved_n + velocity.approved_sum + velocity.attempts + velocity.declined + velocity.either + velocity.cards + velocity.refunds_too + velocity.none >= 0", action: alert}
`}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"approved_n": "void,reversal", "approved_sum": "void,reversal", "attempts": "", "declined": "",
		"either": "", "cards": "", "refunds_too": "void,reversal,refund", "none": ""}
	for name, w := range want {
		if got := strings.Join(rs.counterByName[name].Retract, ","); got != w {
			t.Errorf("counter %s retracts %q, want %q", name, got, w)
		}
	}
	if !rs.Retracts(RetractRefund) || !rs.Retracts(RetractVoid) {
		t.Error("Retracts")
	}
}

// A void, a reversal or a refund takes its original back out of the counters that
// retract it, once; nothing goes below zero; partial refunds take amounts off sums
// and leave counts; an original outside the window is not touched.
func TestRetract(t *testing.T) {
	rs, err := Load(writeRules(t, map[string]string{"d.yaml": `
counters:
  - {name: n, dimension: terminal, window: 10m, where: 'outcome.approved && txn.txn_type == "purchase"'}
  - {name: sum, dimension: terminal, measure: sum, window: 10m, where: 'outcome.approved && txn.txn_type == "purchase"', retract: [void, reversal, refund]}
  - {name: attempts, dimension: terminal, window: 10m}
  - {name: group_sum, dimension: merchant_group, measure: sum, window: 10m, where: 'outcome.approved'}
rules:
  - {id: r, condition: "velocity.n + velocity.sum + velocity.attempts + velocity.group_sum >= 0", action: alert}
`}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	store := state.NewVelocity(nil, 0, 0)
	ok := Outcome{Approved: true, ResponseCode: "00"}
	a := purchase(1000)
	a.Merchant.Group = "CHAIN-1"
	b := purchase(3000)
	b.Merchant.Group = "CHAIN-1"
	b.Txn.Time = a.Txn.Time.Add(time.Minute)
	rs.Observe(a, ok, store)
	rs.Observe(b, ok, store)
	read := func() map[string]int {
		probe := purchase(1)
		probe.Merchant.Group = "CHAIN-1"
		probe.Txn.Time = a.Txn.Time.Add(5 * time.Minute)
		env := rs.Prepare(probe, store, nil)
		out := map[string]int{}
		for _, c := range rs.Counters {
			out[c.Name] = env.Velocity[c.Index]
		}
		return out
	}
	check := func(what string, want map[string]int) {
		t.Helper()
		got := read()
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s: velocity.%s = %d, want %d (all: %v)", what, k, got[k], w, got)
			}
		}
	}
	check("observed", map[string]int{"n": 2, "sum": 4000, "attempts": 2, "group_sum": 4000})
	rs.Retract(a, ok, Retraction{Kind: RetractVoid}, store)
	check("a voided", map[string]int{"n": 1, "sum": 3000, "attempts": 2, "group_sum": 3000})
	rs.Retract(b, ok, Retraction{Kind: RetractRefund, Amount: 500, Partial: true}, store)
	check("b partly refunded", map[string]int{"n": 1, "sum": 2500, "attempts": 2, "group_sum": 3000})
	// Never below zero: retracting a again (a caller's mistake) takes nothing it did
	// not add, and a refund larger than what is left stops at zero.
	rs.Retract(a, ok, Retraction{Kind: RetractVoid}, store)
	rs.Retract(a, ok, Retraction{Kind: RetractVoid}, store)
	check("a voided thrice", map[string]int{"n": 1, "sum": 2500, "attempts": 2, "group_sum": 3000})
	rs.Retract(b, ok, Retraction{Kind: RetractReversal}, store)
	rs.Retract(b, ok, Retraction{Kind: RetractReversal}, store)
	check("b reversed twice", map[string]int{"n": 0, "sum": 0, "attempts": 2, "group_sum": 0})
	// A declined original fed no approved counter: nothing to take back.
	c := purchase(700)
	c.Txn.Time = a.Txn.Time.Add(2 * time.Minute)
	rs.Observe(c, ok, store)
	rs.Retract(c, Outcome{ResponseCode: "05"}, Retraction{Kind: RetractVoid}, store)
	check("retraction with a declined outcome", map[string]int{"n": 1, "sum": 700})
	// An original that has left the window is not in it any more.
	old := purchase(900)
	old.Txn.Time = a.Txn.Time.Add(-20 * time.Minute)
	rs.Observe(old, ok, store)
	rs.Retract(old, ok, Retraction{Kind: RetractVoid}, store)
	check("old original", map[string]int{"n": 1, "sum": 700})
}

// The rule file's own tests express a void: a history step that retracts the one
// before it.
func TestRuleTestRetracts(t *testing.T) {
	rs, err := Load(writeRules(t, map[string]string{"d.yaml": `
counters:
  - {name: sum_30m, dimension: [card, terminal], measure: sum, window: 30m, where: 'outcome.approved && txn.txn_type == "purchase"'}
test_base:
  txn: {txn_type: purchase, amount: 30000, card_hash: c1}
  terminal: {id: T0000001}
rules:
  - id: split
    condition: 'txn.txn_type == "purchase" && velocity.sum_30m + txn.amount > 50000'
    action: decline
    tests:
      - {name: split, history: [{ago: 5m}], expect: hit}
      - {name: voided and rung up again, history: [{ago: 5m}, {ago: 4m, retracts: void}], expect: miss}
      - {name: reversed, history: [{ago: 5m}, {ago: 4m, retracts: reversal}], expect: miss}
      - {name: two voided of three, history: [{ago: 9m, repeat: 3, every: 1m, input: {txn: {amount: 12000}}}, {ago: 4m, repeat: 2, retracts: void}], expect: miss}
      - {name: one voided of three, history: [{ago: 9m, repeat: 3, every: 1m, input: {txn: {amount: 12000}}}, {ago: 4m, retracts: void}], expect: hit}
`}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs.RunTests() {
		if !r.Passed {
			t.Errorf("%s / %s: %s", r.Rule, r.Case, r.Failure)
		}
	}
	got := problems(t, map[string]string{"d.yaml": `
rules:
  - {id: r, condition: "true", action: alert, tests: [{history: [{retracts: cancel}], expect: hit}]}
`})
	if !strings.Contains(got, `d.yaml:3: rule r: test "case 1": history step 1: retracts "cancel": want void, reversal or refund`) {
		t.Errorf("problems: %s", got)
	}
}

// Rule files declare and test the new dimensions like the others: a split purchase
// over two shops of one chain, one BIN range tested across merchants, a region.
func TestDimensionsInRuleFileTests(t *testing.T) {
	rs, err := Load(writeRules(t, map[string]string{"d.yaml": `
counters:
  - {name: card_group_sum_30m, dimension: [card, merchant_group], measure: sum, window: 30m, where: 'outcome.approved && txn.txn_type == "purchase"'}
  - {name: bin_cards_10m, dimension: bin, measure: distinct_cards, window: 10m, where: 'txn.amount <= 200'}
  - {name: region_declines_10m, dimension: region, window: 10m, where: '!outcome.approved'}
test_base:
  txn: {txn_type: purchase, amount: 30000, card_hash: c1, bin: "476173"}
  terminal: {id: T0000001, region: CN-BJ}
  merchant: {id: "000000000000001", group: CHAIN-1}
rules:
  - id: chain-split
    condition: 'txn.txn_type == "purchase" && velocity.card_group_sum_30m + txn.amount > 50000'
    action: decline
    tests:
      - name: another shop of the chain
        history: [{input: {terminal: {id: T0000002}, merchant: {id: "000000000000002"}}, ago: 5m}]
        expect: hit
      - name: a shop of another chain
        history: [{input: {terminal: {id: T0000002}, merchant: {id: "000000000000002", group: CHAIN-2}}, ago: 5m}]
        expect: miss
      - name: two shops in no chain
        input: {merchant: {group: ""}}
        history: [{input: {terminal: {id: T0000002}, merchant: {id: "000000000000002"}}, ago: 5m}]
        expect: miss
      - name: voided at the other shop
        history: [{input: {terminal: {id: T0000002}, merchant: {id: "000000000000002"}}, ago: 5m}, {ago: 4m, retracts: void}]
        expect: miss
  - id: bin-testing
    condition: 'txn.amount <= 200 && velocity.bin_cards_10m >= 3'
    action: decline
    tests:
      - name: one BIN range tried at three merchants
        input: {txn: {amount: 100}}
        history:
          - {input: {txn: {card_hash: x1}, merchant: {id: "000000000000002", group: ""}}, ago: 3m}
          - {input: {txn: {card_hash: x2}, merchant: {id: "000000000000003", group: ""}}, ago: 2m}
          - {input: {txn: {card_hash: x3}, merchant: {id: "000000000000004", group: ""}}, ago: 1m}
        expect: hit
      - name: other BINs
        input: {txn: {amount: 100}}
        history: [{input: {txn: {bin: "622202"}}, repeat: 3, vary_card: true}]
        expect: miss
  - id: region-declines
    condition: 'velocity.region_declines_10m >= 2'
    action: review
    tests:
      - name: declines in the region
        history: [{input: {terminal: {id: T0000009}}, repeat: 2, vary_card: true, outcome: {approved: false}}]
        expect: hit
      - name: declines elsewhere
        history: [{input: {terminal: {id: T0000009, region: CN-SH}}, repeat: 2, vary_card: true, outcome: {approved: false}}]
        expect: miss
`}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	results := rs.RunTests()
	if len(results) != 8 {
		t.Errorf("%d results, want 8", len(results))
	}
	for _, r := range results {
		if !r.Passed {
			t.Errorf("%s / %s: %s", r.Rule, r.Case, r.Failure)
		}
	}
}
