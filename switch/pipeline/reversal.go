package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/saf"
)

// queueReversal puts a reversal advice (0420) of rec into the store-and-forward queue and
// marks rec reversed. The caller writes rec afterwards. An advice the queue does not
// take is owed (owedAdvices, tried again by the housekeeping), and rec gets a
// reversal_owed event instead of the mark: written with rec, it tells recovery after
// a restart (or a survivor's) to queue the 0420 that went with the process
// (owesReversal), whatever rec's reason says by then; one event per record (a repeat
// finds it there). The event goes with OwedBy naming this node: rec may be another
// node's record (a void's original), and the recovery that settles this node finds
// it by that name (ScanOwed), not among this node's records. It reports whether it
// added that event.
func (p *Pipeline) queueReversal(rec *journal.Record, by string) (owedNow bool) {
	return p.enqueueReversal(rec, by, false)
}

// queueRecoveredReversal is queueReversal for recovery (Recover, a survivor's
// RecoverRecords): the process that died may have queued the same 0420 before it
// could write rec reversed, and the queue's own duplicate check (a cluster's
// Nats-Msg-Id window, two minutes) may have forgotten it, or the issuer may have had
// it already. So the advice goes as a repeat (0421) from its first try
// (saf.Item.Repeat): an issuer takes a repeat it never had as the reversal, and one
// it had as a duplicate, never as a second reversal.
func (p *Pipeline) queueRecoveredReversal(rec *journal.Record, by string) (owedNow bool) {
	return p.enqueueReversal(rec, by, true)
}

// enqueueReversal is queueReversal; with repeat the advice's first try is a repeat.
func (p *Pipeline) enqueueReversal(rec *journal.Record, by string, repeat bool) (owedNow bool) {
	if rec.Issuer == "" || rec.ReversedBy != "" {
		return false
	}
	rec.ReversedBy = by
	it := &saf.Item{Issuer: rec.Issuer, MTI: "0420", RRN: rec.RRN, Reason: by, Repeat: repeat,
		Fields: map[int]string{
			3:  rec.ProcCode,
			4:  fmt.Sprintf("%012d", rec.Amount),
			37: rec.RRN,
			41: rec.TID,
			42: rec.MID,
			49: rec.Currency,
			90: p.originalData(rec),
		}}
	if err := p.queue.Enqueue(it); err != nil {
		// Not queued (a cluster's queue without a quorum, or its stream electing a
		// leader; a disk error alone): the record is written without the reversal,
		// and the housekeeping tries the advice again, marking the record reversed
		// once it is queued (retryAdvices).
		rec.ReversedBy = ""
		note := by + ": not queued (" + err.Error() + "); tried again"
		if p.owedAdvices.add(owedAdvice{it: it, by: by}) {
			p.log.Warn().Err(err).Str("rrn", rec.RRN).Str("issuer", rec.Issuer).Msg("reversal advice not queued yet: tried again every 5 s")
		} else {
			p.log.Error().Err(err).Str("rrn", rec.RRN).Str("issuer", rec.Issuer).Msg("reversal advice NOT queued, and too many wait to be tried again")
			note = by + ": not queued (" + err.Error() + "); left to recovery at a restart"
		}
		if reversalOwed(rec) {
			return false
		}
		rec.OwedBy = p.node
		rec.AddEvent(journal.StateReversalOwed, p.now().UTC(), note)
		return true
	}
	rec.AddEvent(journal.StateReversed, p.now().UTC(), by)
	return false
}

// originalData is DE 90 (original data elements, n42 in ISO 8583:1987) of an advice
// that names rec as its issuer got it: the MTI, DE 11 and DE 7 of the message the
// switch sent for rec (issuerMTI, IssuerSTAN, issuerDE7), the acquiring institution
// (the DE 32 of the issuer's link, right-aligned in 11 digits) and the forwarding
// institution (none, the switch sends no DE 33: zeros). The terminal's DE 11 and DE 7
// name nothing the issuer saw. It reads only rec and the configuration, so that the
// 0420 queued by recovery after a restart carries the DE 90 the process that died
// would have given it.
func (p *Pipeline) originalData(rec *journal.Record) string {
	acq := ""
	if link, ok := p.routes.Issuer(rec.Issuer); ok {
		acq = link.AcquirerID()
	}
	if len(acq) > 11 || !isDigits(acq) {
		acq = ""
	}
	return issuerMTI(rec) + pad6(rec.IssuerSTAN) + pad10(issuerDE7(rec)) + pad11(acq) + "00000000000"
}

// issuerMTI is the MTI of the message the issuer got for rec: a stand-in approval
// reached it as its advice (0120 for a pre-authorization, else 0220), as did an
// offline approval (0220), every other record as its own MTI (a completion's is its
// advice's, 0220).
func issuerMTI(rec *journal.Record) string {
	switch {
	case rec.Offline:
		return "0220" // an offline approval reached it as its advice
	case !rec.StandIn:
		return rec.MTI
	case rec.MTI == "0100":
		return "0120"
	}
	return "0220"
}

