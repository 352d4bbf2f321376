package pipeline

import (
	"context"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/journal"
)

// Cases is the queue of transactions the rules sent to manual review (switch/cases).
// Open must return at once, without waiting for a disk, and must not keep in, d or
// rec: the pipeline reuses them once the transaction is answered.
type Cases interface {
	Open(ctx context.Context, in *risk.Input, d *risk.Decision, rec *journal.Record)
}

// openCase opens a review case for a transaction the rules sent to review or alert.
// It runs before Observe, so that the case sees the counters as the rules did.
func (p *Pipeline) openCase(ctx context.Context, t *txn) {
	if p.cfg.Cases != nil && t.risk != nil {
		p.cfg.Cases.Open(ctx, t.risk, &t.decision, &t.rec)
	}
}
