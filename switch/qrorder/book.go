// Package qrorder keeps merchant-presented QR orders: a terminal asks for a dynamic
// code for an order, the payer scans it and pays in the wallet, the network notifies
// the switch, and the terminal learns the outcome by asking (or waiting). The book
// stores each order in Badger (written durably through the journal's group commit,
// so an order outlives a crash or a restart), says when it expired, takes a payment
// notification exactly once (by the network's transaction ID), and wakes the
// terminals waiting on it. What the payment means for the journal (a purchase record,
// or a refund of a late payment) is the wiring's: the book only keeps the order.
package qrorder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// States of an order.
const (
	Open     = "open"     // waiting for the payer
	Paid     = "paid"     // paid in time
	Expired  = "expired"  // not paid within its time (computed: never stored)
	Refunded = "refunded" // paid after it expired (or with another amount): refunded
)

// Order is one merchant-presented order. ID is the RRN the switch gave it: the
// payment's journal record and the network's merchant order number are the same.
type Order struct {
	ID       string    `json:"id"`
	TID      string    `json:"tid"`
	MID      string    `json:"mid"`
	Currency string    `json:"currency"`
	Amount   int64     `json:"amount"` // 0: the payer enters it
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
	State    string    `json:"state"`
	Payload  string    `json:"payload"`

	Network       string    `json:"network,omitempty"`
	Connector     string    `json:"connector,omitempty"`
	TransactionID string    `json:"transaction_id,omitempty"`
	PaidAmount    int64     `json:"paid_amount,omitempty"`
	PaidAt        time.Time `json:"paid_at,omitzero"`
}

// ErrNotFound: no order has the ID.
var ErrNotFound = errors.New("qr order not found")

// Options configure the book.
type Options struct {
	// Persist writes a key durably (the journal's PutDurable); nil writes to Badger
	// without waiting for the disk (tests).
	Persist func(ctx context.Context, key, value []byte) error
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Book is the order book. It is safe for concurrent use.
type Book struct {
	db      *badger.DB
	opts    Options
	mu      sync.Mutex // serializes updates of orders
	waiters map[string][]chan struct{}
}

const prefix = "qrorder/"

// NewBook returns the book over db.
func NewBook(db *badger.DB, opts Options) *Book {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Book{db: db, opts: opts, waiters: map[string][]chan struct{}{}}
}

func (b *Book) put(ctx context.Context, o *Order) error {
	v, err := json.Marshal(o)
	if err != nil {
		return err
	}
	k := []byte(prefix + o.ID)
	if b.opts.Persist != nil {
		return b.opts.Persist(ctx, k, v)
	}
	return b.db.Update(func(txn *badger.Txn) error { return txn.Set(k, v) })
}

func (b *Book) get(id string) (*Order, error) {
	var o Order
	err := b.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte(prefix + id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error { return json.Unmarshal(v, &o) })
	})
	if err != nil {
		return nil, err
	}
	return &o, nil
}

// view gives an order its computed state.
func (b *Book) view(o *Order) Order {
	out := *o
	if out.State == Open && !b.opts.Now().Before(out.Expires) {
		out.State = Expired
	}
	return out
}

// Create stores a new open order, durably.
func (b *Book) Create(ctx context.Context, o Order) error {
	if o.ID == "" || o.TID == "" || o.Expires.IsZero() {
		return fmt.Errorf("qr order: id, terminal and expiry are required (got %q, %q, %v)", o.ID, o.TID, o.Expires)
	}
	o.State = Open
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.put(ctx, &o)
}

// Get returns the order with its state as of now.
func (b *Book) Get(id string) (Order, error) {
	o, err := b.get(id)
	if err != nil {
		return Order{}, err
	}
	return b.view(o), nil
}

// Wait returns the order once it is no longer open, or after d, or when ctx ends,
// whichever comes first (d = 0: at once).
func (b *Book) Wait(ctx context.Context, id string, d time.Duration) (Order, error) {
	ch := make(chan struct{})
	b.mu.Lock()
	o, err := b.get(id)
	if err != nil || d <= 0 || b.view(o).State != Open {
		b.mu.Unlock()
		if err != nil {
			return Order{}, err
		}
		return b.view(o), nil
	}
	b.waiters[id] = append(b.waiters[id], ch)
	b.mu.Unlock()
	// The order may expire before d: wait no longer than its expiry.
	if left := o.Expires.Sub(b.opts.Now()); left < d {
		d = max(left, 0)
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ch:
	case <-timer.C:
	case <-ctx.Done():
	}
	b.mu.Lock()
	ws := b.waiters[id]
	for i, w := range ws {
		if w == ch {
			b.waiters[id] = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(b.waiters[id]) == 0 {
		delete(b.waiters, id)
	}
	b.mu.Unlock()
	return b.Get(id)
}

// Payment is a network's notification that an order was paid.
type Payment struct {
	Network, Connector, TransactionID string
	Amount                            int64
}

// Outcome says what a notification did.
type Outcome int

// Outcomes of Pay.
const (
	// Taken: the order was open and is paid now.
	Taken Outcome = iota
	// Late: the order had expired (or the amount was not the order's): it is marked
	// refunded, and the caller refunds the payment.
	Late
	// Again: the same notification came before (the same transaction ID): nothing
	// changed.
	Again
)

// Pay records a payment notification for the order id. It decides under the book's
// lock, so that two notifications of one order never both take it; a different
// transaction on an order already paid or refunded is Late (refunded too).
func (b *Book) Pay(ctx context.Context, id string, p Payment) (Order, Outcome, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o, err := b.get(id)
	if err != nil {
		return Order{}, 0, err
	}
	if o.State != Open && o.TransactionID == p.TransactionID {
		return b.view(o), Again, nil
	}
	now := b.opts.Now()
	out := Taken
	cur := b.view(o).State
	if cur != Open || (o.Amount > 0 && p.Amount != o.Amount) || p.Amount <= 0 {
		out = Late
	}
	if o.State != Open {
		// Already decided by another transaction: this one is refunded, and the order
		// keeps its first payment.
		return b.view(o), Late, nil
	}
	o.Network, o.Connector, o.TransactionID, o.PaidAmount, o.PaidAt = p.Network, p.Connector, p.TransactionID, p.Amount, now
	o.State = Paid
	if out == Late {
		o.State = Refunded
	}
	if err := b.put(ctx, o); err != nil {
		return Order{}, 0, err
	}
	for _, w := range b.waiters[id] {
		close(w)
	}
	delete(b.waiters, id)
	return b.view(o), out, nil
}