// issuerDE7 is DE 7 of the message the issuer got for rec: the time of rec's "sent"
// event, which is the instant the switch put in DE 7 of its request (authorize), or
// of the advice it queued (a completion's, a stand-in's: adviceIDs). A record
// without one (none is reversed at its issuer) gives the terminal's DE 7.
func issuerDE7(rec *journal.Record) string {
	for _, e := range rec.Events {
		if e.State == journal.StateSent {
			return message.FormatDE7(e.At)
		}
	}
	return rec.DE7
}

// takeAdviceSTAN gives rec, whose issuer is to get an advice of it (a completion's
// 0220, a stand-in's 0120 or 0220), the DE 11 of that advice, unless it has one: a
// STAN of its issuer's link, as the link's requests have. The caller journals it
// with rec's "sent" event, before the advice is queued.
func (p *Pipeline) takeAdviceSTAN(rec *journal.Record) {
	if rec.IssuerSTAN != "" {
		return
	}
	if link, ok := p.routes.Issuer(rec.Issuer); ok {
		rec.IssuerSTAN = link.NextSTAN()
	}
}

// adviceIDs puts into fields, an advice of rec, the DE 11 and DE 7 that its issuer
// gets on every try of it, repeats (0221) included: rec's IssuerSTAN and the time of
// its "sent" event. The advice sender gives an advice without them a STAN and the
// time of each try; a 0420 could not name such an advice in DE 90. A record without
// a STAN (its issuer no longer configured) leaves them to the sender.
func adviceIDs(fields map[int]string, rec *journal.Record) {
	if rec.IssuerSTAN == "" {
		return
	}
	fields[7], fields[11] = issuerDE7(rec), rec.IssuerSTAN
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func pad11(s string) string {
	for len(s) < 11 {
		s = "0" + s
	}
	return s
}

func pad6(s string) string {
	for len(s) < 6 {
		s = "0" + s
	}
	return s[:6]
}

func pad10(s string) string {
	for len(s) < 10 {
		s = "0" + s
	}
	return s[:10]
}

// writeOwed writes orig, the original of a void, a terminal's reversal or a late QR
// payment, to which queueReversal, not able to queue its 0420, has just given a
// reversal_owed event: the 0420 is owed in this process's memory (owedAdvices), and
// the event, written, has recovery queue it after a restart too (owesReversal), as
// the housekeeping would have. The caller holds orig's lock and answers its own
// request otherwise than approved. A journal that is unavailable gets the event from
// settle once it is back.
func (p *Pipeline) writeOwed(ctx context.Context, orig *journal.Record) {
	if err := p.journal.Write(context.WithoutCancel(ctx), orig, false, true); err != nil {
		p.log.Error().Err(err).Str("rrn", orig.RRN).Msg("reversal advice owed, the original's reversal_owed event not written: a restart before the queue takes the advice loses it")
		if errors.Is(err, journal.ErrUnavailable) {
			by := ""
			if n := len(orig.Events); n > 0 {
				by = orig.Events[n-1].Note
			}
			if !p.unsettled.add(settleItem{orig: orig.RRN, by: by, owed: true}) {
				p.log.Error().Str("rrn", orig.RRN).Msg("journal unavailable: too many records waiting for it; the original's reversal_owed event is NOT kept")
			}
		}
	}
}

// reverseOriginal reverses an approved transaction after the fact (undelivered answer,
// terminal reversal, void) and writes it durably; it reports whether the write was
// done. The caller holds its lock.
func (p *Pipeline) reverseOriginal(orig *journal.Record, by string) bool {
	p.queueReversal(orig, by)
	if err := p.journal.Write(context.Background(), orig, false, true); err != nil {
		p.log.Error().Err(err).Str("rrn", orig.RRN).Msg("journal write of reversed original failed")
		p.oweReversal(orig.RRN, orig.ReversedBy, err)
		return false
	}
	return true
}

// releaseRefund gives back, on its original, the amount a refund reserved there, once
// the refund's reversal is written: else the original could never be refunded again
// for that amount, nor reversed or voided (original-refunded). It runs once per
// refund: after the terminal's reversal of it, or its reversal as undelivered (a
// refund the issuer did not approve was released by authorize's caller). It takes
// the original's stripe; the caller holds no other, so that two stripes are never
// waited for crosswise.
//
// A refund whose reversal mark is written later by the retries (owed advices, the
// cluster's settle book) is released by settleOne once the mark is written; the path
// that owed the mark released nothing. Not released (the amount stays reserved: an
// under-refund, never an over-refund): a refund settled by recovery at a restart or
// by a survivor (its reservation may already have been released before the crash).
func (p *Pipeline) releaseRefund(rf *journal.Record) {
	if rf.Type != "refund" || rf.OriginalRRN == "" || rf.Amount <= 0 {
		return
	}
	unlock, err := p.lockRecord(context.Background(), rf.OriginalRRN)
	if err != nil {
		p.log.Error().Err(err).Str("rrn", rf.OriginalRRN).Str("refund", rf.RRN).Msg("original of a reversed refund not locked: its refunded amount stays reserved")
		return
	}
	defer unlock()
	orig, err := p.journal.Get(rf.OriginalRRN)
	if err != nil {
		p.log.Error().Err(err).Str("rrn", rf.OriginalRRN).Str("refund", rf.RRN).Msg("original of a reversed refund not read: its refunded amount stays reserved")
		return
	}
	before := orig.Refunded
	orig.Refunded = max(0, orig.Refunded-rf.Amount)
	if orig.Refunded == before {
		return
	}
	if err := p.journal.Write(context.Background(), orig, false, true); err != nil {
		p.log.Error().Err(err).Str("rrn", orig.RRN).Str("refund", rf.RRN).Msg("original of a reversed refund not written: its refunded amount stays reserved")
		return
	}
	p.log.Info().Str("rrn", orig.RRN).Str("refund", rf.RRN).Int64("amount", rf.Amount).Msg("refund reversed: its amount released on the original")
}

// holdOriginal claims the duplicate key of a reversal's original for as long as the
// reversal looks for it: an original in flight is waited for (up to 30 s), and one
// arriving meanwhile waits for the release, so that it is either found in the journal
// or finds the reversal in the memory of early reversals, never neither.
func (p *Pipeline) holdOriginal(ctx context.Context, key string) (release func()) {
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		e, first := p.dups.claim(key, p.now(), dupContent{}, true)
		if first {
			return func() { p.dups.forget(key, e) }
		}
		select {
		case <-e.done:
		case <-ctx.Done():
			return func() {}
		case <-deadline.C:
			return func() {}
		}
	}
}

