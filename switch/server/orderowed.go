package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/switch/pipeline"
	"github.com/switchyard/switchyard/switch/qrorder"
)

// A notified payment is journaled after the book took it: between the two the
// order is paid (and a waiting terminal told so) with no journal record, and if the
// journal write fails the network is answered 500 so that it repeats the
// notification. A network that never repeats it (it gives up, or its repeats go
// elsewhere) left the payment out of the journal for good, and out of settlement.
// So the notification first notes, durably, that the order's payment may be owed to
// the journal (a mark in this node's Badger, through the journal's group commit),
// and clears the mark once the journal has the payment; a sweep, at start and every
// owedSweepEvery, journals the payment of every marked order the book says is paid
// or refunded (RecordOrderPayment writes nothing for a payment already journaled)
// and clears the marks of orders nothing paid.

// owedPrefix is the Badger key prefix of the marks; the value is the mark's time
// (RFC 3339).
const owedPrefix = "qrorder-owed/"

// owedSweepEvery is how often the sweep runs; owedMinAge how old a mark must be for
// the sweep to take it (a younger one may be a notification still in progress,
// whose payment the book has not taken yet: its mark is not to be cleared).
const (
	owedSweepEvery = time.Minute
	owedMinAge     = time.Minute
)

// orderMarks keeps the marks in Badger.
type orderMarks struct {
	db *badger.DB
	// persist writes a key durably (the journal's PutDurable); nil writes to Badger
	// alone (tests).
	persist func(ctx context.Context, key, value []byte) error
}

// owe marks order id's payment as possibly owed to the journal, durably.
func (m *orderMarks) owe(ctx context.Context, id string, at time.Time) error {
	k, v := []byte(owedPrefix+id), []byte(at.UTC().Format(time.RFC3339Nano))
	if m.persist != nil {
		return m.persist(ctx, k, v)
	}
	return m.db.Update(func(txn *badger.Txn) error { return txn.Set(k, v) })
}

// clear removes order id's mark. Not waited to disk: a mark a crash brings back is
// swept again, and finds the payment journaled.
func (m *orderMarks) clear(id string) error {
	return m.db.Update(func(txn *badger.Txn) error { return txn.Delete([]byte(owedPrefix + id)) })
}

// each calls fn with every mark.
func (m *orderMarks) each(fn func(id string, at time.Time)) error {
	return m.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: []byte(owedPrefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var at time.Time
			_ = it.Item().Value(func(v []byte) error { return at.UnmarshalText(v) })
			fn(strings.TrimPrefix(string(it.Item().Key()), owedPrefix), at)
		}
		return nil
	})
}

// orderPayment is the journal's view of order o's payment: as the book took it (the
// first notification of the transaction), in its own currency, late when the order
// was refunded.
func orderPayment(o qrorder.Order) pipeline.OrderPayment {
	return pipeline.OrderPayment{RRN: o.ID, TID: o.TID, MID: o.MID, Currency: orDefault(o.PaidCurrency, o.Currency), Amount: o.PaidAmount,
		Network: o.Network, Connector: o.Connector, AuthCode: authCode(o.TransactionID), Late: o.State == qrorder.Refunded,
		Refused: o.Refused, At: o.PaidAt}
}

// sweepOwed journals the payments of the marked orders (marks at least owedMinAge
// old) and clears their marks; it returns how many it journaled. An order that is
// not found or was never paid has its mark cleared; a payment the journal still
// refuses keeps its mark for the next sweep.
func (d *orderDesk) sweepOwed(ctx context.Context) (int, error) {
	if d.marks == nil || d.pipe == nil {
		return 0, nil
	}
	type mark struct {
		id string
		at time.Time
	}
	var marks []mark
	cutoff := d.now().Add(-owedMinAge)
	if err := d.marks.each(func(id string, at time.Time) {
		if !at.After(cutoff) {
			marks = append(marks, mark{id, at})
		}
	}); err != nil {
		return 0, fmt.Errorf("qr orders: read the marks of payments owed to the journal: %w", err)
	}
	var n int
	var errs []error
	for _, mk := range marks {
		if ctx.Err() != nil {
			break
		}
		o, err := d.book.Get(mk.id)
		switch {
		case errors.Is(err, qrorder.ErrNotFound):
		case err != nil:
			errs = append(errs, fmt.Errorf("qr order %s: %w", mk.id, err))
			continue
		case o.TransactionID != "":
			rec, err := d.pipe.RecordOrderPayment(ctx, orderPayment(o))
			if err != nil {
				errs = append(errs, fmt.Errorf("qr order %s: its payment (%s of %d) not journaled: %w", o.ID, o.TransactionID, o.PaidAmount, err))
				continue
			}
			n++
			d.log.Warn().Str("order", o.ID).Str("tid", o.TID).Str("network", o.Network).Str("transaction", o.TransactionID).
				Int64("amount", o.PaidAmount).Str("state", o.State).Str("reversed_by", rec.ReversedBy).Time("marked", mk.at).
				Msg("merchant-presented payment journaled by the sweep: its notification's journal write had failed and was not repeated")
		}
		d.releaseKept(mk.id)
		if err := d.marks.clear(mk.id); err != nil {
			errs = append(errs, fmt.Errorf("qr order %s: clear its mark: %w", mk.id, err))
		}
	}
	return n, errors.Join(errs...)
}

// sweepLoop sweeps at once and every owedSweepEvery until ctx ends.
func (d *orderDesk) sweepLoop(ctx context.Context) error {
	t := time.NewTicker(owedSweepEvery)
	defer t.Stop()
	for {
		if _, err := d.sweepOwed(ctx); err != nil && ctx.Err() == nil {
			d.log.Error().Err(err).Msg("payments owed to the journal: not all journaled; swept again in a minute")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
