package server

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/cluster"
)

// TestMonitorNode: the offline monitor runs on the live node that started first (a
// node that restarts does not take it back), the lower number on a tie; a lapsed
// lease does not count; a node whose own lease is not listed yet counts as started
// now.
func TestMonitorNode(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	at := func(min int) time.Time { return now.Add(time.Duration(min) * time.Minute) }
	for _, c := range []struct {
		name    string
		self    int
		holders []cluster.LeaseHolder
		want    int
	}{
		{"first started wins", 1, []cluster.LeaseHolder{{Node: 1, Alive: true, Started: at(-1)}, {Node: 2, Alive: true, Started: at(-9)}, {Node: 3, Alive: true, Started: at(-5)}}, 2},
		{"the same from node 3", 3, []cluster.LeaseHolder{{Node: 1, Alive: true, Started: at(-1)}, {Node: 2, Alive: true, Started: at(-9)}, {Node: 3, Alive: true, Started: at(-5)}}, 2},
		{"lapsed does not count", 3, []cluster.LeaseHolder{{Node: 1, Alive: true, Started: at(-1)}, {Node: 2, Alive: false, Started: at(-9)}, {Node: 3, Alive: true, Started: at(-5)}}, 3},
		{"tie: the lower number", 2, []cluster.LeaseHolder{{Node: 3, Alive: true, Started: at(-5)}, {Node: 2, Alive: true, Started: at(-5)}}, 2},
		{"own lease not listed, another alive", 1, []cluster.LeaseHolder{{Node: 3, Alive: true, Started: at(-5)}}, 3},
		{"own lease not listed, alone", 1, nil, 1},
	} {
		if got := monitorNode(c.self, c.holders, now); got != c.want {
			t.Errorf("%s: node %d sees node %d as the monitor's, want %d", c.name, c.self, got, c.want)
		}
	}
}