// earlyReversals remembers, for the duplicate window, the terminal reversals whose
// original the switch had not seen, by the original's DE 41 + 11 + 7: the original, if
// it comes late, is declined instead of standing approved. It is bounded (max entries)
// and costs the hot path one atomic load while it is empty.
type earlyReversals struct {
	n      atomic.Int64
	mu     sync.Mutex
	m      map[string]earlyReversal
	window time.Duration
	max    int
}

// earlyReversal is one remembered reversal: its RRN, the original's MTI and when.
type earlyReversal struct {
	rrn, mti string
	at       time.Time
}

func newEarlyReversals(window time.Duration, max int) *earlyReversals {
	return &earlyReversals{m: map[string]earlyReversal{}, window: window, max: max}
}

// remember keeps a reversal of the original with key; false when the memory is full
// of unexpired entries.
func (r *earlyReversals) remember(key, rrn, mti string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.m) >= r.max {
		for k, v := range r.m {
			if now.Sub(v.at) > r.window {
				delete(r.m, k)
			}
		}
		if len(r.m) >= r.max {
			return false
		}
	}
	r.m[key] = earlyReversal{rrn: rrn, mti: mti, at: now}
	r.n.Store(int64(len(r.m)))
	return true
}

// take returns (and forgets) the unexpired reversal of the original with key and MTI.
func (r *earlyReversals) take(key, mti string, now time.Time) (string, bool) {
	if r.n.Load() == 0 {
		return "", false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.m[key]
	if !ok || v.mti != mti {
		return "", false
	}
	delete(r.m, key)
	r.n.Store(int64(len(r.m)))
	if now.Sub(v.at) > r.window {
		return "", false
	}
	return v.rrn, true
}

// reversedBeforeArrival declines an original whose reversal (rev) came first: the
// terminal already gave up on it, so it is not sent to the issuer.
func (p *Pipeline) reversedBeforeArrival(ctx context.Context, t *txn, rev string) (frontend.Response, error) {
	if err := p.newRecord(t); err != nil {
		return p.systemError(t, err)
	}
	p.log.Warn().Str("rrn", t.rec.RRN).Str("tid", t.req.TID).Str("stan", t.req.STAN).Str("reversal", rev).
		Msg("original arrived after its reversal: declined, not sent to the issuer")
	t.rec.AddEvent(journal.StateDeclined, p.now().UTC(), "reversed by "+rev+" before it arrived")
	return p.respond(ctx, t, message.RCInvalidTransaction, "", "switch", "reversed-before-arrival")
}

// reversibleApproval reports whether rec is an approval the switch reverses when the
// terminal may not have heard of it (undelivered, or in doubt after a crash). An
// offline approval the switch captured (offline.go) is not: the card approved it and
// the goods are gone; a terminal that did not hear of the capture uploads it again
// and is answered 00 once more.
func reversibleApproval(rec *journal.Record) bool {
	return rec.Approved() && !rec.Reversed() && !rec.Offline &&
		(rec.Type == "purchase" || rec.Type == "preauth" || rec.Type == "refund")
}

// reversal handles a terminal's 0400: it is answered 00 at once (after the journal and
// the queue have it), and the original, when found and approved, is reversed at its
// issuer through the store-and-forward queue. One whose amount is not its original's
// is declined 13 (or reverses the original in full, as configured); one whose original
// is unknown is remembered, so that the original, arriving late, is declined.
func (p *Pipeline) reversal(ctx context.Context, t *txn) (frontend.Response, error) {
	if err := p.newRecord(t); err != nil {
		return p.systemError(t, err)
	}
	// The terminal's registration, status, binding, merchant and MAC are checked as
	// for its original: else anyone on the network could reverse a terminal's
	// approvals, or (remembered as early) decline the originals it has yet to send.
	res, declined, err := p.checkTerminal(ctx, t, t.macOK, registry.CheckReversal)
	if declined != nil || err != nil {
		return *declined, err
	}
	inactive := notActive(res)
	r := t.req
	origMTI, origSTAN, origDE7 := r.Original[0:4], r.Original[4:10], r.Original[10:20]
	origKey := journal.DupKey(r.TID, origSTAN, origDE7)
	if origKey == t.dupKey {
		// Its own key: it would wait for itself (holdOriginal) until its deadline.
		return p.decline(ctx, t, message.RCInvalidTransaction, "switch", "reversal-names-itself")
	}
	release := p.holdOriginal(ctx, origKey)
	rrn, found, err := p.journal.LookupDuplicate(r.TID, origSTAN, origDE7)
	if err != nil {
		release()
		return p.systemError(t, err)
	}
	note := ""
	if !found {
		if p.early.remember(origKey, t.rec.RRN, origMTI, p.now()) {
			note = "original unknown: remembered for " + p.cfg.DupWindow.String() + " (a late original is declined); nothing forwarded"
		} else {
			note = "original unknown: nothing forwarded; NOT remembered (memory of early reversals full)"
			p.log.Error().Str("rrn", t.rec.RRN).Str("tid", r.TID).Str("original_stan", origSTAN).
				Msg("reversal of an unknown original not remembered: the memory of early reversals is full")
		}
	}
	release()
	if found {
		t.rec.OriginalRRN = rrn
		// An original in flight on another node of a cluster (written ahead there, not
		// answered yet) is waited for: now it would look not approved, and stay
		// unreversed if it is approved after all.
		if _, err := p.awaitFinal(ctx, rrn); errors.Is(err, errWaitEnded) {
			p.open.remove(t.rec.RRN)
			return p.tryAgain(t, rrn, "original-in-flight", err)
		} else if err != nil {
			return p.systemError(t, err)
		}
		var releaseRefund, reopen *journal.Record // a reversed refund or completion, seen to after unlock
		// Before the lock: it waits on the cluster.
		if err := p.catchUpBatches(ctx, r.TID); err != nil {
			return p.systemError(t, err)
		}
		unlock, err := p.lockRecord(ctx, rrn)
		if err != nil {
			return p.systemError(t, err)
		}
		orig, err := p.journal.Get(rrn)
		var closedErr error
		switch {
		case err != nil:
			unlock()
			return p.systemError(t, err)
		case orig.MID != r.MID || orig.MTI != origMTI:
			note = fmt.Sprintf("original %s does not match (merchant or MTI): nothing forwarded", rrn)
		case orig.Type == "void":
			// The void reversed its sale at the issuer (a 0420) when it was approved;
			// nothing brings the sale back. Reversing the void would queue a 0420
			// of the void itself, which the issuer never saw, and answer 00 while
			// the sale stays reversed (found by a trial).
			unlock()
			t.rec.AddEvent(journal.StateDeclined, p.now().UTC(), "original "+rrn+" is a void: a void is not reversed (its sale was reversed at the issuer); nothing reversed")
			return p.respond(ctx, t, message.RCInvalidTransaction, "", "switch", "void-not-reversible")
		case orig.Reversed():
			note = "original already reversed by " + orig.ReversedBy
		case !orig.Approved() || p.unsettled.keeps(orig.RRN):
			note = "original was not approved: nothing to reverse"
		case inactive != "" && p.now().Sub(orig.Received) > p.cfg.DupWindow:
			// A reversal is taken from a terminal whatever its standing, for
			// the request it got no answer to around its suspension; one of an
			// older approval from a suspended or closed terminal (or one of a
			// frozen or closed merchant) is a stolen terminal crediting back a
			// purchase whose goods are long gone.
			unlock()
			age := p.now().Sub(orig.Received).Truncate(time.Second)
			p.log.Warn().Str("rrn", t.rec.RRN).Str("tid", r.TID).Str("original_rrn", rrn).Str("standing", inactive).
				Dur("original_age", age).Dur("window", p.cfg.DupWindow).
				Msg("reversal refused: the terminal is not active and its original is older than the duplicate window; nothing reversed")
			t.rec.AddEvent(journal.StateDeclined, p.now().UTC(), fmt.Sprintf("%s: original %s received %s ago, more than %s before: a terminal not active reverses only its requests of the last %s; nothing reversed",
				inactive, rrn, age, p.cfg.DupWindow, p.cfg.DupWindow))
			return p.respond(ctx, t, message.RCNotPermittedTerm, "", "binding", ReasonReversalNotActive)
		case orig.Type == "preauth" && p.completedPreauth(orig):
			unlock()
			t.rec.AddEvent(journal.StateDeclined, p.now().UTC(), "pre-authorization completed by "+orig.CompletedBy+": the completion is voided first; nothing reversed")
			return p.respond(ctx, t, message.RCInvalidTransaction, "", "switch", "preauth-completed")
		case orig.Refunded > 0:
			// Refunds (approved, or reserved while their issuer is asked) name it: the
			// terminal had its answer, and reversing it too would credit the card twice.
			unlock()
			t.rec.AddEvent(journal.StateDeclined, p.now().UTC(),
				fmt.Sprintf("original refunded (%d of %d): refunds are reversed one by one; nothing reversed", orig.Refunded, orig.Amount))
			return p.respond(ctx, t, message.RCInvalidTransaction, "", "switch", "original-refunded")
		case inBatch(orig) && func() bool {
			closed, err := p.batchClosed(orig)
			closedErr = err
			return closed || err != nil
		}():
			if closedErr != nil {
				unlock()
				return p.systemError(t, closedErr)
			}
			// The terminal counted it in a batch it has closed (an 0500 after
			// it), as it would a void's original (ReasonVoidBatchClosed): a
			// terminal sends the reversals it owes before its 0500, so this one
			// is late or not of this terminal's batch, and reversing it would
			// take out of the day's settlement money the terminal reconciled.
			// Declined, nothing reversed; the terminal refunds it instead.
			// Until 8 December 2026 it was reversed.
			unlock()
			p.log.Warn().Str("rrn", t.rec.RRN).Str("tid", r.TID).Str("original_rrn", rrn).
				Msg("reversal refused: its original is in a batch the terminal has closed; nothing reversed")
			t.rec.AddEvent(journal.StateDeclined, p.now().UTC(),
				"original "+rrn+" is in a batch the terminal has closed: nothing reversed (refund it instead)")
			return p.respond(ctx, t, message.RCInvalidTransaction, "", "switch", ReasonReversalBatchClosed)
		case len(orig.ProcCode) == 6 && r.ProcCode[:2] != orig.ProcCode[:2]:
			// Its DE 3 says another transaction type (a purchase's 00 naming a
			// refund, 20): a terminal's reversal repeats its original's DE 3, so
			// this one is not of that original, and reversing it would move money
			// the other way from what the terminal shows (taking back a card's
			// refund while the terminal shows a purchase cancelled). Declined,
			// nothing reversed, as an amount that differs is; the account types
			// (digits 3 to 6) are not compared. Until 7 December 2026 DE 3 was not
			// compared at all.
			unlock()
			p.log.Warn().Str("rrn", t.rec.RRN).Str("tid", r.TID).Str("original_rrn", rrn).
				Str("proc_code", r.ProcCode).Str("original_proc_code", orig.ProcCode).
				Msg("reversal refused: its transaction type (DE 3) is not its original's; nothing reversed")
			t.rec.AddEvent(journal.StateDeclined, p.now().UTC(),
				fmt.Sprintf("processing code %s is not of the original's transaction type (%s): nothing reversed", r.ProcCode, orig.ProcCode))
			return p.respond(ctx, t, message.RCInvalidTransaction, "", "switch", "reversal-processing-code-mismatch")
		case r.Currency != "" && orig.Currency != "" && r.Currency != orig.Currency:
			// A terminal's reversal repeats its original's fields, DE 49 with them
			// (the request it got no answer to): one in another currency is not of
			// that original, whatever its amount, and reverse_full does not apply
			// (its amount is not comparable). Declined, nothing reversed: answered
			// 00, the terminal would show money given back that was not (until 7
			// December 2026 the original was reversed). One without DE 49 is
			// matched by DE 90 and the amount, as before.
			unlock()
			p.log.Warn().Str("rrn", t.rec.RRN).Str("tid", r.TID).Str("original_rrn", rrn).
				Str("currency", r.Currency).Str("original_currency", orig.Currency).
				Msg("reversal refused: its currency (DE 49) is not its original's; nothing reversed")
			t.rec.AddEvent(journal.StateDeclined, p.now().UTC(),
				fmt.Sprintf("currency %s is not the original's %s: nothing reversed", r.Currency, orig.Currency))
			return p.respond(ctx, t, message.RCInvalidTransaction, "", "switch", "reversal-currency-mismatch")
		case orig.Amount != r.Amount && orig.RequestedAmount() != r.Amount && p.cfg.ReversalMismatch != "reverse_full":
			unlock()
			t.rec.AddEvent(journal.StateDeclined, p.now().UTC(),
				fmt.Sprintf("amount %d is not the original's %d: nothing reversed", r.Amount, orig.Amount))
			return p.respond(ctx, t, message.RCInvalidAmount, "", "switch", "reversal-amount-mismatch")
		default:
			if p.queueReversal(orig, t.rec.RRN) {
				p.writeOwed(ctx, orig)
			}
			if orig.ReversedBy == "" {
				unlock()
				return p.systemError(t, errors.New("reversal advice could not be queued"))
			}
			if err := p.journal.Write(ctx, orig, false, true); err != nil {
				unlock()
				p.oweReversal(orig.RRN, orig.ReversedBy, err)
				return p.systemError(t, err)
			}
			switch orig.Type {
			case "refund":
				releaseRefund = orig
			case "completion":
				reopen = orig
			}
			t.rec.Issuer = orig.Issuer
			t.undo, t.undoBy = orig, risk.Retraction{Kind: risk.RetractReversal}
			note = "original reversed at issuer " + orig.Issuer
			if orig.Amount != r.Amount && orig.RequestedAmount() != r.Amount {
				note = fmt.Sprintf("amount %d is not the original's %d: original reversed in full at issuer %s", r.Amount, orig.Amount, orig.Issuer)
			}
		}
		unlock()
		if releaseRefund != nil {
			p.releaseRefund(releaseRefund) // with no stripe held
		}
		if reopen != nil {
			p.reopenPreauth(reopen) // with no stripe held
		}
	}
	p.answered(t, note)
	return p.respond(ctx, t, message.RCApproved, "", "switch", "")
}

// ReasonVoidBatchClosed is the reason of a void (declined 12) of a transaction
// whose batch the terminal has closed (an 0500 after it, BatchTime): the terminal
// counted it in the totals it reconciled, and a batch closed stays as it was
// totalled, so a void would take back money no batch shows; the terminal refunds
// it instead. Since 7 December 2026; before, such a void was approved and the
// day's settlement had no line for what the terminal had reconciled.
const ReasonVoidBatchClosed = "void-batch-closed"

// ReasonReversalBatchClosed is the reason of a reversal (declined 12) of a
// purchase, completion or refund whose batch the terminal has closed, for the
// reasons of ReasonVoidBatchClosed. Since 8 December 2026.
const ReasonReversalBatchClosed = "reversal-batch-closed"

// inBatch reports whether orig is of a type a batch counts (addTotals).
func inBatch(orig *journal.Record) bool {
	return orig.Type == "purchase" || orig.Type == "completion" || orig.Type == "refund"
}

// catchUpBatches waits, in a cluster (CatchUpper), up to batchCatchUp until this
// node holds every batch close the cluster's stream held, so that an 0500 of
// terminal tid answered by another node a moment ago counts for batchClosed
// (before 8 December 2026 only the closes this node had applied did). It is
// called before the original's lock is taken: it waits on the cluster, and a
// stripe held meanwhile would hold up other records' changes.
func (p *Pipeline) catchUpBatches(ctx context.Context, tid string) error {
	c, ok := p.journal.(CatchUpper)
	if !ok {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, batchCatchUp)
	defer cancel()
	if err := c.CaughtUp(cctx); err != nil {
		return fmt.Errorf("waiting for terminal %s's batch closes on the other nodes: %w", tid, err)
	}
	return nil
}

// batchClosed reports whether orig is in a batch its terminal has closed: its
// BatchTime is before the terminal's last close, as BatchTotals counts it (in a
// cluster, after catchUpBatches).
func (p *Pipeline) batchClosed(orig *journal.Record) (bool, error) {
	last, err := p.journal.LastBatch(orig.TID)
	if err != nil {
		return false, fmt.Errorf("change of %s: terminal %s's last batch close: %w", orig.RRN, orig.TID, err)
	}
	return !last.IsZero() && BatchTime(orig).Before(last), nil
}

// void cancels an approved purchase or completion of the same terminal and day, and
// of its open batch (ReasonVoidBatchClosed), named by DE 37 (and DE 38 when sent): the original is reversed at its issuer (a completion
// by a 0420 advice after its 0220), and a completion's pre-authorization reopened.
func (p *Pipeline) void(ctx context.Context, t *txn) (frontend.Response, error) {
	r := t.req
	rrn := r.RRN
	// A voided completion reopens its pre-authorization once l is released (one
	// stripe at a time).
	var reopen *journal.Record
	defer func() {
		if reopen != nil {
			p.reopenPreauth(reopen)
		}
	}()
	if err := p.catchUpBatches(ctx, r.TID); err != nil { // before the lock: it waits on the cluster
		return p.systemError(t, err)
	}
	unlock, err := p.lockRecord(ctx, rrn)
	if err != nil {
		return p.systemError(t, err)
	}
	defer unlock()
	orig, err := p.journal.Get(rrn)
	if errors.Is(err, journal.ErrNotFound) {
		return p.decline(ctx, t, message.RCOriginalNotFound, "switch", "original-not-found")
	}
	if err != nil {
		return p.systemError(t, err)
	}
	if reason := qrOriginal(t, orig); reason != "" {
		return p.decline(ctx, t, message.RCInvalidTransaction, "switch", reason)
	}
	loc := p.cfg.Location
	switch {
	case orig.TID != r.TID || orig.Type != "purchase" && orig.Type != "completion":
		return p.decline(ctx, t, message.RCInvalidTransaction, "switch", "void-not-same-terminal-purchase")
	case t.rec.CardHash != orig.CardHash:
		// The void's record would carry another card than the money it moves back,
		// in the journal and the settlement rows.
		return p.decline(ctx, t, message.RCInvalidTransaction, "switch", "void-other-card")
	case orig.Reversed():
		return p.decline(ctx, t, message.RCInvalidTransaction, "switch", "original-already-reversed")
	case reversalPending(orig):
		return p.decline(ctx, t, message.RCInvalidTransaction, "switch", "original-reversal-owed")
	case !orig.Approved() || p.unsettled.keeps(orig.RRN):
		return p.decline(ctx, t, message.RCInvalidTransaction, "switch", "original-not-approved")
	case orig.Received.In(loc).Format("2006-01-02") != t.start.In(loc).Format("2006-01-02"):
		return p.decline(ctx, t, message.RCInvalidTransaction, "switch", "void-not-same-day")
	case r.AuthCode != "" && r.AuthCode != orig.AuthCode:
		return p.decline(ctx, t, message.RCInvalidTransaction, "switch", "void-auth-code-mismatch")
	case orig.Currency != "" && r.Currency != orig.Currency:
		// Not the original's money, as for a refund: the terminal would show 20.00
		// yuan voided where the switch voided 2.000 dinars (until 7 December 2026).
		return p.decline(ctx, t, message.RCInvalidTransaction, "switch", "void-currency-mismatch")
	case r.Amount != orig.Amount && r.Amount != orig.RequestedAmount():
		return p.decline(ctx, t, message.RCInvalidAmount, "switch", "void-amount-mismatch")
	case orig.Refunded > 0:
		return p.decline(ctx, t, message.RCInvalidTransaction, "switch", "original-refunded")
	}
	if closed, err := p.batchClosed(orig); err != nil {
		return p.systemError(t, err)
	} else if closed {
		return p.decline(ctx, t, message.RCInvalidTransaction, "switch", ReasonVoidBatchClosed)
	}
	if why := p.voidPolicy(t); why != "" {
		return p.decline(ctx, t, message.RCInvalidTransaction, "switch", why)
	}
	if p.queueReversal(orig, t.rec.RRN) {
		p.writeOwed(ctx, orig)
	}
	if orig.ReversedBy == "" {
		return p.systemError(t, errors.New("reversal advice could not be queued"))
	}
	if err := p.journal.Write(ctx, orig, false, true); err != nil {
		p.oweReversal(orig.RRN, orig.ReversedBy, err)
		return p.systemError(t, err)
	}
	reopen = orig
	t.rec.Issuer = orig.Issuer
	t.undo, t.undoBy = orig, risk.Retraction{Kind: risk.RetractVoid}
	p.answered(t, "original "+rrn+" reversed at issuer "+orig.Issuer)
	return p.respond(ctx, t, message.RCApproved, orig.AuthCode, "switch", "")
}

// refund checks a refund against its original (DE 37): known, an approved purchase,
// not reversed, inside the refund window, and with all refunds together at most the
// original amount. The amount is reserved on the original before the issuer is asked
// and released if the issuer does not approve.
func (p *Pipeline) refund(ctx context.Context, t *txn) (frontend.Response, error) {
	r := t.req
	rrn := r.RRN
	unlock, err := p.lockRecord(ctx, rrn)
	if err != nil {
		return p.systemError(t, err)
	}
	orig, err := p.journal.Get(rrn)
	if errors.Is(err, journal.ErrNotFound) {
		unlock()
		return p.decline(ctx, t, message.RCOriginalNotFound, "switch", "original-not-found")
	}
	if err != nil {
		unlock()
		return p.systemError(t, err)
	}
	reason, rc := "", ""
	switch {
	case orig.Type != "purchase" && orig.Type != "completion" || orig.MID != r.MID:
		reason, rc = "refund-original-not-a-purchase-of-merchant", message.RCInvalidTransaction
	case orig.Reversed():
		reason, rc = "original-already-reversed", message.RCInvalidTransaction
	case reversalPending(orig):
		reason, rc = "original-reversal-owed", message.RCInvalidTransaction
	case !orig.Approved() || p.unsettled.keeps(orig.RRN):
		reason, rc = "original-not-approved", message.RCInvalidTransaction
	case t.start.Sub(orig.Received) > p.cfg.RefundWindow:
		reason, rc = "refund-window-passed", message.RCInvalidTransaction
	case orig.Currency != "" && r.Currency != orig.Currency:
		// Not the original's money: 10,000 cents are not 10,000 fen, and the
		// ceiling below would compare them as if they were.
		reason, rc = "refund-currency-mismatch", message.RCInvalidTransaction
	case r.Amount <= 0: // nothing to refund (it read as exceeding the original)
		reason, rc = "invalid-amount", message.RCInvalidAmount
	case orig.Refunded+r.Amount > orig.Amount:
		reason, rc = "refund-exceeds-original", message.RCInvalidAmount
	default:
		reason, rc = p.refundPolicy(t, orig, r.Amount)
	}
	if reason != "" {
		unlock()
		return p.decline(ctx, t, rc, "switch", reason)
	}
	orig.Refunded += r.Amount
	if err := p.journal.Write(ctx, orig, false, true); err != nil {
		unlock()
		return p.systemError(t, err)
	}
	t.undo = orig
	t.undoBy = risk.Retraction{Kind: risk.RetractRefund, Amount: int(r.Amount), Partial: orig.Refunded < orig.Amount}
	t.rec.RefundedTo = orig.Refunded // the decision, for the nodes that fold the refund
	unlock()
	release := func() {
		unlock, err := p.lockRecord(context.Background(), rrn)
		if err != nil {
			p.log.Error().Err(err).Str("rrn", rrn).Msg("releasing a refund reservation: the original is not locked; its amount stays reserved")
			return
		}
		defer unlock()
		o, err := p.journal.Get(rrn)
		if err != nil {
			p.log.Error().Err(err).Str("rrn", rrn).Msg("releasing a refund reservation")
			return
		}
		o.Refunded -= r.Amount
		if err := p.journal.Write(context.Background(), o, false, true); err != nil {
			p.log.Error().Err(err).Str("rrn", rrn).Msg("releasing a refund reservation")
		}
	}
	return p.authorize(ctx, t, release)
}

// owedAdvice is an advice the queue did not take: a reversal advice, with who
// reversed, or (offline) the advice of an offline approval (oweOfflineAdvice).
type owedAdvice struct {
	it      *saf.Item
	by      string
	offline bool
}

// adviceBook keeps the advices the queue did not take, for the housekeeping to try
// again (bounded: past maxOwedAdvices they are logged and dropped): reversal
// advices (0420) and offline approvals' advices (0220).
type adviceBook struct {
	mu    sync.Mutex
	items []owedAdvice
}

const maxOwedAdvices = 100_000

// add keeps a, unless an advice of the same original (RRN) is owed already (a late
// QR payment's notification repeated while the queue refused its refund): one
// reversal advice per original. It reports whether a is owed.
func (b *adviceBook) add(a owedAdvice) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, x := range b.items {
		if x.it.RRN == a.it.RRN && x.it.Issuer == a.it.Issuer && x.it.MTI == a.it.MTI {
			return true
		}
	}
	if len(b.items) >= maxOwedAdvices {
		return false
	}
	b.items = append(b.items, a)
	return true
}

