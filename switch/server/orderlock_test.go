package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/cluster"
	"github.com/switchyard/switchyard/switch/cluster/cjournal"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/pipeline"
	"github.com/switchyard/switchyard/switch/qrorder"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/wallet"
)

// clusterOrderJournal journals a notified payment through a node's cluster journal as
// the pipeline does (an approved QR purchase under the order's RRN; a late or refused
// one reversed), once gate is closed (nil: at once); its first fail writes fail.
type clusterOrderJournal struct {
	j    *cjournal.Journal
	gate <-chan struct{}
	fail atomic.Int32
}

func (c *clusterOrderJournal) RecordOrderPayment(ctx context.Context, op pipeline.OrderPayment) (*journal.Record, error) {
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if c.fail.Add(-1) >= 0 {
		return nil, fmt.Errorf("order %s: %w", op.RRN, journal.ErrUnavailable)
	}
	at := op.At.UTC()
	rec := &journal.Record{RRN: op.RRN, Received: at, MTI: "0200", ProcCode: message.PCPurchase, Type: "purchase", TID: op.TID, MID: op.MID,
		Listener: pipeline.OrderListener, Amount: op.Amount, Currency: op.Currency, EntryMode: "030", Issuer: op.Connector, QR: op.Network,
		RC: message.RCApproved, AuthCode: op.AuthCode, DecidedBy: "issuer", Written: time.Now().UTC()}
	if op.Late {
		rec.ReversedBy = "switch:qr-order-refused:" + op.Refused
	}
	rec.AddEvent(journal.StateReceived, at, "")
	rec.AddEvent(journal.StateAnswered, at, "")
	rec.AddEvent(journal.StateResponded, at, "")
	if err := c.j.Write(ctx, rec, true, true); err != nil {
		return nil, err
	}
	return rec, nil
}

// orderNode is one node's QR desk over its own cluster journal, with the merchants'
// sums kept by what its journal writes (its own payments and, applied, the other
// node's), as newOrderDesk wires them.
type orderNode struct {
	desk *orderDesk
	cj   *cjournal.Journal
	pipe *clusterOrderJournal
}

