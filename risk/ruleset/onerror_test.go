package ruleset

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/risk/state"
)

// TestOnError: a rule whose condition fails at run time is not hit by default
// (fails open) and is listed under errors; on_error: review or decline makes it
// a hit with that action, its reason, no score and, for decline, its own
// response code when it declines (else 05); a shadow rule's such hit decides
// nothing; any other value is a load error with file:line.
func TestOnError(t *testing.T) {
	const cond = `"txn.amount / merchant.single_limit > 2"` // single_limit 0: division by zero
	cases := []struct {
		rule     string
		action   Action
		code     string
		decision Action
	}{
		{`{id: r, condition: ` + cond + `, action: decline, response_code: "61", score: 40}`, "", "", ActionAllow},
		{`{id: r, condition: ` + cond + `, action: decline, on_error: miss}`, "", "", ActionAllow},
		{`{id: r, condition: ` + cond + `, action: decline, response_code: "61", on_error: review}`, ActionReview, "", ActionReview},
		{`{id: r, condition: ` + cond + `, action: decline, response_code: "61", on_error: decline}`, ActionDecline, "61", ActionDecline},
		{`{id: r, condition: ` + cond + `, action: review, score: 40, on_error: decline}`, ActionDecline, "05", ActionDecline},
		{`{id: r, condition: ` + cond + `, action: review, mode: shadow, on_error: decline}`, ActionDecline, "05", ActionAllow},
	}
	for _, c := range cases {
		rs, err := Load(writeRules(t, map[string]string{"a.yaml": "rules:\n  - " + c.rule + "\n"}), LoadOptions{})
		if err != nil {
			t.Fatalf("%s: %v", c.rule, err)
		}
		in := purchase(5000)
		in.Merchant.SingleLimit = 0
		d := rs.evaluate(in, nil, nil, nil)
		if len(d.Errors) != 1 || d.Errors[0].Rule != "r" {
			t.Errorf("%s: errors %+v, want r's", c.rule, d.Errors)
		}
		if d.Action != c.decision || d.Score != 0 {
			t.Errorf("%s: decision %s score %d, want %s and 0", c.rule, d.Action, d.Score, c.decision)
		}
		h, hit := d.Hit("r")
		if c.action == "" {
			if hit {
				t.Errorf("%s: hit %+v, want none", c.rule, h)
			}
			continue
		}
		if !hit || h.Action != c.action || !h.OnError || h.ResponseCode != c.code || h.Reason != "r" || h.Score != 0 {
			t.Errorf("%s: hit %+v, want %s with code %q, on_error", c.rule, h, c.action, c.code)
		}
		if c.decision == ActionDecline && d.ResponseCode != c.code {
			t.Errorf("%s: response code %q, want %q", c.rule, d.ResponseCode, c.code)
		}
		in.Merchant.SingleLimit = 100000 // no error: the condition decides
		if d := rs.evaluate(in, nil, nil, nil); d.Action != ActionAllow || len(d.Hits) != 0 {
			t.Errorf("%s: without an error: %+v", c.rule, d)
		}
	}
	p := problems(t, map[string]string{"a.yaml": "rules:\n  - {id: r, condition: " + cond + ", action: decline,\n     on_error: allow}\n"})
	if !strings.Contains(p, `a.yaml:3: rule r: on_error "allow": want miss`) {
		t.Errorf("problems %q: want on_error refused at a.yaml:3", p)
	}
}