// minRRN returns the lowest RRN of the advices owed whose RRN starts as own does
// ("" if none): the recovery checkpoint must not pass it, the advice living in this
// process's memory only. Another node's RRN (a cluster's, its first digit the node's)
// is left out: this node's recovery scans only its own records from the checkpoint,
// and finds an owed advice of another node's record by the record's OwedBy
// (ScanOwed), wherever the checkpoint stands.
func (b *adviceBook) minRRN(own string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	lo := ""
	for _, x := range b.items {
		r := x.it.RRN
		if own == "" || len(r) != len(own) || r[0] != own[0] {
			continue
		}
		if lo == "" || r < lo {
			lo = x.it.RRN
		}
	}
	return lo
}

func (b *adviceBook) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.items)
}

// retryAdvices tries the advices the queue did not take again, in order, until one
// fails (the rest wait for the next tick); none while this node's lease is not
// known held (Config.LeaseHeld). Each is tried under its original's record
// lock, read again there: an original reversed meanwhile (its advice queued by
// another path, a repeat of a late QR payment's notification, say) has its owed
// advice dropped, not queued twice. One queued has its original marked reversed
// through the journal under the same lock, so that no other path sees it unreversed
// after its advice went; a mark the journal does not take is owed (settle writes it).
func (p *Pipeline) retryAdvices() {
	if !p.leaseHeld() {
		return // a later tick's (Config.LeaseHeld)
	}
	b := &p.owedAdvices
	b.mu.Lock()
	items := b.items
	b.items = nil
	b.mu.Unlock()
	done := 0
	for ; done < len(items); done++ {
		if !p.retryAdvice(items[done]) {
			break
		}
	}
	b.mu.Lock()
	b.items = append(items[done:], b.items...)
	b.mu.Unlock()
}

