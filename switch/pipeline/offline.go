package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/metrics"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/saf"
)

// Offline capture. An EMV card may approve a purchase offline (its terminal never
// asked the switch); the terminal uploads it afterwards (the cup dialect's batch upload
// 0320, docs/cup-dialect.md), and the merchant is paid only once the switch captures
// it. The card decided, and the goods are gone: the switch does not authorize it again
// nor run the rules' decline on it. It checks the terminal and its merchant (registered
// and active, its bound identity, as for a purchase) and the merchant's per-transaction
// limit (offlineLimit: the switch cannot check the card's certificate, so a terminal's
// MAK alone must not have the merchant paid any amount) and, through the server's
// MerchantLimits, its daily and monthly amount and daily count limits (checked and
// journaled under the merchant's lock, with its QR payments), journals the purchase as
// approved by the card (journal.Record.Offline, decided_by "card"), and owes the
// issuer an advice (0220, repeated as 0221) through the store-and-forward queue, as a
// completion and a stand-in approval do. Settlement and the velocity counters count
// it as an online purchase.
//
// The request's DE 7 is the time the card approved it (the terminal's F13 + F12). Its
// duplicate key is the card's approval, not DE 41 + 11 + 7: a keyed hash of the PAN,
// the application transaction counter and the cryptogram (captureKey,
// journal.Record.CaptureKey), so that an upload sent again, whether its answer was
// lost or it is a replay under another STAN or time, gets the first answer: never a
// second capture nor a second advice, across restarts and on every node of a cluster
// (the key is decided in the stream's order as any other). The same approval from
// another terminal is answered 94 (duplicate-key-other-content), as is one of another
// amount. (Until 6 December 2026 the key was DE 41 + 11 + 7: the same TC uploaded
// under two STANs was captured twice.) A refusal is journaled without that DE 7 (it
// does not take the key): the terminal keeps the approval and uploads it again
// later, once its terminal is active again say, and that upload is processed afresh.

// DecidedByCard is journal.Record.DecidedBy of an approval the card gave offline.
const DecidedByCard = "card"

// reasonCardDeclinedOffline is the reason of an upload whose ICC data says the card
// declined (9F27 an AAC): answered 12, nothing captured.
const reasonCardDeclinedOffline = "card-declined-offline"

// ReasonOfflineOverLimit is the reason of an offline approval refused (61) because
// its amount passes the merchant's per-transaction limit (offlineLimit), or an
// adapter's ceiling of the listener (the cup dialect's offline_max_amount).
const ReasonOfflineOverLimit = "offline-over-limit"

// Reasons of an offline approval refused because it would take its merchant past
// one of its registry limits over a window (MerchantLimits): the daily and monthly
// amounts are answered 61 (as ReasonOfflineOverLimit), the daily count 65.
const (
	ReasonOfflineDailyLimit   = "offline-over-daily-limit"
	ReasonOfflineMonthlyLimit = "offline-over-monthly-limit"
	ReasonOfflineDailyCount   = "offline-over-daily-count"
)

// reasonOfflineLimitsUnchecked is the reason of an offline approval whose merchant's
// limits could not be checked now (MerchantLimits failed: a cluster without a
// quorum, or the merchant's lock held elsewhere too long): answered 91, the code the
// terminal tries again later on, nothing captured.
const reasonOfflineLimitsUnchecked = "merchant-limits-unavailable"

// MerchantLimits checks the limits of a merchant that bound what it takes over a
// window, its daily and monthly amounts and its daily count (the registry's
// limits.daily, limits.monthly and limits.daily_count), for an offline capture:
// no rule decides one, as none decides a merchant-presented QR payment, whose
// checks and sums the server shares with it (server's orderlimits.go).
type MerchantLimits interface {
	// HoldLimits says which of merchant m's limits a capture of amount, recorded
	// as rrn, would pass now: one of the ReasonOffline* limit reasons, "" for none.
	// When it passes none and m has such a limit, hold is not nil: it keeps the
	// merchant locked (its other captures and QR payments wait, on this node and in
	// a cluster on every node) until Release, so that the next check sees this
	// capture. An error (the journal not read, the cluster-wide lock not taken)
	// is no refusal: the capture is not to be taken now.
	HoldLimits(ctx context.Context, m *registry.Merchant, rrn string, amount int64) (over string, hold LimitHold, err error)
}

