package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/saf"
)

// Pre-authorization completion (0220, docs/terminal-interface.md). A pre-authorization
// (0100) holds an amount on the card; its completion captures the final amount, at
// most the held one plus a tolerance (a tip, a hotel's extras). The issuer already
// authorized the hold, so the completion is not authorized again: the switch checks it
// against the journaled pre-authorization, answers the terminal once it is durable, and
// owes the issuer an advice (0220, repeated as 0221) through the store-and-forward
// queue, so that an issuer down at that moment gets it when it is back. Settlement
// counts the completion, never the pre-authorization.

// DefaultCompletionTolerance is how far above its pre-authorization a completion may
// go when Config.CompletionTolerance is zero: 15 %, the usual card scheme allowance.
const DefaultCompletionTolerance = 0.15

// completionLimit is the largest amount a completion of a pre-authorization of amount
// may capture: amount plus the tolerance (in basis points, rounded down, so that no
// float decides a minor unit).
func (p *Pipeline) completionLimit(amount int64) int64 {
	tol := p.cfg.CompletionTolerance
	switch {
	case tol == 0:
		tol = DefaultCompletionTolerance
	case tol < 0:
		tol = 0
	}
	bp := int64(tol*10000 + 0.5)
	return amount + amount*bp/10000
}

// completion captures the approved pre-authorization named by DE 37 (and DE 38): it
// is refused when the pre-authorization is unknown, not one of the merchant's for
// this card, declined, reversed, already completed, or when the amount is above the
// pre-authorization's plus the tolerance. Otherwise the completion is written ahead,
// the pre-authorization marked completed, the advice queued for its issuer and the
// completion answered 00 with the pre-authorization's approval code.
func (p *Pipeline) completion(ctx context.Context, t *txn) (frontend.Response, error) {
	r := t.req
	if !strings.HasPrefix(r.ProcCode, "00") {
		return p.decline(ctx, t, message.RCInvalidTransaction, "switch", "completion-processing-code")
	}
	if r.Amount <= 0 {
		return p.decline(ctx, t, message.RCInvalidAmount, "switch", "invalid-amount")
	}
	rrn := r.RRN
	t.rec.OriginalRRN = rrn
	unlock, err := p.lockRecord(ctx, rrn)
	if err != nil {
		return p.systemError(t, err)
	}
	defer unlock()
	pre, err := p.journal.Get(rrn)
	if errors.Is(err, journal.ErrNotFound) {
		return p.decline(ctx, t, message.RCOriginalNotFound, "switch", "preauth-not-found")
	}
	if err != nil {
		return p.systemError(t, err)
	}
	if reason, rc := p.completionRefusal(t, pre); reason != "" {
		return p.decline(ctx, t, rc, "switch", reason)
	}
	if pre.CompletedBy != "" {
		c, err := p.journal.Get(pre.CompletedBy)
		if err != nil && !errors.Is(err, journal.ErrNotFound) {
			return p.systemError(t, err)
		}
		switch {
		case c == nil:
		case c.Approved() && !c.Reversed():
			return p.decline(ctx, t, message.RCInvalidTransaction, "switch", "preauth-already-completed")
		case completionInDoubt(c):
			// Its advice may be queued, its reversal not yet: a second capture now
			// could reach the issuer beside it. Once the reversal is queued (within
			// seconds of the queue's return), the pre-authorization is open.
			return p.decline(ctx, t, message.RCSystemMalfunction, "switch", "preauth-completion-in-doubt")
		}
	}
	// The card, its expiry and its chip data (a terminal that read the chip for the
	// completion sends it, F55 over cup, DE 55 over ASCII) go sealed, the chip data
	// filtered as a stand-in's: the objects the issuer may check (message.AdviceICC),
	// none of those that hold the card's track, PAN or name. Chip data that does not
	// parse is left out (the issuer would not have read it either); a completion
	// without any (the usual one: the card no longer present) is advised without.
	icc, _ := message.AdviceICC(r.ICC)
	sealed, sealedExp, sealedICC, err := p.adviceCard(r, icc)
	if err != nil {
		return p.systemError(t, err)
	}
	t.issuer = pre.Issuer
	t.rec.Issuer = pre.Issuer
	// Written ahead as sent: from the moment the advice may be queued, a crash leaves
	// an open record that recovery reverses (a 0420 of the completion, which the queue
	// does not send while the 0220 is still queued, saf.Reversal), so the issuer never
	// keeps a capture the switch has no approved record of.
	// The advice's DE 11 and DE 7 (the sent event's time) are the record's, so that a
	// 0420 of the completion names the 0220 the issuer got in DE 90.
	p.takeAdviceSTAN(&t.rec)
	t.rec.AddEvent(journal.StateSent, p.now().UTC(), "completion of "+rrn)
	if err := p.write(ctx, t, true); err != nil {
		return p.journalFailed(ctx, t, err)
	}
	pre.CompletedBy = t.rec.RRN
	if err := p.journal.Write(ctx, pre, false, true); err != nil {
		// Nothing queued: the completion is closed unapproved (the mark, if it was
		// written after all, names a completion that is not approved: still open).
		p.log.Error().Err(err).Str("rrn", rrn).Msg("pre-authorization not marked completed: completion answered 96, nothing queued")
		t.rec.AddEvent(journal.StateDeclined, p.now().UTC(), err.Error())
		return p.respond(ctx, t, message.RCSystemMalfunction, "", "switch", "preauth-not-marked")
	}
	it := &saf.Item{Issuer: pre.Issuer, MTI: "0220", RRN: t.rec.RRN, Reason: "completion",
		Fields: map[int]string{3: r.ProcCode, 4: r.AmountRaw, 22: r.EntryMode, 37: t.rec.RRN,
			38: pre.AuthCode, 39: message.RCApproved, 41: r.TID, 42: r.MID, 49: r.Currency,
			// DE 90: the pre-authorization as its issuer got it.
			90: p.originalData(pre)}}
	setAdviceCard(it, sealed, sealedExp, sealedICC)
	adviceIDs(it.Fields, &t.rec)
	if lerr := p.leaseLost(ctx, t); lerr != nil {
		// As a stand-in's (standInOrDecline): the recovering node's 0420 of the
		// completion must not be followed by its 0220.
		return p.handOver(t, lerr)
	}
	if err := p.queue.Enqueue(it); err != nil {
		// The advice is not known to be queued, nor known not to be (saf.Store: a
		// cluster's queue without an acknowledgement in time may store it when its
		// quorum returns). The completion is answered 96 and reversed: a 0420 of it,
		// which the queue never sends while the 0220 is queued (saf.Reversal). Until
		// that 0420 is queued the completion is in doubt (completionInDoubt) and keeps
		// the pre-authorization's mark, so that a retry cannot capture it a second
		// time; a 0420 the queue does not take either is owed (retried every 5 s,
		// and reversed by recovery after a restart: owesReversal).
		p.log.Error().Err(err).Str("rrn", t.rec.RRN).Str("issuer", pre.Issuer).
			Msg("completion advice not known to be queued: answered 96, the completion reversed")
		t.rec.AddEvent(journal.StateDeclined, p.now().UTC(), "advice not known to be queued: "+err.Error())
		p.queueReversal(&t.rec, "switch:completion-advice-unknown")
		return p.respond(ctx, t, message.RCSystemMalfunction, "", "switch", reasonCompletionAdviceUnknown)
	}
	p.answered(t, fmt.Sprintf("completes %s (%d of %d); advice queued for %s", rrn, r.Amount, pre.Amount, pre.Issuer))
	return p.respond(ctx, t, message.RCApproved, pre.AuthCode, "switch", "")
}

