package pipeline

import (
	"context"
	"testing"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/switch/journal"
)

// takenAfterAll makes the journal take the final version of the first approved record
// of type typ and report it unavailable all the same: a cluster's publish whose
// acknowledgement came too late. The pipeline answers 91 and keeps its own final version
// (oweRecord) for settle, while the journal holds the approval other paths may act on.
func takenAfterAll(h *harness, typ string) {
	done := false
	h.j.writeHook = func(r *journal.Record, _ bool) error {
		if !done && r.Final() && r.Type == typ && r.Approved() {
			done = true
			h.j.store(r) // under the journal's lock, as Write would have
			return errNoQuorum
		}
		return nil
	}
}

// TestSettleKeepsRefundReservation: the approval whose final write the journal took
// after reporting it unavailable is refunded while its 91 version waits for settle.
// Settle writing its copy, taken before the refund, must keep the refund's reservation
// (Refunded): else the refund's release, when its issuer declines, drives the
// original's Refunded below zero (refunds beyond the sale allowed).
func TestSettleKeepsRefundReservation(t *testing.T) {
	h := newHarness(t)
	takenAfterAll(h, "purchase")
	a := h.do(h.purchase(1000))
	h.j.writeHook = nil
	if a.RC == "00" || h.p.unsettled.len() != 1 || !h.record(a.RRN).Approved() {
		t.Fatalf("purchase answered %s %q, %d kept for settle, stored rc %s", a.RC, a.Reason, h.p.unsettled.len(), h.record(a.RRN).RC)
	}
	// The refund reaches another node of the cluster (sharing the journal), which
	// does not know of this node's kept version (settleBook.keeps).
	h2 := newHarness(t, func(h2 *harness, _ *Config) { h2.j, h2.q, h2.stan = h.j, h.q, 100 })
	settled := false
	h2.bank.script(func(sent) (*iso8583.Message, error) {
		// The housekeeping's tick while the refund is at its issuer.
		h.p.settle(context.Background())
		settled = true
		return issuerAnswer("05", ""), nil
	})
	rf := h2.do(h2.refund(a, 300))
	if !settled || rf.RC != "05" {
		t.Fatalf("refund answered %s (settled during it: %v)", rf.RC, settled)
	}
	r := h.record(a.RRN)
	if r.Refunded != 0 || r.RC != "91" || !r.Reversed() {
		t.Errorf("original after the refund's release: refunded %d (want 0), rc %s, reversed by %q", r.Refunded, r.RC, r.ReversedBy)
	}
}

// TestSettleKeepsCompletionMark: as TestSettleKeepsRefundReservation, for a
// pre-authorization completed while its 91 version waits for settle: the completion's
// mark (CompletedBy) is kept.
func TestSettleKeepsCompletionMark(t *testing.T) {
	h := newHarness(t)
	takenAfterAll(h, "preauth")
	pre := h.do(h.preauth(10000))
	h.j.writeHook = nil
	if pre.RC == "00" || !h.record(pre.RRN).Approved() {
		t.Fatalf("pre-authorization answered %s, stored rc %s", pre.RC, h.record(pre.RRN).RC)
	}
	pre.AuthCode = h.record(pre.RRN).AuthCode
	// Completed on another node of the cluster (sharing the journal), which does not
	// know of this node's kept version (settleBook.keeps).
	h2 := newHarness(t, func(h2 *harness, _ *Config) { h2.j, h2.q, h2.stan = h.j, h.q, 100 })
	c := h2.do(h2.completion(pre, 10000))
	if c.RC != "00" {
		t.Fatalf("completion answered %s %q", c.RC, c.Reason)
	}
	h.p.settle(context.Background())
	if r := h.record(pre.RRN); r.CompletedBy != c.RRN || r.RC != "91" {
		t.Errorf("pre-authorization after settle: completed by %q (want %s), rc %s", r.CompletedBy, c.RRN, r.RC)
	}
}

// TestSettleMergesAfreshEachTry: a settle write that fails keeps the item as it was
// kept, not as merged: a refund's reservation merged in by the failed try and
// released before the next one is not written back by it.
func TestSettleMergesAfreshEachTry(t *testing.T) {
	h := newHarness(t)
	takenAfterAll(h, "purchase")
	a := h.do(h.purchase(1000))
	h.j.writeHook = nil
	if a.RC == "00" || h.p.unsettled.len() != 1 {
		t.Fatalf("purchase answered %s %q, %d kept for settle", a.RC, a.Reason, h.p.unsettled.len())
	}
	// Refunded on another node of the cluster, sharing the journal: reserved.
	h2 := newHarness(t, func(h2 *harness, _ *Config) { h2.j, h2.q, h2.stan = h.j, h.q, 100 })
	rtx := h2.refund(a, 300)
	if rf := h2.do(rtx); rf.RC != "00" || h.record(a.RRN).Refunded != 300 {
		t.Fatalf("refund answered %s %q, original refunded %d", rf.RC, rf.Reason, h.record(a.RRN).Refunded)
	}
	// The tick's settle write of the original fails.
	h.j.writeHook = func(r *journal.Record, _ bool) error {
		if r.RRN == a.RRN {
			return errNoQuorum
		}
		return nil
	}
	h.p.settle(context.Background())
	h.j.writeHook = nil
	if h.p.unsettled.len() != 1 {
		t.Fatalf("%d kept for settle after the failed write, want 1", h.p.unsettled.len())
	}
	// The refund is reversed by its terminal: the reservation goes back.
	if rv := h2.do(h2.reversal(rtx, 300)); rv.RC != "00" || h.record(a.RRN).Refunded != 0 {
		t.Fatalf("refund's reversal answered %s %q, original refunded %d", rv.RC, rv.Reason, h.record(a.RRN).Refunded)
	}
	h.p.settle(context.Background())
	if r := h.record(a.RRN); r.Refunded != 0 || r.RC != "91" {
		t.Errorf("original after settle: refunded %d (want 0: the refund was reversed), rc %s", r.Refunded, r.RC)
	}
}
