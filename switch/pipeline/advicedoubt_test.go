package pipeline

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/switch/journal"
)

// TestCompletionFinalWriteUnavailable: a completion whose 0220 the queue took but whose
// final record the journal refused (a cluster's quorum lost at that moment) is answered
// 91 journal-unavailable. Its advice is queued: the issuer captures it. Unless the
// completion is reversed (a 0420 of it), or its pre-authorization kept from a second
// completion, the merchant's retry captures the pre-authorization a second time.
func TestCompletionFinalWriteUnavailable(t *testing.T) {
	h := newHarness(t)
	pre := h.approvedPreauth(10000)
	h.j.writeHook = func(r *journal.Record, _ bool) error {
		if r.Final() && r.Type == "completion" {
			return errNoQuorum
		}
		return nil
	}
	first := h.do(h.completion(pre, 10000))
	if first.RC == "00" {
		t.Fatalf("completion approved while its final record was refused: %+v", first.Result)
	}
	h.j.writeHook = nil
	h.p.retryAdvices() // the housekeeping's tick, the journal back
	h.p.settle(context.Background())
	second := h.do(h.completion(pre, 10000)) // the merchant tries again
	captures := 0
	if h.advices("0220", first.RRN) > 0 && h.advices("0420", first.RRN) == 0 {
		captures++
	}
	if second.RC == "00" && h.advices("0220", second.RRN) > 0 {
		captures++
	}
	if captures > 1 {
		t.Fatalf("pre-authorization %s captured twice at the issuer: the first completion %s (answered %s %q, record rc %s reason %q, "+
			"reversed by %q) has its 0220 queued and no 0420, and the second %s was approved with its own (queued %q)",
			pre.RRN, first.RRN, first.RC, first.Reason, h.record(first.RRN).RC, h.record(first.RRN).Reason,
			h.record(first.RRN).ReversedBy, second.RRN, queued(h))
	}
}

// TestCompletionInDoubtSettledSurvivesRestart: a completion in doubt (its 0220's
// enqueue failed, the advice stored all the same) whose 0420 the queue refuses and
// whose final record the journal refuses too (the same quorum loss) is kept for the
// journal's return (oweRecord) and written by settle. Written so, its reason is
// journal-unavailable: neither completionInDoubt nor recovery's owesReversal know it
// any more. A restart before the queue takes the 0420 must still reverse it, and the
// pre-authorization must not be completed again while it is not.
func TestCompletionInDoubtSettledSurvivesRestart(t *testing.T) {
	h := newHarness(t)
	pre := h.approvedPreauth(10000)
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
	h.q.lost = nil
	h.q.mu.Unlock()
	if c.RC == "00" || h.advices("0220", c.RRN) != 1 || h.advices("0420", c.RRN) != 0 {
		t.Fatalf("completion: %+v, %d advices, %d reversals queued", c.Result, h.advices("0220", c.RRN), h.advices("0420", c.RRN))
	}
	// The journal is back, the queue still refuses 0420s: the housekeeping writes the
	// record kept for the journal's return.
	h.j.writeHook = nil
	h.p.retryAdvices()
	h.p.settle(context.Background())
	r := h.record(c.RRN)
	second := h.do(h.completion(pre, 10000))
	if second.RC == "00" {
		t.Errorf("second completion approved while the first (%s: rc %s reason %q, reversed by %q) has its 0220 queued "+
			"and its 0420 owed in memory: two captures if the process goes before the 0420 is queued", c.RRN, r.RC, r.Reason, r.ReversedBy)
	}
	if b := h.do(h.purchase(500)); b.RC != "00" { // moves the checkpoint on
		t.Fatalf("later purchase answered %s", b.RC)
	}
	h.restart(t)
	if n := h.advices("0420", c.RRN); n != 1 {
		t.Errorf("after the restart %d reversals of the completion in doubt %s queued (record rc %s reason %q), want 1: its 0220 is queued",
			n, c.RRN, r.RC, r.Reason)
	}
}

