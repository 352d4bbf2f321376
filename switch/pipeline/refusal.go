package pipeline

import (
	"context"
	"fmt"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
)

// Refusal is a card transaction that a dialect's adapter in front of the pipeline
// refused itself, without handing it on: a cup terminal's bad MAC (A0) or a request
// that does not map onto the terminal contract (30). JournalRefusal records it as the
// pipeline records its own declines (an ASCII terminal's bad MAC is journaled 63), so
// that the journal, the monitor and support see every refused transaction whatever
// the dialect.
type Refusal struct {
	// MTI and ProcCode are the pipeline's (docs/terminal-interface.md): they give the
	// record its type.
	MTI, ProcCode  string
	TID, MID, STAN string
	// PAN is the card's, when the adapter could read it: only its mask and keyed hash
	// are recorded.
	PAN                 string
	Amount              int64
	Currency, EntryMode string
	// RC is the code the terminal was answered, DecidedBy who decided (the adapter,
	// e.g. "cup"), Reason a short token why (mac-invalid, format-error-F37...).
	RC, DecidedBy, Reason string
}

// JournalRefusal writes the record of a refusal durably and returns its RRN, for the
// adapter to answer with. The record has no DE 7 (the adapter gave it none), so it
// never takes over the duplicate key of a request of the same STAN that the pipeline
// does process.
func (p *Pipeline) JournalRefusal(ctx context.Context, c *frontend.Conn, r Refusal) (string, error) {
	if r.RC == "" {
		return "", fmt.Errorf("pipeline: refusal of %s STAN %s without a response code", r.TID, r.STAN)
	}
	req := &message.Request{MTI: r.MTI, ProcCode: r.ProcCode, TID: r.TID, MID: r.MID, STAN: r.STAN, PAN: r.PAN,
		Amount: r.Amount, Currency: r.Currency, EntryMode: r.EntryMode}
	t := &txn{req: req, conn: c, start: p.now()}
	if err := p.newRecord(t); err != nil {
		return "", fmt.Errorf("pipeline: refusal of %s STAN %s: %w", r.TID, r.STAN, err)
	}
	defer p.open.remove(t.rec.RRN)
	rec := &t.rec
	rec.AddEvent(journal.StateDeclined, p.now().UTC(), r.Reason)
	rec.RC, rec.DecidedBy, rec.Reason = r.RC, r.DecidedBy, r.Reason
	rec.Timings.Total = max(1, p.now().Sub(t.start).Microseconds())
	if err := p.write(ctx, t, true); err != nil {
		return "", fmt.Errorf("pipeline: journal the refusal of %s STAN %s: %w", r.TID, r.STAN, err)
	}
	p.logTxn(t)
	return rec.RRN, nil
}

// NextRRN returns a new retrieval reference number of the journal's sequence, for an
// answer the pipeline does not journal (the cup dialect's sign-in answer, F37).
func (p *Pipeline) NextRRN() (string, error) { return p.journal.NextRRN() }
