package qrorder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/internal/statelog/kvsync/kvsynctest"
)

// sharedNode is one node's book of a cluster in the tests, on its own Badger.
type sharedNode struct {
	b   *Book
	log *kvsynctest.Log
}

// paidCounter is a replica that counts the requests, ordered in the shared log, that
// decide an order (paid or refunded), deciding them as every node does (Resolve)
// on its own copy of the orders: what the cluster's stream holds. It counts the
// payment requests of each order too.
type paidCounter struct {
	mu       sync.Mutex
	rev      uint64
	orders   map[string][]byte
	decided  map[string]int
	payments map[string]int
}

func (p *paidCounter) ApplyRemote(rev uint64, c statelog.Commit) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if rev <= p.rev {
		return nil
	}
	p.rev = rev
	if p.orders == nil {
		p.orders, p.payments = map[string][]byte{}, map[string]int{}
	}
	for _, kv := range c.Writes {
		var r request
		if c.Intent && json.Unmarshal(kv.Value, &r) == nil && r.Op == opPay {
			p.payments[strings.TrimPrefix(string(kv.Key), prefix)]++
		}
	}
	if c.Intent {
		var err error
		if c, err = Resolve(rev, func(k []byte) ([]byte, error) { return p.orders[string(k)], nil }, c); err != nil {
			return err
		}
	}
	for _, kv := range c.Writes {
		var before, o Order
		_ = json.Unmarshal(p.orders[string(kv.Key)], &before)
		p.orders[string(kv.Key)] = kv.Value
		if json.Unmarshal(kv.Value, &o) == nil && (o.State == Paid || o.State == Refunded) && before.State != Paid && before.State != Refunded {
			p.decided[o.ID]++
		}
	}
	return nil
}

func (p *paidCounter) paymentRequests(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.payments[id]
}

func (p *paidCounter) Revision() uint64 { p.mu.Lock(); defer p.mu.Unlock(); return p.rev }

func (p *paidCounter) count(id string) int { p.mu.Lock(); defer p.mu.Unlock(); return p.decided[id] }

// twoNodes opens two books sharing mem (each catching up by delivering mem), and a
// counter of the decisions mem orders.
func twoNodes(t *testing.T, c *clock) (a, b *sharedNode, mem *statelog.Memory, decided *paidCounter) {
	t.Helper()
	mem = &statelog.Memory{}
	open := func() *sharedNode {
		l := kvsynctest.New(mem)
		bk, err := NewBook(openDB(t, t.TempDir()), Options{Now: c.now, Log: l,
			CatchUp: func(context.Context, statelog.Replica) error { return mem.Deliver() }})
		if err != nil {
			t.Fatal(err)
		}
		mem.Follow(bk)
		return &sharedNode{b: bk, log: l}
	}
	a, b = open(), open()
	decided = &paidCounter{decided: map[string]int{}}
	mem.Follow(decided)
	return a, b, mem, decided
}

func deliver(t *testing.T, mem *statelog.Memory) {
	t.Helper()
	if err := mem.Deliver(); err != nil {
		t.Fatal(err)
	}
}

// waiting waits until n terminals wait on order id in book b (registered under the
// book's lock, as a payment applied after it wakes them).
func waiting(t *testing.T, b *Book, id string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		got := len(b.waiters[id])
		b.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d terminals wait on %s, want %d", got, id, n)
		}
		runtime.Gosched()
	}
}

