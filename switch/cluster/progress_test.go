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
// named has answered at or beyond the position, and otherwise with its context,
// naming the nodes below it and where they were heard. Garbage on the topic is
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

	// Every node at 5: node 1's wait for 5 ends once it has heard nodes 2 and 3
	// (their subscriptions reach its server over the routes; it asks again).
	if err := ps[0].WaitAll(ctx, []int{1, 2, 3}, 5); err != nil {
		t.Fatal(err)
	}
	below := func(p *Progress, nodes []int, at uint64, want string) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		err := p.WaitAll(wctx, nodes, at)
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), want) {
			t.Fatalf("a wait for %d of nodes %v: %v; want a deadline naming %q", at, nodes, err, want)
		}
	}
	below(ps[0], []int{1, 2, 3}, 10, "node 2 (at 5), node 3 (at 5) below it")
	below(ps[0], []int{4}, 1, "node 4 (not heard from)")

	// Nodes 2 and 3 move on: node 1's wait for 10 ends; node 3 waits for node 1,
	// still at 5.
	pos[1].Store(10)
	pos[2].Store(12)
	if err := ps[0].WaitAll(ctx, []int{1, 2, 3}, 10); err != nil {
		t.Fatal(err)
	}
	below(ps[2], []int{1, 2}, 6, "node 1 (at 5) below it")
	pos[0].Store(20)
	if err := ps[2].WaitAll(ctx, []int{1, 2}, 10); err != nil {
		t.Fatal(err)
	}
	// A node that starts again from nothing (a store rebuilt from the stream) is
	// heard at its new, lower position.
	pos[1].Store(3)
	below(ps[0], []int{2}, 4, "node 2 (at 3) below it")
}
