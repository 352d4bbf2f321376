package server

import (
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/pipeline"
	"github.com/switchyard/switchyard/switch/qrorder"
)

// recordsByRRN is the journal's Get over a map.
type recordsByRRN map[string]*journal.Record

func (m recordsByRRN) Get(rrn string) (*journal.Record, error) {
	if r, ok := m[rrn]; ok {
		return r, nil
	}
	return nil, journal.ErrNotFound
}

// TestOrderInquiryAfterVoidOrRefund: a paid order whose payment was voided (its
// record reversed) or refunded in full reads refunded, without an auth code; one
// refunded in part, or whose record is not journaled yet, reads paid. Before, the
// book was never told and the inquiry answered paid whatever happened to the
// payment.
func TestOrderInquiryAfterVoidOrRefund(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	now := time.Now()
	book, err := qrorder.NewBook(db, qrorder.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	recs := recordsByRRN{}
	d := &orderDesk{book: book, now: func() time.Time { return now }, log: zerolog.Nop(), records: recs, cfg: config.QR{}}
	paid := func(id string) {
		t.Helper()
		if err := book.Create(t.Context(), qrorder.Order{ID: id, TID: "T0000001", MID: "000000000000001", Currency: "156", Amount: 1000,
			Created: now, Expires: now.Add(time.Minute), Payload: "p"}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := book.Pay(t.Context(), id, qrorder.Payment{Network: "wechat", TransactionID: "TX" + id, Amount: 1000}); err != nil {
			t.Fatal(err)
		}
	}
	rec := func(id string) *journal.Record {
		r := &journal.Record{RRN: id, TID: "T0000001", Listener: pipeline.OrderListener, Amount: 1000, RC: "00"}
		recs[id] = r
		return r
	}
	for _, c := range []struct {
		name, id, want string
		edit           func(*journal.Record)
	}{
		{"voided", "100000000001", qrorder.Refunded, func(r *journal.Record) { r.ReversedBy = "100000000009" }},
		{"refunded in full", "100000000002", qrorder.Refunded, func(r *journal.Record) { r.Refunded = 1000 }},
		{"refunded in part", "100000000003", qrorder.Paid, func(r *journal.Record) { r.Refunded = 400 }},
		{"as paid", "100000000004", qrorder.Paid, func(*journal.Record) {}},
		{"not journaled yet", "100000000005", qrorder.Paid, nil},
	} {
		paid(c.id)
		if c.edit != nil {
			c.edit(rec(c.id))
		}
		st, ok, err := d.Order(t.Context(), c.id, "T0000001", "000000000000001")
		if !ok || err != nil || st.State != c.want || (st.AuthCode != "") != (c.want == qrorder.Paid) {
			t.Errorf("%s: %+v %v %v; want %s", c.name, st, ok, err, c.want)
		}
		// A resend of the request that made the order reads the same (review: it
		// read paid, with its auth code, after the void).
		o, err := book.Get(c.id)
		if err != nil {
			t.Fatal(err)
		}
		if rs := d.resentStatus(o); rs.State != c.want || (rs.AuthCode != "") != (c.want == qrorder.Paid) {
			t.Errorf("%s: resent order request answered %+v; want %s", c.name, rs, c.want)
		}
	}
}
