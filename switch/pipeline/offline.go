package pipeline

import (
	"context"
	"fmt"
	"strings"

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
// and active, its bound identity, as for a purchase), journals the purchase as
// approved by the card (journal.Record.Offline, decided_by "card"), and owes the
// issuer an advice (0220, repeated as 0221) through the store-and-forward queue, as a
// completion and a stand-in approval do. Settlement and the velocity counters count
// it as an online purchase.
//
// The request's DE 7 is the time the card approved it (the terminal's F13 + F12), so
// that an upload sent again (its answer lost) has the same duplicate key and gets the
// first answer: never a second capture nor a second advice. A refusal is journaled
// without that DE 7 (it does not take the key): the terminal keeps the approval and
// uploads it again later, once its terminal is active again say, and that upload is
// processed afresh.

// DecidedByCard is journal.Record.DecidedBy of an approval the card gave offline.
const DecidedByCard = "card"

// offlineAuthCode is the approval code of an offline approval whose terminal sent
// none: Y1, the EMV authorization response code of an offline approval.
const offlineAuthCode = "Y1    "

// reasonOfflineAdviceUnknown is the reason (RS) of an offline capture answered 96
// because the enqueue of its advice failed: the advice may be queued all the same, and
// is reversed.
const reasonOfflineAdviceUnknown = "offline-advice-not-queued"

// CaptureOffline captures a purchase the card approved offline, uploaded by its
// terminal (see above): body is the pipeline's request of it (ASCII 0200/000000 with
// the card, the amount, DE 7 the time of the card's approval and, when the terminal
// gave one, DE 38), as a dialect's adapter renders the upload. It is answered as a
// purchase is: 00 with the record's RRN once the record is durable and the advice
// queued, the first answer to a resend, or the code of a refusal. Only an adapter
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
		return p.securityDecline(ctx, t, reason)
	}
	return p.once(ctx, t)
}

// captureOffline is financial for an offline capture (t.offline), its record new.
func (p *Pipeline) captureOffline(ctx context.Context, t *txn) (frontend.Response, error) {
	r, rec := t.req, &t.rec
	rec.Offline = true
	// Until it is captured, the record does not take the upload's duplicate key: a
	// refusal of it must not be repeated to the upload sent again later.
	rec.DE7 = ""
	res, declined, err := p.checkTerminal(ctx, t, t.macOK, registry.CheckFinancial)
	if declined != nil || err != nil {
		return *declined, err
	}
	if res != nil && res.Terminal != nil {
		t.kind = string(res.Terminal.Kind)
	}
	if res != nil && res.Merchant != nil {
		t.tier = res.Merchant.Tier
	}
	if r.Amount <= 0 {
		return p.decline(ctx, t, message.RCInvalidAmount, "switch", "invalid-amount")
	}
	link, ok := p.routes.Route(r.PAN)
	if !ok {
		// No issuer to advise: the terminal keeps it (reconciled by hand).
		return p.decline(ctx, t, message.RCNoSuchIssuer, "switch", "no-route")
	}
	// The rules do not decide (the card did), but see it: its facts are journaled for
	// backtests and the velocity counters count it at the answer (observe).
	p.probe(t, res)
	sealed, err := p.seal.seal(r.PAN)
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
	// Written ahead as sent, as a completion or a stand-in is: from the moment the
	// advice may be queued, a crash leaves an open record that recovery reverses (a
	// 0420, held back by the queue while the 0220 is queued). The advice's DE 11 and
	// DE 7 are the record's, so that a 0420 names it in DE 90 (originalData).
	p.takeAdviceSTAN(rec)
	rec.AddEvent(journal.StateSent, p.now().UTC(), "offline approval advice")
	if err := p.write(ctx, t, true); err != nil {
		return p.journalFailed(ctx, t, err)
	}
	it := &saf.Item{Issuer: t.issuer, MTI: "0220", RRN: rec.RRN, Reason: "offline",
		Fields: map[int]string{3: r.ProcCode, 4: r.AmountRaw, 12: r.LocalTime, 13: r.LocalDate, 14: r.Expiry, 22: r.EntryMode,
			37: rec.RRN, 38: auth, 39: message.RCApproved, 41: r.TID, 42: r.MID, 49: r.Currency},
		Binary: map[int][]byte{2: sealed}}
	adviceIDs(it.Fields, rec)
	if err := p.queue.Enqueue(it); err != nil {
		// Not known to be queued, nor known not to be, as a completion's advice: the
		// capture is answered 96 and reversed (a 0420, never sent before the 0220).
		p.log.Error().Err(err).Str("rrn", rec.RRN).Str("issuer", t.issuer).
			Msg("offline approval advice not known to be queued: answered 96, the capture reversed")
		rec.AddEvent(journal.StateDeclined, p.now().UTC(), "offline advice not known to be queued: "+err.Error())
		p.queueReversal(rec, "switch:offline-advice-unknown")
		return p.respond(ctx, t, message.RCSystemMalfunction, "", "switch", reasonOfflineAdviceUnknown)
	}
	rec.AddEvent(journal.StateAnswered, p.now().UTC(), "approved offline by the card at "+r.DE7+"; advice queued for "+t.issuer)
	return p.respond(ctx, t, message.RCApproved, auth, DecidedByCard, "")
}