// LimitHold is a merchant's lock held for a capture (MerchantLimits.HoldLimits).
type LimitHold interface {
	// Count counts capture rrn, received at at, of amount, in the merchant's sums
	// before its approved record is written (its record's version replaces it).
	Count(rrn string, at time.Time, amount int64)
	// Keep keeps the merchant's cluster-wide lock, if any, after Release: the
	// capture stands but its approved record is not written yet, and another node
	// would check the merchant without it. The lock is given up by done, called
	// once that record is written, or else lapses after a few minutes; done is nil
	// when nothing is kept (a single switch).
	Keep() (done func())
	// Release gives the lock back.
	Release()
}

// offlineLimit is the most one offline capture of merchant m may be (0: no limit):
// its single limit as the rules see it (merchant.single_limit), the registry's
// limits.per_transaction lowered by its rating grade's (Ratings; the SoftPOS one for
// a SoftPOS terminal). The tier defaults of the rule pack (tier-single-limit) are
// the rules' decision and are not applied: a merchant without its own limit is
// bounded by the listener's ceiling only (cup.Config.OfflineMaxAmount).
func (p *Pipeline) offlineLimit(m *registry.Merchant, softpos bool) int64 {
	limit := m.Limits.PerTransaction
	if p.ratings != nil {
		rm := risk.Merchant{ID: m.ID, SingleLimit: int(limit)}
		p.ratings.Apply(&rm, softpos)
		limit = int64(rm.SingleLimit)
	}
	return limit
}

// offlineAuthCode is the approval code of an offline approval whose terminal sent
// none: Y1, the EMV authorization response code of an offline approval.
const offlineAuthCode = "Y1    "

// CaptureOffline captures a purchase the card approved offline, uploaded by its
// terminal (see above): body is the pipeline's request of it (ASCII 0200/000000 with
// the card, the amount, DE 7 the time of the card's approval and, when the terminal
// gave one, DE 38), as a dialect's adapter renders the upload. It is answered as a
// purchase is: 00 with the record's RRN once the record is durable (its advice queued,
// or owed when the queue refuses it), the first answer to a resend, or the code of a
// refusal. Only an adapter
// calls it: the ASCII dialects have no offline upload (docs/terminal-interface.md).
func (p *Pipeline) CaptureOffline(ctx context.Context, c *frontend.Conn, body []byte) (frontend.Response, error) {
	ctx = context.WithoutCancel(ctx)
	start := p.now()
	req, err := message.Decode(body, c.Dialect)
	if err != nil {
		return p.formatError(c, err)
	}
	if req.MTI != "0200" || req.ProcCode != message.PCPurchase || req.QR || req.HasPIN || req.PAN == "" {
		return frontend.Response{}, fmt.Errorf("pipeline: offline capture of terminal %s STAN %s: want a card purchase (0200/%s) without PIN block, got %s/%s",
			req.TID, req.STAN, message.PCPurchase, req.MTI, req.ProcCode)
	}
	if _, err := message.ParseDE7(req.DE7, start); err != nil {
		return frontend.Response{}, fmt.Errorf("pipeline: offline capture of terminal %s STAN %s: the card's approval time: %w", req.TID, req.STAN, err)
	}
	t := &txn{req: req, conn: c, start: start, offline: true}
	decoded := p.now().Sub(start)
	t.rec.Timings.Decode = decoded.Microseconds()
	t.stages.add(metrics.StageDecode, decoded)
	if reason := p.authenticate(ctx, t); reason != "" {
		// Refused before the card's key is known: its record (DE 7 kept, as any
		// refusal before the capture's own) takes the upload's DE 41 + 11 + 7, never
		// the card's approval, which a later upload that passes must find free.
		return p.securityDecline(ctx, t, reason)
	}
	t.rec.CaptureKey = p.captureKey(req)
	return p.once(ctx, t)
}