// openOrderNode opens node num's journal under dir on the JetStream server nd, and
// its desk over reg, journaling through a gate (nil: none).
func openOrderNode(t *testing.T, ctx context.Context, nd *cluster.Node, num int, dir string, reg orderRegistry, gate <-chan struct{}, secret []byte) *orderNode {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "badger")).WithLogger(nil).WithSyncWrites(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	store, err := journal.Open(db, journal.Options{Dir: filepath.Join(dir, "journal"), RRNPrefix: strconv.Itoa(num), IndexDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	cj, err := cjournal.Open(ctx, nd, store, db, cjournal.Options{Node: num, Replicas: 1, AckTimeout: 3 * time.Second, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatalf("node %d's cluster journal: %v", num, err)
	}
	t.Cleanup(func() { _ = cj.Close() })
	_, book := testBook(t)
	sums := newMerchantSums(reg, store)
	store.OnVersion(sums.observe)
	pipe := &clusterOrderJournal{j: cj, gate: gate}
	d := &orderDesk{book: book, now: time.Now, secret: secret, log: zerolog.Nop(), reg: reg, hist: store, sums: sums, pipe: pipe, locks: cj,
		cfg: config.QR{Connectors: []config.QRConnector{{ID: "wechat", Network: "wechat"}}}}
	return &orderNode{desk: d, cj: cj, pipe: pipe}
}

// startJetStream starts an embedded JetStream server (standalone, R1) whose store is
// under base, closed when the test ends: the cluster the test's nodes share.
func startJetStream(t *testing.T, ctx context.Context, base string) *cluster.Node {
	t.Helper()
	nd, err := cluster.Start(ctx, cluster.Config{Mode: cluster.ModeEmbedded, Node: 1, Replicas: 1,
		Embedded: cluster.Embedded{ServerName: "n1", StoreDir: filepath.Join(base, "jetstream"), ClientAddr: "127.0.0.1:0"}}, cluster.Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nd.Close() })
	if err := nd.WaitJetStream(ctx); err != nil {
		t.Fatal(err)
	}
	return nd
}

// notifyDesk posts a signed notification to d with ctx and returns the HTTP code
// and the result.
func notifyDesk(ctx context.Context, d *orderDesk, secret []byte, n wallet.Notification) (int, wallet.Result) {
	body, _ := json.Marshal(n)
	r := httptest.NewRequestWithContext(ctx, http.MethodPost, NotifyPath, bytes.NewReader(body))
	r.Header.Set(wallet.NotifySignatureHeader, wallet.Sign(secret, body))
	w := httptest.NewRecorder()
	d.notify(w, r)
	var res wallet.Result
	_ = json.Unmarshal(w.Body.Bytes(), &res)
	return w.Code, res
}

// TestMerchantLimitsAcrossNodes: two nodes of a cluster notified at once for one
// merchant whose daily limit (10.00) fits one of the two payments (6.00 each). Node 1
// has checked its payment and not yet journaled it when node 2 is notified. Each node
// checked against its own sums, which hold the other's payment only once its journal
// has applied it: both were paid. Now node 2 waits for the merchant's cluster-wide
// lock that node 1 holds until its payment is journaled (here past the notification's
// deadline: answered 500, for the network to repeat it); the repeat, once node 1 has
// journaled, checks against sums that hold node 1's payment, and is refused (the
// order refunded, merchant-daily-limit). Exactly one is paid.
func TestMerchantLimitsAcrossNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	base := t.TempDir()
	nd := startJetStream(t, ctx, base)
	reg := oneMerchant(registry.Limits{Daily: 1000})
	secret := []byte("0123456789abcdef0123")
	gate := make(chan struct{})
	n1 := openOrderNode(t, ctx, nd, 1, filepath.Join(base, "node1"), reg, gate, secret)
	n2 := openOrderNode(t, ctx, nd, 2, filepath.Join(base, "node2"), reg, nil, secret)

	now := time.Now()
	orders := []struct {
		n   *orderNode
		id  string
		tid string
	}{{n1, "100000000001", "T0000001"}, {n2, "200000000001", "T0000002"}}
	for _, o := range orders {
		if err := o.n.desk.book.Create(ctx, qrorder.Order{ID: o.id, TID: o.tid, MID: "M1", Currency: "156", Amount: 600,
			Created: now, Expires: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	note := func(id string) wallet.Notification {
		return wallet.Notification{Network: "wechat", OrderID: id, TransactionID: "TX" + id, TotalFee: 600}
	}
	checked := make(chan struct{})
	n1.desk.hooks.checked = func(string) { close(checked) }

	type told struct {
		code int
		res  wallet.Result
	}
	first := make(chan told, 1)
	go func() {
		code, res := notifyDesk(ctx, n1.desk, secret, note(orders[0].id))
		first <- told{code, res}
	}()
	select {
	case <-checked:
	case <-ctx.Done():
		t.Fatal("node 1 did not check its payment")
	}
	// Node 1 holds its payment, checked, unjournaled (the gate). Node 2 is notified
	// for the same merchant, with a deadline (the network's wait for an answer).
	ctx2, cancel2 := context.WithTimeout(ctx, time.Second)
	code2, res2 := notifyDesk(ctx2, n2.desk, secret, note(orders[1].id))
	cancel2()
	close(gate)
	r1 := <-first
	if r1.code != http.StatusOK || r1.res.Result != wallet.Success {
		t.Fatalf("node 1's notification: %d %+v", r1.code, r1.res)
	}
	if code2 == http.StatusInternalServerError {
		// The network repeats it.
		code2, res2 = notifyDesk(ctx, n2.desk, secret, note(orders[1].id))
	}
	if code2 != http.StatusOK || res2.Result != wallet.Success {
		t.Fatalf("node 2's notification: %d %+v", code2, res2)
	}
	o1, err := n1.desk.book.Get(orders[0].id)
	if err != nil || o1.State != qrorder.Paid {
		t.Fatalf("node 1's order: %+v (%v), want paid", o1, err)
	}
	o2, err := n2.desk.book.Get(orders[1].id)
	if err != nil || o2.State != qrorder.Refunded || o2.Refused != refuseDailyLimit {
		t.Fatalf("node 2's order, notified while node 1's payment of the merchant was checked and not journaled: %s refused %q (%v); want refunded, %s: both payments of 6.00 under a daily limit of 10.00 were taken",
			o2.State, o2.Refused, err, refuseDailyLimit)
	}
}

// failingLocks are a cluster's merchant locks without a quorum.
type failingLocks struct{ err error }

func (f failingLocks) LockMerchant(context.Context, string) (unlock, keep func(), err error) {
	return nil, nil, f.err
}

// TestMerchantLockUnavailable: a cluster node that cannot take the merchant's
// cluster-wide lock (no quorum) does not take the payment: the notification is
// answered 500 (the network repeats it), the order stays open and nothing is
// journaled.
func TestMerchantLockUnavailable(t *testing.T) {
	_, book := testBook(t)
	now := time.Now()
	if err := book.Create(t.Context(), qrorder.Order{ID: "100000000021", TID: "T0000001", MID: "M1", Currency: "156", Amount: 600,
		Created: now, Expires: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	secret := []byte("0123456789abcdef0123")
	j := &failingJournal{}
	noQuorum := fmt.Errorf("lock merchant: %w: %w", journal.ErrUnavailable, cluster.ErrNoQuorum)
	d := &orderDesk{book: book, now: time.Now, secret: secret, log: zerolog.Nop(), pipe: j,
		reg: oneMerchant(registry.Limits{DailyCount: 5}), hist: fakeHistory{}, locks: failingLocks{noQuorum},
		cfg: config.QR{Connectors: []config.QRConnector{{ID: "wechat", Network: "wechat"}}}}
	code, res := notifyDesk(t.Context(), d, secret, wallet.Notification{Network: "wechat", OrderID: "100000000021", TransactionID: "TX21", TotalFee: 600})
	if code != http.StatusInternalServerError || res.ErrCode != "SYSTEMERROR" {
		t.Fatalf("notification without the merchant's lock: %d %+v, want 500 SYSTEMERROR", code, res)
	}
	if o, err := book.Get("100000000021"); err != nil || o.State != qrorder.Open {
		t.Fatalf("order %+v (%v), want open", o, err)
	}
	if len(j.got) != 0 || !errors.Is(noQuorum, cluster.ErrNoQuorum) {
		t.Fatalf("journaled %d payments without the merchant's lock", len(j.got))
	}
}

// TestMerchantLockKeptAfterFailedJournal: node 1 takes a payment (the book has it)
// whose journal write fails: the notification is answered 500, and no journal, so no
// node's sums, has the payment yet. Node 2 notified for the same merchant meanwhile
// would check without it and take a payment the daily limit leaves no room for; the
// merchant's lock is kept instead (node 2 answered 500) until node 1 journals the
// payment (the network's repeat), and node 2's repeat is then refused.
func TestMerchantLockKeptAfterFailedJournal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	base := t.TempDir()
	nd := startJetStream(t, ctx, base)
	reg := oneMerchant(registry.Limits{Daily: 1000})
	secret := []byte("0123456789abcdef0123")
	n1 := openOrderNode(t, ctx, nd, 1, filepath.Join(base, "node1"), reg, nil, secret)
	n2 := openOrderNode(t, ctx, nd, 2, filepath.Join(base, "node2"), reg, nil, secret)
	n1.pipe.fail.Store(1)
	now := time.Now()
	for _, o := range []struct {
		n       *orderNode
		id, tid string
	}{{n1, "100000000031", "T0000001"}, {n2, "200000000031", "T0000002"}} {
		if err := o.n.desk.book.Create(ctx, qrorder.Order{ID: o.id, TID: o.tid, MID: "M1", Currency: "156", Amount: 600,
			Created: now, Expires: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	note := func(id string) wallet.Notification {
		return wallet.Notification{Network: "wechat", OrderID: id, TransactionID: "TX" + id, TotalFee: 600}
	}
	if code, res := notifyDesk(ctx, n1.desk, secret, note("100000000031")); code != http.StatusInternalServerError {
		t.Fatalf("node 1's notification, journal failing: %d %+v, want 500", code, res)
	}
	ctx2, cancel2 := context.WithTimeout(ctx, time.Second)
	code2, res2 := notifyDesk(ctx2, n2.desk, secret, note("200000000031"))
	cancel2()
	if code2 != http.StatusInternalServerError {
		o2, _ := n2.desk.book.Get("200000000031")
		t.Fatalf("node 2's notification while node 1's payment of the merchant is taken and not journaled: %d %+v, order %s refused %q; want 500 (the merchant's lock kept)",
			code2, res2, o2.State, o2.Refused)
	}
	if code, res := notifyDesk(ctx, n1.desk, secret, note("100000000031")); code != http.StatusOK || res.Result != wallet.Success {
		t.Fatalf("node 1's repeat: %d %+v", code, res)
	}
	if code, res := notifyDesk(ctx, n2.desk, secret, note("200000000031")); code != http.StatusOK || res.Result != wallet.Success {
		t.Fatalf("node 2's repeat: %d %+v", code, res)
	}
	if o, err := n2.desk.book.Get("200000000031"); err != nil || o.State != qrorder.Refunded || o.Refused != refuseDailyLimit {
		t.Fatalf("node 2's order: %s refused %q (%v), want refunded, %s", o.State, o.Refused, err, refuseDailyLimit)
	}
	n1.desk.keptMu.Lock()
	kept := len(n1.desk.kept)
	n1.desk.keptMu.Unlock()
	if kept != 0 {
		t.Fatalf("node 1 keeps %d merchant locks after journaling", kept)
	}
}
