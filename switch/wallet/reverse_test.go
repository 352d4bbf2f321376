package wallet

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/saf"
)

// TestReverseRefusedForGoodParked: a wallet network (over loopback HTTP) refuses the
// reverse of a payment and the undoing of a refund for good (FAIL REVERSE_EXPIRE: past
// the cancel window), and answers another reverse FAIL SYSTEMERROR five times before
// taking it. Through the store-and-forward queue (the connector's AdviceSender), the
// two refused are parked at their first refusal, the network's code in their
// last_error, counted and not sent again; the one refused for a while is repeated
// (more times than ParkAfter) until taken, never parked. (Until the fifth release of 6
// December 2026 a reverse refused for good was repeated for ever.)
func TestReverseRefusedForGoodParked(t *testing.T) {
	const expiredPay, expiredRefund, busy = "000000000001", "000000000002", "000000000003"
	var mu sync.Mutex
	reverses := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req ReverseRequest
		if r.URL.Path != PathReverse || json.NewDecoder(r.Body).Decode(&req) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		no := req.OutTradeNo + req.OutRefundNo
		mu.Lock()
		reverses[no]++
		n := reverses[no]
		mu.Unlock()
		res := Result{Result: Success}
		switch {
		case no == expiredPay && req.OutTradeNo != "", no == expiredRefund && req.OutRefundNo != "":
			res = Result{Result: Fail, ErrCode: "REVERSE_EXPIRE", ErrMsg: "past the cancel window"}
		case no == busy && n <= 5:
			res = Result{Result: Fail, ErrCode: "SYSTEMERROR", ErrMsg: "try again"}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(res)
	}))
	defer srv.Close()
	c, err := New(Config{ID: "wechat", URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Reverse(context.Background(), expiredPay, false); !errors.Is(err, ErrNotReversible) || !errors.Is(err, saf.ErrRefused) ||
		!strings.Contains(err.Error(), "REVERSE_EXPIRE") {
		t.Errorf("reverse past the window: %v, want ErrNotReversible (saf.ErrRefused) naming REVERSE_EXPIRE", err)
	}
	mu.Lock()
	reverses[expiredPay] = 0
	mu.Unlock()

	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q, err := saf.Open(db, saf.Options{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Poll: 5 * time.Millisecond, ParkAfter: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for _, it := range []*saf.Item{
		{Issuer: "wechat", MTI: "0420", RRN: expiredPay, Fields: map[int]string{3: message.PCPurchase, 37: expiredPay}},
		{Issuer: "wechat", MTI: "0420", RRN: expiredRefund, Fields: map[int]string{3: message.PCRefund, 37: expiredRefund}},
		{Issuer: "wechat", MTI: "0420", RRN: busy, Fields: map[int]string{3: message.PCPurchase, 37: busy}},
	} {
		if err := q.Enqueue(it); err != nil {
			t.Fatal(err)
		}
	}
	q.Register("wechat", c.AdviceSender())
	deadline := time.Now().Add(10 * time.Second)
	for q.Len("wechat") != 0 {
		if time.Now().After(deadline) {
			p, _ := q.Pending("")
			t.Fatalf("the queue did not empty: %+v", p)
		}
		time.Sleep(5 * time.Millisecond)
	}
	st := q.IssuerStats()["wechat"]
	if st.Parked.Load() != 2 || st.Acked.Load() != 1 {
		t.Errorf("parked %d, acked %d: want 2 and 1", st.Parked.Load(), st.Acked.Load())
	}
	p, err := q.Parked("wechat")
	if err != nil || len(p) != 2 {
		t.Fatalf("parked %+v (%v), want the two refused for good", p, err)
	}
	for _, it := range p {
		if it.RRN != expiredPay && it.RRN != expiredRefund || !strings.Contains(it.LastErr, "REVERSE_EXPIRE") || it.Tries != 1 {
			t.Errorf("parked %+v, want a refused reverse after one try, REVERSE_EXPIRE in its last error", it)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if reverses[expiredPay] != 1 || reverses[expiredRefund] != 1 || reverses[busy] != 6 {
		t.Errorf("reverses %v, want one each of the refused, 6 of the one refused for a while", reverses)
	}
}
