package wallet

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/issuer"
	"github.com/switchyard/switchyard/switch/pipeline"
)

// doubtNetwork answers pay and refund with what its fields say, and query with the
// trade state it holds; it counts the queries.
type doubtNetwork struct {
	mu      sync.Mutex
	pay     Result
	refund  Result
	state   string
	queries int
}

func (n *doubtNetwork) start(t *testing.T) *Connector {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		defer n.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case PathPay:
			_ = json.NewEncoder(w).Encode(n.pay)
		case PathRefund:
			_ = json.NewEncoder(w).Encode(n.refund)
		case PathQuery:
			n.queries++
			_ = json.NewEncoder(w).Encode(QueryResult{TradeState: n.state, TransactionID: "4200000000000000123456", TotalFee: 1000})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := New(Config{ID: "wechat", URL: srv.URL, Timeout: 2 * time.Second, Poll: time.Millisecond, RequestTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPayInDoubtIsQueried: a pay answered FAIL with an error code that says the
// network could not tell the outcome (WeChat Pay's SYSTEMERROR and BANKERROR, Alipay's
// ACQ.SYSTEM_ERROR: "query the order") is not a decline: the payer may have been
// charged. The connector queries the payment; one that went through is approved,
// not declined 05 with the money taken and nothing to give it back.
func TestPayInDoubtIsQueried(t *testing.T) {
	for _, code := range []string{"SYSTEMERROR", "BANKERROR", "ACQ.SYSTEM_ERROR"} {
		t.Run(code, func(t *testing.T) {
			n := &doubtNetwork{pay: Result{Result: Fail, ErrCode: code}, state: Success}
			c := n.start(t)
			rc, auth, err := c.Pay(context.Background(), pipeline.WalletPayment{RRN: "000000000001", Code: "134567890123456789", Amount: 1000, Currency: "156"})
			if err != nil || rc != "00" || auth != "123456" {
				t.Fatalf("pay answered FAIL %s, paid at the network: rc %q auth %q err %v; want 00 learned by query", code, rc, auth, err)
			}
			if n.queries == 0 {
				t.Fatal("the payment was not queried")
			}
		})
	}
	// A FAIL that says what failed is still a decline, at once.
	n := &doubtNetwork{pay: Result{Result: Fail, ErrCode: "NOTENOUGH"}, state: Success}
	c := n.start(t)
	if rc, _, err := c.Pay(context.Background(), pipeline.WalletPayment{RRN: "000000000002", Code: "134567890123456789", Amount: 1000}); rc != "51" || err != nil || n.queries != 0 {
		t.Fatalf("NOTENOUGH: rc %q err %v queries %d", rc, err, n.queries)
	}
}

// TestRefundInDoubtIsATimeout: a refund answered FAIL SYSTEMERROR, or with a result
// that is neither SUCCESS nor FAIL, may have been made: it is in doubt
// (issuer.ErrTimeout, which the pipeline reverses through the queue), not a decline
// that releases the amount on the original for another refund while the payer has
// the money back already.
func TestRefundInDoubtIsATimeout(t *testing.T) {
	for name, res := range map[string]Result{
		"SYSTEMERROR": {Result: Fail, ErrCode: "SYSTEMERROR"},
		"PROCESSING":  {Result: "PROCESSING"},
		"no result":   {},
	} {
		t.Run(name, func(t *testing.T) {
			n := &doubtNetwork{refund: res}
			c := n.start(t)
			rc, _, err := c.Refund(context.Background(), pipeline.WalletRefund{RRN: "000000000003", OriginalRRN: "000000000001", Amount: 400})
			if !errors.Is(err, issuer.ErrTimeout) {
				t.Fatalf("refund answered %+v: rc %q err %v; want in doubt (issuer.ErrTimeout)", res, rc, err)
			}
		})
	}
	n := &doubtNetwork{refund: Result{Result: Fail, ErrCode: "REFUND_AMOUNT_EXCEED"}}
	c := n.start(t)
	if rc, _, err := c.Refund(context.Background(), pipeline.WalletRefund{RRN: "000000000004", OriginalRRN: "000000000001", Amount: 400}); rc != "13" || err != nil {
		t.Fatalf("REFUND_AMOUNT_EXCEED: rc %q err %v", rc, err)
	}
}