// captureKey is the keyed hash that identifies the card's approval r uploads
// (journal.Record.CaptureKey): the card hash key's HMAC over the PAN, the
// application transaction counter (9F36) and the application cryptogram (9F26) of
// its chip data, "" when the chip data does not parse or has no cryptogram (the
// upload is then keyed by its DE 41 + 11 + 7, as before). The cryptogram is the
// card's for that one transaction (it covers the counter, the amount and the
// terminal's unpredictable number), so the same three in another upload, whatever
// its STAN, time or terminal, are the same approval sent again.
func (p *Pipeline) captureKey(r *message.Request) string {
	if r.ICC == "" || r.PAN == "" {
		return ""
	}
	tags, err := message.ICCValues(r.ICC)
	if err != nil || tags["9F26"] == "" {
		return ""
	}
	return p.CardHash("offline-approval/" + r.PAN + "/" + tags["9F36"] + "/" + tags["9F26"])
}

// captureOffline is financial for an offline capture (t.offline), its record new.
func (p *Pipeline) captureOffline(ctx context.Context, t *txn) (frontend.Response, error) {
	r, rec := t.req, &t.rec
	rec.Offline = true
	// Until it is captured, the record does not take the upload's duplicate key: a
	// refusal of it must not be repeated to the upload sent again later.
	rec.DE7 = ""
	if unpayable(r.Currency) {
		return p.declineUnpayable(ctx, t)
	}
	res, declined, err := p.checkFinancial(ctx, t)
	if declined != nil || err != nil {
		return *declined, err
	}
	if r.Amount <= 0 {
		return p.decline(ctx, t, message.RCInvalidAmount, "switch", "invalid-amount")
	}
	if res != nil && wrongCurrency(res.Merchant, r.Currency) {
		// Not captured, as one over the merchant's limits is not: its limits are
		// in its currency. The terminal keeps it; an operator reconciles it.
		return p.declineCurrency(ctx, t, res.Merchant)
	}
	// The advice carries the card's cryptogram to the issuer: only the objects it
	// may carry are kept (message.AdviceICC). Chip data that does not parse is the
	// terminal's fault, but the card approved and the goods are gone: the sale is
	// captured all the same, its advice without DE 55 (as a stand-in's), and the
	// record says so; a refusal would leave the merchant unpaid at every resend.
	icc, iccErr := message.AdviceICC(r.ICC)
	if iccErr != nil {
		p.log.Warn().Str("tid", r.TID).Str("stan", r.STAN).Str("error", iccErr.Error()).
			Msg("offline upload's chip data (DE 55) does not parse: captured, its advice without DE 55")
		noteReceived(rec, "chip data (DE 55) unreadable, the advice goes without it: "+iccErr.Error())
	}
	if kind, ok := message.CryptogramKind(icc); ok && kind == message.CryptogramAAC {
		// The card declined it (an AAC): there is no approval to capture.
		return p.decline(ctx, t, message.RCInvalidTransaction, DecidedByCard, reasonCardDeclinedOffline)
	}
	if res != nil && res.Merchant != nil {
		if limit := p.offlineLimit(res.Merchant, t.kind == string(registry.KindSoftPOS)); limit > 0 && r.Amount > limit {
			// The switch cannot check the card's certificate (the issuer does, later,
			// and charges back what it refuses): past the merchant's own limit, a
			// capture is refused. The terminal keeps the approval; an operator
			// reconciles it (docs/cup-dialect.md, Offline approvals).
			p.log.Warn().Str("tid", r.TID).Str("stan", r.STAN).Str("mid", res.Merchant.ID).Str("pan", message.MaskPAN(r.PAN)).
				Int64("amount", r.Amount).Int64("limit", limit).
				Msg("offline approval over the merchant's per-transaction limit: not captured, the terminal keeps it; reconcile by hand")
			rec.AddEvent(journal.StateDeclined, p.now().UTC(), fmt.Sprintf("%s: offline approval of %d over the merchant's per-transaction limit of %d",
				ReasonOfflineOverLimit, r.Amount, limit))
			return p.respond(ctx, t, message.RCExceedsAmountLimit, "", "switch", ReasonOfflineOverLimit)
		}
	}
	link, ok := p.routes.Route(r.PAN)
	if !ok {
		// No issuer to advise: the terminal keeps it (reconciled by hand).
		return p.decline(ctx, t, message.RCNoSuchIssuer, "switch", "no-route")
	}
	if p.limits != nil && res != nil && res.Merchant != nil {
		over, hold, err := p.limits.HoldLimits(ctx, res.Merchant, rec.RRN, r.Amount)
		if hold != nil {
			// Held until the capture's final write (or its refusal's) is done: the
			// merchant's next check, a capture's or a QR payment's, sees it.
			t.hold = hold
			defer func() {
				if t.hold != nil { // not given back already (releaseHold)
					t.hold = nil
					hold.Release()
				}
			}()
		}
		if err != nil {
			return p.offlineLimitsUnchecked(ctx, t, res.Merchant.ID, err)
		}
		if over != "" {
			return p.offlineOverLimit(ctx, t, res.Merchant.ID, over)
		}
	}
	// The rules do not decide (the card did), but see it: its facts are journaled for
	// backtests and the velocity counters count it at the answer (observe).
	p.probe(t, res)
	sealed, sealedExp, sealedICC, err := p.adviceCard(r, icc)
	if err != nil {
		return p.systemError(t, err)
	}
	auth := strings.TrimSpace(r.AuthCode)
	if len(auth) != 6 {
		auth = offlineAuthCode
	}
	t.issuer = link.ID()
	rec.Issuer = t.issuer
	rec.DE7 = r.DE7
	// Written ahead as sent, as a completion or a stand-in is, with the approval code
	// and the sealed card: a crash from the moment the advice may be queued leaves an
	// open record that recovery approves, as the card did, and whose advice it queues
	// again as a repeat (recoverOffline). The advice's DE 11 and DE 7 are the
	// record's, so that a 0420 (a void of it) names it in DE 90 (originalData).
	p.takeAdviceSTAN(rec)
	rec.AuthCode, rec.SealedPAN, rec.SealedICC, rec.SealedExpiry = auth, sealed, sealedICC, sealedExp
	rec.AddEvent(journal.StateSent, p.now().UTC(), "offline approval advice")
	if err := p.write(ctx, t, true); err != nil {
		// Not captured: the record kept for the journal's return (a 91) must not
		// take the upload's duplicate key, or the terminal's resend would be told
		// that 91 for ever instead of being captured.
		rec.DE7, rec.AuthCode = "", ""
		dropSealedCard(rec)
		return p.journalFailed(ctx, t, err)
	}
	if t.hold != nil {
		// The capture stands from its write ahead (recovery approves it): counted
		// now, before its approved version is written.
		t.hold.Count(rec.RRN, rec.Received, r.Amount)
	}
	it := p.offlineAdvice(rec)
	it.Fields[4], it.Fields[12], it.Fields[13] = r.AmountRaw, r.LocalTime, r.LocalDate
	if lerr := p.leaseLost(ctx, t); lerr != nil {
		// Written ahead, then this node's lease lost (a pause): the node
		// recovering this one approves the capture and queues its advice; not
		// queued here too. The terminal's upload sent again finds it approved.
		return p.handOver(t, lerr)
	}
	if err := p.queue.Enqueue(it); err != nil {
		// The card approved and the record is durable: the capture stands (00), and
		// the issuer is owed its advice, as a reversal the queue refuses is
		// (queueReversal): kept in memory and tried again by the housekeeping
		// (retryAdvices), marked by an advice_owed event written with the record
		// (with the sealed card), which recovery reads after a restart.
		p.oweOfflineAdvice(rec, it, err)
		p.answered(t, "approved offline by the card at "+r.DE7+"; advice owed to "+t.issuer)
		return p.respond(ctx, t, message.RCApproved, auth, DecidedByCard, "")
	}
	dropSealedCard(rec) // the queue holds the card now
	p.answered(t, "approved offline by the card at "+r.DE7+"; advice queued for "+t.issuer)
	return p.respond(ctx, t, message.RCApproved, auth, DecidedByCard, "")
}

