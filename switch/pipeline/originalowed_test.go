package pipeline

import (
	"context"
	"testing"

	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/termclient"
)

// TestOriginalOwedReversalSurvivesRestart: a void or a terminal's reversal whose 0420
// of the original the queue refuses (a quorum lost) is answered otherwise than
// approved and owes the 0420 in memory (owedAdvices): the housekeeping queues it
// when the queue is back. A restart before that must queue it too, so the original
// carries a reversal_owed event, written with it or, the journal unavailable as well,
// by settle once the journal is back.
func TestOriginalOwedReversalSurvivesRestart(t *testing.T) {
	for _, tc := range []struct {
		name        string
		undo        func(h *harness, orig answer, tx termclient.Txn) termclient.Txn
		unavailable bool // the journal refuses the original's write too
	}{
		{"void", func(h *harness, orig answer, _ termclient.Txn) termclient.Txn { return h.void(orig, 1000) }, false},
		{"void, journal unavailable", func(h *harness, orig answer, _ termclient.Txn) termclient.Txn { return h.void(orig, 1000) }, true},
		{"reversal", func(h *harness, _ answer, tx termclient.Txn) termclient.Txn { return h.reversal(tx, 1000) }, false},
		{"reversal, journal unavailable", func(h *harness, _ answer, tx termclient.Txn) termclient.Txn { return h.reversal(tx, 1000) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			tx := h.purchase(1000)
			a := h.do(tx)
			if a.RC != "00" {
				t.Fatalf("purchase answered %s", a.RC)
			}
			h.queueRefuses(true)
			if tc.unavailable {
				h.j.writeHook = func(r *journal.Record, _ bool) error {
					if r.RRN == a.RRN {
						return errNoQuorum
					}
					return nil
				}
			}
			u := h.do(tc.undo(h, a, tx))
			if u.RC == "00" || h.p.owedAdvices.len() != 1 || h.advices("0420", a.RRN) != 0 {
				t.Fatalf("answered %s %q with %d reversal advices owed, %d queued; want not approved, 1 owed",
					u.RC, u.Reason, h.p.owedAdvices.len(), h.advices("0420", a.RRN))
			}
			if tc.unavailable {
				if hasEvent(h.record(a.RRN), journal.StateReversalOwed) {
					t.Fatal("the original written while the journal refused it")
				}
				h.j.writeHook = nil
				h.p.retryAdvices() // the tick, the queue still refusing
				h.p.settle(context.Background())
			}
			if r := h.record(a.RRN); !hasEvent(r, journal.StateReversalOwed) || r.Reversed() {
				t.Errorf("original %s: events %v, reversed by %q; want a reversal_owed event, not reversed", a.RRN, states(r), r.ReversedBy)
			}
			h.restart(t)
			if n, r := h.advices("0420", a.RRN), h.record(a.RRN); n != 1 || !r.Reversed() {
				t.Errorf("after the restart %d reversals of %s queued, reversed by %q; want 1, reversed (queued %q)", n, a.RRN, r.ReversedBy, queued(h))
			}
		})
	}
}

// TestOriginalOwedReversalQueuedOnce: the reversal_owed event of a void's original
// does not make the 0420 go twice: once the housekeeping queued it (the original
// reversed), a restart's recovery leaves the original alone.
func TestOriginalOwedReversalQueuedOnce(t *testing.T) {
	h := newHarness(t)
	a := h.do(h.purchase(1000))
	h.queueRefuses(true)
	if v := h.do(h.void(a, 1000)); v.RC == "00" {
		t.Fatalf("void approved with its 0420 refused")
	}
	h.queueRefuses(false)
	h.p.retryAdvices()
	h.p.settle(context.Background())
	if r := h.record(a.RRN); !r.Reversed() || r.State != journal.StateReversed {
		t.Fatalf("original after the tick: reversed by %q, state %s", r.ReversedBy, r.State)
	}
	h.restart(t)
	if n := h.advices("0420", a.RRN); n != 1 {
		t.Errorf("%d reversals of %s queued, want 1 (queued %q)", n, a.RRN, queued(h))
	}
}

