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

// faultWallet is a wallet network whose pay a test controls: it takes the payment
// (the payer is charged) and then answers late, after the connector's request
// timeout (lateAfterQuery: once the connector has started querying), or closes the
// connection without an answer (dropAnswer), or never answers, not even to query
// (silent). query answers NOTPAY until the payment is taken, then SUCCESS; a silent
// wallet's query is held like its pay. It counts pays, queries and reverses.
type faultWallet struct {
	lateAfterQuery bool
	dropAnswer     bool
	silent         bool

	mu      sync.Mutex
	paid    bool
	revoked bool
	pays    int
	queries int
	// queried is closed at the first query; gone at the end of the test (silent
	// requests are released then).
	queried chan struct{}
	gone    chan struct{}
}

func (w *faultWallet) start(t *testing.T, timeout, requestTimeout time.Duration) *Connector {
	t.Helper()
	w.queried, w.gone = make(chan struct{}), make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case PathPay:
			w.mu.Lock()
			w.pays++
			w.mu.Unlock()
			switch {
			case w.isSilent():
				<-w.gone
				return
			case w.lateAfterQuery:
				// Taken once the connector asks about it: its pay timed out first.
				select {
				case <-w.queried:
				case <-w.gone:
					return
				}
			}
			w.mu.Lock()
			w.paid = !w.revoked
			w.mu.Unlock()
			if w.dropAnswer {
				c, _, err := rw.(http.Hijacker).Hijack()
				if err == nil {
					c.Close()
				}
				return
			}
			_ = json.NewEncoder(rw).Encode(Result{Result: Success, TransactionID: "4200000000000000654321"})
		case PathQuery:
			w.mu.Lock()
			w.queries++
			w.mu.Unlock()
			once.Do(func() { close(w.queried) })
			if w.isSilent() {
				<-w.gone
				return
			}
			w.mu.Lock()
			state := NotPay
			if w.paid {
				state = Success
			}
			w.mu.Unlock()
			_ = json.NewEncoder(rw).Encode(QueryResult{TradeState: state, TransactionID: "4200000000000000654321", TotalFee: 1000})
		case PathReverse:
			w.mu.Lock()
			w.revoked, w.paid = true, false
			w.mu.Unlock()
			_ = json.NewEncoder(rw).Encode(Result{Result: Success})
		default:
			http.NotFound(rw, r)
		}
	}))
	t.Cleanup(func() {
		close(w.gone)
		srv.Close()
	})
	c, err := New(Config{ID: "wechat", URL: srv.URL, Timeout: timeout, Poll: 10 * time.Millisecond, RequestTimeout: requestTimeout})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// isSilent is whether the wallet answers nothing (the test turns it off).
func (w *faultWallet) isSilent() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.silent
}

// faultPayment is the payment the fault tests make.
var faultPayment = pipeline.WalletPayment{RRN: "000000000077", Code: "134567890123456789", Amount: 1000, Currency: "156", TID: "T0000001", MID: "000000000000001"}

// TestPayAnsweredLate: a wallet that takes the payment but answers pay only after the
// connector's request timeout (here: once the connector queries) leaves the outcome
// unknown, never declined: the connector queries, learns SUCCESS and approves. The
// pay is sent once, never again (no second charge).
func TestPayAnsweredLate(t *testing.T) {
	w := &faultWallet{lateAfterQuery: true}
	c := w.start(t, 5*time.Second, 200*time.Millisecond)
	rc, auth, err := c.Pay(context.Background(), faultPayment)
	if err != nil || rc != "00" || auth != "654321" {
		t.Fatalf("pay answered late, paid at the wallet: rc %q auth %q err %v; want 00 learned by query", rc, auth, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pays != 1 || w.queries == 0 {
		t.Fatalf("%d pays, %d queries; want 1 pay, then queries", w.pays, w.queries)
	}
}

// TestPayConnectionDropped: a wallet that takes the payment and closes the connection
// without an answer is not "nothing sent" (issuer.ErrUnavailable, no reversal owed,
// the payer charged for nothing): the connector queries and approves.
func TestPayConnectionDropped(t *testing.T) {
	w := &faultWallet{dropAnswer: true}
	c := w.start(t, 5*time.Second, time.Second)
	rc, _, err := c.Pay(context.Background(), faultPayment)
	if err != nil || rc != "00" {
		t.Fatalf("pay taken, connection closed without an answer: rc %q err %v; want 00 learned by query", rc, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pays != 1 || w.queries == 0 {
		t.Fatalf("%d pays, %d queries; want 1 pay, then queries", w.pays, w.queries)
	}
}

// TestPaySilentWallet: a wallet that answers neither pay nor query ends the payment
// with issuer.ErrTimeout (the pipeline's 91 issuer-timeout and a queued reverse), not
// the payer's walk-away, within the connector's timeout and a small margin; the pay
// is sent once; the reverse that the queue then sends cancels the payment.
func TestPaySilentWallet(t *testing.T) {
	w := &faultWallet{silent: true}
	const timeout = 500 * time.Millisecond
	c := w.start(t, timeout, 200*time.Millisecond)
	start := time.Now()
	_, _, err := c.Pay(context.Background(), faultPayment)
	took := time.Since(start)
	if !errors.Is(err, issuer.ErrTimeout) || errors.Is(err, pipeline.ErrPayerNotConfirmed) {
		t.Fatalf("silent wallet: %v, want issuer.ErrTimeout (the network's, not the payer's)", err)
	}
	if took > timeout+500*time.Millisecond {
		t.Fatalf("silent wallet: answered after %s, want at most %s and a margin", took, timeout)
	}
	w.mu.Lock()
	pays := w.pays
	w.silent = false // the wallet answers again
	w.mu.Unlock()
	if pays != 1 {
		t.Fatalf("%d pays, want 1", pays)
	}
	if err := c.Reverse(context.Background(), faultPayment.RRN, false); err != nil {
		t.Fatalf("reverse with the wallet back: %v", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.revoked || w.paid {
		t.Fatalf("after the reverse: revoked %v paid %v", w.revoked, w.paid)
	}
}