// offlineOverLimit refuses the offline capture t, which would take merchant mid
// past the limit reason names (MerchantLimits): 61 for an amount, 65 for the
// count, journaled as a refusal (not captured, no duplicate key taken, nothing
// advised), as one over the merchant's per-transaction limit is.
func (p *Pipeline) offlineOverLimit(ctx context.Context, t *txn, mid, reason string) (frontend.Response, error) {
	r := t.req
	rc, limit := message.RCExceedsAmountLimit, "daily amount"
	switch reason {
	case ReasonOfflineDailyCount:
		rc, limit = message.RCExceedsFrequency, "daily count"
	case ReasonOfflineMonthlyLimit:
		limit = "monthly amount"
	}
	p.log.Warn().Str("tid", r.TID).Str("stan", r.STAN).Str("mid", mid).Str("pan", message.MaskPAN(r.PAN)).
		Int64("amount", r.Amount).Str("reason", reason).
		Msg("offline approval over the merchant's " + limit + " limit: not captured, the terminal keeps it; reconcile by hand")
	t.rec.AddEvent(journal.StateDeclined, p.now().UTC(), fmt.Sprintf("%s: offline approval of %d would pass the merchant's %s limit (last 24 hours; 30 days for the monthly)",
		reason, r.Amount, limit))
	return p.respond(ctx, t, rc, "", "switch", reason)
}

