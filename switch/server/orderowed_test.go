package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/qrorder"
	"github.com/switchyard/switchyard/switch/wallet"
)

// TestPaidOrderJournaledBySweep: the book takes a notified payment and the journal
// refuses its write (500); the network never repeats the notification. The order is
// paid, and the payment was in no journal record for good (settlement missed it).
// Now the notification's mark outlives it: once the journal recovers, the sweep
// journals the book's payment (its amount, paid, not late) and clears the mark, so
// that a second sweep journals nothing. A mark younger than owedMinAge (a
// notification possibly in progress) is left alone, and the mark of an order no
// payment took is cleared without journaling anything.
func TestPaidOrderJournaledBySweep(t *testing.T) {
	db, book := testBook(t)
	start := time.Now()
	var mu sync.Mutex
	clock := start
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	for _, id := range []string{"100000000031", "100000000032"} {
		if err := book.Create(t.Context(), qrorder.Order{ID: id, TID: "T0000001", MID: "000000000000001", Currency: "156",
			Amount: 2500, Created: start, Expires: start.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	secret := []byte("0123456789abcdef0123")
	j := &failingJournal{fail: 1}
	d := &orderDesk{book: book, now: now, secret: secret, log: zerolog.Nop(), pipe: j, marks: &orderMarks{db: db},
		cfg: config.QR{Connectors: []config.QRConnector{{ID: "wechat", Network: "wechat"}}}}
	body, _ := json.Marshal(wallet.Notification{Network: "wechat", OrderID: "100000000031", TransactionID: "TX31", TotalFee: 2500})
	r := httptest.NewRequest(http.MethodPost, NotifyPath, bytes.NewReader(body))
	r.Header.Set(wallet.NotifySignatureHeader, wallet.Sign(secret, body))
	w := httptest.NewRecorder()
	d.notify(w, r)
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("notification, journal refusing: HTTP %d, want 500", w.Code)
	}
	if o, err := book.Get("100000000031"); err != nil || o.State != qrorder.Paid {
		t.Fatalf("order %+v %v: want paid", o, err)
	}
	// A mark of an order nothing paid (a notification refused before the book).
	if err := d.marks.owe(t.Context(), "100000000032", start); err != nil {
		t.Fatal(err)
	}

	if n, err := d.sweepOwed(t.Context()); err != nil || n != 0 || len(j.got) != 1 {
		t.Fatalf("sweep of young marks: journaled %d (%v), journal asked %d times; want nothing", n, err, len(j.got))
	}
	mu.Lock()
	clock = start.Add(owedMinAge + time.Second)
	mu.Unlock()
	if n, err := d.sweepOwed(t.Context()); err != nil || n != 1 || len(j.got) != 2 {
		t.Fatalf("sweep: journaled %d (%v), journal asked %d times; want the paid order's payment", n, err, len(j.got))
	}
	if op := j.got[1]; op.RRN != "100000000031" || op.Amount != 2500 || op.Currency != "156" || op.Late || op.Network != "wechat" || op.Connector != "wechat" || op.AuthCode != "" && op.AuthCode != authCode("TX31") {
		t.Fatalf("the sweep journaled %+v", op)
	}
	if n, err := d.sweepOwed(t.Context()); err != nil || n != 0 || len(j.got) != 2 {
		t.Fatalf("second sweep: journaled %d (%v), journal asked %d times; want nothing (marks cleared)", n, err, len(j.got))
	}
	left := 0
	if err := d.marks.each(func(string, time.Time) { left++ }); err != nil || left != 0 {
		t.Fatalf("%d marks left (%v)", left, err)
	}
}