// TestLateQRPaymentOwedRefundSurvivesRestart: a late QR payment whose refund (a 0420)
// the queue refuses is journaled with a reversal_owed event, once however often the
// network repeats the notification, and a restart before the queue takes the 0420
// queues it.
func TestLateQRPaymentOwedRefundSurvivesRestart(t *testing.T) {
	h := newHarness(t)
	h.queueRefuses(true)
	op := OrderPayment{RRN: "000000009999", TID: testTID, MID: testMID, Currency: "156", Amount: 700, Network: "wechat",
		Connector: "bank", AuthCode: "654321", At: h.clock.Now(), Late: true}
	for i := range 2 {
		if _, err := h.p.RecordOrderPayment(t.Context(), op); err == nil {
			t.Fatalf("notification %d taken while the queue refuses its refund", i+1)
		}
	}
	owed := 0
	for _, e := range h.record(op.RRN).Events {
		if e.State == journal.StateReversalOwed {
			owed++
		}
	}
	if owed != 1 {
		t.Fatalf("%d reversal_owed events after two notifications, want 1 (%v)", owed, states(h.record(op.RRN)))
	}
	h.restart(t)
	if n := h.advices("0420", op.RRN); n != 1 || !h.record(op.RRN).Reversed() {
		t.Errorf("after the restart %d refunds of the late payment %s queued, want 1 (queued %q)", n, op.RRN, queued(h))
	}
}

// TestNoRefundWhileReversalOwed: an original whose 0420 is owed (the queue refused
// it when its terminal reversed it) is being reversed: a refund or a second void of
// it meanwhile is declined, or the card would be credited twice once the 0420 goes.
func TestNoRefundWhileReversalOwed(t *testing.T) {
	for _, tc := range []struct {
		name string
		orig func(h *harness) termclient.Txn
		then func(h *harness, orig answer) termclient.Txn
	}{
		{"refund", (*harness).purchaseOf1000, func(h *harness, orig answer) termclient.Txn { return h.refund(orig, 400) }},
		{"void", (*harness).purchaseOf1000, func(h *harness, orig answer) termclient.Txn { return h.void(orig, 1000) }},
		{"completion", func(h *harness) termclient.Txn { return h.preauth(1000) }, func(h *harness, orig answer) termclient.Txn { return h.completion(orig, 1000) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			tx := tc.orig(h)
			a := h.do(tx)
			h.queueRefuses(true)
			if u := h.do(h.reversal(tx, 1000)); h.p.owedAdvices.len() != 1 {
				t.Fatalf("reversal answered %s %q with %d advices owed, want 1", u.RC, u.Reason, h.p.owedAdvices.len())
			}
			h.queueRefuses(false)
			if r := h.do(tc.then(h, a)); r.RC != "12" || r.Reason != "original-reversal-owed" {
				t.Fatalf("%s of %s while its reversal is owed: %s %q, want 12 original-reversal-owed", tc.name, a.RRN, r.RC, r.Reason)
			}
			if n := h.advices("0420", a.RRN); n != 0 {
				t.Fatalf("%d reversals of %s queued before the tick, want 0", n, a.RRN)
			}
		})
	}
}

func (h *harness) purchaseOf1000() termclient.Txn { return h.purchase(1000) }

// withNode makes the harness node of a cluster whose journal and queue it shares
// with the harness of (nil: a first node): its RRNs start with node, its checkpoint
// and crash recovery's scan are its own records', and it owes advices under its name
// (journal.Record.OwedBy).
func withNode(node string, of *harness) option {
	return func(h *harness, _ *Config) {
		h.node = node
		if of != nil {
			h.j, h.q, h.stan = of.j, of.q, of.stan
		}
	}
}

