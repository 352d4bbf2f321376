package pipeline

import (
	"context"

	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
)

// Recover settles the transactions a crash left open, before the switch takes traffic:
// one that was sent to its issuer without an answer is marked in doubt (91) and reversed
// through the store-and-forward queue; one that never left the switch is closed with 96.
// It returns how many records it settled.
func (p *Pipeline) Recover(ctx context.Context) (int, error) {
	ck, err := p.journal.Checkpoint()
	if err != nil {
		return 0, err
	}
	var open []*journal.Record
	if err := p.journal.ScanFrom(ctx, ck, func(r *journal.Record) bool {
		if !r.Final() {
			open = append(open, r)
		}
		return true
	}); err != nil {
		return 0, err
	}
	for _, r := range open {
		sent := false
		for _, e := range r.Events {
			sent = sent || e.State == journal.StateSent
		}
		r.AddEvent(journal.StateInDoubt, p.now().UTC(), "switch restarted")
		if sent {
			r.RC, r.DecidedBy, r.Reason = message.RCIssuerUnavailable, "switch", "in-doubt-after-restart"
			p.queueReversal(r, "switch:restart")
		} else {
			r.RC, r.DecidedBy, r.Reason = message.RCSystemMalfunction, "switch", "open-at-restart"
		}
		if err := p.journal.Write(ctx, r, false, true); err != nil {
			return 0, err
		}
		p.log.Warn().Str("rrn", r.RRN).Str("tid", r.TID).Bool("reversed", sent).Msg("recovered an open transaction")
	}
	return len(open), nil
}
