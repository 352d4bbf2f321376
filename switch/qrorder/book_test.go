package qrorder

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openDB(t testing.TB, dir string) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// TestBook: an order is open until its expiry, paid once by a notification (a
// repeat changes nothing, a second transaction is refunded), refunded when paid late
// or with another amount, wakes its waiter, and outlives a reopening of the database.
func TestBook(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	c := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	b, err := NewBook(db, Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mk := func(id string, amount int64) {
		if err := b.Create(ctx, Order{ID: id, TID: "T0000001", MID: "000000000000001", Amount: amount, Created: c.now(), Expires: c.now().Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	mk("000000000001", 1000)
	mk("000000000002", 1000)
	mk("000000000003", 0)
	mk("000000000004", 500)

	woke := make(chan Order, 1)
	go func() {
		o, _ := b.Wait(ctx, "000000000001", time.Hour)
		woke <- o
	}()
	o, out, err := b.Pay(ctx, "000000000001", Payment{Network: "wechat", Connector: "wechat", TransactionID: "TX1", Amount: 1000})
	if err != nil || out != Taken || o.State != Paid {
		t.Fatalf("pay: %+v %v %v", o, out, err)
	}
	if w := <-woke; w.State != Paid {
		t.Fatalf("waiter saw %+v", w)
	}
	if _, out, _ := b.Pay(ctx, "000000000001", Payment{TransactionID: "TX1", Amount: 1000}); out != Again {
		t.Fatalf("repeat: %v", out)
	}
	if _, out, _ := b.Pay(ctx, "000000000001", Payment{TransactionID: "TX9", Amount: 1000}); out != Late {
		t.Fatalf("second transaction: %v", out)
	}
	if _, out, _ := b.Pay(ctx, "000000000004", Payment{TransactionID: "TX4", Amount: 499}); out != Late {
		t.Fatalf("other amount: %v", out)
	}
	if o, out, _ := b.Pay(ctx, "000000000003", Payment{TransactionID: "TX3", Amount: 777}); out != Taken || o.PaidAmount != 777 {
		t.Fatalf("open amount: %v %+v", out, o)
	}
	c.add(time.Minute)
	if o, _ := b.Get("000000000002"); o.State != Expired {
		t.Fatalf("after expiry: %s", o.State)
	}
	if o, _ := b.Wait(ctx, "000000000002", time.Hour); o.State != Expired {
		t.Fatalf("waiting on an expired order: %s", o.State)
	}
	if o, out, _ := b.Pay(ctx, "000000000002", Payment{TransactionID: "TX2", Amount: 1000}); out != Late || o.State != Refunded {
		t.Fatalf("late: %v %+v", out, o)
	}
	if _, err := b.Get("999999999999"); err != ErrNotFound {
		t.Fatalf("unknown: %v", err)
	}
	_ = db.Close()

	db = openDB(t, dir)
	defer db.Close()
	if b, err = NewBook(db, Options{Now: c.now}); err != nil {
		t.Fatal(err)
	}
	if o, err := b.Get("000000000001"); err != nil || o.State != Paid || o.TransactionID != "TX1" {
		t.Fatalf("after reopening: %+v %v", o, err)
	}
}

// TestExpiryToldIsKept: once a single switch has told a terminal that its order
// expired (Wait), a payment notified after that is late (refunded), even when the
// switch's clock has stepped back before the order's expiry meanwhile (NTP): the
// expiry was computed from the clock each time and not kept, so the order was paid,
// the merchant having been told expired (and likely having asked the payer to pay a
// new order).
func TestExpiryToldIsKept(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	c := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	b, err := NewBook(db, Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Create(ctx, Order{ID: "000000000031", TID: "T0000001", MID: "000000000000001", Currency: "156", Amount: 1000,
		Created: c.now(), Expires: c.now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	c.add(time.Minute + time.Second)
	if o, err := b.Wait(ctx, "000000000031", 0); err != nil || o.State != Expired {
		t.Fatalf("the terminal is told %+v %v, want expired", o, err)
	}
	c.add(-3 * time.Second) // the clock steps back, before the expiry
	if o, out, err := b.Pay(ctx, "000000000031", Payment{Network: "wechat", TransactionID: "TX31", Amount: 1000}); err != nil || out != Late || o.State != Refunded {
		t.Fatalf("a payment after the terminal was told expired: %v %s %v; want late, refunded", out, o.State, err)
	}
}