// offlineLimitsUnchecked answers the offline capture t whose merchant mid's limits
// could not be checked (err) 91, the code on which a terminal uploads it again
// later: nothing captured, the refusal journaled when the journal takes it.
func (p *Pipeline) offlineLimitsUnchecked(ctx context.Context, t *txn, mid string, err error) (frontend.Response, error) {
	p.unavailLog.Warn().Err(err).Str("tid", t.req.TID).Str("stan", t.req.STAN).Str("mid", mid).
		Msg("offline approval's merchant limits not checked: answered 91, not captured, the terminal uploads it again (at most 10 such lines a second)")
	return p.decline(ctx, t, message.RCIssuerUnavailable, "switch", reasonOfflineLimitsUnchecked)
}

// offlineAdvice is the advice (0220) of rec, an offline approval, with the card, its
// expiry and its chip data sealed (rec.SealedPAN, rec.SealedExpiry, rec.SealedICC):
// built from the record alone, so that recovery after a restart builds the one the
// process that died would have queued, DE 14 included (a record written before
// SealedExpiry has none: its advice goes without DE 14). DE 12 and 13 are the card's
// approval time, rec's DE 7 (captureOffline puts the upload's own).
func (p *Pipeline) offlineAdvice(rec *journal.Record) *saf.Item {
	it := &saf.Item{Issuer: rec.Issuer, MTI: "0220", RRN: rec.RRN, Reason: "offline",
		Fields: map[int]string{3: rec.ProcCode, 4: fmt.Sprintf("%012d", rec.Amount), 22: rec.EntryMode,
			37: rec.RRN, 38: rec.AuthCode, 39: message.RCApproved, 41: rec.TID, 42: rec.MID, 49: rec.Currency}}
	setAdviceCard(it, rec.SealedPAN, rec.SealedExpiry, rec.SealedICC)
	if len(rec.DE7) == 10 {
		it.Fields[13], it.Fields[12] = rec.DE7[:4], rec.DE7[4:]
	}
	if it.Fields[38] == "" {
		it.Fields[38] = offlineAuthCode
	}
	adviceIDs(it.Fields, rec)
	return it
}

// oweOfflineAdvice owes it, the advice of rec (an offline approval) that the queue
// refused with err: kept for the housekeeping (owedAdvices, as a repeat: the refused
// enqueue may have stored it all the same, saf.Store), and marked on rec by an
// advice_owed event that the caller writes with rec, its sealed card kept, for
// recovery after a restart (owesOfflineAdvice). One event per record.
func (p *Pipeline) oweOfflineAdvice(rec *journal.Record, it *saf.Item, err error) {
	it.Repeat = true
	note := "offline advice not queued (" + err.Error() + "); tried again"
	if p.owedAdvices.add(owedAdvice{it: it, by: it.Reason, offline: true}) {
		p.log.Warn().Err(err).Str("rrn", rec.RRN).Str("issuer", rec.Issuer).
			Msg("offline approval advice not queued yet: the capture stands, the advice tried again every 5 s")
	} else {
		p.log.Error().Err(err).Str("rrn", rec.RRN).Str("issuer", rec.Issuer).
			Msg("offline approval advice NOT queued, and too many wait to be tried again: left to recovery at a restart")
		note = "offline advice not queued (" + err.Error() + "); left to recovery at a restart"
	}
	if !hasState(rec, journal.StateAdviceOwed) {
		rec.AddEvent(journal.StateAdviceOwed, p.now().UTC(), note)
	}
}

