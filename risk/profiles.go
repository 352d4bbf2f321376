package risk

import (
	"context"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/risk/profile"
)

// ProfileReplay gives replayed transactions (Backtest, Explain) the merchant
// profiles the switch had when they happened. The journal does not keep a
// transaction's merchant.profile: a profile is a pure function of the journal
// (the window ending at the day's scheduled refresh), so the tools recompute it,
// one refresh per local day replayed (incremental after the first), rather than every record carrying ~300 bytes
// that change once a day. It differs from what the switch used only after a
// refresh requested by hand, or for a node that missed the day's refresh.
type ProfileReplay struct {
	// Options are the switch's risk.profiles (Location nil: the rule set's zone).
	Options profile.Options
	// Hour and Minute are risk.profiles.refresh_at (DefaultProfileReplay: 03:00).
	Hour, Minute int
	// Off gives every merchant its tier's built-in defaults instead (fast).
	Off bool

	set *profile.Set
	inc *profile.Incremental
	run time.Time
}

// DefaultProfileReplay is the switch's default schedule: 03:00 in loc, 30 days.
func DefaultProfileReplay(loc *time.Location) *ProfileReplay {
	return &ProfileReplay{Options: profile.Options{Location: loc}, Hour: 3}
}

// fill sets in.Merchant.Profile as the switch had it at in.Txn.Time. With
// rebuild false (the warm-up replayed before the reported transactions, up to the
// rule set's longest window, 30 days in the default pack) it uses the table at
// hand, or the tiers' defaults: rebuilding for every day of a month of warm-up
// would read the journal thirty times over for what only a counter's `where`
// could read.
func (p *ProfileReplay) fill(ctx context.Context, h History, in *Input, rebuild bool) error {
	if p.set == nil {
		p.set = profile.NewSet(nil)
	}
	if !p.Off && rebuild {
		if p.Options.Location == nil {
			p.Options.Location = time.UTC
		}
		run := profile.LastRun(in.Txn.Time, p.Hour, p.Minute, p.Options.Location)
		if !run.Equal(p.run) {
			if p.inc == nil {
				p.inc = profile.NewIncremental(p.Options)
			}
			t, err := p.inc.Advance(ctx, historySource{h}, run)
			if err != nil {
				return fmt.Errorf("recompute the merchant profiles of %s: %w", run.Format(time.RFC3339), err)
			}
			p.set.Swap(t)
			p.run = run
		}
	}
	p.set.Fill(&in.Merchant)
	return nil
}

// historySource reads the journal for profile.Build through a History: only the
// records the rules saw (a binding decline is not among them).
type historySource struct{ h History }

func (s historySource) Scan(ctx context.Context, from, to time.Time, fn func(*profile.Txn) error) error {
	var t profile.Txn
	return s.h.Range(ctx, from, to, func(r Record) error {
		if r.RetractOnly { // no transaction of its own
			return nil
		}
		x := &r.Input.Txn
		t = profile.Txn{Time: r.Time, Merchant: r.Input.Merchant.ID, Type: x.Type, Amount: int64(x.Amount), CardHash: x.CardHash,
			RC: r.Outcome.ResponseCode, Approved: r.Outcome.Approved, RiskDeclined: r.Decision.Declined()}
		return fn(&t)
	})
}
