package pipeline

import (
	"context"
	"fmt"
	"sync"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/saf"
)

// standInBook counts stand-in approvals per card and day.
type standInBook struct {
	mu    sync.Mutex
	day   string
	n     map[string]int
	sum   map[string]int64
	store StandInStore // nil: memory only
}

func newStandInBook() *standInBook {
	return &standInBook{n: map[string]int{}, sum: map[string]int64{}}
}

// StandInCount is one card's stand-in approvals of a day and their sum.
type StandInCount struct {
	N   int
	Sum int64
}

// StandInStore keeps the stand-in book of the day, so that a switch restarted during
// an issuer's outage does not give each card its limits again.
type StandInStore interface {
	// LoadStandIns returns the counts of day by card hash (and may forget earlier
	// days).
	LoadStandIns(day string) (map[string]StandInCount, error)
	// SaveStandIn stores a card's counts of day.
	SaveStandIn(day, card string, c StandInCount) error
}

// load fills the book with day's counts from its store.
func (b *standInBook) load(day string) error {
	if b.store == nil {
		return nil
	}
	counts, err := b.store.LoadStandIns(day)
	if err != nil {
		return fmt.Errorf("stand-in counts of %s: %w", day, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.day = day
	for card, c := range counts {
		b.n[card], b.sum[card] = c.N, c.Sum
	}
	return nil
}

// save stores a card's counts (b.mu held); a failure is returned for the log: the
// approval stands, and a restart would count the card from the last saved counts.
func (b *standInBook) save(card string) error {
	if b.store == nil {
		return nil
	}
	return b.store.SaveStandIn(b.day, card, StandInCount{N: b.n[card], Sum: b.sum[card]})
}

// take reserves one approval of amount for the card if the limits allow it; err is a
// failure to store the counts (the approval is taken all the same).
func (b *standInBook) take(card, day string, amount int64, lim StandInLimits) (ok bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.day != day {
		b.day, b.n, b.sum = day, map[string]int{}, map[string]int64{}
	}
	if b.n[card]+1 > lim.PerCardCount || b.sum[card]+amount > lim.PerCardSum {
		return false, nil
	}
	b.n[card]++
	b.sum[card] += amount
	return true, b.save(card)
}

// note counts a stand-in approval another node gave (SeenRemoteStandIn): one of an
// earlier day than the book's counts no more; a later day starts the book afresh.
func (b *standInBook) note(card, day string, amount int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case day < b.day:
		return nil
	case day > b.day:
		b.day, b.n, b.sum = day, map[string]int{}, map[string]int64{}
	}
	b.n[card]++
	b.sum[card] += amount
	return b.save(card)
}

// SeenRemoteStandIn counts a stand-in approval of another node of the cluster in this
// node's stand-in limits of its card and day, so that a card gets the limits once
// across the cluster, not once on each node (the server calls it for the first final
// version of each such record its journal's applier applies). Two nodes standing in
// for the same card within the applier's lag may each still approve once more than
// the limits, as velocity counters lag.
func (p *Pipeline) SeenRemoteStandIn(rec *journal.Record) {
	if !rec.StandIn || !rec.Approved() || rec.CardHash == "" {
		return
	}
	if err := p.standIn.note(rec.CardHash, rec.Received.In(p.cfg.Location).Format("2006-01-02"), rec.Amount); err != nil {
		p.log.Error().Err(err).Str("rrn", rec.RRN).Msg("another node's stand-in approval counted, its count not stored")
	}
}

// standInOrDecline approves within the issuer's stand-in limits, or declines 91.
func (p *Pipeline) standInOrDecline(ctx context.Context, t *txn, why string, declined func()) (frontend.Response, error) {
	r := t.req
	lim, ok := p.cfg.StandIn[t.issuer]
	typ := t.rec.Type
	day := t.start.In(p.cfg.Location).Format("2006-01-02")
	if !ok || !lim.Enabled || (typ != "purchase" && typ != "preauth") || r.HasPIN || r.QR || r.Amount > lim.MaxAmount {
		declined()
		return p.decline(ctx, t, message.RCIssuerUnavailable, "switch", why)
	}
	if took, err := p.standIn.take(t.rec.CardHash, day, r.Amount, lim); !took {
		declined()
		return p.decline(ctx, t, message.RCIssuerUnavailable, "switch", why)
	} else if err != nil {
		p.log.Error().Err(err).Str("rrn", t.rec.RRN).Msg("stand-in approval counted, its count not stored: a restart would count the card from before it")
	}
	// The card goes sealed, as does its expiry and its chip data (the cryptogram,
	// which the issuer checks when it takes the advice), filtered as an offline
	// capture's; chip data that does not parse is left out (the issuer would not
	// have read it either).
	icc, _ := message.AdviceICC(r.ICC)
	sealed, sealedExp, sealedICC, err := p.adviceCard(r, icc)
	if err != nil {
		declined()
		return p.systemError(t, err)
	}
	auth := fmt.Sprintf("S%05d", p.authSeq.Add(1)%100000)
	t.rec.StandIn = true
	mti := "0220"
	if r.MTI == "0100" {
		mti = "0120"
	}
	it := &saf.Item{Issuer: t.issuer, MTI: mti, RRN: t.rec.RRN, Reason: "stand-in",
		Fields: map[int]string{3: r.ProcCode, 4: r.AmountRaw, 22: r.EntryMode, 37: t.rec.RRN,
			38: auth, 39: message.RCApproved, 41: r.TID, 42: r.MID, 49: r.Currency}}
	setAdviceCard(it, sealed, sealedExp, sealedICC)
	// The advice's DE 11: the STAN taken for a request that was not sent (the
	// issuer unavailable), or a new one. Journaled with the record, so that the 0420
	// that may follow names the advice in DE 90 (originalData), after a restart too.
	p.takeAdviceSTAN(&t.rec)
	if !t.written {
		// Written ahead as sent, as a completion is: from the moment the advice may
		// be queued, a crash or restart leaves an open record that recovery reverses
		// (a 0420, held back by the queue while the 0220 is queued). Else an approval
		// taken back because its final record was not durable (undoApproval) would
		// leave its 0220 in the queue and its 0420 in this process's memory only
		// (owedAdvices), lost at a restart.
		t.rec.AddEvent(journal.StateSent, p.now().UTC(), "stand-in advice")
		if err := p.write(ctx, t, true); err != nil {
			declined()
			return p.journalFailed(ctx, t, err)
		}
	}
	adviceIDs(it.Fields, &t.rec)
	if lerr := p.leaseLost(ctx, t); lerr != nil {
		// Written ahead, then this node's lease lost (a pause): the node
		// recovering this one reverses the record; an advice queued now would
		// come after that 0420 and be booked.
		return p.handOver(t, lerr)
	}
	if err := p.queue.Enqueue(it); err != nil {
		// The advice is not known to be queued, nor known not to be (saf.Store: a
		// cluster's queue without an acknowledgement in time may store it when its
		// quorum returns), as a completion's: the stand-in is answered 96 and
		// reversed (a 0420, which the queue never sends while the 0220 is queued),
		// its 0420 owed if the queue does not take it either (owesReversal). The
		// record, written ahead, is final: else it would stay open until a restart.
		declined()
		p.log.Error().Err(err).Str("rrn", t.rec.RRN).Str("issuer", t.issuer).
			Msg("stand-in advice not known to be queued: answered 96, the stand-in reversed")
		t.rec.AddEvent(journal.StateDeclined, p.now().UTC(), "stand-in advice not known to be queued: "+err.Error())
		p.queueReversal(&t.rec, "switch:standin-advice-unknown")
		return p.respond(ctx, t, message.RCSystemMalfunction, "", "switch", reasonStandInAdviceUnknown)
	}
	p.answered(t, "stand-in: "+why)
	p.log.Info().Str("rrn", t.rec.RRN).Str("issuer", t.issuer).Str("why", why).Msg("stand-in approval; advice queued")
	return p.respond(ctx, t, message.RCApproved, auth, "stand-in", "")
}

// reasonStandInAdviceUnknown is the reason (RS) of a stand-in answered 96 because the
// enqueue of its advice failed: the advice may be queued all the same, and is reversed.
const reasonStandInAdviceUnknown = "standin-advice-not-queued"

// OpenSealedPAN decrypts a PAN sealed in a stand-in advice (for the advice sender).
func (p *Pipeline) OpenSealedPAN(b []byte) (string, error) { return p.seal.open(b) }

// OpenSealedICC opens an advice's sealed ICC data (saf.Item.Binary[55]), for the
// advice's sender.
func (p *Pipeline) OpenSealedICC(b []byte) (string, error) { return p.seal.openICC(b) }

// OpenSealedExpiry opens an advice's sealed card expiry (saf.Item.Binary[14]), for
// the advice's sender.
func (p *Pipeline) OpenSealedExpiry(b []byte) (string, error) { return p.seal.openExpiry(b) }

// adviceCard seals what an advice carries of r's card while it waits in the
// store-and-forward queue (and, for an offline capture, in its record): the PAN,
// the card's expiry (DE 14; nil without one) and icc, the chip data the advice may
// carry (message.AdviceICC of r's; nil when empty). Expiry and chip data are
// cardholder data: never clear on disk.
func (p *Pipeline) adviceCard(r *message.Request, icc string) (pan, exp, sealedICC []byte, err error) {
	if pan, err = p.seal.seal(r.PAN); err != nil {
		return nil, nil, nil, err
	}
	if exp, err = p.seal.sealExpiry(r.Expiry); err != nil {
		return nil, nil, nil, err
	}
	if icc != "" {
		if sealedICC, err = p.seal.sealICC(icc); err != nil {
			return nil, nil, nil, err
		}
	}
	return pan, exp, sealedICC, nil
}

// setAdviceCard puts the sealed card of an advice in it: DE 2, and DE 14 and DE 55
// when sealed.
func setAdviceCard(it *saf.Item, pan, exp, icc []byte) {
	if it.Binary == nil {
		it.Binary = map[int][]byte{}
	}
	it.Binary[2] = pan
	if len(exp) > 0 {
		it.Binary[14] = exp
	}
	if len(icc) > 0 {
		it.Binary[55] = icc
	}
}
