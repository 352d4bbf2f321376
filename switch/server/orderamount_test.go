package server

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/qrorder"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/wallet"
)

// TestNotificationAmountOutOfRange: a notification's total_fee is a payment's amount
// in minor units, 1 to 999,999,999,999 (DE 4's twelve digits, the most a terminal's
// order or purchase can say). One above it, on an order whose amount the payer
// enters, passed the merchant's daily limit check by overflowing it (the day's sum
// plus the amount wrapped negative) and paid the order; one of nothing or below
// nothing was journaled as a purchase of that amount and reversed, the order made
// unpayable. Each is now refused 400 PARAM_ERROR, counted invalid: nothing
// journaled, the order left open for the payer's real payment, which is taken.
func TestNotificationAmountOutOfRange(t *testing.T) {
	_, book := testBook(t)
	now := time.Now()
	reg := &fakeRegistry{
		terminals: map[string]*registry.Terminal{"T0000001": {ID: "T0000001", MerchantID: "M1", Status: registry.TerminalActive}},
		merchants: map[string]*registry.Merchant{"M1": {ID: "M1", Status: registry.MerchantActive,
			Limits: registry.Limits{Daily: 1_000_000}}},
	}
	hist := fakeHistory{{RRN: "200000000001", TID: "T0000001", Type: "purchase", RC: "00", Amount: 950_000, Received: now.Add(-time.Hour)}}
	secret := []byte("0123456789abcdef0123")
	j := &failingJournal{}
	d := &orderDesk{book: book, now: time.Now, secret: secret, log: zerolog.Nop(), pipe: j, reg: reg, hist: hist,
		cfg: config.QR{Connectors: []config.QRConnector{{ID: "wechat", Network: "wechat"}}}}
	srv := httptest.NewServer(http.HandlerFunc(d.notify))
	t.Cleanup(srv.Close)
	post := func(n wallet.Notification) (int, wallet.Result) {
		body, _ := json.Marshal(n)
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
	const id = "100000000095"
	if err := book.Create(t.Context(), qrorder.Order{ID: id, TID: "T0000001", MID: "M1", Currency: "156",
		Created: now, Expires: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	for _, fee := range []int64{math.MaxInt64 - 100_000, 1_000_000_000_000, 0, -100} {
		code, res := post(wallet.Notification{Network: "wechat", OrderID: id, TransactionID: "TXBAD", TotalFee: fee})
		if code != http.StatusBadRequest || res.ErrCode != "PARAM_ERROR" {
			t.Errorf("total_fee %d: HTTP %d %+v, want 400 PARAM_ERROR", fee, code, res)
		}
		if o, err := book.Get(id); err != nil || o.State != qrorder.Open {
			t.Fatalf("order after total_fee %d: %s %v, want open", fee, o.State, err)
		}
	}
	if len(j.got) != 0 {
		t.Fatalf("journaled %+v", j.got)
	}
	if code, res := post(wallet.Notification{Network: "wechat", OrderID: id, TransactionID: "TXOK", TotalFee: 40_000}); code != http.StatusOK || res.Result != wallet.Success {
		t.Fatalf("the payer's payment within the limit: HTTP %d %+v, want 200 SUCCESS", code, res)
	}
	if o, err := book.Get(id); err != nil || o.State != qrorder.Paid || o.PaidAmount != 40_000 {
		t.Fatalf("order %+v %v, want paid 40000", o, err)
	}
}
