package pipeline

import (
	"fmt"
	"testing"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/risk/profile"
)

// BenchmarkProcessApprovalRulesLearned: the same with a table of 10,000 learned
// merchants in force.
func BenchmarkProcessApprovalRulesLearned(b *testing.B) {
	set := profile.NewSet(nil)
	t := &profile.Table{Merchants: map[string]risk.Profile{testMID: {Learned: true, Days: 30, P90Amount: 5000}}}
	for i := range 10000 {
		t.Merchants[fmt.Sprintf("M%014d", i)] = risk.Profile{Learned: true, Days: 30}
	}
	set.Swap(t)
	benchRules(b, newHarness(b, withRisk, withTerminal(termNoKey), func(_ *harness, c *Config) { c.Profiles = set }))
}