// TestCounterOnError: a counter's where filter that fails at run time does not
// count the transaction; with on_error: miss (the default) nothing more happens,
// as before: a rule reading the counter misses, with no error. With on_error:
// review or decline the card's count is in doubt: a later rule reading it, which
// could hit on the transaction not counted, takes the stronger of its own
// on_error and the counter's, and lists the error ("filter failed"); the
// filter's own failure is listed by Observe as "counter NAME". Another card's
// count is not in doubt, and a rule hit on the count read keeps its own action.
func TestCounterOnError(t *testing.T) {
	const where = `"txn.amount / merchant.single_limit > 0.5"` // single_limit 0: division by zero
	cases := []struct {
		ctrOnError, ruleOnError string
		action                  Action
		code                    string
	}{
		{"", "", ActionAllow, ""},
		{"on_error: miss,", "", ActionAllow, ""},
		{"on_error: review,", "", ActionReview, ""},
		{"on_error: decline,", "", ActionDecline, "05"},
		{"on_error: review,", "on_error: decline,", ActionDecline, "05"},
		{"on_error: decline,", "on_error: review,", ActionDecline, "05"},
	}
	for _, c := range cases {
		name := c.ctrOnError + "|" + c.ruleOnError
		rs, err := Load(writeRules(t, map[string]string{"a.yaml": `
counters:
  - {name: card_big, dimension: card, window: 10m, where: ` + where + `, ` + c.ctrOnError + ` retract: []}
rules:
  - {id: big-again, condition: "velocity.card_big >= 1", action: review, ` + c.ruleOnError + ` reason: big-again}
`}), LoadOptions{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		store := state.NewVelocity(nil, 0, 0)
		in := purchase(5000)
		in.Merchant.SingleLimit = 0
		errs := rs.Observe(in, Outcome{Approved: true, ResponseCode: "00"}, store)
		if len(errs) != 1 || errs[0].Rule != "counter card_big" {
			t.Errorf("%s: observe errors %+v, want counter card_big's", name, errs)
		}
		in.Txn.Time = in.Txn.Time.Add(time.Minute)
		d := rs.Evaluate(in, store, nil)
		if d.Action != c.action || d.ResponseCode != c.code {
			t.Errorf("%s: decision %s %q (%+v), want %s %q", name, d.Action, d.ResponseCode, d, c.action, c.code)
		}
		if c.action == ActionAllow {
			if len(d.Errors) != 0 {
				t.Errorf("%s: errors %+v, want none (on_error: miss: the filter's failure is all)", name, d.Errors)
			}
			continue
		}
		if len(d.Errors) != 1 || !strings.Contains(d.Errors[0].Error, "velocity.card_big filter failed") {
			t.Errorf("%s: errors %+v, want big-again's, filter failed", name, d.Errors)
		}
		if h, ok := d.Hit("big-again"); !ok || !h.OnError {
			t.Errorf("%s: hit %+v, want an on_error hit", name, h)
		}
		other := purchase(5000)
		other.Txn.CardHash = "another-card"
		other.Txn.Time = in.Txn.Time
		if d := rs.Evaluate(other, store, nil); d.Action != ActionAllow || len(d.Errors) != 0 {
			t.Errorf("%s: another card: %+v, want allow, no error", name, d)
		}
		// The filter passes now: the card counts 1 and the rule hits on it, as a
		// review (its action), whatever the doubt.
		in.Merchant.SingleLimit = 1000
		rs.Observe(in, Outcome{Approved: true, ResponseCode: "00"}, store)
		in.Txn.Time = in.Txn.Time.Add(time.Minute)
		if d := rs.Evaluate(in, store, nil); d.Action != ActionReview || len(d.Errors) != 0 {
			t.Errorf("%s: after a counted transaction: %+v, want review by the rule, no error", name, d)
		}
	}
}

// TestOnErrorValidation: on_error of a rule or a counter takes miss, review or
// decline; anything else is a load error (what rules check reports) at the line
// of the key, naming the rule or counter and what miss means for it.
func TestOnErrorValidation(t *testing.T) {
	p := problems(t, map[string]string{"a.yaml": `counters:
  - name: c
    dimension: card
    window: 10m
    where: txn.amount > 0
    on_error: allow
rules:
  - {id: r, condition: "velocity.c > 1", action: review,
     on_error: Review}
`})
	for _, want := range []string{
		`a.yaml:6: counter c: on_error "allow": want miss (the default: a transaction its where fails on is not counted), review or decline`,
		`a.yaml:9: rule r: on_error "Review": want miss (the default: a rule that fails is not hit), review or decline`,
	} {
		if !strings.Contains(p, want) {
			t.Errorf("problems:\n%s\nwant %q", p, want)
		}
	}
}

// TestWhereReadsEvictedCounter: a where filter that reads a counter (velocity.NAME)
// whose key was evicted, and would pass on a larger count, fails: the transaction
// is not counted, Observe lists "counter NAME" with "evicted", and with the
// counter's on_error: review the rule reading that counter for the card reviews
// (filter failed) where it would have passed; a rule reading the evicted counter
// with on_error: miss lists the error and misses. Before the flood the card's first
// transaction is not an error (the filter misses on a count known to be 0).
func TestWhereReadsEvictedCounter(t *testing.T) {
	rs, err := Load(writeRules(t, map[string]string{"a.yaml": `
counters:
  - {name: card_seen, dimension: card, window: 10m, resolution: 20s}
  - {name: card_repeat, dimension: card, window: 10m, resolution: 20s, where: "velocity.card_seen >= 1", on_error: review}
rules:
  - {id: seen, condition: "velocity.card_seen > 100", action: alert}
  - {id: repeat, condition: "velocity.card_repeat >= 1", action: alert}
`}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	store := state.NewVelocity(nil, 1024, 0) // 4 series a shard
	ok := Outcome{Approved: true, ResponseCode: "00"}
	victim := purchase(5000)
	if errs := rs.Observe(victim, ok, store); len(errs) != 0 {
		t.Fatalf("first transaction: errors %+v", errs)
	}
	flood := purchase(100)
	for i := range 20 * 1024 {
		flood.Txn.CardHash = fmt.Sprintf("flood%020d", i)
		flood.Txn.Time = victim.Txn.Time.Add(time.Second + time.Duration(i)*time.Millisecond)
		rs.Observe(flood, ok, store)
	}
	victim.Txn.Time = victim.Txn.Time.Add(time.Minute)
	errs := rs.Observe(victim, ok, store)
	if len(errs) != 1 || errs[0].Rule != "counter card_repeat" || !strings.Contains(errs[0].Error, "velocity.card_seen evicted") {
		t.Fatalf("observe errors %+v, want counter card_repeat's, card_seen evicted", errs)
	}
	victim.Txn.Time = victim.Txn.Time.Add(time.Second)
	d := rs.Evaluate(victim, store, nil)
	if d.Action != ActionReview || d.Rule != "repeat" {
		t.Errorf("decision %+v, want review by repeat (card_repeat's on_error)", d)
	}
	// seen reads card_seen, evicted, with on_error: miss (its and the counter's):
	// an error, and no hit.
	if h, hit := d.Hit("seen"); hit {
		t.Errorf("seen hit %+v, want none (on_error: miss)", h)
	}
	errsBy := map[string]string{}
	for _, e := range d.Errors {
		errsBy[e.Rule] = e.Error
	}
	if !strings.Contains(errsBy["seen"], "velocity.card_seen evicted") || !strings.Contains(errsBy["repeat"], "velocity.card_repeat filter failed") {
		t.Errorf("errors %+v, want seen's (card_seen evicted) and repeat's (card_repeat filter failed)", d.Errors)
	}
}
