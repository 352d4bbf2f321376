package pipeline

import (
	"context"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
)

// Totals are the count and sum of a terminal's approved purchases (completions
// included) and refunds.
type Totals = message.BatchTotals

// TerminalTotals adds up, from the journal, a terminal's approved and not reversed
// purchases and refunds received in [from, to).
func (p *Pipeline) TerminalTotals(ctx context.Context, tid string, q journal.Query) (Totals, error) {
	var tot Totals
	q.TID = tid
	err := p.journal.Scan(ctx, q, func(r *journal.Record) bool {
		if !r.Approved() || r.Reversed() {
			return true
		}
		switch r.Type {
		case "purchase", "completion": // a completion is the debit of its pre-authorization
			tot.PurchaseCount++
			tot.PurchaseSum += r.Amount
		case "refund":
			tot.RefundCount++
			tot.RefundSum += r.Amount
		}
		return true
	})
	return tot, err
}

// batch handles 0500: the terminal's totals (DE 48 BT) are compared with the journal
// since its last batch; 00 when they match, 95 when not; the batch is closed either way.
func (p *Pipeline) batch(ctx context.Context, t *txn) (frontend.Response, error) {
	if err := p.newRecord(t); err != nil {
		return p.systemError(t, err)
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
	ours, err := p.TerminalTotals(ctx, t.req.TID, journal.Query{From: since, To: t.start})
	if err != nil {
		return p.systemError(t, err)
	}
	if err := p.journal.CloseBatch(ctx, t.req.TID, t.start); err != nil {
		return p.systemError(t, err)
	}
	rc, reason := message.RCApproved, ""
	if ours != theirs {
		rc, reason = message.RCReconciliationError, "batch-totals-differ"
	}
	t.rec.AddEvent(journal.StateAnswered, p.now().UTC(), "terminal "+theirs.String()+" switch "+ours.String())
	return p.respond(ctx, t, rc, "", "switch", reason)
}