// owesOfflineAdvice reports whether rec is an offline approval, final and standing
// (approved, not reversed), whose advice is owed: an advice_owed event without an
// advice_queued one after it. A reversed one owes none: the void or reversal that
// took it back queued its 0420, and its 0220 is better never sent than sent after.
func owesOfflineAdvice(rec *journal.Record) bool {
	if !rec.Offline || !rec.Final() || !rec.Approved() || rec.Reversed() || rec.Issuer == "" {
		return false
	}
	owed := false
	for _, e := range rec.Events {
		switch e.State {
		case journal.StateAdviceOwed:
			owed = true
		case journal.StateAdviceQueued:
			owed = false
		}
	}
	return owed
}

// hasState reports whether rec went through state s.
func hasState(rec *journal.Record, s journal.State) bool {
	for _, e := range rec.Events {
		if e.State == s {
			return true
		}
	}
	return false
}

// retryOfflineAdvice tries a, an owed offline advice, once, under its record's lock
// (the caller's retryAdvice): queued, its record gets an advice_queued event and
// loses its sealed card. Its record read again decides: not final yet (its answer's
// write in flight, or kept for the journal's return) it is kept for the next tick;
// not standing (reversed, or its approval taken back) or owing nothing (queued
// meanwhile, by recovery say) it is dropped. It reports false when the queue still
// refuses it.
func (p *Pipeline) retryOfflineAdvice(cur *journal.Record, a owedAdvice) bool {
	rrn := a.it.RRN
	switch {
	case cur == nil:
		// Not read (the journal unavailable): tried again at the next tick.
		p.owedAdvices.add(a)
		return true
	case !cur.Final():
		p.owedAdvices.add(a)
		return true
	case !owesOfflineAdvice(cur):
		p.log.Info().Str("rrn", rrn).Str("issuer", a.it.Issuer).Str("rc", cur.RC).Str("reversed_by", cur.ReversedBy).
			Msg("owed offline advice dropped: its capture owes none now (queued, reversed or not approved)")
		return true
	}
	if err := p.queue.Enqueue(a.it); err != nil {
		return false
	}
	p.log.Info().Str("rrn", rrn).Str("issuer", a.it.Issuer).Msg("offline approval advice queued on a later try")
	dropSealedCard(cur)
	cur.AddEvent(journal.StateAdviceQueued, p.now().UTC(), "offline advice queued on a later try (as a repeat)")
	if err := p.journal.Write(context.Background(), cur, false, true); err != nil {
		// The advice is queued; a restart before the mark is written queues it
		// again, as a repeat the issuer takes as a duplicate.
		p.log.Warn().Err(err).Str("rrn", rrn).Msg("offline advice queued, its record's advice_queued mark not written")
	}
	return true
}

