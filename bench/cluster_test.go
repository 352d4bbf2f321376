package bench

import (
	"strings"
	"testing"
)

// TestRoundsReport: the median of the rounds' ratios (odd and even counts), and the
// table of rounds that `bench --cluster N --rounds M` prints before its verdict.
func TestRoundsReport(t *testing.T) {
	if got := median([]float64{4, 2, 3}); got != 3 {
		t.Fatalf("median of 4, 2, 3: %v", got)
	}
	if got := median([]float64{4, 2, 3, 1}); got != 2.5 {
		t.Fatalf("median of 4, 2, 3, 1: %v", got)
	}
	if got := median(nil); got != 0 {
		t.Fatalf("median of nothing: %v", got)
	}
	rep := &ClusterReport{Rounds: []Round{{80, 320, 4}, {90, 270, 3}, {100, 350, 3.5}}, Ratio: 3.5, MarginalRatio: 3.4}
	var b strings.Builder
	rep.WriteTable(&b)
	for _, want := range []string{
		"rounds (single node and cluster measured in turn",
		"2                90.0        270.0    3.00×",
		"cluster/single CPU per authorization (median of 3 rounds): 3.50× (target ≤ 1.5×: NOT met); marginal costs: 3.40×",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, b.String())
		}
	}
}
