package server

import (
	"testing"

	"github.com/switchyard/switchyard/switch/cluster"
)

// TestLowestAlive: the offline monitor runs on the lowest-numbered node whose lease
// is alive; a lapsed lease does not count.
func TestLowestAlive(t *testing.T) {
	hs := []cluster.LeaseHolder{{Node: 1, Alive: false}, {Node: 2, Alive: true}, {Node: 3, Alive: true}}
	for _, c := range []struct {
		self int
		want bool
	}{{1, true}, {2, true}, {3, false}} {
		if got := lowestAlive(c.self, hs); got != c.want {
			t.Errorf("node %d with node 1 lapsed: %v, want %v", c.self, got, c.want)
		}
	}
	hs[0].Alive = true
	if lowestAlive(2, hs) {
		t.Error("node 2 runs the monitor while node 1's lease is alive")
	}
	if !lowestAlive(1, nil) {
		t.Error("a node that knows no lease does not run the monitor")
	}
}
