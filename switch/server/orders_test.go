package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/qrorder"
	"github.com/switchyard/switchyard/switch/wallet"
)

// TestOrderDeskNoCatchUp: a cluster node that does not have an order and cannot
// catch up with the cluster's book (no quorum) does not say the order is not found,
// which the network (404 ORDER_NOT_FOUND) and the terminal (25) would take as final:
// the notification is answered 500, for the network to repeat, and the inquiry is
// an error (96).
func TestOrderDeskNoCatchUp(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	noQuorum := errors.New("no quorum")
	book, err := qrorder.NewBook(db, qrorder.Options{Log: &statelog.Memory{},
		CatchUp: func(context.Context, statelog.Replica) error { return noQuorum }})
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("0123456789abcdef0123")
	d := &orderDesk{book: book, now: time.Now, secret: secret, log: zerolog.Nop(),
		cfg: config.QR{Connectors: []config.QRConnector{{ID: "wechat", Network: "wechat"}}}}

	body, _ := json.Marshal(wallet.Notification{Network: "wechat", OrderID: "100000000001", TransactionID: "TX1", TotalFee: 100})
	r := httptest.NewRequest(http.MethodPost, NotifyPath, bytes.NewReader(body))
	r.Header.Set(wallet.NotifySignatureHeader, wallet.Sign(secret, body))
	w := httptest.NewRecorder()
	d.notify(w, r)
	var res wallet.Result
	_ = json.Unmarshal(w.Body.Bytes(), &res)
	if w.Code != http.StatusInternalServerError || res.ErrCode != "SYSTEMERROR" {
		t.Errorf("notification: %d %s, want 500 SYSTEMERROR", w.Code, res.ErrCode)
	}

	_, ok, err := d.Order(t.Context(), "100000000001", "T0000001")
	if err == nil || errors.Is(err, qrorder.ErrNotFound) || !errors.Is(err, qrorder.ErrNotCaughtUp) || !errors.Is(err, noQuorum) {
		t.Errorf("inquiry: ok %v, err %v; want an error (96) wrapping ErrNotCaughtUp, not not found (25)", ok, err)
	}
}
