package profile

import (
	"context"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/risk/ruleset"
)

// DefaultFullEvery is how many refreshes an Incremental makes between full builds.
const DefaultFullEvery = 7

// Incremental computes the profiles of successive windows (the daily refreshes)
// reading only what changed: the journal since the last window's end, and the
// whole days that leave the window, whose contributions it subtracts. A day of
// traffic instead of 37 per refresh.
//
// It keeps the last build's state in memory (per merchant, as Build, plus the
// cards of the last NewCardDays days); a restart starts with a full build. The
// subtraction re-reads the leaving days as the journal holds them now: a record
// whose answer changed since it was added (in flight at the window's end) or one
// journaled late (replicated from another node after the window's end) makes a
// count off by one, never below zero. A full build every FullEvery refreshes
// puts any such drift back to zero.
//
// An Incremental is not safe for concurrent use: the refresher serializes it.
type Incremental struct {
	// FullEvery: every FullEvery-th Advance is a full build (default 7; 1: all).
	FullEvery int

	o         Options
	b         *builder
	to        time.Time
	sinceFull int
}

// NewIncremental returns an Incremental whose first Advance is a full build.
func NewIncremental(o Options) *Incremental {
	o.defaults()
	return &Incremental{o: o, FullEvery: DefaultFullEvery}
}

// Advance returns the profiles of the window that ends at end. It builds from
// scratch the first time, every FullEvery-th time, when end is not after the
// last end, or when the last window and this one do not overlap.
func (r *Incremental) Advance(ctx context.Context, src Source, end time.Time) (*Table, error) {
	from := r.o.windowStart(end)
	if r.b == nil || !end.After(r.to) || !from.Before(r.to) || r.sinceFull+1 >= max(r.FullEvery, 1) {
		b, err := fullBuild(ctx, src, end, r.o)
		r.b = nil // a failed build leaves no half state behind
		if err != nil {
			return nil, err
		}
		r.b, r.to, r.sinceFull = b, end, 0
		return b.table(end), nil
	}
	b := r.b
	r.b = nil // until this advance has succeeded
	b.records = 0
	if err := src.Scan(ctx, r.to, end, b.add); err != nil {
		return nil, fmt.Errorf("merchant profiles: read the journal from %s to %s: %w", r.to.Format(time.RFC3339), end.Format(time.RFC3339), err)
	}
	if b.from.Before(from) {
		if err := src.Scan(ctx, b.from, from, b.remove); err != nil {
			return nil, fmt.Errorf("merchant profiles: re-read the journal from %s to %s: %w", b.from.Format(time.RFC3339), from.Format(time.RFC3339), err)
		}
		cut := floorDiv(b.zone.local(from, from.Unix()), 86400)
		for _, a := range b.merchants {
			n := 0
			for n < len(a.days) && a.days[n].day < cut {
				a.newCards = sub(a.newCards, a.days[n].newCards)
				n++
			}
			a.days = a.days[n:]
		}
		b.from = from
	}
	r.b, r.to = b, end
	r.sinceFull++
	return b.table(end), nil
}

// remove subtracts what add added for t, except the day and its new cards,
// which Advance drops with the whole day.
func (b *builder) remove(t *Txn) error {
	a := b.merchants[t.Merchant]
	if a == nil || t.Merchant == "" {
		return nil
	}
	b.records++
	attempt := false
	switch t.Type {
	case ruleset.TxnPurchase, ruleset.TxnPreauth:
		attempt = true
		if t.Approved {
			a.approved = sub(a.approved, 1)
			a.amounts.remove(t.Amount)
		}
	case ruleset.TxnBalance:
		attempt = true
		a.inquiry = sub(a.inquiry, 1)
	case ruleset.TxnRefund:
		if t.Approved {
			a.refunds = sub(a.refunds, 1)
		}
	case ruleset.TxnVoid:
		if t.Approved {
			a.voids = sub(a.voids, 1)
		}
	}
	if !attempt {
		return nil
	}
	local := b.zone.local(t.Time, t.Time.Unix())
	a.attempts = sub(a.attempts, 1)
	h := &a.hourly[floorDiv(local, 3600)%24]
	*h = sub(*h, 1)
	if t.RC != "" && !ruleset.UnavailableCode(t.RC) {
		a.answered = sub(a.answered, 1)
		if !t.Approved {
			a.declined = sub(a.declined, 1)
			switch {
			case t.RiskDeclined:
				a.risk = sub(a.risk, 1)
			case t.RC == "51":
				a.funds = sub(a.funds, 1)
			case cardDecline[t.RC]:
				a.card = sub(a.card, 1)
			}
		}
	}
	return nil
}

// sub is a - b, never below zero.
func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}