// completionRefusal checks a completion against its pre-authorization pre: the reason
// and code of a refusal, or "".
func (p *Pipeline) completionRefusal(t *txn, pre *journal.Record) (reason, rc string) {
	r := t.req
	switch {
	case pre.Type != "preauth":
		return "completion-original-not-a-preauth", message.RCInvalidTransaction
	case pre.MID != r.MID:
		return "completion-other-merchant", message.RCInvalidTransaction
	case pre.CardHash != t.rec.CardHash:
		return "completion-other-card", message.RCInvalidTransaction
	case pre.Reversed():
		return "preauth-reversed", message.RCInvalidTransaction
	case reversalPending(pre):
		return "original-reversal-owed", message.RCInvalidTransaction
	case !pre.Approved() || p.unsettled.keeps(pre.RRN):
		return "preauth-not-approved", message.RCInvalidTransaction
	case r.AuthCode != pre.AuthCode:
		return "completion-auth-code-mismatch", message.RCInvalidTransaction
	case pre.Currency != r.Currency:
		return "completion-currency-mismatch", message.RCInvalidTransaction
	case r.Amount > p.completionLimit(pre.Amount):
		return "completion-exceeds-preauth", message.RCInvalidAmount
	}
	return "", ""
}

// reasonCompletionAdviceUnknown is the reason (RS) of a completion answered 96 because
// the enqueue of its advice failed: the advice may be queued all the same.
const reasonCompletionAdviceUnknown = "completion-advice-not-queued"

