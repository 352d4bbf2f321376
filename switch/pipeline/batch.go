package pipeline

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
)

// Totals are the count and sum of a terminal's approved purchases (completions
// included) and refunds.
type Totals = message.BatchTotals

// CurrencyTotals adds up, from the journal, a terminal's approved and not reversed
// purchases (completions included) and refunds received in [from, to), one Totals
// per currency (the journaled DE 49; "" for requests that sent none).
func (p *Pipeline) CurrencyTotals(ctx context.Context, tid string, q journal.Query) (map[string]Totals, error) {
	tots := map[string]Totals{}
	q.TID = tid
	err := p.journal.Scan(ctx, q, func(r *journal.Record) bool {
		if !r.Approved() || r.Reversed() {
			return true
		}
		tot := tots[r.Currency]
		switch r.Type {
		case "purchase", "completion": // a completion is the debit of its pre-authorization
			tot.PurchaseCount++
			tot.PurchaseSum += r.Amount
		case "refund":
			tot.RefundCount++
			tot.RefundSum += r.Amount
		default:
			return true
		}
		tots[r.Currency] = tot
		return true
	})
	return tots, err
}

// TerminalTotals adds up, from the journal, a terminal's approved and not reversed
// purchases and refunds received in [from, to), which must be of one currency:
// an error names the currencies when they are of several (amounts of different
// currencies are never added together).
func (p *Pipeline) TerminalTotals(ctx context.Context, tid string, q journal.Query) (Totals, error) {
	tots, err := p.CurrencyTotals(ctx, tid, q)
	if err != nil {
		return Totals{}, err
	}
	if len(tots) > 1 {
		return Totals{}, fmt.Errorf("terminal %s: totals in %d currencies (%s), not added together", tid, len(tots), totalsNote(tots))
	}
	for _, tot := range tots {
		return tot, nil
	}
	return Totals{}, nil
}

// totalsNote writes totals by currency as "156 1,1000,0,0; 840 ...", in currency
// order.
func totalsNote(tots map[string]Totals) string {
	curs := make([]string, 0, len(tots))
	for c := range tots {
		curs = append(curs, c)
	}
	sort.Strings(curs)
	parts := make([]string, len(curs))
	for i, c := range curs {
		cur := c
		if cur == "" {
			cur = "none"
		}
		parts[i] = cur + " " + tots[c].String()
	}
	return strings.Join(parts, "; ")
}

// batch handles 0500: the terminal's totals (DE 48 BT) are compared with the journal
// since its last batch; 00 when they match, 95 when not, and 95
// batch-currencies-mixed when the journal's are of several currencies (the BT tag
// has none); the batch is closed either way. The terminal is checked first
// (registry.CheckBatch: registered, active, its merchant's, the MAC where required,
// its network, and any identity or location it sends), as a sign-on is but for the
// identity it leaves out: one refused is answered with the check's code and reason,
// and its batch is neither totalled nor closed. Until 6 December 2026 a batch ran no
// terminal check, and a terminal without a MAC key could be made to close its batch
// (and have the next one's totals disagree) by anyone who knew its ID and merchant,
// from any network, suspended or not.
func (p *Pipeline) batch(ctx context.Context, t *txn) (frontend.Response, error) {
	if err := p.newRecord(t); err != nil {
		return p.systemError(t, err)
	}
	if _, declined, err := p.checkTerminal(ctx, t, t.macOK, registry.CheckBatch); declined != nil || err != nil {
		return *declined, err
	}
	if t.req.ProcCode != message.PCBatch || t.req.TLV.Has&message.HasBatchTotals == 0 {
		return p.decline(ctx, t, message.RCFormatError, "switch", "batch-totals-missing")
	}
	theirs, err := message.ParseBatchTotals(t.req.TLV.BatchTotals)
	if err != nil {
		return p.decline(ctx, t, message.RCFormatError, "switch", "batch-totals-malformed")
	}
	if c, ok := p.journal.(CatchUpper); ok {
		// In a cluster the terminal's last transactions, or its last batch close,
		// may have been made on another node a moment ago: total the batch once this
		// node holds them, or not at all (the terminal sends it again).
		cctx, cancel := context.WithTimeout(ctx, batchCatchUp)
		err := c.CaughtUp(cctx)
		cancel()
		if err != nil {
			p.log.Warn().Err(err).Str("tid", t.req.TID).Msg("batch: the journal has not caught up with the cluster; not totalled")
			return p.decline(ctx, t, message.RCIssuerUnavailable, "switch", "journal-behind")
		}
	}
	since, err := p.journal.LastBatch(t.req.TID)
	if err != nil {
		return p.systemError(t, err)
	}
	tots, err := p.CurrencyTotals(ctx, t.req.TID, journal.Query{From: since, To: t.start})
	if err != nil {
		return p.systemError(t, err)
	}
	// A clock stepped back does not move the close back: the next batch would
	// count this one's transactions again.
	closeAt := t.start
	if closeAt.Before(since) {
		closeAt = since
		p.log.Warn().Str("tid", t.req.TID).Time("last_close", since).Time("now", t.start).Msg("batch: the clock is behind the terminal's last batch close (stepped back?): the close stays there")
	}
	if err := p.journal.CloseBatch(ctx, t.req.TID, closeAt); err != nil {
		return p.systemError(t, err)
	}
	var ours Totals
	for _, tot := range tots {
		ours = tot
	}
	rc, reason := message.RCApproved, ""
	switch {
	case len(tots) > 1:
		// The terminal's one set of totals cannot say how much of each currency it
		// took: a sum of fen and cents that matches proves nothing (a refund in
		// dollars of a purchase in yuan balanced it).
		rc, reason = message.RCReconciliationError, "batch-currencies-mixed"
	case ours != theirs:
		rc, reason = message.RCReconciliationError, "batch-totals-differ"
	}
	note := "terminal " + theirs.String() + " switch " + ours.String()
	if len(tots) > 1 {
		note = "terminal " + theirs.String() + " switch by currency " + totalsNote(tots)
	}
	t.rec.AddEvent(journal.StateAnswered, p.now().UTC(), note)
	return p.respond(ctx, t, rc, "", "switch", reason)
}
