package wallet

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/pipeline"
)

// TestPayQueryOfAnotherPayment: a pay whose answer is lost is queried, and the
// network's state of the merchant's order number is taken as this payment's. When
// that number already holds another payment at the network (an RRN the switch hands
// out again, after its journal was lost or restored from a backup: the network
// refused this pay as OUT_TRADE_NO_USED, and that answer was lost), the query says
// SUCCESS with that payment's amount. The connector approved it: goods handed over
// for a payment never made. Now a query whose total_fee is not the payment's is
// another payment's: declined 94, not approved, and not reversed (a cancel under
// the number would give back that other payment). The same answer with the
// payment's own amount, or with none (a network that does not say), is approved.
// Over loopback HTTP.
func TestPayQueryOfAnotherPayment(t *testing.T) {
	var fee atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case PathPay:
			http.Error(w, `{"result":"FAIL","err_code":"SYSTEMERROR"}`, http.StatusInternalServerError)
		case PathQuery:
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(QueryResult{TradeState: Success, TransactionID: "4200000000000000000777", TotalFee: fee.Load()})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := New(Config{ID: "wechat", URL: srv.URL, Timeout: 2 * time.Second, Poll: time.Millisecond, RequestTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	pay := pipeline.WalletPayment{RRN: "100000000777", Code: "134567890123456789", TID: "T0000001", MID: "M1", Currency: "156", Amount: 1000}
	fee.Store(500)
	if rc, auth, err := c.Pay(t.Context(), pay); err != nil || rc != "94" || auth != "" {
		t.Fatalf("pay of 1000 whose query answers another payment of 500: rc %q auth %q err %v; want 94, no auth, no error", rc, auth, err)
	}
	for _, f := range []int64{1000, 0} {
		fee.Store(f)
		if rc, auth, err := c.Pay(t.Context(), pay); err != nil || rc != "00" || auth != "000777" {
			t.Fatalf("query total_fee %d: rc %q auth %q err %v; want 00 000777", f, rc, auth, err)
		}
	}
}
