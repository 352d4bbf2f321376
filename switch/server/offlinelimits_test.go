package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/cluster"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/pipeline"
	"github.com/switchyard/switchyard/switch/qrorder"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/wallet"
)

// writeCapture journals an offline capture of amount by terminal tid as the
// pipeline's final write does (an approved purchase marked offline) through node
// n's cluster journal.
func writeCapture(ctx context.Context, t *testing.T, n *orderNode, rrn, tid string, amount int64) {
	t.Helper()
	at := time.Now().UTC()
	rec := &journal.Record{RRN: rrn, Received: at, MTI: "0200", ProcCode: message.PCPurchase, Type: "purchase", TID: tid, MID: "M1",
		Amount: amount, Currency: "156", Offline: true, RC: message.RCApproved, AuthCode: "Y1    ", DecidedBy: pipeline.DecidedByCard, Written: at}
	rec.AddEvent(journal.StateReceived, at, "")
	rec.AddEvent(journal.StateAnswered, at, "")
	if err := n.cj.Write(ctx, rec, true, true); err != nil {
		t.Fatalf("capture %s: %v", rrn, err)
	}
}

// TestOfflineCaptureLimitsAcrossNodes: an offline capture's check of its
// merchant's daily limit (10.00) is the QR desk's, under the same cluster-wide lock.
// Node 1 checks a capture of 6.00 and holds the merchant until its record is
// written: node 2 notified meanwhile of a QR payment of 6.00 waits for the lock
// (answered 500 past the network's deadline); its repeat, once the capture is
// journaled, sees it and is refused. Node 2's capture of 5.00 then sees node 1's
// capture and is refused offline-over-daily-limit; one of 4.00 passes. Without a
// quorum (the lock not taken) a capture is not checked: an error wrapping
// journal.ErrUnavailable, which the pipeline answers 91.
func TestOfflineCaptureLimitsAcrossNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	base := t.TempDir()
	nd := startJetStream(t, ctx, base)
	reg := oneMerchant(registry.Limits{Daily: 1000})
	secret := []byte("0123456789abcdef0123")
	n1 := openOrderNode(t, ctx, nd, 1, filepath.Join(base, "node1"), reg, nil, secret)
	n2 := openOrderNode(t, ctx, nd, 2, filepath.Join(base, "node2"), reg, nil, secret)
	m, _ := reg.Merchant("M1")

	over, hold, err := offlineLimits{n1.desk}.HoldLimits(ctx, m, "100000000001", 600)
	if err != nil || over != "" || hold == nil {
		t.Fatalf("node 1's capture of 6.00: over %q, hold %v, %v; want held", over, hold, err)
	}
	hold.Count("100000000001", time.Now(), 600)

	now := time.Now()
	if err := n2.desk.book.Create(ctx, qrorder.Order{ID: "200000000001", TID: "T0000002", MID: "M1", Currency: "156", Amount: 600,
		Created: now, Expires: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	note := wallet.Notification{Network: "wechat", OrderID: "200000000001", TransactionID: "TX200000000001", TotalFee: 600}
	ctx2, cancel2 := context.WithTimeout(ctx, time.Second)
	code, res := notifyDesk(ctx2, n2.desk, secret, note)
	cancel2()
	if code != http.StatusInternalServerError {
		t.Fatalf("node 2's notification while node 1's capture holds the merchant: %d %+v, want 500 (the lock waited for)", code, res)
	}
	writeCapture(ctx, t, n1, "100000000001", "T0000001", 600)
	hold.Release()
	if code, res := notifyDesk(ctx, n2.desk, secret, note); code != http.StatusOK || res.Result != wallet.Success {
		t.Fatalf("node 2's repeat: %d %+v", code, res)
	}
	if o, err := n2.desk.book.Get("200000000001"); err != nil || o.State != qrorder.Refunded || o.Refused != refuseDailyLimit {
		t.Fatalf("node 2's order after node 1's capture of 6.00: %s refused %q (%v), want refunded %s", o.State, o.Refused, err, refuseDailyLimit)
	}

	over, hold, err = offlineLimits{n2.desk}.HoldLimits(ctx, m, "200000000002", 500)
	if err != nil || over != pipeline.ReasonOfflineDailyLimit || hold != nil {
		t.Fatalf("node 2's capture of 5.00 after node 1's of 6.00: over %q, hold %v, %v; want %s, nothing held", over, hold, err, pipeline.ReasonOfflineDailyLimit)
	}
	over, hold, err = offlineLimits{n2.desk}.HoldLimits(ctx, m, "200000000003", 400)
	if err != nil || over != "" || hold == nil {
		t.Fatalf("node 2's capture of 4.00: over %q, %v; want held", over, err)
	}
	hold.Release()

	noQuorum := fmt.Errorf("lock merchant: %w: %w", journal.ErrUnavailable, cluster.ErrNoQuorum)
	n2.desk.locks = failingLocks{noQuorum}
	if _, hold, err := (offlineLimits{n2.desk}).HoldLimits(ctx, m, "200000000004", 100); !errors.Is(err, journal.ErrUnavailable) || hold != nil {
		t.Fatalf("a capture checked without a quorum: hold %v, %v; want an error wrapping journal.ErrUnavailable", hold, err)
	}
}

// TestOfflineCapturesOneMerchantConcurrent: twenty offline captures of 1.00 and
// twenty QR payments of 1.00 of one merchant checked at once on one node, each
// counted before its hold is released, against a daily limit of 10.00: exactly ten
// pass, whatever the interleaving (the merchant's hold serialises the capture's and
// the notification's checks; run with -race).
func TestOfflineCapturesOneMerchantConcurrent(t *testing.T) {
	reg := &fakeRegistry{
		terminals: map[string]*registry.Terminal{"T0000001": {ID: "T0000001", MerchantID: "M1", Status: registry.TerminalActive}},
		merchants: map[string]*registry.Merchant{"M1": {ID: "M1", Status: registry.MerchantActive, Limits: registry.Limits{Daily: 1000}}},
	}
	// A check that passed yields before it is counted: without the hold, another
	// check would run in between and pass too.
	d := &orderDesk{now: time.Now, reg: reg, hist: fakeHistory{}, hooks: orderHooks{checked: func(string) { runtime.Gosched() }}}
	m, _ := reg.Merchant("M1")
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		passed int
		errs   []error
	)
	start := make(chan struct{})
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			id := fmt.Sprintf("1000000000%02d", i)
			ok := false
			if i%2 == 0 {
				over, hold, err := offlineLimits{d}.HoldLimits(context.Background(), m, id, 100)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				if over == "" {
					hold.Count(id, time.Now(), 100)
					hold.Release()
					ok = true
				}
			} else {
				reason, hold, err := d.refusal(context.Background(), qrorder.Order{ID: id, TID: "T0000001"}, 100, time.Now)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				if reason == "" {
					hold.paid(id, time.Now(), 100)
					ok = true
				}
				hold.release()
			}
			if ok {
				mu.Lock()
				passed++
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 || passed != 10 {
		t.Fatalf("40 checks of 1.00 against a daily limit of 10.00: %d passed, errors %v; want 10", passed, errs)
	}
}

// TestOfflineCaptureSumsAfterRestart: a node started afresh (its sums empty) reads
// the merchant's captures of the window back from the journal at its first check:
// an offline capture of 6.00 journaled before the restart, approved by the card,
// counts against the daily limit of 10.00 (a capture of 5.00 is refused
// offline-over-daily-limit, one of 4.00 passes); one refused before it (61) and one
// older than 24 hours do not count.
func TestOfflineCaptureSumsAfterRestart(t *testing.T) {
	now := time.Now()
	reg := &fakeRegistry{
		terminals: map[string]*registry.Terminal{"T0000001": {ID: "T0000001", MerchantID: "M1", Status: registry.TerminalActive}},
		merchants: map[string]*registry.Merchant{"M1": {ID: "M1", Status: registry.MerchantActive, Limits: registry.Limits{Daily: 1000}}},
	}
	capture := func(rrn string, amount int64, rc string, at time.Time) *journal.Record {
		return &journal.Record{RRN: rrn, TID: "T0000001", MID: "M1", MTI: "0200", ProcCode: message.PCPurchase, Type: "purchase",
			Amount: amount, Offline: true, RC: rc, DecidedBy: pipeline.DecidedByCard, Received: at}
	}
	hist := fakeHistory{
		capture("100000000001", 600, message.RCApproved, now.Add(-time.Hour)),
		capture("100000000002", 900, message.RCExceedsAmountLimit, now.Add(-time.Hour)),
		capture("100000000003", 900, message.RCApproved, now.Add(-25*time.Hour)),
	}
	d := &orderDesk{now: time.Now, reg: reg, hist: hist}
	m, _ := reg.Merchant("M1")
	if over, hold, err := (offlineLimits{d}).HoldLimits(context.Background(), m, "100000000010", 500); err != nil || over != pipeline.ReasonOfflineDailyLimit || hold != nil {
		t.Fatalf("a capture of 5.00 after a restart, 6.00 captured an hour before: over %q, hold %v, %v; want %s", over, hold, err, pipeline.ReasonOfflineDailyLimit)
	}
	over, hold, err := (offlineLimits{d}).HoldLimits(context.Background(), m, "100000000011", 400)
	if err != nil || over != "" || hold == nil {
		t.Fatalf("a capture of 4.00: over %q, %v; want held", over, err)
	}
	hold.Release()
}