// TestBookShared: in a cluster an order made on node A is found on node B (once
// delivered, or at once by B catching up when it does not have it); paid through
// B, it is paid on A too, and the terminal waiting on A is woken when A applies
// the payment, not at its timeout. The same payment notified to A and B at once is
// taken once (the request ordered first decides the order, the other node finds it
// taken by the same transaction: Again); two transactions at once: one takes it, the
// other is refunded. A payment whose request's outcome is unknown is not applied by
// its node until its follower delivers it, and its repeat finds it then.
func TestBookShared(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	a, b, mem, decided := twoNodes(t, c)
	ctx := context.Background()
	mk := func(n *sharedNode, id string, amount int64) {
		t.Helper()
		if err := n.b.Create(ctx, Order{ID: id, TID: "T0000001", MID: "000000000000001", Amount: amount, Created: c.now(), Expires: c.now().Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}

	// Made on A, seen on B.
	mk(a, "100000000001", 1000)
	deliver(t, mem)
	if o, err := b.b.Get("100000000001"); err != nil || o.State != Open || o.Amount != 1000 || o.TID != "T0000001" {
		t.Fatalf("B: %+v %v", o, err)
	}
	// Made on A a moment ago, not delivered yet: B catches up before it says no.
	mk(a, "100000000002", 0)
	if o, err := b.b.Get("100000000002"); err != nil || o.State != Open {
		t.Fatalf("B, before delivery: %+v %v", o, err)
	}
	if _, err := b.b.Get("999999999999"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown on B: %v", err)
	}

	// A terminal waits on A; the payment is notified to B.
	woke := make(chan Order, 1)
	go func() {
		o, _ := a.b.Wait(ctx, "100000000001", time.Hour)
		woke <- o
	}()
	waiting(t, a.b, "100000000001", 1)
	o, out, err := b.b.Pay(ctx, "100000000001", Payment{Network: "wechat", Connector: "wechat", TransactionID: "TX1", Amount: 1000})
	if err != nil || out != Taken || o.State != Paid {
		t.Fatalf("pay on B: %+v %v %v", o, out, err)
	}
	select {
	case w := <-woke:
		t.Fatalf("A's waiter woke before A applied the payment: %+v", w)
	default:
	}
	deliver(t, mem)
	select {
	case w := <-woke:
		if w.State != Paid || w.TransactionID != "TX1" {
			t.Fatalf("A's waiter saw %+v", w)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("A's waiter was not woken when A applied B's payment")
	}
	if o, err := a.b.Get("100000000001"); err != nil || o.State != Paid || o.PaidAmount != 1000 {
		t.Fatalf("A after B's payment: %+v %v", o, err)
	}
	// The network repeats it to A: nothing changes.
	if _, out, err := a.b.Pay(ctx, "100000000001", Payment{TransactionID: "TX1", Amount: 1000}); err != nil || out != Again {
		t.Fatalf("repeat on A: %v %v", out, err)
	}

	// The same payment notified to A and B at once: B's request is ordered while A's
	// is on its way (A's is decided after it, on the order B's took: a repeat).
	mk(a, "100000000003", 500)
	deliver(t, mem)
	type result struct {
		o   Order
		out Outcome
		err error
	}
	var fromB result
	calls := len(a.log.Commits())
	a.log.Before = func(n int) {
		if n == calls+1 {
			fromB.o, fromB.out, fromB.err = b.b.Pay(ctx, "100000000003", Payment{Network: "alipay", TransactionID: "TX3", Amount: 500})
		}
	}
	o, out, err = a.b.Pay(ctx, "100000000003", Payment{Network: "alipay", TransactionID: "TX3", Amount: 500})
	a.log.Before = nil
	if fromB.err != nil || fromB.out != Taken {
		t.Fatalf("B: %+v", fromB)
	}
	if err != nil || out != Again || o.State != Paid || o.TransactionID != "TX3" {
		t.Fatalf("A, notified at the same time: %+v %v %v", o, out, err)
	}
	deliver(t, mem)
	if n, p := decided.count("100000000003"), decided.paymentRequests("100000000003"); n != 1 || p != 2 {
		t.Fatalf("the order was decided %d times in the log by %d payment requests, want once by 2 (A's and B's)", n, p)
	}

	// Truly at once, on both nodes, several times: one takes it, one finds it taken.
	for i, id := range []string{"100000000011", "100000000012", "100000000013", "100000000014"} {
		mk(a, id, 700)
		deliver(t, mem)
		results := make(chan result, 2)
		for _, n := range []*sharedNode{a, b} {
			go func() {
				o, out, err := n.b.Pay(ctx, id, Payment{Network: "unionpay", TransactionID: "TXS" + id, Amount: 700})
				results <- result{o, out, err}
			}()
		}
		outs := map[Outcome]int{}
		for range 2 {
			r := <-results
			if r.err != nil || r.o.State != Paid || r.o.TransactionID != "TXS"+id {
				t.Fatalf("round %d: %+v", i, r)
			}
			outs[r.out]++
		}
		deliver(t, mem)
		if outs[Taken] != 1 || outs[Again] != 1 || decided.count(id) != 1 {
			t.Fatalf("round %d: outcomes %v, decided %d times", i, outs, decided.count(id))
		}
	}

	// Two transactions at once: the first ordered keeps the order, the other is
	// refunded (Late, the order showing the first's transaction).
	mk(a, "100000000004", 900)
	deliver(t, mem)
	calls = len(a.log.Commits())
	a.log.Before = func(n int) {
		if n == calls+1 {
			fromB.o, fromB.out, fromB.err = b.b.Pay(ctx, "100000000004", Payment{Network: "wechat", TransactionID: "TX4B", Amount: 900})
		}
	}
	o, out, err = a.b.Pay(ctx, "100000000004", Payment{Network: "wechat", TransactionID: "TX4A", Amount: 900})
	a.log.Before = nil
	if fromB.err != nil || fromB.out != Taken || err != nil || out != Late || o.TransactionID != "TX4B" || o.State != Paid {
		t.Fatalf("two transactions: B %+v; A %+v %v %v", fromB, o, out, err)
	}

	// Expired and refunded as before, across nodes: expired on B, paid late on A.
	mk(a, "100000000005", 300)
	deliver(t, mem)
	c.add(time.Minute)
	if o, _ := b.b.Get("100000000005"); o.State != Expired {
		t.Fatalf("B after the expiry: %s", o.State)
	}
	if o, out, err := a.b.Pay(ctx, "100000000005", Payment{TransactionID: "TX5", Amount: 300}); err != nil || out != Late || o.State != Refunded {
		t.Fatalf("late on A: %+v %v %v", o, out, err)
	}
	deliver(t, mem)
	if o, _ := b.b.Get("100000000005"); o.State != Refunded || o.TransactionID != "TX5" {
		t.Fatalf("B after the late payment: %+v", o)
	}

	// The cluster does not confirm A's commit (it is ordered all the same): A has
	// not applied it, and the network's repeat finds it once delivered.
	c.add(-time.Minute)
	mk(b, "100000000006", 400)
	deliver(t, mem)
	a.log.SetUnknown(true)
	if _, _, err := a.b.Pay(ctx, "100000000006", Payment{TransactionID: "TX6", Amount: 400}); !errors.Is(err, statelog.ErrUnavailable) {
		t.Fatalf("unconfirmed payment: %v", err)
	}
	a.log.SetUnknown(false)
	if o, _ := a.b.Get("100000000006"); o.State != Open {
		t.Fatalf("A applied an unconfirmed payment: %+v", o)
	}
	deliver(t, mem)
	if o, out, err := a.b.Pay(ctx, "100000000006", Payment{TransactionID: "TX6", Amount: 400}); err != nil || out != Again || o.State != Paid {
		t.Fatalf("repeat after the unconfirmed payment: %+v %v %v", o, out, err)
	}
	if n := decided.count("100000000006"); n != 1 {
		t.Fatalf("decided %d times", n)
	}
}

// TestBookSharedKeepsLocalOrders: orders a single switch kept in its Badger (the
// same keys) are still read and paid once the book is shared, and their payment
// reaches the other nodes.
func TestBookSharedKeepsLocalOrders(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	dir := t.TempDir()
	db := openDB(t, dir)
	alone, err := NewBook(db, Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := alone.Create(ctx, Order{ID: "000000000001", TID: "T0000001", Amount: 100, Created: c.now(), Expires: c.now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	var mem statelog.Memory
	catchUp := func(context.Context, statelog.Replica) error { return mem.Deliver() }
	a, err := NewBook(db, Options{Now: c.now, Log: &mem, CatchUp: catchUp})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBook(openDB(t, t.TempDir()), Options{Now: c.now, Log: &mem, CatchUp: catchUp})
	if err != nil {
		t.Fatal(err)
	}
	mem.Follow(a)
	mem.Follow(b)
	if o, err := a.Get("000000000001"); err != nil || o.State != Open {
		t.Fatalf("the single switch's order, shared: %+v %v", o, err)
	}
	if _, out, err := a.Pay(ctx, "000000000001", Payment{TransactionID: "TX1", Amount: 100}); err != nil || out != Taken {
		t.Fatalf("pay: %v %v", out, err)
	}
	deliver(t, &mem)
	if o, err := b.Get("000000000001"); err != nil || o.State != Paid {
		t.Fatalf("on the other node: %+v %v", o, err)
	}
	if strings.HasPrefix(RevisionKey, prefix) {
		t.Fatalf("the revision key %q is among the orders' keys", RevisionKey)
	}
}

// TestBookSharedExpiryRace: a payment taken on node A a millisecond before the
// order's expiry, not yet applied on B, whose terminal's wait ends at the expiry
// (or whose clock is ahead): B answers paid, not expired (its expiry is ordered
// after the payment, which B applies before it reads the outcome). The other
// way round, B's expiry ordered first: A's payment, notified late, finds the order
// expired and refunds it, so that the terminal told "expired" and the book agree.
// Before, B answered "expired" from its own copy while A kept the payment.
func TestBookSharedExpiryRace(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	a, b, mem, _ := twoNodes(t, c)
	ctx := context.Background()
	mk := func(id string) {
		t.Helper()
		if err := a.b.Create(ctx, Order{ID: id, TID: "T1", Amount: 100, Created: c.now(), Expires: c.now().Add(time.Second)}); err != nil {
			t.Fatal(err)
		}
		deliver(t, mem)
	}

	// Paid on A in time; B's wait ends at the expiry before it applied the payment.
	mk("100000000001")
	c.add(999 * time.Millisecond)
	if o, out, err := a.b.Pay(ctx, "100000000001", Payment{TransactionID: "TX1", Amount: 100}); err != nil || out != Taken || o.State != Paid {
		t.Fatalf("A: %+v %v %v", o, out, err)
	}
	c.add(2 * time.Millisecond)
	if w, err := b.b.Wait(ctx, "100000000001", time.Second); err != nil || w.State != Paid || w.TransactionID != "TX1" {
		t.Fatalf("B answers the terminal %q (tx %q, %v), want paid by TX1", w.State, w.TransactionID, err)
	}
	// At once (no wait) alike, for an order paid on A in time and not applied on B.
	mk("100000000002")
	c.add(999 * time.Millisecond)
	if _, out, err := a.b.Pay(ctx, "100000000002", Payment{TransactionID: "TX2", Amount: 100}); err != nil || out != Taken {
		t.Fatalf("A: %v %v", out, err)
	}
	c.add(2 * time.Millisecond)
	if w, err := b.b.Wait(ctx, "100000000002", 0); err != nil || w.State != Paid {
		t.Fatalf("B answers the terminal %q (%v), want paid", w.State, err)
	}

	// B tells its terminal "expired" first (committed); A, not caught up, takes the
	// notification after: late, refunded.
	mk("100000000003")
	c.add(1001 * time.Millisecond)
	if w, err := b.b.Wait(ctx, "100000000003", time.Second); err != nil || w.State != Expired {
		t.Fatalf("B answers the terminal %q (%v), want expired", w.State, err)
	}
	o, out, err := a.b.Pay(ctx, "100000000003", Payment{TransactionID: "TX3", Amount: 100})
	if err != nil || out != Late || o.State != Refunded || o.TransactionID != "TX3" {
		t.Fatalf("A after B's expiry: %+v %v %v, want late (refunded, TX3)", o, out, err)
	}
	deliver(t, mem)
	if w, err := b.b.Wait(ctx, "100000000003", 0); err != nil || w.State != Refunded {
		t.Fatalf("B: %q %v, want refunded", w.State, err)
	}
	// A repeat of the notification changes nothing.
	if _, out, err := a.b.Pay(ctx, "100000000003", Payment{TransactionID: "TX3", Amount: 100}); err != nil || out != Again {
		t.Fatalf("repeat: %v %v", out, err)
	}
}

// TestBookSharedRaces: three nodes on a log with a round trip and followers of
// their own (the third 5 ms late), each node on its own clock. Round after round,
// the same payment notified to A and B at once: one takes the order, the other
// finds it taken by the same transaction (a repeat); two transactions at once: one
// takes it, the other is refunded with the order keeping the first; a payment
// notified to A a millisecond before the order's expiry while B, whose clock is
// past it, answers its terminal at once: either the payment is ordered first (taken,
// and B answers paid) or the expiry is (B answers expired, or refunded when it has
// applied the payment too by then, and the payment is late, refunded). Every order is decided once in the log, and the three nodes hold it
// byte for byte alike.
func TestBookSharedRaces(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	clocks := []*clock{{t: t0}, {t: t0}, {t: t0}}
	l := newNetLog(time.Millisecond)
	stop := make(chan struct{})
	var fwg sync.WaitGroup
	defer func() { close(stop); fwg.Wait() }()
	var books []*Book
	for i, c := range clocks {
		b, err := NewBook(openDB(t, t.TempDir()), Options{Now: c.now, Log: l, CatchUp: l.catchUp})
		if err != nil {
			t.Fatal(err)
		}
		poll := 200 * time.Microsecond
		if i == 2 {
			poll = 5 * time.Millisecond
		}
		fwg.Add(1)
		go func() { defer fwg.Done(); l.follow(b, poll, stop) }()
		books = append(books, b)
	}
	decided := &paidCounter{decided: map[string]int{}}
	fwg.Add(1)
	go func() { defer fwg.Done(); l.follow(decided, 200*time.Microsecond, stop) }()
	a, b, c := books[0], books[1], books[2]
	ctx := t.Context()
	set := func(at time.Time) {
		for _, c := range clocks {
			c.mu.Lock()
			c.t = at
			c.mu.Unlock()
		}
	}
	// both runs f(A) and g(B) at once and waits for them.
	both := func(f, g func()) {
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, h := range []func(){f, g} {
			wg.Add(1)
			go func() { defer wg.Done(); <-start; h() }()
		}
		close(start)
		wg.Wait()
	}
	var ids []string
	mk := func(id string) {
		t.Helper()
		set(t0)
		if err := c.Create(ctx, Order{ID: id, TID: "T1", Amount: 100, Created: t0, Expires: t0.Add(time.Second)}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	type result struct {
		o   Order
		out Outcome
		err error
	}
	const rounds = 20
	for i := range rounds {
		// The same payment, to A and B at once.
		id := fmt.Sprintf("1%011d", i)
		mk(id)
		var ra, rb result
		p := Payment{Network: "wechat", TransactionID: "TXS" + id, Amount: 100}
		both(func() { ra.o, ra.out, ra.err = a.Pay(ctx, id, p) }, func() { rb.o, rb.out, rb.err = b.Pay(ctx, id, p) })
		if ra.err != nil || rb.err != nil || ra.o.State != Paid || rb.o.State != Paid || ra.o.TransactionID != p.TransactionID ||
			ra.out+rb.out != Taken+Again || (ra.out != Taken && rb.out != Taken) {
			t.Fatalf("round %d, the same payment at once: A %+v; B %+v; want one taken, one again, both paid", i, ra, rb)
		}

		// Two transactions, to A and B at once.
		id = fmt.Sprintf("2%011d", i)
		mk(id)
		both(func() { ra.o, ra.out, ra.err = a.Pay(ctx, id, Payment{TransactionID: "TXA" + id, Amount: 100}) },
			func() { rb.o, rb.out, rb.err = b.Pay(ctx, id, Payment{TransactionID: "TXB" + id, Amount: 100}) })
		winner := "TXA" + id
		if rb.out == Taken {
			winner = "TXB" + id
		}
		if ra.err != nil || rb.err != nil || ra.out+rb.out != Taken+Late || ra.o.TransactionID != winner || rb.o.TransactionID != winner ||
			ra.o.State != Paid || rb.o.State != Paid {
			t.Fatalf("round %d, two transactions at once: A %+v; B %+v; want one taken, the other late, the order paid by the first", i, ra, rb)
		}
	}
	var paidFirst, expiredFirst int
	for i := range rounds {
		// A payment notified to A just in time, B's terminal told at once after the
		// expiry on B's clock.
		id := fmt.Sprintf("3%011d", i)
		mk(id)
		clocks[0].add(999 * time.Millisecond)
		clocks[1].add(1001 * time.Millisecond)
		var ra result
		var wb Order
		var werr error
		both(func() { ra.o, ra.out, ra.err = a.Pay(ctx, id, Payment{TransactionID: "TXE" + id, Amount: 100}) },
			func() { wb, werr = b.Wait(ctx, id, 0) })
		switch {
		case ra.err != nil || werr != nil:
			t.Fatalf("round %d, payment and expiry: A %+v; B %v", i, ra, werr)
		case ra.out == Taken && ra.o.State == Paid && wb.State == Paid && wb.TransactionID == "TXE"+id:
			paidFirst++
		case ra.out == Late && ra.o.State == Refunded && (wb.State == Expired || wb.State == Refunded && wb.TransactionID == "TXE"+id):
			// B read the order after its expiry was applied: expired, or, when B had
			// applied the late payment too by then, refunded.
			expiredFirst++
		default:
			t.Fatalf("round %d, payment and expiry: A %v %+v; B's terminal told %q (%+v): the two disagree", i, ra.out, ra.o, wb.State, wb)
		}
	}
	t.Logf("payment against expiry: the payment ordered first %d times, the expiry %d", paidFirst, expiredFirst)

	// Once caught up, every node holds each order alike, decided once in the log.
	for _, r := range []statelog.Replica{a, b, c, decided} {
		if err := l.catchUp(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		want := rawOrder(t, a, id)
		for i, bk := range []*Book{b, c} {
			if got := rawOrder(t, bk, id); got != want {
				t.Fatalf("order %s: node %d has %s, node A %s", id, i+2, got, want)
			}
		}
		if n := decided.count(id); n != 1 {
			t.Fatalf("order %s decided %d times in the log (%s)", id, n, want)
		}
	}
}

// TestBookSharedLocalOrderCarried: docs/cluster.md ("QR orders") says that an order
// a single switch kept before it joined a cluster reaches the other nodes "with the
// first request on them, which carries the order as that node has it". An order the
// single switch had already paid, whose payment the network repeats to its node once
// it is a cluster's: the request (a repeat, Again) carries the order, and the other
// node must then have it (an inquiry there answered paid, not "not found", 25).
func TestBookSharedLocalOrderCarried(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	db := openDB(t, t.TempDir())
	alone, err := NewBook(db, Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := alone.Create(ctx, Order{ID: "000000000001", TID: "T0000001", Amount: 100, Created: c.now(), Expires: c.now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, out, err := alone.Pay(ctx, "000000000001", Payment{TransactionID: "TX1", Amount: 100}); err != nil || out != Taken {
		t.Fatalf("paid alone: %v %v", out, err)
	}
	var mem statelog.Memory
	catchUp := func(context.Context, statelog.Replica) error { return mem.Deliver() }
	a, err := NewBook(db, Options{Now: c.now, Log: &mem, CatchUp: catchUp})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBook(openDB(t, t.TempDir()), Options{Now: c.now, Log: &mem, CatchUp: catchUp})
	if err != nil {
		t.Fatal(err)
	}
	mem.Follow(a)
	mem.Follow(b)
	if _, out, err := a.Pay(ctx, "000000000001", Payment{TransactionID: "TX1", Amount: 100}); err != nil || out != Again {
		t.Fatalf("the network's repeat on A: %v %v", out, err)
	}
	deliver(t, &mem)
	if o, err := b.Get("000000000001"); err != nil || o.State != Paid || o.TransactionID != "TX1" {
		t.Fatalf("B after A's request carried the order: %+v %v; want it paid by TX1", o, err)
	}
}

// TestResolveUnknownRequest: a request of an operation this version does not know (a
// newer version's) is not skipped: Resolve fails with statelog.ErrNewerCommit, by
// which the node's follower stops and /readyz says to upgrade the node.
func TestResolveUnknownRequest(t *testing.T) {
	c := statelog.Commit{Intent: true, Writes: []statelog.KV{{Key: []byte(prefix + "1"), Value: []byte(`{"op":"reopen"}`)}}}
	_, err := Resolve(7, func([]byte) ([]byte, error) { return nil, nil }, c)
	if !errors.Is(err, statelog.ErrNewerCommit) {
		t.Fatalf("Resolve of an unknown operation: %v; want statelog.ErrNewerCommit wrapped", err)
	}
}