// retryAdvice tries owed advice a once; false: not queued, to be tried again.
func (p *Pipeline) retryAdvice(a owedAdvice) bool {
	ctx := context.Background()
	rrn := a.it.RRN
	unlock, err := p.lockRecord(ctx, rrn)
	if err != nil {
		return false
	}
	cur, err := p.journal.Get(rrn)
	if a.offline {
		defer unlock()
		if err != nil {
			cur = nil
		}
		return p.retryOfflineAdvice(cur, a)
	}
	if err == nil && cur.Reversed() {
		unlock()
		p.log.Info().Str("rrn", rrn).Str("issuer", a.it.Issuer).Str("reversed_by", cur.ReversedBy).
			Msg("owed reversal advice dropped: its original is reversed already")
		return true
	}
	if err := p.queue.Enqueue(a.it); err != nil {
		unlock()
		return false
	}
	p.log.Info().Str("rrn", rrn).Str("issuer", a.it.Issuer).Msg("reversal advice queued on a later try")
	if cur == nil {
		// Not read (the journal unavailable): settle writes the mark.
		unlock()
		p.unsettled.add(settleItem{orig: rrn, by: a.by})
		return true
	}
	cur.ReversedBy = a.by
	cur.AddEvent(journal.StateReversed, p.now().UTC(), a.by)
	werr := p.journal.Write(ctx, cur, false, true)
	unlock()
	switch {
	case werr != nil:
		p.log.Warn().Err(werr).Str("rrn", rrn).Msg("reversal advice queued, its original's mark not written: tried again")
		p.unsettled.add(settleItem{orig: rrn, by: a.by})
	case cur.Approved():
		// As settleOne: an approved refund still holds its reservation.
		p.releaseRefund(cur)
	}
	return true
}

