package ruleset

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// smallRules is a rule file of n rules `txn.amount == N`, N from 1,000,000:
// 6 units of expression each.
func smallRules(n int) map[string]string {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {id: r%d, condition: \"txn.amount == %d\", action: review}\n", i, i+1_000_000)
	}
	return map[string]string{"a.yaml": b.String()}
}

// BenchmarkProgramCost calibrates costPerProgram: what one more rule costs per
// transaction beyond its expression's units. Each iteration evaluates, in
// turn, a rule whose condition has a known bound (edgeCondition, about 18,500
// units, nearly all loop iterations: the figure the docs calibrate a unit by)
// and a set of n rules `txn.amount == N` (smallRules; none hits), so that both
// see the same load on a shared machine. It reports the time of a unit (ns/unit), of a small rule
// (ns/rule), and their ratio (units/rule): what a small rule really costs in
// units, against the bound's charge for it (charged/rule, costPerProgram
// included). costPerProgram is the measured units/rule less the expression's
// own units, for large n (the programs no longer in the CPU's caches).
//
// Measured on 7 December 2026 (2 shared cores at load 8-10, -count 5): a unit
// 13-39 ns, a small rule 12 units (9-17) among 100 or 1,000 rules and 24
// (22-34) among 5,000, where 16 were charged (6 of its expression and 10 per
// program): costPerProgram went from 10 to 25. With it, among 3,000: 20-25
// units a rule, 31 charged.
func BenchmarkProgramCost(b *testing.B) {
	known, err := Load(writeRules(b, costRule(edgeCondition)), LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	in := purchase(500)
	for _, n := range []int{100, 1000, 3000} { // 3,000 is about as many as MaxSetCost allows
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			small, err := Load(writeRules(b, smallRules(n)), LoadOptions{})
			if err != nil {
				b.Fatal(err)
			}
			var tKnown, tSmall time.Duration
			for b.Loop() {
				t0 := time.Now()
				known.Evaluate(in, nil, nil)
				t1 := time.Now()
				small.Evaluate(in, nil, nil)
				tKnown, tSmall = tKnown+t1.Sub(t0), tSmall+time.Since(t1)
			}
			perUnit := float64(tKnown.Nanoseconds()) / float64(b.N) / float64(known.Cost)
			perRule := float64(tSmall.Nanoseconds()) / float64(b.N) / float64(n)
			b.ReportMetric(perUnit, "ns/unit")
			b.ReportMetric(perRule, "ns/rule")
			b.ReportMetric(perRule/perUnit, "units/rule")
			b.ReportMetric(float64(small.Cost)/float64(n), "charged/rule")
		})
	}
}
