package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/qr"
	"github.com/switchyard/switchyard/switch/server"
	"github.com/switchyard/switchyard/switch/wallet"
)

// notify posts body to the fixture's notification route, signed with the demo
// secret as the network signs it, and returns the HTTP status and the answer.
func (f *fixture) notify(body []byte) (int, wallet.Result) {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+f.s.AdminAddr()+server.NotifyPath, bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(wallet.NotifySignatureHeader, wallet.Sign([]byte(config.DemoNotifySecret), body))
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var res wallet.Result
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		f.t.Fatalf("notification answer: HTTP %d: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, res
}

// TestQRNotificationOtherCurrency: a notification of a payment in another currency
// than the order's (fee_type 344, Hong Kong dollars, for an order in yuan) is not the
// order's payment, whatever its amount says: the order is refunded, and the payment
// journaled under its own currency and reversed at the network, as one of another
// amount is. The notification once carried no currency, and such a payment paid
// the order.
func TestQRNotificationOtherCurrency(t *testing.T) {
	f, sim := startQR(t)
	a := f.send(orderTx(message.PCQROrder, 2500, ""))
	o := orderTLV(t, a)
	if a.RC != "00" || o.QRState != "open" {
		t.Fatalf("order: %+v", a)
	}
	body, _ := json.Marshal(map[string]any{"network": qr.WeChat, "order_id": o.QROrder, "transaction_id": "4200000000000000000344",
		"total_fee": 2500, "fee_type": "344"})
	if code, res := f.notify(body); code != http.StatusOK || res.Result != wallet.Success {
		t.Fatalf("notification: HTTP %d %+v", code, res)
	}
	if q := f.send(orderTx(message.PCQRInquiry, 0, o.QROrder)); orderTLV(t, q).QRState != "refunded" {
		t.Fatalf("an order paid in HKD: inquiry says %q, want refunded", orderTLV(t, q).QRState)
	}
	rec := f.record(o.QROrder)
	if rec.ReversedBy != "switch:qr-order-late" || rec.Currency != "344" || rec.Amount != 2500 {
		t.Fatalf("the HKD payment's record: reversed by %q, currency %s, amount %d", rec.ReversedBy, rec.Currency, rec.Amount)
	}
	waitFor(t, "the HKD payment cancelled at the network", func() bool {
		tr, ok := sim.Trade(o.QROrder)
		return ok && tr.State == wallet.Revoked
	})

	// The order's own currency, named, pays it.
	b := f.send(orderTx(message.PCQROrder, 1200, ""))
	body, _ = json.Marshal(wallet.Notification{Network: qr.Alipay, OrderID: b.RRN, TransactionID: "2000000000000000000156", TotalFee: 1200})
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	m["fee_type"] = "156"
	body, _ = json.Marshal(m)
	if code, res := f.notify(body); code != http.StatusOK || res.Result != wallet.Success {
		t.Fatalf("notification in yuan: HTTP %d %+v", code, res)
	}
	if q := f.send(orderTx(message.PCQRInquiry, 0, b.RRN)); orderTLV(t, q).QRState != "paid" {
		t.Fatalf("an order paid in yuan: %q", orderTLV(t, q).QRState)
	}
	if rec := f.record(b.RRN); rec.Reversed() || rec.Currency != "156" || rec.Amount != 1200 {
		t.Fatalf("the yuan payment's record: %+v", rec)
	}
}
