package risk

import (
	"testing"
)

// TestDefaultRulePack runs the tests of every rule in rules/ (what
// `switchyard rules test rules/` runs) and checks that every rule has some.
func TestDefaultRulePack(t *testing.T) {
	rs, err := Load("../rules", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range rs.Warnings {
		t.Errorf("lint warning in the default pack: %s", w)
	}
	if len(rs.Rules) < 20 {
		t.Fatalf("default pack has %d rules, expected the full pack", len(rs.Rules))
	}
	if rs.TimeZone != "Asia/Shanghai" {
		t.Errorf("default pack time zone %s, want Asia/Shanghai", rs.TimeZone)
	}
	results := rs.RunTests()
	perRule := map[string]int{}
	for _, r := range results {
		r := r
		perRule[r.Rule]++
		t.Run(r.Rule+"/"+r.Case, func(t *testing.T) {
			if !r.Passed {
				t.Errorf("%s:%d: %s", r.File, r.Line, r.Failure)
			}
		})
	}
	for _, r := range rs.Rules {
		if perRule[r.ID] < 2 {
			t.Errorf("rule %s (%s:%d) has %d test(s); every default rule needs a hit and a miss case", r.ID, r.File, r.Line, perRule[r.ID])
		}
	}
}
