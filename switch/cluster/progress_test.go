package cluster

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestProgress: three nodes share their positions; a wait ends once every node
// named has answered one of its asks at or beyond the position (an answer to an
// earlier ask does not count), with ErrStalled when no node below it moves for the
// stall time, and with its context, naming the nodes below and where they were
// heard; the nodes waited for are read again at each ask. Garbage on the topic is
// ignored.
func TestProgress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nodes := startLeaseCluster(t, ctx, threeNodeConfigs(t))
	var pos [3]atomic.Uint64
	ps := make([]*Progress, 3)
	for i, n := range nodes {
		pos[i].Store(5)
		p, err := n.ShareProgress("applied", pos[i].Load)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		ps[i] = p
	}
	garbage, err := nodes[0].Broadcast("applied", func([]byte) {})
	if err != nil {
		t.Fatal(err)
	}
	defer garbage.Close()
	for _, g := range []string{"", "{", `{"node":0,"at":99}`, `{"node":"x"}`} {
		if err := garbage.Send([]byte(g)); err != nil {
			t.Fatal(err)
		}
	}
	all := func() []int { return []int{1, 2, 3} }
	of := func(ns ...int) func() []int { return func() []int { return ns } }

	// Every node at 5: node 1's wait for 5 ends once nodes 2 and 3 have answered
	// (their subscriptions reach its server over the routes; it asks again).
	if err := ps[0].WaitAll(ctx, all, 5, time.Minute); err != nil {
		t.Fatal(err)
	}
	// Node 3 at 10, nodes 1 and 2 at 5.
	pos[2].Store(10)
	below := func(p *Progress, nodes func() []int, at uint64, stall time.Duration, want string, is error) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		err := p.WaitAll(wctx, nodes, at, stall)
		if err == nil || !errors.Is(err, is) || !strings.Contains(err.Error(), want) {
			t.Fatalf("a wait for %d of nodes %v: %v; want %v naming %q", at, nodes(), err, is, want)
		}
	}
	below(ps[1], all, 10, time.Minute, "node 1 (at 5) below it", context.DeadlineExceeded)
	below(ps[0], of(4), 1, time.Minute, "node 4 (no answer)", context.DeadlineExceeded)
	below(ps[0], of(2, 3), 6, 200*time.Millisecond, "node 2 (at 5) below it", ErrStalled)

	// Nodes 2 and 3 move on: node 1's wait for 10 ends; node 3 waits for node 1,
	// still at 5, until it leaves the nodes waited for.
	pos[1].Store(10)
	if err := ps[0].WaitAll(ctx, all, 10, time.Minute); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	leaves := func() []int {
		if calls.Add(1) > 3 {
			return []int{2, 3} // node 1's lease lapsed
		}
		return []int{1, 2, 3}
	}
	if err := ps[2].WaitAll(ctx, leaves, 10, time.Minute); err != nil || calls.Load() <= 3 {
		t.Fatalf("a wait for node 1, which leaves the nodes waited for at the fourth ask: %v after %d asks", err, calls.Load())
	}
	// A node that starts again from nothing (a store rebuilt from the stream) is
	// heard at its new, lower position: node 1's earlier answer at 10 does not count.
	pos[1].Store(3)
	below(ps[0], of(2), 4, time.Minute, "node 2 (at 3) below it", context.DeadlineExceeded)
}
