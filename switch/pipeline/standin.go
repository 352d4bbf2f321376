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
	mu  sync.Mutex
	day string
	n   map[string]int
	sum map[string]int64
}

func newStandInBook() *standInBook {
	return &standInBook{n: map[string]int{}, sum: map[string]int64{}}
}

// take reserves one approval of amount for the card if the limits allow it.
func (b *standInBook) take(card, day string, amount int64, lim StandInLimits) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.day != day {
		b.day, b.n, b.sum = day, map[string]int{}, map[string]int64{}
	}
	if b.n[card]+1 > lim.PerCardCount || b.sum[card]+amount > lim.PerCardSum {
		return false
	}
	b.n[card]++
	b.sum[card] += amount
	return true
}

// note counts a stand-in approval another node gave (SeenRemoteStandIn): one of an
// earlier day than the book's counts no more; a later day starts the book afresh.
func (b *standInBook) note(card, day string, amount int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case day < b.day:
		return
	case day > b.day:
		b.day, b.n, b.sum = day, map[string]int{}, map[string]int64{}
	}
	b.n[card]++
	b.sum[card] += amount
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
	p.standIn.note(rec.CardHash, rec.Received.In(p.cfg.Location).Format("2006-01-02"), rec.Amount)
}

// standInOrDecline approves within the issuer's stand-in limits, or declines 91.
func (p *Pipeline) standInOrDecline(ctx context.Context, t *txn, why string, declined func()) (frontend.Response, error) {
	r := t.req
	lim, ok := p.cfg.StandIn[t.issuer]
	typ := t.rec.Type
	day := t.start.In(p.cfg.Location).Format("2006-01-02")
	if !ok || !lim.Enabled || (typ != "purchase" && typ != "preauth") || r.HasPIN || r.QR ||
		r.Amount > lim.MaxAmount || !p.standIn.take(t.rec.CardHash, day, r.Amount, lim) {
		declined()
		return p.decline(ctx, t, message.RCIssuerUnavailable, "switch", why)
	}
	sealed, err := p.seal.seal(r.PAN)
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
		Fields: map[int]string{3: r.ProcCode, 4: r.AmountRaw, 14: r.Expiry, 22: r.EntryMode, 37: t.rec.RRN,
			38: auth, 39: message.RCApproved, 41: r.TID, 42: r.MID, 49: r.Currency},
		Binary: map[int][]byte{2: sealed}}
	if err := p.queue.Enqueue(it); err != nil {
		declined()
		return p.systemError(t, fmt.Errorf("stand-in advice not queued: %w", err))
	}
	t.rec.AddEvent(journal.StateAnswered, p.now().UTC(), "stand-in: "+why)
	p.log.Info().Str("rrn", t.rec.RRN).Str("issuer", t.issuer).Str("why", why).Msg("stand-in approval; advice queued")
	return p.respond(ctx, t, message.RCApproved, auth, "stand-in", "")
}

// OpenSealedPAN decrypts a PAN sealed in a stand-in advice (for the advice sender).
func (p *Pipeline) OpenSealedPAN(b []byte) (string, error) { return p.seal.open(b) }
