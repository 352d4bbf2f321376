package pipeline

import (
	"context"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
)

// Recover settles the transactions a crash left open, before the switch takes traffic:
// one that was sent to its issuer without an answer is marked in doubt (91) and reversed
// through the store-and-forward queue; one that never left the switch is closed with 96.
// An approval (purchase, pre-authorization, refund) whose answer has no delivery mark
// is in doubt too, since the terminal may never have heard of it: it is reversed
// through the same queue, and a resend of its request is answered 91 (approval-reversed)
// from then on. It returns how many records it settled.
func (p *Pipeline) Recover(ctx context.Context) (int, error) {
	ck, err := p.journal.Checkpoint()
	if err != nil {
		return 0, err
	}
	return p.RecoverRecords(ctx, "switch restarted", func(ctx context.Context, fn func(*journal.Record) bool) error {
		return p.journal.ScanFrom(ctx, ck, fn)
	})
}

// RecoverRecords settles, as Recover does, the records scan yields that are open or
// approved without a delivery mark; why goes into their in-doubt event. A node of a
// cluster uses it for the records of another node that died (scan yields that node's
// records), so that what the dead node left open is settled by a survivor.
func (p *Pipeline) RecoverRecords(ctx context.Context, why string, scan func(ctx context.Context, fn func(*journal.Record) bool) error) (int, error) {
	var open, undelivered []*journal.Record
	if err := scan(ctx, func(r *journal.Record) bool {
		switch {
		case !r.Final():
			open = append(open, r)
		case reversibleApproval(r) && !delivered(r):
			undelivered = append(undelivered, r)
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
		r.AddEvent(journal.StateInDoubt, p.now().UTC(), why)
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
	for _, r := range undelivered {
		r.AddEvent(journal.StateInDoubt, p.now().UTC(), "approved, delivery unknown at restart")
		p.queueReversal(r, "switch:undelivered-at-restart")
		if r.ReversedBy == "switch:undelivered-at-restart" {
			p.retract(r, risk.Retraction{Kind: risk.RetractReversal})
		}
		if !r.Reversed() {
			// The queue refused it (logged by queueReversal): the operator must act.
			p.log.Error().Str("rrn", r.RRN).Str("tid", r.TID).Msg("approval in doubt after restart NOT reversed")
		}
		if err := p.journal.Write(ctx, r, false, true); err != nil {
			return 0, err
		}
		p.log.Warn().Str("rrn", r.RRN).Str("tid", r.TID).Str("issuer", r.Issuer).
			Msg("recovered an approval whose answer has no delivery mark: reversed")
	}
	return len(open) + len(undelivered), nil
}

// delivered reports whether the record's answer is known to have reached the terminal.
func delivered(r *journal.Record) bool {
	for _, e := range r.Events {
		if e.State == journal.StateResponded {
			return true
		}
	}
	return false
}
