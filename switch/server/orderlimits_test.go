package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/qrorder"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/wallet"
)

// fakeRegistry holds a few terminals and merchants.
type fakeRegistry struct {
	terminals map[string]*registry.Terminal
	merchants map[string]*registry.Merchant
}

func (r *fakeRegistry) Terminal(id string) (*registry.Terminal, bool) {
	t, ok := r.terminals[id]
	return t, ok
}
func (r *fakeRegistry) Merchant(id string) (*registry.Merchant, bool) {
	m, ok := r.merchants[id]
	return m, ok
}
func (r *fakeRegistry) Terminals(f registry.TerminalFilter) []*registry.Terminal {
	var out []*registry.Terminal
	for _, t := range r.terminals {
		if t.MerchantID == f.MerchantID {
			out = append(out, t)
		}
	}
	return out
}

// fakeHistory is a journal of a few records, scanned by terminal and time.
type fakeHistory []*journal.Record

func (h fakeHistory) Scan(_ context.Context, q journal.Query, fn func(*journal.Record) bool) error {
	for _, r := range h {
		if r.TID == q.TID && !r.Received.Before(q.From) && (q.To.IsZero() || r.Received.Before(q.To)) && !fn(r) {
			return nil
		}
	}
	return nil
}

// TestNotifiedPaymentOverMerchantLimits: an order whose amount the payer enters
// (and one with its amount) skipped the merchant's limits and status: a payment of
// any amount was taken. Once the amount is known, at the notification, a payment over
// the merchant's per-transaction limit, one that takes its last 24 hours over its
// daily limit, one to a frozen merchant or a suspended terminal, and one of an order
// in another currency than its merchant's (since given one) are refused: the
// order is refunded, the payment journaled late (reversed, the reversal naming the
// reason) and counted refused. A payment within the limits is taken.
func TestNotifiedPaymentOverMerchantLimits(t *testing.T) {
	_, book := testBook(t)
	now := time.Now()
	limits := registry.Limits{PerTransaction: 100_000, Daily: 1_000_000}
	reg := &fakeRegistry{
		terminals: map[string]*registry.Terminal{
			"T0000001": {ID: "T0000001", MerchantID: "M1", Status: registry.TerminalActive},
			"T0000002": {ID: "T0000002", MerchantID: "M1", Status: registry.TerminalActive},
			"T0000003": {ID: "T0000003", MerchantID: "M2", Status: registry.TerminalActive},
			"T0000004": {ID: "T0000004", MerchantID: "M1", Status: registry.TerminalSuspended},
			"T0000005": {ID: "T0000005", MerchantID: "M3", Status: registry.TerminalActive},
		},
		merchants: map[string]*registry.Merchant{
			"M1": {ID: "M1", Status: registry.MerchantActive, Limits: limits},
			"M2": {ID: "M2", Status: registry.MerchantFrozen, Limits: limits},
			"M3": {ID: "M3", Status: registry.MerchantActive, Currency: "392"},
		},
	}
	// M1 took 950,000 today on its other terminal (and a reversed 500,000 and an
	// older 900,000 that do not count).
	hist := fakeHistory{
		{RRN: "200000000001", TID: "T0000002", Type: "purchase", RC: "00", Amount: 950_000, Received: now.Add(-time.Hour)},
		{RRN: "200000000002", TID: "T0000002", Type: "purchase", RC: "00", Amount: 500_000, Received: now.Add(-time.Hour), ReversedBy: "200000000003"},
		{RRN: "200000000004", TID: "T0000002", Type: "purchase", RC: "00", Amount: 900_000, Received: now.Add(-25 * time.Hour)},
	}
	secret := []byte("0123456789abcdef0123")
	notified := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_qr_notifications_total"}, []string{"network", "outcome"})
	j := &failingJournal{}
	d := &orderDesk{book: book, now: time.Now, secret: secret, log: zerolog.Nop(), pipe: j, notified: notified, reg: reg, hist: hist,
		cfg: config.QR{Connectors: []config.QRConnector{{ID: "wechat", Network: "wechat"}}}}
	for _, c := range []struct {
		name, id, tid string
		amount        int64 // of the order; 0: the payer enters it
		paid          int64
		refused       string
	}{
		{"over the per-transaction limit, payer-entered", "100000000021", "T0000001", 0, 100_001, refuseSingleLimit},
		{"over the per-transaction limit, the order's amount", "100000000022", "T0000001", 150_000, 150_000, refuseSingleLimit},
		{"over the daily limit", "100000000023", "T0000001", 0, 60_000, refuseDailyLimit},
		{"frozen merchant", "100000000024", "T0000003", 0, 100, refuseMerchant},
		{"suspended terminal", "100000000025", "T0000004", 0, 100, refuseTerminal},
		// An order in 156 of a merchant whose currency became 392 after it was made.
		{"merchant of another currency", "100000000027", "T0000005", 0, 100, refuseCurrency},
		{"within the limits", "100000000026", "T0000001", 0, 50_000, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := book.Create(t.Context(), qrorder.Order{ID: c.id, TID: c.tid, MID: "M", Currency: "156", Amount: c.amount,
				Created: now, Expires: now.Add(time.Minute)}); err != nil {
				t.Fatal(err)
			}
			body, _ := json.Marshal(wallet.Notification{Network: "wechat", OrderID: c.id, TransactionID: "TX" + c.id, TotalFee: c.paid})
			r := httptest.NewRequest(http.MethodPost, NotifyPath, bytes.NewReader(body))
			r.Header.Set(wallet.NotifySignatureHeader, wallet.Sign(secret, body))
			w := httptest.NewRecorder()
			d.notify(w, r)
			if w.Code != http.StatusOK {
				t.Fatalf("HTTP %d %s", w.Code, w.Body)
			}
			o, err := book.Get(c.id)
			if err != nil {
				t.Fatal(err)
			}
			op := j.got[len(j.got)-1]
			want := qrorder.Paid
			if c.refused != "" {
				want = qrorder.Refunded
			}
			if o.State != want || o.Refused != c.refused || op.RRN != c.id || op.Late != (c.refused != "") || op.Refused != c.refused {
				t.Fatalf("order %s refused %q, journaled late %v refused %q; want %s refused %q", o.State, o.Refused, op.Late, op.Refused, want, c.refused)
			}
		})
	}
	if n := testutil.ToFloat64(notified.WithLabelValues("wechat", noteRefused)); n != 6 {
		t.Errorf("refused counted %v times, want 6", n)
	}
	if n := testutil.ToFloat64(notified.WithLabelValues("wechat", notePaid)); n != 1 {
		t.Errorf("paid counted %v times, want 1", n)
	}
}
