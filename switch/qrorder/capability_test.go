package qrorder

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/internal/statelog/kvsync/kvsynctest"
)

// capNode opens a book sharing mem whose Options.Requests is on.
func capNode(t *testing.T, mem *statelog.Memory, c *clock, on *atomic.Bool) *sharedNode {
	t.Helper()
	l := kvsynctest.New(mem)
	b, err := NewBook(openDB(t, t.TempDir()), Options{Now: c.now, Log: l, Requests: on.Load,
		CatchUp: func(context.Context, statelog.Replica) error { return mem.Deliver() }})
	if err != nil {
		t.Fatal(err)
	}
	mem.Follow(b)
	return &sharedNode{b: b, log: l}
}

// TestBookSharedRequestsCapability: while Options.Requests (in a cluster, every
// lease advertising QRRequests) says false, the book commits with a compare-and-set,
// plain writes of the orders' values (which a node of an earlier version applies);
// once it says true, it submits requests (intent commits). Orders made, paid and
// expired on either path are stored byte for byte alike on the other node; an order
// made on one path is paid on the other; an order made on the compare-and-set path
// is stored as a creation request makes it; and while the nodes disagree (one still
// on the compare-and-set path, the other on requests), one payment notified to both
// at once is taken once.
func TestBookSharedRequestsCapability(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	mem := &statelog.Memory{}
	var onA, onB atomic.Bool
	a, b := capNode(t, mem, c, &onA), capNode(t, mem, c, &onB)
	ctx := context.Background()
	order := func(id string, ttl time.Duration) Order {
		return Order{ID: id, TID: "T0000001", MID: "000000000000001", Currency: "156", Amount: 100, Created: c.now(), Expires: c.now().Add(ttl), Payload: "000201"}
	}
	// alike checks that both nodes hold order id, byte for byte alike, and returns it.
	alike := func(id string) Order {
		t.Helper()
		deliver(t, mem)
		raw := rawOrder(t, a.b, id)
		if got := rawOrder(t, b.b, id); got != raw {
			t.Fatalf("order %s: node B has %s, node A %s", id, got, raw)
		}
		var o Order
		if err := json.Unmarshal([]byte(raw), &o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	// path checks that node n made commits since the last check, every one of them
	// an intent commit, or every one not (a commit that conflicted is counted).
	checked := map[*sharedNode]int{}
	path := func(n *sharedNode, intent bool, what string) {
		t.Helper()
		cs := n.log.Commits()
		if len(cs) == checked[n] {
			t.Fatalf("%s: the node committed nothing", what)
		}
		for i, cm := range cs[checked[n]:] {
			if cm.Intent != intent {
				t.Fatalf("%s: the node's commit %d is an intent commit: %v, want %v", what, checked[n]+i+1, cm.Intent, intent)
			}
		}
		checked[n] = len(cs)
	}

	// The compare-and-set path.
	if err := a.b.Create(ctx, order("1", time.Minute)); err != nil {
		t.Fatal(err)
	}
	path(a, false, "creation while the capability is off")
	if o := alike("1"); o.State != Open {
		t.Fatalf("order 1 on node B: %+v", o)
	}
	two := order("2", time.Minute)
	if err := a.b.Create(ctx, two); err != nil {
		t.Fatal(err)
	}
	if err := a.b.Create(ctx, order("3", time.Second)); err != nil {
		t.Fatal(err)
	}
	other := order("2", time.Minute)
	other.TID = "T0000009"
	if err := b.b.Create(ctx, other); !errors.Is(err, ErrExists) {
		t.Fatalf("another order under order 2's ID on the compare-and-set path: %v; want ErrExists", err)
	}
	if err := b.b.Create(ctx, two); err != nil {
		t.Fatalf("a repeat of order 2's creation: %v", err)
	}
	path(a, false, "creations while the capability is off")
	if o, out, err := b.b.Pay(ctx, "1", Payment{Network: "wechat", TransactionID: "TX1", Amount: 100}); err != nil || out != Taken || o.State != Paid {
		t.Fatalf("pay order 1 on node B, compare-and-set: %+v %v %v", o, out, err)
	}
	path(b, false, "payment while the capability is off")
	if o := alike("1"); o.State != Paid || o.TransactionID != "TX1" || o.Decided != 0 {
		t.Fatalf("order 1 paid: %+v", o)
	}
	c.add(2 * time.Second)
	if o, err := b.b.Wait(ctx, "3", 0); err != nil || o.State != Expired {
		t.Fatalf("order 3 past its expiry on node B: %+v %v", o, err)
	}
	path(b, false, "expiry while the capability is off")
	if o := alike("3"); o.State != Expired {
		t.Fatalf("order 3 stored %s, want expired", o.State)
	}

	// Requests.
	onA.Store(true)
	onB.Store(true)
	four := two // made as order 2 was, at the same time
	four.ID = "4"
	if err := a.b.Create(ctx, four); err != nil {
		t.Fatal(err)
	}
	path(a, true, "creation once the capability is on")
	made := alike("4")
	// A creation request stores the order as the compare-and-set path did.
	if want := strings.ReplaceAll(rawOrder(t, a.b, "2"), `"id":"2"`, `"id":"4"`); rawOrder(t, a.b, "4") != want {
		t.Fatalf("order 4 (a request) stored %s; the compare-and-set path stores %s", rawOrder(t, a.b, "4"), want)
	}
	if made.State != Open {
		t.Fatalf("order 4: %+v", made)
	}
	// Made on the compare-and-set path, paid by a request.
	if o, out, err := b.b.Pay(ctx, "2", Payment{Network: "wechat", TransactionID: "TX2", Amount: 100}); err != nil || out != Taken || o.State != Paid {
		t.Fatalf("pay order 2 on node B, a request: %+v %v %v", o, out, err)
	}
	path(b, true, "payment once the capability is on")
	if o := alike("2"); o.State != Paid || o.TransactionID != "TX2" || o.Decided == 0 {
		t.Fatalf("order 2 paid by a request: %+v", o)
	}
	// Paid on the compare-and-set path, repeated as a request: a repeat.
	if o, out, err := a.b.Pay(ctx, "1", Payment{Network: "wechat", TransactionID: "TX1", Amount: 100}); err != nil || out != Again || o.State != Paid {
		t.Fatalf("order 1's payment repeated as a request: %+v %v %v", o, out, err)
	}
	// Expired on the compare-and-set path: a payment request finds it late.
	if o, out, err := a.b.Pay(ctx, "3", Payment{Network: "wechat", TransactionID: "TX3", Amount: 100}); err != nil || out != Late || o.State != Refunded {
		t.Fatalf("order 3 (expired) paid as a request: %+v %v %v", o, out, err)
	}
	path(a, true, "payments once the capability is on")
	alike("1")
	alike("3")

	// The nodes disagree for a moment (a lease seen by one of them only): node A
	// commits with a compare-and-set, node B submits requests. One payment notified
	// to both at once: B's request is ordered while A's commit is on its way, A's
	// commit conflicts, A catches up and finds the order taken by the same
	// transaction.
	onA.Store(false)
	if err := b.b.Create(ctx, order("5", time.Minute)); err != nil {
		t.Fatal(err)
	}
	deliver(t, mem)
	before := len(a.log.Commits())
	var bOut Outcome
	var bErr error
	a.log.Before = func(n int) {
		if n == before+1 {
			_, bOut, bErr = b.b.Pay(ctx, "5", Payment{Network: "alipay", TransactionID: "TX5", Amount: 100})
		}
	}
	o, aOut, err := a.b.Pay(ctx, "5", Payment{Network: "alipay", TransactionID: "TX5", Amount: 100})
	a.log.Before = nil
	if err != nil || bErr != nil || bOut != Taken || aOut != Again || o.State != Paid {
		t.Fatalf("one payment on two nodes, one on each path: node A %v %v (%+v), node B %v %v; want again, taken", aOut, err, o, bOut, bErr)
	}
	path(a, false, "node A's payment while its capability is off")
	if o := alike("5"); o.TransactionID != "TX5" || o.Decided == 0 {
		t.Fatalf("order 5: %+v; want paid by node B's request", o)
	}
}