// settleLost settles, on the survivor s, what the dead node left open or owed, as
// server.recoverNode does: its records (its RRN prefix) and the reversal advices
// it owed on any node's records.
func settleLost(t *testing.T, s *harness, node string) {
	t.Helper()
	if _, err := s.p.RecoverRecords(t.Context(), "node "+node+" lost", node, func(ctx context.Context, fn func(*journal.Record) bool) error {
		return s.j.scanNode(ctx, node, "", fn)
	}); err != nil {
		t.Fatal(err)
	}
}

// TestOwedReversalOfAnotherNodesOriginal: in a cluster, a void or a terminal's
// reversal on node 2 of a purchase made on node 1, whose 0420 the queue refuses
// (a quorum lost), owes that 0420 in node 2's memory; node 1's record gets the
// reversal_owed event, naming node 2. Once node 2's memory is gone the 0420 is
// queued exactly once: by node 2's recovery at its restart, or by the survivor that
// settles node 2 after its death (node 3, or node 1 itself). Node 1's own recovery
// leaves it to node 2 while node 2 owes it, and no later restart of either queues it
// again. Until 5 December 2026 recovery looked only at the records of the node it
// settled: an original behind node 1's recovery checkpoint (node 1 went on with
// other transactions) was queued by nobody, the void answered and the issuer never
// reversed; a recent one was queued by node 1's restart while node 2 still owed it.
func TestOwedReversalOfAnotherNodesOriginal(t *testing.T) {
	for _, behind := range []bool{true, false} {
		t.Run(map[bool]string{true: "original behind its node's checkpoint", false: "recent original"}[behind], func(t *testing.T) {
			testOwedReversalOfAnotherNodesOriginal(t, behind)
		})
	}
}

