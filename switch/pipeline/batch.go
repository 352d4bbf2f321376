package pipeline

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

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
		addTotals(tots, r)
		return true
	})
	return tots, err
}

// addTotals adds r to tots, in its currency's, when it is an approved and not
// reversed purchase, completion or refund.
func addTotals(tots map[string]Totals, r *journal.Record) {
	if !r.Approved() || r.Reversed() {
		return
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
		return
	}
	tots[r.Currency] = tot
}

// LateScanner is the journal's index of late changes (journal.Store.ScanLate,
// cjournal.Journal.ScanLate): every record first written, reversed or approved more
// than journal.LateAfter after it was received, by the time of that change. A batch
// finds there the records of its terminal that the journal learned were approved
// during the batch long after they were received (a payment journaled by the sweep
// of owed orders, an approval written by recovery).
type LateScanner interface {
	ScanLate(ctx context.Context, from, to time.Time, fn func(*journal.Record) bool) error
}

// BatchTime is the time by which a record belongs to its terminal's batch: when the
// journal learned its outcome, the later of its decision (Record.DecidedAt: the
// issuer's answer, a stand-in's, a completion's or an offline capture's approval)
// and its first write (Record.Written: a merchant-presented payment journaled when
// its wallet notified it, maybe long after the order book took it), or its receive
// time for a record with neither. A batch holds the approved records whose BatchTime
// is from its terminal's previous close to its own (the 0500's receive time), so a
// transaction decided after a close, whenever it was received, is in the next
// batch, as the terminal counts it: it learns of the approval after its 0500. A
// void or reversal of it after the batch it is in was closed is declined
// (ReasonVoidBatchClosed, ReasonReversalBatchClosed): the terminal counted it in
// the batch it closed.
func BatchTime(r *journal.Record) time.Time {
	at, ok := r.DecidedAt()
	if !ok || at.Before(r.Received) {
		at = r.Received
	}
	if r.Written.After(at) {
		at = r.Written
	}
	return at
}

// BatchTotals adds up, from the journal, the terminal's approved and not reversed
// purchases (completions included) and refunds of the batch closed at to after the
// close at from: those whose BatchTime is in [from, to), one Totals per currency.
// Every such record is found by its receive time, from journal.LateAfter before
// from (a record whose BatchTime is later than that after its receipt is in the
// journal's index of late changes under it), and, when the journal has one, in the
// index of late changes (LateScanner) from from to to. Each record is counted once,
// and in exactly one batch of its terminal: the first closed after its BatchTime.
func (p *Pipeline) BatchTotals(ctx context.Context, tid string, from, to time.Time) (map[string]Totals, error) {
	tots := map[string]Totals{}
	seen := map[string]bool{}
	add := func(r *journal.Record) bool {
		if r.TID != tid || seen[r.RRN] {
			return true
		}
		if at := BatchTime(r); at.Before(from) || !at.Before(to) {
			return true
		}
		seen[r.RRN] = true
		addTotals(tots, r)
		return true
	}
	q := journal.Query{TID: tid, To: to}
	if !from.IsZero() {
		q.From = from.Add(-journal.LateAfter)
	}
	if err := p.journal.Scan(ctx, q, add); err != nil {
		return nil, fmt.Errorf("terminal %s: batch from %s to %s: %w", tid, from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano), err)
	}
	if ls, ok := p.journal.(LateScanner); ok && !from.IsZero() {
		if err := ls.ScanLate(ctx, from, to, add); err != nil {
			return nil, fmt.Errorf("terminal %s: batch from %s to %s: %w", tid, from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano), err)
		}
	}
	return tots, nil
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

// batchDecisions bounds a batch's wait for the decisions taken before it came whose
// journal write has not returned yet (awaitDecisions): a write takes one group
// commit, milliseconds, unless the journal is failing.
const batchDecisions = 5 * time.Second

// awaitDecisions waits, up to batchDecisions, until every decision taken before now
// (of any terminal) is written or its write failed (decisionGate.drain); an error
// when some are still being written then.
func (p *Pipeline) awaitDecisions(ctx context.Context, tid string) error {
	ctx, cancel := context.WithTimeout(ctx, batchDecisions)
	defer cancel()
	pending, err := p.decisions.drain(ctx, p.onBatchDrain)
	if err != nil {
		p.log.Warn().Err(err).Str("tid", tid).Int64("pending", pending).Dur("waited", batchDecisions).
			Msg("batch: transactions decided before the 0500 are still being journaled; not totalled")
		return fmt.Errorf("terminal %s: batch: %d decisions taken before it not journaled within %s: %w", tid, pending, batchDecisions, err)
	}
	return nil
}

// batch handles 0500: the terminal's totals (DE 48 BT) are compared with the
// journal's of the batch (BatchTotals: the transactions whose outcome the journal
// learned since its last close; until the fifth release of 6 December 2026 those
// received since it, which left a transaction decided after a close in no batch);
// 00 when they match, 95 when not, and 95
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
	// The transactions decided before this 0500 came (t.start, its close) whose
	// write has not returned yet are in this batch by their time: totalled once the
	// journal holds them, or not at all (the terminal sends its 0500 again).
	if err := p.awaitDecisions(ctx, t.req.TID); err != nil {
		return p.decline(ctx, t, message.RCIssuerUnavailable, "switch", "journal-behind")
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
	// A clock stepped back does not move the close back: the next batch would
	// count this one's transactions again.
	closeAt := t.start
	if closeAt.Before(since) {
		closeAt = since
		p.log.Warn().Str("tid", t.req.TID).Time("last_close", since).Time("now", t.start).Msg("batch: the clock is behind the terminal's last batch close (stepped back?): the close stays there")
	}
	tots, err := p.BatchTotals(ctx, t.req.TID, since, closeAt)
	if err != nil {
		return p.systemError(t, err)
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
