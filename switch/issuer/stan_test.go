package issuer

import (
	"strconv"
	"strings"
	"testing"
)

// TestSTANPartition: the links of nodes 1 to 9 of a cluster hand out disjoint
// STANs that together cover 000001 to 999999 exactly once, each wrapping
// within its own share; a link without a partition hands out every STAN in
// turn, as before; a partition out of 0..9 is refused.
func TestSTANPartition(t *testing.T) {
	seen := make([]int, 1000000)
	for p := 1; p <= 9; p++ {
		l := &Link{cfg: Config{STANPartition: p}}
		first := l.NextSTAN()
		if first != "00000"+strconv.Itoa(p) {
			t.Fatalf("node %d's first STAN %s", p, first)
		}
		seen[p]++
		for range 999999/9 - 1 {
			s := l.NextSTAN()
			n, err := strconv.Atoi(s)
			if err != nil || len(s) != 6 || n < 1 || n > 999999 || (n-p)%9 != 0 {
				t.Fatalf("node %d handed out %q", p, s)
			}
			seen[n]++
		}
		if again := l.NextSTAN(); again != first {
			t.Fatalf("node %d after its 111111 STANs: %s, want to wrap to %s", p, again, first)
		}
	}
	for n := 1; n <= 999999; n++ {
		if seen[n] != 1 {
			t.Fatalf("STAN %06d handed out %d times over one round of the nine nodes", n, seen[n])
		}
	}

	// A single switch, unchanged: its counter starts at 000002 (and wraps
	// through 000001), every STAN once per round.
	l := &Link{}
	clear(seen)
	for range 999999 {
		n, _ := strconv.Atoi(l.NextSTAN())
		seen[n]++
	}
	for n := 1; n <= 999999; n++ {
		if seen[n] != 1 {
			t.Fatalf("single switch: STAN %06d handed out %d times in 999999", n, seen[n])
		}
	}

	for _, p := range []int{-1, 10} {
		_, err := Dial(Config{ID: "visa", Addrs: []string{"127.0.0.1:1"}, STANPartition: p})
		if err == nil || !strings.Contains(err.Error(), "STAN partition "+strconv.Itoa(p)) {
			t.Errorf("partition %d: %v", p, err)
		}
	}
}
