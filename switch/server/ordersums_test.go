package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/pipeline"
	"github.com/switchyard/switchyard/switch/qrorder"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/wallet"
)

// scanMerchantSum is the check's sum as it was read before the desk kept sums: the
// approved purchases and pre-authorizations, less what was reversed or refunded of
// them, of merchant mid's terminals received in [from, to), scanned from the
// journal. The tests hold the sums to it; the benchmark measures it.
func scanMerchantSum(ctx context.Context, reg orderRegistry, hist orderHistory, mid string, from, to time.Time) (int64, error) {
	var sum int64
	for _, t := range reg.Terminals(registry.TerminalFilter{MerchantID: mid}) {
		err := hist.Scan(ctx, journal.Query{TID: t.ID, From: from, To: to}, func(r *journal.Record) bool {
			if (r.Type == "purchase" || r.Type == "preauth") && r.Approved() && !r.Reversed() {
				sum += r.Amount - r.Refunded
			}
			return true
		})
		if err != nil {
			return 0, err
		}
	}
	return sum, nil
}

// scanMerchantCount is the count the daily count limit is checked against, scanned
// from the journal: the approved purchases and pre-authorizations of merchant mid's
// terminals received in [from, to), not reversed (refunded or not).
func scanMerchantCount(ctx context.Context, reg orderRegistry, hist orderHistory, mid string, from, to time.Time) (int64, error) {
	var n int64
	for _, t := range reg.Terminals(registry.TerminalFilter{MerchantID: mid}) {
		err := hist.Scan(ctx, journal.Query{TID: t.ID, From: from, To: to}, func(r *journal.Record) bool {
			if (r.Type == "purchase" || r.Type == "preauth") && r.Approved() && !r.Reversed() {
				n++
			}
			return true
		})
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}

// safeJournal keeps the payments it was given, for concurrent notifications.
type safeJournal struct {
	mu  sync.Mutex
	got []pipeline.OrderPayment
}

func (j *safeJournal) RecordOrderPayment(_ context.Context, op pipeline.OrderPayment) (*journal.Record, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.got = append(j.got, op)
	return &journal.Record{RRN: op.RRN}, nil
}

// oneMerchant is a registry of merchant M1 (limits) with terminals T0000001 and
// T0000002, and merchant M2 with T0000003.
func oneMerchant(limits registry.Limits) *fakeRegistry {
	return &fakeRegistry{
		terminals: map[string]*registry.Terminal{
			"T0000001": {ID: "T0000001", MerchantID: "M1", Status: registry.TerminalActive},
			"T0000002": {ID: "T0000002", MerchantID: "M1", Status: registry.TerminalActive},
			"T0000003": {ID: "T0000003", MerchantID: "M2", Status: registry.TerminalActive},
		},
		merchants: map[string]*registry.Merchant{
			"M1": {ID: "M1", Status: registry.MerchantActive, Limits: limits},
			"M2": {ID: "M2", Status: registry.MerchantActive, Limits: limits},
		},
	}
}

// TestNotifiedPaymentsOfOneMerchantAtOnce: two notifications of one merchant at
// the same moment, 60,000 each under a daily limit of 100,000, both passed the
// check (each read the journal before the other's payment was in it) and both
// were paid. The first is held inside its window (checked, not yet paid) while the
// second arrives: the second waits for the merchant's lock, then sees the first
// and is refused. Exactly one is paid. A notification of another merchant is not
// held up by the first's lock.
func TestNotifiedPaymentsOfOneMerchantAtOnce(t *testing.T) {
	_, book := testBook(t)
	now := time.Now()
	reg := oneMerchant(registry.Limits{Daily: 100_000})
	secret := []byte("0123456789abcdef0123")
	j := &safeJournal{}
	d := &orderDesk{book: book, now: time.Now, secret: secret, log: zerolog.Nop(), pipe: j, reg: reg, hist: fakeHistory{},
		cfg: config.QR{Connectors: []config.QRConnector{{ID: "wechat", Network: "wechat"}}}}
	for _, o := range []struct{ id, tid string }{{"100000000031", "T0000001"}, {"100000000032", "T0000002"}, {"100000000033", "T0000003"}} {
		if err := book.Create(t.Context(), qrorder.Order{ID: o.id, TID: o.tid, MID: "M", Currency: "156", Created: now, Expires: now.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	locking := make(chan string, 3)
	inWindow := make(chan string, 1)
	release := make(chan struct{})
	var held atomic.Bool
	d.hooks = orderHooks{
		locking: func(id string) { locking <- id },
		checked: func(id string) {
			if held.CompareAndSwap(false, true) {
				inWindow <- id
				<-release
			}
		},
	}
	send := func(id string, done chan<- int) {
		body, _ := json.Marshal(wallet.Notification{Network: "wechat", OrderID: id, TransactionID: "TX" + id, TotalFee: 60_000})
		r := httptest.NewRequest(http.MethodPost, NotifyPath, bytes.NewReader(body))
		r.Header.Set(wallet.NotifySignatureHeader, wallet.Sign(secret, body))
		w := httptest.NewRecorder()
		d.notify(w, r)
		done <- w.Code
	}
	doneA, doneB, doneC := make(chan int, 1), make(chan int, 1), make(chan int, 1)
	go send("100000000031", doneA)
	if id := <-inWindow; id != "100000000031" {
		t.Fatalf("held %s, want the first", id)
	}
	<-locking // the first's
	// Another merchant goes on while the first holds M1's lock.
	go send("100000000033", doneC)
	if code := <-doneC; code != http.StatusOK {
		t.Fatalf("other merchant: HTTP %d", code)
	}
	<-locking // the other merchant's
	go send("100000000032", doneB)
	// The second is at M1's lock (or, without one, done): let the first go on.
	select {
	case <-locking:
	case code := <-doneB:
		doneB <- code
	}
	close(release)
	for _, done := range []chan int{doneA, doneB} {
		if code := <-done; code != http.StatusOK {
			t.Fatalf("HTTP %d", code)
		}
	}
	paid := 0
	for _, id := range []string{"100000000031", "100000000032"} {
		o, err := book.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case o.State == qrorder.Paid:
			paid++
		case o.State != qrorder.Refunded || o.Refused != refuseDailyLimit:
			t.Errorf("order %s: %s refused %q", id, o.State, o.Refused)
		}
	}
	if paid != 1 {
		t.Fatalf("%d of the two payments paid, want exactly 1 (daily limit 100,000, 60,000 each)", paid)
	}
	if o, _ := book.Get("100000000031"); o.State != qrorder.Paid {
		t.Errorf("the first (held) is %s, want paid", o.State)
	}
}

// TestNotifiedPaymentOverMonthlyLimit: the merchant's monthly limit (30 rolling
// days, as the rules' merchant_sum_30d) was not checked for merchant-presented
// payments. Ten days of 100,000 under a monthly limit of 1,000,000 leave room for
// nothing more; a record of 31 days ago, a reversed one and what was refunded do
// not count; another merchant's terminal is not its own.
func TestNotifiedPaymentOverMonthlyLimit(t *testing.T) {
	now := time.Now()
	reg := oneMerchant(registry.Limits{Monthly: 1_000_000})
	var hist fakeHistory
	for i := range 10 {
		hist = append(hist, &journal.Record{RRN: fmt.Sprintf("2000000001%02d", i), TID: "T0000002", Type: "purchase", RC: "00", Amount: 100_000,
			Received: now.Add(-time.Duration(i)*24*time.Hour - time.Hour)})
	}
	hist = append(hist,
		&journal.Record{RRN: "200000000201", TID: "T0000002", Type: "purchase", RC: "00", Amount: 900_000, Received: now.Add(-31 * 24 * time.Hour)},
		&journal.Record{RRN: "200000000202", TID: "T0000002", Type: "purchase", RC: "00", Amount: 900_000, Received: now.Add(-2 * time.Hour), ReversedBy: "200000000203"},
		&journal.Record{RRN: "200000000204", TID: "T0000003", Type: "purchase", RC: "00", Amount: 900_000, Received: now.Add(-2 * time.Hour)},
	)
	d := &orderDesk{reg: reg, hist: hist}
	o := qrorder.Order{ID: "100000000041", TID: "T0000001"}
	check := func(amount int64) string {
		t.Helper()
		reason, hold, err := d.refusal(t.Context(), o, amount, func() time.Time { return now })
		hold.release()
		if err != nil {
			t.Fatal(err)
		}
		return reason
	}
	if r := check(1); r != refuseMonthlyLimit {
		t.Fatalf("1 over 10 x 100,000 under a monthly limit of 1,000,000: refused %q, want %q", r, refuseMonthlyLimit)
	}
	// 50,000 of the newest refunded: now 50,000 fits, 50,001 does not.
	hist[0].Refunded = 50_000
	d = &orderDesk{reg: reg, hist: hist}
	if r := check(50_001); r != refuseMonthlyLimit {
		t.Errorf("50,001 after a refund of 50,000: refused %q, want %q", r, refuseMonthlyLimit)
	}
	if r := check(50_000); r != "" {
		t.Errorf("50,000 after a refund of 50,000: refused %q, want none", r)
	}
}

// TestNotifiedPaymentOverDailyCount: the merchant's daily count limit
// (limits.daily_count, as the rules' merchant_count_24h) was not checked for
// merchant-presented payments: a merchant limited to 3 a day took any number. Its
// approved purchases and pre-authorizations of the last 24 hours count one each,
// whatever the amount, a refunded one too; a record of 25 hours ago, a reversed
// one, a decline, a refund and another merchant's do not. A payment the desk let
// through counts at once for the merchant's next notification.
func TestNotifiedPaymentOverDailyCount(t *testing.T) {
	now := time.Now()
	reg := oneMerchant(registry.Limits{DailyCount: 3})
	hist := fakeHistory{
		{RRN: "200000000301", TID: "T0000002", Type: "purchase", RC: "00", Amount: 100, Received: now.Add(-2 * time.Hour)},
		{RRN: "200000000302", TID: "T0000001", Type: "preauth", RC: "00", Amount: 900_000, Received: now.Add(-3 * time.Hour)},
		{RRN: "200000000303", TID: "T0000002", Type: "purchase", RC: "00", Amount: 5_000, Refunded: 5_000, Received: now.Add(-time.Hour)},
		{RRN: "200000000304", TID: "T0000002", Type: "purchase", RC: "00", Amount: 5_000, Received: now.Add(-25 * time.Hour)},
		{RRN: "200000000305", TID: "T0000002", Type: "purchase", RC: "00", Amount: 5_000, Received: now.Add(-time.Hour), ReversedBy: "200000000306"},
		{RRN: "200000000307", TID: "T0000002", Type: "purchase", RC: "51", Amount: 5_000, Received: now.Add(-time.Hour)},
		{RRN: "200000000308", TID: "T0000002", Type: "refund", RC: "00", Amount: 5_000, Received: now.Add(-time.Hour)},
		{RRN: "200000000309", TID: "T0000003", Type: "purchase", RC: "00", Amount: 5_000, Received: now.Add(-time.Hour)},
	}
	clock := func() time.Time { return now }
	d := &orderDesk{reg: reg, hist: hist}
	o1 := qrorder.Order{ID: "100000000051", TID: "T0000001"}
	o2 := qrorder.Order{ID: "100000000052", TID: "T0000001"}
	reason, hold, err := d.refusal(t.Context(), o1, 1, clock)
	hold.release()
	if err != nil || reason != refuseDailyCount {
		t.Fatalf("a 4th payment of 0.01 under a daily count of 3: refused %q (%v), want %q", reason, err, refuseDailyCount)
	}
	// The pre-authorization reversed: two count, the third payment fits.
	hist[1].ReversedBy = "200000000310"
	d = &orderDesk{reg: reg, hist: hist}
	reason, hold, err = d.refusal(t.Context(), o1, 1, clock)
	if err != nil || reason != "" {
		hold.release()
		t.Fatalf("a 3rd payment under a daily count of 3: refused %q (%v), want none", reason, err)
	}
	hold.paid(o1.ID, now, 1)
	hold.release()
	reason, hold, err = d.refusal(t.Context(), o2, 1, func() time.Time { return now.Add(time.Second) })
	hold.release()
	if err != nil || reason != refuseDailyCount {
		t.Fatalf("the next after it: refused %q (%v), want %q", reason, err, refuseDailyCount)
	}
}

// TestMerchantSumsFollowTheJournal: the sums a check reads are kept by the record
// versions the journal writes after they were read from it (a card purchase, a
// reversal, a refund of an earlier purchase, a purchase refunded in full, a
// decline, another merchant's purchase, a payment counted before its journal
// record): after each, every window sums and counts as a scan of the journal does.
func TestMerchantSumsFollowTheJournal(t *testing.T) {
	dir := t.TempDir()
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "db")).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(db, journal.Options{Dir: filepath.Join(dir, "log"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close(); _ = db.Close() })
	reg := oneMerchant(registry.Limits{})
	sums := newMerchantSums(reg, j)
	j.OnVersion(sums.observe)
	ctx := t.Context()
	now := time.Now().UTC()
	n := 0
	write := func(tid string, amount int64, ago time.Duration, rc string) *journal.Record {
		t.Helper()
		n++
		r := &journal.Record{RRN: fmt.Sprintf("3000000%05d", n), TID: tid, STAN: fmt.Sprintf("%06d", n), DE7: "1201120000", Type: "purchase",
			RC: rc, Amount: amount, Received: now.Add(-ago)}
		if err := j.Write(ctx, r, true, true); err != nil {
			t.Fatal(err)
		}
		return r
	}
	update := func(r *journal.Record) {
		t.Helper()
		if err := j.Write(ctx, r, false, true); err != nil {
			t.Fatal(err)
		}
	}
	a := write("T0000001", 10_000, 2*time.Hour, "00")
	b := write("T0000002", 20_000, 23*time.Hour, "00")
	write("T0000002", 40_000, 10*24*time.Hour, "00")
	write("T0000001", 80_000, 31*24*time.Hour, "00")
	at := now.Add(time.Second)
	check := func(step string) {
		t.Helper()
		h := sums.acquire("M1", at)
		defer sums.release(h)
		for _, w := range []time.Duration{dailyLimitWindow, monthlyLimitWindow, 90 * time.Minute} {
			got, gotN, err := sums.sum(ctx, h, "M1", "", at.Add(-monthlyLimitWindow), at.Add(-w), at)
			if err != nil {
				t.Fatal(err)
			}
			want, err := scanMerchantSum(ctx, reg, j, "M1", at.Add(-w), at)
			if err != nil {
				t.Fatal(err)
			}
			wantN, err := scanMerchantCount(ctx, reg, j, "M1", at.Add(-w), at)
			if err != nil {
				t.Fatal(err)
			}
			if got != want || gotN != wantN {
				t.Errorf("%s: window %v: sums %d of %d payments, the journal's scan %d of %d", step, w, got, gotN, want, wantN)
			}
		}
	}
	check("read from the journal")
	write("T0000002", 5_000, time.Minute, "00")
	check("a card purchase")
	write("T0000001", 7_000, time.Minute, "51")
	check("a decline")
	write("T0000003", 9_000, time.Minute, "00")
	check("another merchant's purchase")
	a.ReversedBy = "300000099999"
	update(a)
	check("a reversal")
	b.Refunded = 15_000
	update(b)
	check("a refund of a purchase of 23 hours ago")
	c := write("T0000001", 6_000, 30*time.Minute, "00")
	c.Refunded = 6_000
	update(c)
	check("a purchase refunded in full (counted, for nothing)")
	at = at.Add(2 * time.Hour)
	check("two hours later (the 23-hour-old purchase has left the day)")
	h := sums.acquire("M1", at)
	h.note("300000088888", at.Add(-time.Second), 3_000)
	sums.release(h)
	write("T0000001", 0, 0, "00") // the noted payment's record follows, under another RRN here
	h = sums.acquire("M1", at)
	got, gotN, err := sums.sum(ctx, h, "M1", "", at.Add(-monthlyLimitWindow), at.Add(-dailyLimitWindow), at)
	sums.release(h)
	want, _ := scanMerchantSum(ctx, reg, j, "M1", at.Add(-dailyLimitWindow), at)
	wantN, _ := scanMerchantCount(ctx, reg, j, "M1", at.Add(-dailyLimitWindow), at)
	if err != nil || got != want+3_000 || gotN != wantN+1 {
		t.Errorf("a noted payment: sums %d of %d payments (%v), want the journal's %d of %d and the 3,000 noted, one more", got, gotN, err, want, wantN)
	}
}
