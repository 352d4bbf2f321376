package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
)

// Recover settles the transactions a crash left open, before the switch takes traffic:
// one that was sent to its issuer without an answer is marked in doubt (91) and reversed
// through the store-and-forward queue; one that never left the switch is closed with 96.
// An approval (purchase, pre-authorization, refund) whose answer has no delivery mark
// is in doubt too, since the terminal may never have heard of it: it is reversed
// through the same queue, and a resend of its request is answered 91 (approval-reversed)
// from then on. It returns how many records it settled.
func (p *Pipeline) Recover(ctx context.Context) (int, error) {
	ck, err := p.journal.Checkpoint()
	if err != nil {
		return 0, err
	}
	return p.RecoverRecords(ctx, "switch restarted", p.node, func(ctx context.Context, fn func(*journal.Record) bool) error {
		return p.journal.ScanFrom(ctx, ck, fn)
	})
}

// RecoverRecords settles, as Recover does, the records scan yields that are open or
// approved without a delivery mark, and the records of any node whose reversal
// advice node owed (journal.Record.OwedBy: a void's or a terminal reversal's
// original, made on another node); why goes into their in-doubt event. A node of a
// cluster uses it for another node that died (node its number, scan yielding its
// records), so that what the dead node left open or owed is settled by a survivor.
// A reversal advice owed by another node than node is not queued: that node queues
// it (or, once dead, whoever settles it), and the same 0420 never goes twice.
func (p *Pipeline) RecoverRecords(ctx context.Context, why, node string, scan func(ctx context.Context, fn func(*journal.Record) bool) error) (int, error) {
	var open, undelivered []string // the open first, as before
	var listed map[string]bool     // in undelivered (the two scans may both yield one)
	list := func(rrn string) {
		if listed == nil {
			listed = map[string]bool{}
		}
		if !listed[rrn] {
			listed[rrn] = true
			undelivered = append(undelivered, rrn)
		}
	}
	if err := scan(ctx, func(r *journal.Record) bool {
		switch {
		case !r.Final():
			open = append(open, r.RRN)
		case reversibleApproval(r) && !delivered(r), owesReversal(r, node), owesOfflineAdvice(r):
			list(r.RRN)
		}
		return true
	}); err != nil {
		return 0, err
	}
	if err := p.journal.ScanOwed(ctx, node, func(r *journal.Record) bool {
		if owesReversal(r, node) {
			list(r.RRN)
		}
		return true
	}); err != nil {
		return 0, fmt.Errorf("reversal advices owed by node %q: %w", node, err)
	}
	// A record that cannot be settled now (its lock held by another node's change,
	// or kept by a node that died holding it, for up to 30 s) does not hold up the
	// others: the error names it, and the caller tries again.
	n := 0
	var errs []error
	for _, rrn := range append(open, undelivered...) {
		settled, err := p.recoverRecord(ctx, rrn, why, node)
		if err != nil {
			errs = append(errs, fmt.Errorf("record %s: %w", rrn, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if settled {
			n++
		}
	}
	return n, errors.Join(errs...)
}

// recoverRecord settles one record the scan found open or approved without a
// delivery mark, read again under its lock (in a cluster another node may have
// changed it since the scan's copy: a survivor's copy of a dead node's record may
// lack a void or a refund's reservation made on a third node, which a version
// written from it would undo). An open record is closed (91 and reversed when it
// was sent, 96 when not); an approval without a mark is reversed, unless a later
// transaction named it (a refund's reservation, a completion: its terminal had the
// answer) or it was reversed meanwhile, or its reversal advice is owed by another
// node than node (which queues it). It reports whether it wrote the record.
func (p *Pipeline) recoverRecord(ctx context.Context, rrn, why, node string) (bool, error) {
	unlock, err := p.lockRecord(ctx, rrn)
	if err != nil {
		return false, err
	}
	defer unlock()
	r, err := p.journal.Get(rrn)
	if err != nil {
		return false, err
	}
	switch {
	case !r.Final():
		sent := false
		for _, e := range r.Events {
			sent = sent || e.State == journal.StateSent
		}
		if sent && r.Offline && len(r.SealedPAN) > 0 {
			// An offline capture: the card approved it, so it is approved,
			// never reversed, and its advice queued again (recoverOffline).
			p.recoverOffline(r, why)
			if err := p.journal.Write(ctx, r, false, true); err != nil {
				return false, err
			}
			p.log.Warn().Str("rrn", r.RRN).Str("tid", r.TID).Bool("advice_queued", len(r.SealedPAN) == 0).
				Msg("recovered an open offline capture: approved, its advice queued again or owed")
			return true, nil
		}
		r.AddEvent(journal.StateInDoubt, p.now().UTC(), why)
		if sent {
			r.RC, r.DecidedBy, r.Reason = message.RCIssuerUnavailable, "switch", "in-doubt-after-restart"
			p.queueRecoveredReversal(r, "switch:restart")
		} else {
			r.RC, r.DecidedBy, r.Reason = message.RCSystemMalfunction, "switch", "open-at-restart"
		}
		if err := p.journal.Write(ctx, r, false, true); err != nil {
			return false, err
		}
		p.log.Warn().Str("rrn", r.RRN).Str("tid", r.TID).Bool("reversed", sent).Msg("recovered an open transaction")
		return true, nil
	case owesReversal(r, node):
		// Its reversal was owed (the queue did not take it) and the process that
		// owed it, in memory, is gone: it is queued now.
		p.queueRecoveredReversal(r, "switch:owed-at-restart")
		if !r.Reversed() {
			return false, fmt.Errorf("its owed reversal advice still not queued")
		}
		if err := p.journal.Write(ctx, r, false, true); err != nil {
			return false, err
		}
		p.log.Warn().Str("rrn", r.RRN).Str("tid", r.TID).Str("issuer", r.Issuer).
			Msg("recovered a transaction whose reversal advice was owed and not queued: reversed")
		return true, nil
	case owesOfflineAdvice(r):
		// The advice of an offline capture was owed (the queue refused it) and
		// went with the process that owed it: queued now, as a repeat, or owed
		// in this process's memory (the housekeeping tries it again).
		if !p.queueOfflineRepeat(r, "owed at restart, queued by recovery") {
			return false, nil
		}
		if err := p.journal.Write(ctx, r, false, true); err != nil {
			return false, err
		}
		p.log.Warn().Str("rrn", r.RRN).Str("tid", r.TID).Str("issuer", r.Issuer).
			Msg("recovered an offline capture whose advice was owed: advice queued")
		return true, nil
	case reversalPending(r):
		// Owed by another node (OwedBy), whose memory holds the advice: that node
		// queues it, or whoever settles it once it died. Not queued here too.
		p.log.Info().Str("rrn", r.RRN).Str("owed_by", r.OwedBy).
			Msg("reversal advice owed by another node: left to it")
		return false, nil
	case !reversibleApproval(r) || delivered(r):
		return false, nil // settled since the scan
	case r.Refunded > 0 || r.CompletedBy != "":
		// A refund of it, or its completion, came from its terminal's merchant:
		// the answer was had. Reversing it would credit the card twice.
		p.log.Info().Str("rrn", r.RRN).Int64("refunded", r.Refunded).Str("completed_by", r.CompletedBy).
			Msg("approval without a delivery mark at restart, named by a later refund or completion: not reversed")
		return false, nil
	}
	r.AddEvent(journal.StateInDoubt, p.now().UTC(), "approved, delivery unknown at restart")
	p.queueRecoveredReversal(r, "switch:undelivered-at-restart")
	if r.ReversedBy == "switch:undelivered-at-restart" {
		p.retract(r, risk.Retraction{Kind: risk.RetractReversal})
	}
	if !r.Reversed() {
		// The queue refused it (logged by queueReversal): the operator must act.
		p.log.Error().Str("rrn", r.RRN).Str("tid", r.TID).Msg("approval in doubt after restart NOT reversed")
	}
	if err := p.journal.Write(ctx, r, false, true); err != nil {
		return false, err
	}
	p.log.Warn().Str("rrn", r.RRN).Str("tid", r.TID).Str("issuer", r.Issuer).
		Msg("recovered an approval whose answer has no delivery mark: reversed")
	return true, nil
}

// owesReversal reports whether r is a final record, not reversed, whose reversal
// advice was owed by the process of node (the queue did not take it, owedAdvices)
// and went with that process. The owed advice is marked by a reversal_owed event
// (queueReversal), which no later version takes back, and OwedBy naming the node
// that owes it: a record that names another node is that node's to settle. One that
// names none (a single switch's, or written before OwedBy) is its own node's, as
// before. Records written before that event are known by why they owed one: the
// issuer may have approved (it timed out, the link failed while the answer was
// awaited, or the answer was not valid), or a completion's or stand-in's advice may
// be queued (completionInDoubt, reasonStandInAdviceUnknown). The reason alone is
// not enough: a record kept for the journal's return (oweRecord) is written with
// reason journal-unavailable.
func owesReversal(r *journal.Record, node string) bool {
	if !r.Final() || r.Reversed() || r.Issuer == "" {
		return false
	}
	if r.OwedBy != "" && r.OwedBy != node {
		return false
	}
	if r.Reason == "issuer-answer-invalid" || r.Reason == reasonStandInAdviceUnknown || completionInDoubt(r) {
		return true
	}
	for _, e := range r.Events {
		if e.State == journal.StateTimedOut || e.State == journal.StateReversalOwed {
			return true
		}
	}
	return false
}

// reversalOwed reports whether r carries a reversal_owed event (queueReversal): a
// reversal advice of it was owed at some point. With r not reversed it is owed still.
func reversalOwed(r *journal.Record) bool {
	for _, e := range r.Events {
		if e.State == journal.StateReversalOwed {
			return true
		}
	}
	return false
}

// reversalPending reports whether a reversal advice of r is owed and not queued yet
// (queueReversal: the queue refused it; the housekeeping, or recovery after a
// restart, queues it): r is being reversed, and no refund, void or completion may
// move its money meanwhile, or the card would be credited (or captured) twice once
// the 0420 goes.
func reversalPending(r *journal.Record) bool { return !r.Reversed() && reversalOwed(r) }

// delivered reports whether the record's answer is known to have reached the terminal.
func delivered(r *journal.Record) bool {
	for _, e := range r.Events {
		if e.State == journal.StateResponded {
			return true
		}
	}
	return false
}
