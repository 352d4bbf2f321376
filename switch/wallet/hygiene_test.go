package wallet

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/pipeline"
)

// TestPayErrorAnswerNotLoggedWithCode: a network that refuses a pay with an HTTP
// error whose body quotes the request (as many API gateways' validation errors do)
// must not put the payer's payment code in the switch's log, where the connector
// logs the failed pay before it queries the payment.
func TestPayErrorAnswerNotLoggedWithCode(t *testing.T) {
	const code = "134567890123456789"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case PathPay:
			var req PayRequest
			_ = json.Unmarshal(body, &req)
			http.Error(w, `{"error":"auth_code `+req.AuthCode+` not accepted: retry","request":`+string(body)+`}`, http.StatusBadRequest)
		case PathQuery:
			_ = json.NewEncoder(w).Encode(QueryResult{TradeState: Success, TransactionID: "4200001234567890"})
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	var logs bytes.Buffer
	c, err := New(Config{ID: "wechat", URL: srv.URL, Timeout: 5 * time.Second, Poll: time.Millisecond, Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := c.Pay(context.Background(), pipeline.WalletPayment{RRN: "000000000001", Code: code, TID: "T0000001", MID: "000000000000001", Currency: "156", Amount: 100})
	if err != nil || rc != "00" {
		t.Fatalf("pay: %s, %v", rc, err)
	}
	out := logs.String()
	if !strings.Contains(out, "pay without an answer") {
		t.Fatalf("the failed pay was not logged (nothing to check): %s", out)
	}
	if strings.Contains(out, code) {
		t.Errorf("payment code in the clear in the log: %s", out)
	}
}
