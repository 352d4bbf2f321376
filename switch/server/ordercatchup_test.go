package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/qrorder"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/wallet"
)

// TestNotificationChecksFailClosed: a cluster node notified of an order made on
// another node a moment ago, which it cannot catch up with at first (no quorum for
// a moment), did not check the payment's merchant (mch_id) nor the merchant's
// limits: both checks read the order, and a read that failed skipped them. The
// book, catching up by the time it took the payment, then paid the order with a
// payment to another merchant, or one over the merchant's per-transaction limit.
// Now a notification whose order cannot be read is answered 500 (the network
// repeats it) with the order left open, and the repeat, once the node has caught
// up, is checked: 409 MCH_ID_MISMATCH, or refused (the order refunded). Posted
// over loopback HTTP, as a network posts it.
func TestNotificationChecksFailClosed(t *testing.T) {
	for _, c := range []struct {
		name   string
		mch    string
		fee    int64
		fails  int32  // the catch-ups that fail: those of the checks' reads
		repeat int    // the repeat's HTTP code
		state  string // the order after the repeat
	}{
		{"another merchant", "M-OTHER", 500, 2, http.StatusConflict, qrorder.Open},
		{"over the per-transaction limit", "", 100_001, 1, http.StatusOK, qrorder.Refunded},
	} {
		t.Run(c.name, func(t *testing.T) {
			mem := &statelog.Memory{}
			open := func(catchUp func(context.Context, statelog.Replica) error) *qrorder.Book {
				db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = db.Close() })
				b, err := qrorder.NewBook(db, qrorder.Options{Log: mem, CatchUp: catchUp})
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			maker := open(func(_ context.Context, r statelog.Replica) error { return mem.DeliverTo(r) })
			// The notified node cannot catch up for its first tries (the reads the
			// checks made: the merchant's, and the limits'), and can after.
			var fails atomic.Int32
			fails.Store(c.fails)
			noQuorum := errors.New("no quorum")
			book := open(func(_ context.Context, r statelog.Replica) error {
				if fails.Add(-1) >= 0 {
					return noQuorum
				}
				return mem.DeliverTo(r)
			})
			now := time.Now()
			const id = "100000000091"
			if err := maker.Create(t.Context(), qrorder.Order{ID: id, TID: "T0000001", MID: "M1", Currency: "156",
				Created: now, Expires: now.Add(time.Minute)}); err != nil {
				t.Fatal(err)
			}
			reg := &fakeRegistry{
				terminals: map[string]*registry.Terminal{"T0000001": {ID: "T0000001", MerchantID: "M1", Status: registry.TerminalActive}},
				merchants: map[string]*registry.Merchant{"M1": {ID: "M1", Status: registry.MerchantActive,
					Limits: registry.Limits{PerTransaction: 100_000}}},
			}
			secret := []byte("0123456789abcdef0123")
			j := &failingJournal{}
			d := &orderDesk{book: book, now: time.Now, secret: secret, log: zerolog.Nop(), pipe: j, reg: reg,
				cfg: config.QR{Connectors: []config.QRConnector{{ID: "wechat", Network: "wechat"}}}}
			srv := httptest.NewServer(http.HandlerFunc(d.notify))
			t.Cleanup(srv.Close)
			post := func() (int, wallet.Result) {
				body, _ := json.Marshal(wallet.Notification{Network: "wechat", OrderID: id, TransactionID: "TX91", TotalFee: c.fee, MchID: c.mch})
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+NotifyPath, bytes.NewReader(body))
				req.Header.Set(wallet.NotifySignatureHeader, wallet.Sign(secret, body))
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var res wallet.Result
				_ = json.NewDecoder(resp.Body).Decode(&res)
				return resp.StatusCode, res
			}
			if code, res := post(); code != http.StatusInternalServerError {
				t.Fatalf("notification while the node cannot catch up: HTTP %d %+v, want 500 (repeated)", code, res)
			}
			if len(j.got) != 0 {
				t.Fatalf("journaled %+v while the checks could not be made", j.got)
			}
			if err := mem.DeliverTo(maker); err != nil {
				t.Fatal(err)
			}
			if o, err := maker.Get(id); err != nil || o.State != qrorder.Open {
				t.Fatalf("order after the unchecked notification: %s %v, want open", o.State, err)
			}
			for fails.Load() > 0 {
				fails.Add(-1) // the quorum is back
			}
			if code, res := post(); code != c.repeat {
				t.Fatalf("the repeat, caught up: HTTP %d %+v, want %d", code, res, c.repeat)
			}
			if o, err := book.Get(id); err != nil || o.State != c.state {
				t.Fatalf("order after the repeat: %s %v, want %s", o.State, err, c.state)
			}
		})
	}
}
