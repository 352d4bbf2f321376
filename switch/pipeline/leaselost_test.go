package pipeline

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/switchyard/switchyard/switch/journal"
)

// TestLeaseLostInFlight: a cluster node woken from a pause after another node
// claimed the recovery of its incarnation (Config.LeaseLost) finishes nothing of a
// transaction in flight with its issuer: the terminal is told 91 node-lease-lost,
// whatever the issuer answered, and nothing more is written, queued or marked
// delivered, so that the recovering node's settlement (91, reversed at the issuer)
// is what stands. Found lost only after the final version went (the pause fell in
// that write), the approval is not given either, and without its delivery mark the
// recovery (this node's own restart's here) reverses it. Before, the woken node gave
// the terminal the issuer's approval that the other node had reversed.
func TestLeaseLostInFlight(t *testing.T) {
	lostErr := errors.New("cluster: node 1's lease lapsed and node 3 claimed the recovery of its incarnation 1")
	var calls, lostFrom atomic.Int64
	lostFrom.Store(1 << 62)
	h := newHarness(t, func(_ *harness, c *Config) {
		c.LeaseLost = func(context.Context) error {
			if calls.Add(1) >= lostFrom.Load() {
				return lostErr
			}
			return nil
		}
	})
	if a := h.do(h.purchase(100)); a.RC != "00" {
		t.Fatalf("a purchase with the lease held: %+v", a.Result)
	}
	asked := calls.Load()
	if asked == 0 {
		t.Fatal("LeaseLost never asked for a transaction sent to its issuer")
	}

	// Lost when the issuer's approval comes.
	calls.Store(0)
	lostFrom.Store(1)
	a := h.do(h.purchase(200))
	if a.RC != "91" || a.Reason != "node-lease-lost" {
		t.Fatalf("an approval found with the lease lost: %+v; want 91 node-lease-lost", a.Result)
	}
	first := a.RRN
	r := h.record(first)
	if r.Final() || r.State != journal.StateSent || a.resp.Sent != nil {
		t.Fatalf("its record: %+v (delivery reported: %v); want it left as written ahead", r, a.resp.Sent != nil)
	}
	if q := queued(h); len(q) != 0 {
		t.Fatalf("queued with the lease lost: %v", q)
	}

	// Lost once the final version is written: the last of the calls.
	calls.Store(0)
	lostFrom.Store(asked)
	a = h.do(h.purchase(300))
	if a.RC != "91" || a.Reason != "node-lease-lost" {
		t.Fatalf("an approval journaled, then the lease found lost: %+v; want 91 node-lease-lost", a.Result)
	}
	r = h.record(a.RRN)
	if !r.Approved() || hasEvent(r, journal.StateResponded) || a.resp.Sent != nil {
		t.Fatalf("its record: %+v (delivery reported: %v); want the approval without a delivery mark", r, a.resp.Sent != nil)
	}
	if q := queued(h); len(q) != 0 {
		t.Fatalf("queued with the lease lost: %v", q)
	}
	// What recovery then does with both (here this node's restart's own).
	if _, err := h.p.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, rrn := range []string{first, a.RRN} {
		if r := h.record(rrn); !r.Final() || !r.Reversed() {
			t.Fatalf("after recovery: %+v; want it final and reversed", r)
		}
	}
	if q := queued(h); len(q) != 2 {
		t.Fatalf("queued by the recovery: %v; want the two reversals", q)
	}
}
