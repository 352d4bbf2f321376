package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/cluster"
	"github.com/switchyard/switchyard/switch/cluster/cjournal"
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

// TestRetryNewerFormat: a start tries a cluster request again while the cluster is not
// answering, but not a journal of a newer format (the node must be upgraded; trying
// again for clusterStartTimeout would only delay the error).
func TestRetryNewerFormat(t *testing.T) {
	c := &clusterNode{log: zerolog.Nop()}
	for _, tc := range []struct {
		name  string
		first error
		calls int
		err   error
	}{
		{"not answering yet: tried again", errors.New("nats: timeout"), 2, nil},
		{"newer format: not tried again", fmt.Errorf("cjournal: %w", cjournal.ErrNewerFormat), 1, cjournal.ErrNewerFormat},
	} {
		calls := 0
		err := c.retry("journal", func(context.Context) error {
			calls++
			if calls == 1 {
				return tc.first
			}
			return nil
		})
		if calls != tc.calls || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("%s: %d calls, %v; want %d calls, %v", tc.name, calls, err, tc.calls, tc.err)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "journal: ") {
			t.Errorf("%s: the error does not say what was tried: %v", tc.name, err)
		}
	}
}
