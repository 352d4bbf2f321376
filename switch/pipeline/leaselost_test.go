package pipeline

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

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

// TestLeaseLostBeforeAdvice: a stand-in approval, a completion and an offline
// capture are written ahead as sent, then their advice (0120/0220) is queued. A
// node whose lease is found lost between the two (a pause there, another node
// claiming its recovery meanwhile) queues no advice and answers 91
// node-lease-lost: the recovering node reverses the stand-in and the completion
// (its 0420 would come before an advice queued after it, and the issuer would book
// the advice) and approves the capture, queuing its advice itself. Before, the
// woken node queued the advice (and, the record sent, answered 91 only after).
func TestLeaseLostBeforeAdvice(t *testing.T) {
	lostErr := errors.New("cluster: node 1's lease lapsed and node 3 claimed the recovery of its incarnation 1")
	var lost atomic.Bool
	h := newHarness(t, withTerminal(termNoKey), func(_ *harness, c *Config) {
		c.StandIn = map[string]StandInLimits{"bank": {Enabled: true, MaxAmount: 5000, PerCardCount: 3, PerCardSum: 50000}}
		c.LeaseLost = func(context.Context) error {
			if lost.Load() {
				return lostErr
			}
			return nil
		}
	})
	pre := h.approvedPreauth(10000)
	lost.Store(true)
	before := len(h.q.all())

	check := func(what string, a answer) {
		t.Helper()
		if a.RC != "91" || a.Reason != "node-lease-lost" {
			t.Errorf("%s with the lease lost after its write ahead: %+v; want 91 node-lease-lost", what, a.Result)
		}
		if q := h.q.all(); len(q) != before {
			t.Errorf("%s with the lease lost: queued %v", what, queued(h)[before:])
		}
		if r := h.record(a.RRN); r == nil || r.Final() {
			t.Errorf("%s's record: %+v; want it left as written ahead", what, r)
		}
	}
	check("completion", h.do(h.completion(pre, 10000)))
	check("offline capture", h.capture(h.offlineSale(4200, h.clock.Now().Add(-time.Hour)), true))
	h.bank.setUp(false)
	check("stand-in", h.do(h.purchase(100)))
}

// TestLeaseNotHeldHousekeeping: while the lease is not known held (Config.LeaseHeld:
// after a pause, until a refresh says; for good once another node claimed this
// node's recovery) the housekeeping neither queues the advices the queue did not
// take nor writes the records kept while the journal was unavailable: the node
// recovering this one queues those advices (owed by this node) and settles those
// records; held again, it does both. Before, a node woken after such a recovery
// queued the 0420 a second time and wrote its kept versions over the recovery's.
func TestLeaseNotHeldHousekeeping(t *testing.T) {
	var held atomic.Bool
	held.Store(true)
	h := newHarness(t, func(_ *harness, c *Config) {
		c.LeaseHeld = func() error {
			if held.Load() {
				return nil
			}
			return errors.New("cluster: node 1's lease last refreshed 6s ago (TTL 5s): not known held now")
		}
	})
	pre := h.approvedPreauth(10000)
	// A completion in doubt (its 0220's fate unknown) whose 0420 the queue refuses
	// and whose final record the journal refuses: a reversal owed in memory, a
	// record kept for the journal's return.
	h.q.mu.Lock()
	h.q.lost = errors.New("jsaf: no acknowledgement within the publish timeout: no quorum")
	h.q.refuseMTI, h.q.refuse = "0420", errors.New("jsaf: no quorum")
	h.q.mu.Unlock()
	h.j.writeHook = func(r *journal.Record, _ bool) error {
		if r.Final() && r.Type == "completion" {
			return errNoQuorum
		}
		return nil
	}
	c := h.do(h.completion(pre, 10000))
	h.q.mu.Lock()
	h.q.lost, h.q.refuseMTI = nil, ""
	h.q.mu.Unlock()
	h.j.writeHook = nil
	if r := h.record(c.RRN); r.Final() || h.advices("0420", c.RRN) != 0 {
		t.Fatalf("completion in doubt: record %+v, %d 0420s queued; want it open and its 0420 owed", r, h.advices("0420", c.RRN))
	}

	held.Store(false)
	h.p.retryAdvices()
	h.p.settle(context.Background())
	if r := h.record(c.RRN); r.Final() || h.advices("0420", c.RRN) != 0 {
		t.Fatalf("lease not held: record %+v, %d 0420s queued; want nothing written or queued", r, h.advices("0420", c.RRN))
	}
	held.Store(true)
	h.p.retryAdvices()
	h.p.settle(context.Background())
	if r := h.record(c.RRN); !r.Final() || h.advices("0420", c.RRN) != 1 {
		t.Fatalf("lease held again: record %+v, %d 0420s queued; want it final and its 0420 queued", r, h.advices("0420", c.RRN))
	}
}
