package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestLeaseLongerTTLSurvivesGap: a survivor judges another node's lease by the
// TTL that lease carries (cluster.lease_ttl of its node), not by its own. Node 6
// and node 8 refresh once, at the same moment, then go silent; node 6's lease
// carries the survivor's own TTL (1 s) and is put without a message TTL, so that
// only the sweep finds it dead, TTL plus the grace after it; node 8's carries 4 s
// (its message TTL too). The same gap that lapses node 6 (the sweep recovers it)
// leaves node 8 alive: it refreshes again once node 6 is recovered, and is
// recovered only when that second refresh is 4 s old. Before, the sweep judged
// every lease by the survivor's own TTL, so node 8 was recovered in the same
// sweep as node 6 while its lease was still alive in the bucket: with different
// TTLs on the nodes, a survivor could recover a node that still served.
func TestLeaseLongerTTLSurvivesGap(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, kv := soloWithBucket(t, ctx)
	const (
		shortTTL = time.Second     // the survivor's, and node 6's
		longTTL  = 4 * time.Second // node 8's
	)
	calls := make(chan deadCall, 8)
	l, err := n.StartLease(ctx, LeaseOptions{Refresh: 250 * time.Millisecond, TTL: shortTTL, OnDead: func(_ context.Context, node int) error {
		calls <- deadCall{1, node, time.Now()}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()

	long, _ := json.Marshal(LeaseValue{Node: 8, Server: "n8", Incarnation: 2, TTLSeconds: int(longTTL / time.Second)})
	short, _ := json.Marshal(LeaseValue{Node: 6, Server: "n6", Incarnation: 5, TTLSeconds: int(shortTTL / time.Second)})
	// Node 8 first, so that the survivor hears of it no later than of node 6.
	if _, err := l.putTTL(ctx, leaseKey(8), long, longTTL); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, leaseKey(6), short); err != nil {
		t.Fatal(err)
	}
	put := time.Now()

	// Node 6 is found dead by the sweep; node 8 must not be, in that sweep or
	// any before its own TTL.
	var c deadCall
	select {
	case c = <-calls:
	case <-ctx.Done():
		t.Fatal("the sweep never found node 6 dead")
	}
	if c.node != 6 {
		t.Fatalf("node %d recovered %v after its only refresh, before node 6 (TTL %v): judged by the survivor's TTL, not by its own (%v)",
			c.node, c.at.Sub(put).Round(time.Millisecond), shortTTL, longTTL)
	}
	gap := c.at.Sub(put)
	t.Logf("node 6 (TTL %v) recovered %v after its only refresh", shortTTL, gap.Round(time.Millisecond))
	if gap < shortTTL+leaseGrace {
		t.Fatalf("node 6 recovered %v after its refresh; want no sooner than TTL + grace", gap)
	}

	// Node 8 refreshes after the same gap: the lease it put before is still there.
	again := time.Now()
	if _, err := l.putTTL(ctx, leaseKey(8), long, longTTL); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, claimKey(8, 2)); err == nil {
		t.Fatalf("a claim on node 8's incarnation 2 after a gap of %v, within its TTL %v", time.Since(put).Round(time.Millisecond), longTTL)
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatal(err)
	}

	// It stops now: recovered once, its TTL after that refresh.
	select {
	case c = <-calls:
	case <-ctx.Done():
		t.Fatal("node 8 never found dead")
	}
	took := c.at.Sub(again)
	t.Logf("node %d (TTL %v) recovered %v after its last refresh, %v after the first", c.node, longTTL, took.Round(time.Millisecond), c.at.Sub(put).Round(time.Millisecond))
	if c.node != 8 || took < longTTL {
		t.Fatalf("recovery of node %d %v after node 8's last refresh; want node 8, no sooner than its TTL %v", c.node, took, longTTL)
	}
	for _, h := range l.Holders() {
		if h.Node == 8 && h.TTLSeconds != int(longTTL/time.Second) {
			t.Errorf("node 8 as seen: %+v; want its TTL, %v", h, longTTL)
		}
	}
}

// TestLeaseTTLCappedByOlderPeer: a node whose TTL is longer than the default
// judges its own lease by its own TTL until it sees a peer's lease that carries
// none (a version before 6 December 2026, which judges every lease by
// DefaultLeaseTTL and would claim this node's recovery 6 s after its last
// refresh): from then on by DefaultLeaseTTL, so that it stops its transactions
// (Confirm waits for a refresh, Fresh and Held say not held) before that peer
// could take over. A peer of this version with another TTL changes nothing. The
// last acknowledged refresh is made to look 6 s old, as after a cut.
func TestLeaseTTLCappedByOlderPeer(t *testing.T) {
	const ttl = 10 * time.Second
	l := &Lease{n: &Node{cfg: Config{Node: 1}, log: testLogger(t)}, opts: LeaseOptions{Refresh: time.Second, TTL: ttl},
		seen: map[int]*LeaseHolder{}, epoch: time.Now().Add(-time.Hour), tried: make(chan struct{}), lostC: make(chan struct{})}
	l.self = LeaseValue{Node: 1, Incarnation: 1, TTLSeconds: 10}
	age := DefaultLeaseTTL + time.Second
	l.okAt.Store(int64(time.Since(l.epoch) - age))
	l.lastOK = time.Now().Add(-age)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	held := func(what string) {
		t.Helper()
		if err := l.Fresh(); err != nil {
			t.Fatalf("%s: Fresh %v; want held (last refresh %v ago, TTL %v)", what, err, age, ttl)
		}
		if err := l.Held(); err != nil {
			t.Fatalf("%s: Held %v; want held", what, err)
		}
		if err := l.Confirm(ctx); err != nil {
			t.Fatalf("%s: Confirm %v; want nil at once", what, err)
		}
	}
	held("alone")
	l.alive(2, LeaseValue{Node: 2, Incarnation: 4, TTLSeconds: 3})
	held("a peer of this version with a 3 s TTL")

	l.alive(3, LeaseValue{Node: 3, Incarnation: 7}) // no TTL: an earlier version
	if err := l.Fresh(); err == nil || !strings.Contains(err.Error(), "(TTL 5s)") {
		t.Fatalf("Fresh after a peer of an earlier version: %v; want not held, judged by the default TTL", err)
	}
	if err := l.Held(); err == nil || !strings.Contains(err.Error(), "(TTL 5s)") {
		t.Fatalf("Held after a peer of an earlier version: %v; want not held, judged by the default TTL", err)
	}
	// Confirm waits for a refresh that says the lease is held; none comes here.
	if err := l.Confirm(ctx); err == nil || errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Confirm after a peer of an earlier version, no refresh since: %v; want it to wait, then fail with the caller's context", err)
	}
}