// TestInvalidAnswerOwedReversalSettledSurvivesRestart: an issuer answer without a
// valid DE 39 owes a reversal (the issuer may have approved). When the quorum is lost
// at that moment the queue refuses the 0420 (owed in memory) and the journal the
// final record (kept for its return, reason journal-unavailable). Once settle has
// written that record, a restart before the 0420 is queued must still reverse it.
func TestInvalidAnswerOwedReversalSettledSurvivesRestart(t *testing.T) {
	h := newHarness(t)
	h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer("", "123456"), nil })
	h.queueRefuses(true)
	h.j.writeHook = func(r *journal.Record, _ bool) error {
		if r.Final() {
			return errNoQuorum
		}
		return nil
	}
	a := h.do(h.purchase(1000))
	if a.RC == "00" || h.p.owedAdvices.len() != 1 {
		t.Fatalf("answer %s %q, %d reversal advices owed; want not approved, 1 owed", a.RC, a.Reason, h.p.owedAdvices.len())
	}
	h.j.writeHook = nil
	h.p.settle(context.Background()) // the journal back, the queue not yet
	r := h.record(a.RRN)
	h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer("00", "123456"), nil })
	if b := h.do(h.purchase(500)); b.RC != "00" {
		t.Fatalf("later purchase answered %s", b.RC)
	}
	h.restart(t)
	if n := h.advices("0420", a.RRN); n != 1 {
		t.Fatalf("after the restart %d reversals of %s queued (record rc %s reason %q, events %s), want 1: the issuer may have approved",
			n, a.RRN, r.RC, r.Reason, fmt.Sprint(states(r)))
	}
}

// TestStandInAdviceOutcomeUnknown: a stand-in approval's 0220 whose enqueue fails is
// of unknown fate on a cluster (jsaf: no acknowledgement within the publish timeout;
// the stream may store it when the quorum returns), as a completion's is. The
// terminal is not approved, so the advice must be reversed (a 0420 queued, or owed),
// as 16f5748 does for a completion, and the record, written ahead since a5126a8, must
// not stay open while the process runs (its resends wait on it, the recovery
// checkpoint stops at it, and only a restart's recovery reverses it).
func TestStandInAdviceOutcomeUnknown(t *testing.T) {
	h := newHarness(t, withStandIn)
	h.bank.setUp(false)
	h.q.mu.Lock()
	h.q.lost = errors.New("jsaf: no acknowledgement within the publish timeout: no quorum")
	h.q.mu.Unlock()
	a := h.do(h.purchase(1000))
	h.q.mu.Lock()
	h.q.lost = nil
	h.q.mu.Unlock()
	if a.RC == "00" {
		t.Fatalf("stand-in approved while its advice's enqueue failed")
	}
	h.p.retryAdvices() // the housekeeping's tick
	r := h.record(a.RRN)
	if h.advices("0220", a.RRN) == 1 && h.advices("0420", a.RRN) == 0 {
		t.Errorf("stand-in %s answered %s %q: its 0220 is queued and no 0420 (record final %v, reversed by %q, %d owed): "+
			"the issuer books a stand-in approval the terminal was told was declined",
			a.RRN, a.RC, a.Reason, r.Final(), r.ReversedBy, h.p.owedAdvices.len())
	}
	if !r.Final() {
		t.Errorf("record %s still open after its answer (%s): resends wait on it, the checkpoint stops at it", a.RRN, fmt.Sprint(states(r)))
	}
}

func states(r *journal.Record) []journal.State {
	var out []journal.State
	for _, e := range r.Events {
		out = append(out, e.State)
	}
	return out
}