// ReasonReversalNotActive (58) refuses a reversal from a terminal that is not
// active (suspended, closed) or whose merchant is not (frozen, closed), of an
// original received more than the duplicate window (Config.DupWindow, 5 min by
// default) before: such a terminal reverses only what it sent just before its
// standing changed, the request it got no answer to. Without the bound a stolen
// terminal, suspended once reported, could credit back any of its past approvals
// (its thief's own purchase, the goods long gone) by DE 11 and DE 7.
const ReasonReversalNotActive = "reversal-terminal-not-active"

// notActive is the standing that limits a reversal's reach (ReasonReversalNotActive):
// the terminal's status when it is pending, suspended or closed, else its merchant's
// when that is pending, frozen or closed; "" otherwise, or when res is nil (no
// terminal checks).
func notActive(res *registry.CheckResult) string {
	if res == nil || res.Terminal == nil {
		return ""
	}
	switch st := res.Terminal.Status; st {
	case registry.TerminalSuspended, registry.TerminalClosed, registry.TerminalPending:
		return "terminal " + string(st)
	}
	if res.Merchant != nil {
		switch st := res.Merchant.Status; st {
		case registry.MerchantFrozen, registry.MerchantClosed, registry.MerchantPending:
			return "merchant " + string(st)
		}
	}
	return ""
}
