package ruleset

import (
	"strings"
	"testing"
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