// TestStandInAdviceOutcomeUnknownSurvivesRestart: as TestStandInAdviceOutcomeUnknown,
// the queue refusing the 0420 too (the same quorum loss): the reversal is owed, and a
// restart before it is queued must still reverse the stand-in.
func TestStandInAdviceOutcomeUnknownSurvivesRestart(t *testing.T) {
	h := newHarness(t, withStandIn)
	h.bank.setUp(false)
	h.q.mu.Lock()
	h.q.lost = errors.New("jsaf: no acknowledgement within the publish timeout: no quorum")
	h.q.refuseMTI, h.q.refuse = "0420", errors.New("jsaf: no quorum")
	h.q.mu.Unlock()
	a := h.do(h.purchase(1000))
	h.q.mu.Lock()
	h.q.lost, h.q.refuseMTI = nil, ""
	h.q.mu.Unlock()
	if a.RC == "00" || h.advices("0220", a.RRN) != 1 {
		t.Fatalf("stand-in: %+v, %d advices queued", a.Result, h.advices("0220", a.RRN))
	}
	h.bank.setUp(true)
	h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer("00", "123456"), nil })
	if b := h.do(h.purchase(500)); b.RC != "00" { // moves the checkpoint on
		t.Fatalf("later purchase answered %s", b.RC)
	}
	h.p.checkpoint()
	h.p.Stop()
	h2 := newHarness(t, withStandIn, func(h2 *harness, _ *Config) { h2.j, h2.q = h.j, h.q })
	if _, err := h2.p.Recover(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := h.advices("0420", a.RRN); n != 1 {
		r := h.record(a.RRN)
		t.Fatalf("after the restart %d reversals of the stand-in %s queued (record rc %s reason %q final %v), want 1: its 0220 is queued",
			n, a.RRN, r.RC, r.Reason, r.Final())
	}
}

// TestOwedReversalMarkKeptBySettle: an issuer timeout while the quorum is lost owes
// both the 0420 (owedAdvices) and the final record (oweRecord). When both return,
// the housekeeping's tick queues the 0420 and marks the record reversed
// (retryAdvices), then writes the final record it kept (settle): that copy, taken
// before the 0420 was queued, must not take the mark back, or recovery's
// owesReversal queues the 0420 a second time (a survivor's, or a restart's within
// the checkpoint's 5 s).
func TestOwedReversalMarkKeptBySettle(t *testing.T) {
	h := newHarness(t)
	h.bank.script(func(sent) (*iso8583.Message, error) { return nil, ErrIssuerTimeout })
	h.queueRefuses(true)
	h.j.writeHook = func(r *journal.Record, _ bool) error {
		if r.Final() {
			return errNoQuorum
		}
		return nil
	}
	a := h.do(h.purchase(1000))
	if a.RC == "00" || h.p.owedAdvices.len() != 1 {
		t.Fatalf("answer %s %q, %d owed", a.RC, a.Reason, h.p.owedAdvices.len())
	}
	h.j.writeHook = nil
	h.queueRefuses(false)
	h.p.retryAdvices() // the tick: owed advices first, then the records kept
	h.p.settle(context.Background())
	r := h.record(a.RRN)
	if n := h.advices("0420", a.RRN); n != 1 || !r.Reversed() {
		t.Errorf("after the tick %d reversals of %s queued, record reversed by %q (rc %s): the mark the 0420 got is taken back by settle",
			n, a.RRN, r.ReversedBy, r.RC)
	}
	// A survivor of a cluster settles the records of this node, dead, since it
	// started (server.recoverNode): recovery's owesReversal must not reverse it again.
	h.p.Stop()
	h2 := newHarness(t, func(h2 *harness, _ *Config) { h2.j, h2.q = h.j, h.q })
	if _, err := h2.p.RecoverRecords(t.Context(), "node 1 lost", "", func(ctx context.Context, fn func(*journal.Record) bool) error {
		return h.j.Scan(ctx, journal.Query{}, fn)
	}); err != nil {
		t.Fatal(err)
	}
	if n := h.advices("0420", a.RRN); n != 1 {
		t.Errorf("after a survivor's recovery %d reversals of %s queued, want 1 (queued %q)", n, a.RRN, queued(h))
	}
}