// completionInDoubt reports whether c is a completion whose advice may be queued
// (answered 96 because the enqueue of its advice failed, or not approved after its
// advice was queued) whose reversal is not queued yet: owed, in this process's memory
// (owedAdvices), or, after a restart, to recovery (owesReversal). Its
// pre-authorization is not completed again meanwhile. The owed reversal is known by
// its reversal_owed event (queueReversal): the reason of a record kept for the
// journal's return (oweRecord) is journal-unavailable. The reason is the sign of
// records written before that event.
func completionInDoubt(c *journal.Record) bool {
	return c.Type == "completion" && c.Final() && !c.Reversed() && c.Issuer != "" &&
		(c.Reason == reasonCompletionAdviceUnknown || reversalOwed(c))
}

// completes reports whether the completion pre.CompletedBy names stands: approved and
// not reversed (one answered 96 or voided since leaves the pre-authorization open; one
// in doubt, completionInDoubt, keeps it from a new completion, not from its reversal).
func (p *Pipeline) completes(pre *journal.Record) (bool, error) {
	c, err := p.journal.Get(pre.CompletedBy)
	if errors.Is(err, journal.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return c.Approved() && !c.Reversed(), nil
}

// completedPreauth reports whether the pre-authorization pre stands completed, so
// that it cannot be reversed (its void) under its completion: the completion is
// voided first. A completion that cannot be read counts as standing (logged).
func (p *Pipeline) completedPreauth(pre *journal.Record) bool {
	if pre.CompletedBy == "" {
		return false
	}
	done, err := p.completes(pre)
	if err != nil {
		p.log.Error().Err(err).Str("rrn", pre.RRN).Str("completion", pre.CompletedBy).Msg("completion of a pre-authorization not read: taken as standing")
		return true
	}
	return done
}

// reopenPreauth clears the completion mark of the pre-authorization that the
// completion comp (now reversed or voided) captured, so that it may be completed
// again. It takes the pre-authorization's stripe; the caller holds no other, so that
// two stripes are never waited for crosswise. A failed write is logged: the mark then
// names a reversed completion, which leaves the pre-authorization open all the same.
func (p *Pipeline) reopenPreauth(comp *journal.Record) {
	if comp.Type != "completion" || comp.OriginalRRN == "" {
		return
	}
	unlock, err := p.lockRecord(context.Background(), comp.OriginalRRN)
	if err != nil {
		p.log.Error().Err(err).Str("rrn", comp.OriginalRRN).Msg("pre-authorization of a reversed completion not locked: its mark stays (it is open all the same)")
		return
	}
	defer unlock()
	pre, err := p.journal.Get(comp.OriginalRRN)
	if err != nil {
		p.log.Error().Err(err).Str("rrn", comp.OriginalRRN).Msg("pre-authorization of a reversed completion not read: its mark stays (it is open all the same)")
		return
	}
	if pre.CompletedBy != comp.RRN {
		return
	}
	pre.CompletedBy = ""
	if err := p.journal.Write(context.Background(), pre, false, true); err != nil {
		p.log.Error().Err(err).Str("rrn", pre.RRN).Msg("pre-authorization not reopened in the journal (it is open all the same)")
		return
	}
	p.log.Info().Str("rrn", pre.RRN).Str("completion", comp.RRN).Msg("pre-authorization reopened: its completion was reversed")
}