// offlineNotFinal answers an offline capture whose final record (approved) the
// journal did not take, its write ahead durable. The capture is not taken back: the
// card approved, and its advice is queued or owed. The terminal is told 91 (96 for
// another failure than an unavailable journal, as systemError) and uploads it again.
// Whatever the failure, the approved version is kept for the housekeeping, which
// writes it every 5 s until the journal takes it (settle; a capture's is never
// dropped for an error, as other kept records are), with an in_doubt event saying
// what the terminal was told and why, and an answered one, as recovery settles an
// open capture (recoverOffline): the resend is then answered 00 from it, on every
// node of a cluster, and the merchant's cluster-wide lock the capture kept is
// given up. Until then the record stays open (a resend meanwhile waits for it, and
// is answered 91 duplicate-in-flight), and a process that stops leaves it to
// recovery at its restart. Nothing is reversed. (Until 6 December 2026 only an
// unavailable journal's failure was kept: after a 96 the record stayed open until a
// restart, and every resend of the upload was answered 91.)
func (p *Pipeline) offlineNotFinal(t *txn, err error) (frontend.Response, error) {
	var kept func()
	if t.hold != nil {
		// Counted on this node (Count); the other nodes see it once its approved
		// version is written: the merchant stays locked across the cluster until
		// then (settleOne gives the lock up once it writes it), a few minutes at
		// most. Until 6 December 2026 (second release) the lock was kept the whole
		// five minutes however soon the record was written: every capture and QR
		// payment of the merchant, on every node, was refused meanwhile.
		kept = t.hold.Keep()
	}
	rc, reason, by := message.RCSystemMalfunction, "system-malfunction", "switch"
	if errors.Is(err, journal.ErrUnavailable) {
		rc, reason, by = message.RCIssuerUnavailable, "journal-unavailable", "journal"
	}
	rec := t.rec
	rec.Events = slices.Clone(t.rec.Events)
	now := p.now().UTC()
	rec.AddEvent(journal.StateInDoubt, now, fmt.Sprintf("final record not written (%v): the terminal was answered %s %s; the capture stands from its write ahead",
		err, rc, reason))
	rec.AddEvent(journal.StateAnswered, now, "approved offline by the card at "+rec.DE7+"; written after its final write failed")
	p.metrics.OfflineFinalWrites.WithLabelValues("failed").Inc()
	if !p.unsettled.add(settleItem{rec: &rec, kept: kept, capture: true}) {
		p.metrics.OfflineFinalWrites.WithLabelValues("dropped").Inc()
		p.log.Error().Str("rrn", rec.RRN).Msg("too many records waiting for the journal: the offline capture stays open until recovery approves it at a restart")
	}
	p.log.Error().Err(err).Str("rrn", t.rec.RRN).Str("tid", t.req.TID).Str("stan", t.req.STAN).Str("rc", rc).
		Msg("offline capture's final record not written: answered " + rc + ", the capture stands (written ahead); its approval is written again every 5 s, and the resend answered 00 once it is")
	raw, perr := message.NewResponseBuilder(t.req).Set(37, t.rec.RRN).Set(39, rc).
		Set(48, message.ReasonTLV(reason)).Bytes(p.macFunc(t))
	if perr != nil {
		return frontend.Response{}, errors.Join(err, perr)
	}
	p.metrics.Transactions.WithLabelValues(t.req.MTI, rc, t.issuer, by).Inc()
	return frontend.Response{Body: raw}, nil
}

// recoverOffline settles r, an offline capture left open by a crash after its write
// ahead (sent, its card sealed in it): the card approved, so it is approved (the
// terminal's upload sent again is answered 00 from it), never reversed; its advice,
// which the process that died may have queued, is queued again as a repeat, or owed
// (queueOfflineRepeat). The caller holds r's lock and writes r.
func (p *Pipeline) recoverOffline(r *journal.Record, why string) {
	r.AddEvent(journal.StateInDoubt, p.now().UTC(), why+": offline approval written ahead, its advice's fate unknown")
	r.RC, r.DecidedBy, r.Reason = message.RCApproved, DecidedByCard, ""
	if r.AuthCode == "" {
		r.AuthCode = offlineAuthCode
	}
	p.queueOfflineRepeat(r, "queued by recovery")
	r.AddEvent(journal.StateAnswered, p.now().UTC(), "approved offline by the card at "+r.DE7+"; captured by recovery")
}

// queueOfflineRepeat queues the advice of r, an offline approval whose advice is
// owed or may not be queued, from the card sealed in r, as a repeat (0221: the
// issuer takes one it had as a duplicate). Queued, r gets an advice_queued event and
// loses the sealed card; refused, it is owed (oweOfflineAdvice: in memory, and the
// advice_owed event). It reports whether it was queued. The caller writes r.
func (p *Pipeline) queueOfflineRepeat(r *journal.Record, note string) bool {
	if len(r.SealedPAN) == 0 {
		p.log.Error().Str("rrn", r.RRN).Str("issuer", r.Issuer).
			Msg("offline approval's advice owed, and no sealed card in its record to build it: NOT queued, reconcile with the issuer by hand")
		return false
	}
	it := p.offlineAdvice(r)
	it.Repeat = true
	if err := p.queue.Enqueue(it); err != nil {
		p.oweOfflineAdvice(r, it, err)
		return false
	}
	dropSealedCard(r)
	r.AddEvent(journal.StateAdviceQueued, p.now().UTC(), "offline advice "+note+" (as a repeat)")
	return true
}

// dropSealedCard drops the sealed card, its expiry and its chip data from r, an
// offline approval whose advice is queued (or that is not captured): the queue holds
// them now. A newer version's fields (Unknown) go too: they may be card data.
func dropSealedCard(r *journal.Record) {
	r.SealedPAN, r.SealedExpiry, r.SealedICC, r.Unknown = nil, nil, nil, nil
}