// testOwedReversalOfAnotherNodesOriginal is TestOwedReversalOfAnotherNodesOriginal
// with node 1's checkpoint past the original (behind) or not.
func testOwedReversalOfAnotherNodesOriginal(t *testing.T, behind bool) {
	void := func(h *harness, orig answer, _ termclient.Txn) termclient.Txn { return h.void(orig, 1000) }
	reversal := func(h *harness, _ answer, tx termclient.Txn) termclient.Txn { return h.reversal(tx, 1000) }
	for _, tc := range []struct {
		name        string
		undo        func(h *harness, orig answer, tx termclient.Txn) termclient.Txn
		unavailable bool   // the journal refuses the original's write too (settle writes the event)
		survivor    string // "": node 2 restarts; else the node that settles node 2, dead
	}{
		{"void, node 2 restarts", void, false, ""},
		{"void, journal unavailable, node 2 restarts", void, true, ""},
		{"reversal, node 2 restarts", reversal, false, ""},
		{"reversal, journal unavailable, node 2 restarts", reversal, true, ""},
		{"void, node 2 dies, node 3 settles it", void, false, "3"},
		{"void, journal unavailable, node 2 dies, node 3 settles it", void, true, "3"},
		{"reversal, node 2 dies, node 3 settles it", reversal, false, "3"},
		{"void, node 2 dies, node 1 settles it", void, false, "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n1 := newHarness(t, withNode("1", nil))
			tx := n1.purchase(1000)
			a := n1.do(tx)
			if a.RC != "00" || a.RRN[0] != '1' {
				t.Fatalf("purchase on node 1 answered %s, RRN %s", a.RC, a.RRN)
			}
			if behind {
				// Node 1 goes on: its recovery checkpoint passes the original.
				if b := n1.do(n1.purchase(500)); b.RC != "00" {
					t.Fatalf("later purchase on node 1 answered %s", b.RC)
				}
			}
			n2 := newHarness(t, withNode("2", n1))
			n2.queueRefuses(true)
			if tc.unavailable {
				n2.j.writeHook = func(r *journal.Record, _ bool) error {
					if r.RRN == a.RRN {
						return errNoQuorum
					}
					return nil
				}
			}
			u := n2.do(tc.undo(n2, a, tx))
			if u.RC == "00" || n2.p.owedAdvices.len() != 1 || n2.advices("0420", a.RRN) != 0 {
				t.Fatalf("answered %s %q with %d reversal advices owed, %d queued; want not approved, 1 owed",
					u.RC, u.Reason, n2.p.owedAdvices.len(), n2.advices("0420", a.RRN))
			}
			if tc.unavailable {
				n2.j.writeHook = nil
				n2.p.retryAdvices() // the tick, the queue still refusing
				n2.p.settle(t.Context())
			}
			if r := n1.record(a.RRN); !hasEvent(r, journal.StateReversalOwed) || r.Reversed() || r.OwedBy != "2" {
				t.Fatalf("original %s: events %v, reversed by %q, owed by %q; want a reversal_owed event owed by node 2, not reversed",
					a.RRN, states(r), r.ReversedBy, r.OwedBy)
			}
			// Node 1, whose record it is, restarts while node 2 still owes the 0420:
			// not its to queue.
			n1 = n1.restart(t)
			if n := n1.advices("0420", a.RRN); n != 0 {
				t.Fatalf("node 1's recovery queued %d reversals of %s owed by node 2 (queued %q), want 0", n, a.RRN, queued(n1))
			}
			if tc.survivor == "" {
				n2 = n2.restart(t) // node 2's memory goes: its recovery queues it
			} else {
				// Node 2 dies (its memory with it); a survivor settles it.
				s := n1
				if tc.survivor != "1" {
					s = newHarness(t, withNode(tc.survivor, n1))
				}
				settleLost(t, s, "2")
			}
			r := n1.record(a.RRN)
			if n := n1.advices("0420", a.RRN); n != 1 || !r.Reversed() {
				t.Fatalf("after node 2's memory went, %d reversals of %s queued, reversed by %q; want 1, reversed (queued %q)",
					n, a.RRN, r.ReversedBy, queued(n1))
			}
			// Nothing queues it again: node 2 restarting on its data, node 1
			// restarting, a survivor settling node 2 a second time.
			n2.restart(t)
			n1.restart(t)
			settleLost(t, newHarness(t, withNode("3", n1)), "2")
			if n := n1.advices("0420", a.RRN); n != 1 {
				t.Errorf("%d reversals of %s queued in all, want 1 (queued %q)", n, a.RRN, queued(n1))
			}
		})
	}
}

// TestOwedReversalOfAnotherNodesOriginalQueuedByItsNode: node 2, alive, queues the
// 0420 it owes on node 1's record once the queue takes it again (its housekeeping),
// and marks the record reversed: a recovery after that (node 2's or a survivor's)
// queues nothing more, and the index of owed reversals no longer yields it.
func TestOwedReversalOfAnotherNodesOriginalQueuedByItsNode(t *testing.T) {
	n1 := newHarness(t, withNode("1", nil))
	a := n1.do(n1.purchase(1000))
	n2 := newHarness(t, withNode("2", n1))
	n2.queueRefuses(true)
	if v := n2.do(n2.void(a, 1000)); v.RC == "00" {
		t.Fatalf("void approved with its 0420 refused")
	}
	n1 = n1.restart(t) // the queue takes again
	n2.p.retryAdvices()
	n2.p.settle(t.Context())
	if r := n1.record(a.RRN); !r.Reversed() || r.OwedBy != "2" {
		t.Fatalf("original after node 2's tick: reversed by %q, owed by %q", r.ReversedBy, r.OwedBy)
	}
	owed := 0
	if err := n1.j.ScanOwed(t.Context(), "2", func(*journal.Record) bool { owed++; return true }); err != nil || owed != 0 {
		t.Fatalf("ScanOwed(2) yields %d records (%v), want none", owed, err)
	}
	n2.restart(t)
	settleLost(t, n1, "2")
	if n := n1.advices("0420", a.RRN); n != 1 {
		t.Errorf("%d reversals of %s queued, want 1 (queued %q)", n, a.RRN, queued(n1))
	}
}
