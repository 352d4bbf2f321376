// Package qrorder keeps merchant-presented QR orders: a terminal asks for a dynamic
// code for an order, the payer scans it and pays in the wallet, the network notifies
// the switch, and the terminal learns the outcome by asking (or waiting). The book
// stores each order in Badger (written durably through the journal's group commit,
// so an order outlives a crash or a restart), says when it expired, takes a payment
// notification exactly once (by the network's transaction ID), and wakes the
// terminals waiting on it. What the payment means for the journal (a purchase record,
// or a refund of a late payment) is the wiring's: the book only keeps the order.
//
// In a cluster the book is shared (Options.Log): every creation and payment is a
// commit ordered through the STATE stream (package kvsync) before the node writes
// it to its Badger, and the other nodes apply it as it comes (ApplyRemote), waking
// their waiting terminals. A payment is decided with a compare-and-set on the
// store's revision, so that of two nodes notified at once only one takes the
// order; the other catches up and finds it decided.
package qrorder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/internal/statelog/kvsync"
)

// States of an order.
const (
	Open     = "open"     // waiting for the payer
	Paid     = "paid"     // paid in time
	Expired  = "expired"  // not paid within its time (computed; stored only in a cluster, see Wait)
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

// ErrNotCaughtUp is wrapped when a node that does not have an order could not
// catch up with the cluster's book (no quorum, say): the order may exist, so this is
// not ErrNotFound (a terminal is answered 96 and a notification 500, not "not
// found", which both would take as final).
var ErrNotCaughtUp = errors.New("this node did not catch up with the cluster's orders")

// ErrConflict is wrapped when another node's orders kept changing the shared book
// while this node tried to commit, for as long as it could (commitWait, or the
// request's deadline).
var ErrConflict = errors.New("qr orders: changed on other nodes meanwhile")

// RevisionKey is the Badger key of the shared book's revision (cluster only); the
// orders are under "qrorder/", in a single switch's Badger and a cluster's alike.
const RevisionKey = "qrorders/rev"

// commitWait bounds how long a commit that keeps conflicting with the other nodes'
// is tried again (less when the request's context ends sooner): the orders are
// independent, so a conflict is most often another order's creation on another
// node, and contention is to slow a request down rather than fail it. A node whose
// commits keep winning (its own commit leaves it current) would otherwise starve
// the others, which must catch up before each try.
const commitWait = 5 * time.Second

// Backoff between the tries of a conflicting commit: a random wait up to a bound
// that starts at backoffMin and doubles up to backoffMax (full jitter), so that
// the nodes that lost a round do not all come back at once.
const (
	backoffMin = time.Millisecond
	backoffMax = 50 * time.Millisecond
)

// missCatchUp bounds how long a node that does not have an order waits to catch up
// with the cluster's book before it says the order is not found (an order made on
// another node a moment ago).
const missCatchUp = 3 * time.Second

// Options configure the book.
type Options struct {
	// Persist writes a key durably (the journal's PutDurable); nil writes to Badger
	// without waiting for the disk (tests).
	Persist func(ctx context.Context, key, value []byte) error
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log shares the book with the other nodes of a cluster (the STATE stream's
	// store "qrorders"); nil: a single switch, whose orders go to Badger alone
	// through Persist. With a Log, Persist is not used: the stream keeps the
	// commits (replicated), and Badger is this node's copy.
	Log statelog.Log
	// CatchUp waits until the book has applied every commit the Log held
	// (cluster.StoreLog.CatchUp): after a conflict, and before a node says that an
	// order is not found.
	CatchUp func(ctx context.Context, r statelog.Replica) error
}

// Book is the order book. It is safe for concurrent use.
type Book struct {
	db      *badger.DB
	opts    Options
	sync    *kvsync.Sync // the shared book's commits (cluster); nil alone
	mu      sync.Mutex   // serializes updates of orders (alone); guards waiters
	waiters map[string][]chan struct{}
}

const prefix = "qrorder/"

// NewBook returns the book over db, shared through opts.Log when it is set.
func NewBook(db *badger.DB, opts Options) (*Book, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	b := &Book{db: db, opts: opts, waiters: map[string][]chan struct{}{}}
	if opts.Log != nil {
		var err error
		if b.sync, err = kvsync.New(db, kvsync.Config{Name: "qr orders", RevKey: RevisionKey, Log: opts.Log, CatchUp: opts.CatchUp,
			Conflict: ErrConflict, Applied: b.applied}); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// shared reports whether the book is a cluster's.
func (b *Book) shared() bool { return b.sync != nil }

// ApplyRemote implements statelog.Replica: another node's order made or paid (or
// this node's own, ordered but not confirmed to it).
func (b *Book) ApplyRemote(rev uint64, c statelog.Commit) error {
	if b.sync == nil {
		return errors.New("qr orders: not shared (no log)")
	}
	return b.sync.ApplyRemote(rev, c)
}

// Revision implements statelog.Replica.
func (b *Book) Revision() uint64 {
	if b.sync == nil {
		return 0
	}
	return b.sync.Revision()
}

// applied wakes the terminals waiting on the orders another node's commit decided
// (called with the sync's writer lock held, once Badger has the commit).
func (b *Book) applied(c statelog.Commit) {
	for _, kv := range c.Writes {
		k := string(kv.Key)
		if len(kv.Value) == 0 || !strings.HasPrefix(k, prefix) {
			continue
		}
		var o Order
		if err := json.Unmarshal(kv.Value, &o); err != nil || o.State == Open {
			continue
		}
		b.wake(strings.TrimPrefix(k, prefix))
	}
}

// wake closes the channels of the terminals waiting on order id.
func (b *Book) wake(id string) {
	b.mu.Lock()
	for _, w := range b.waiters[id] {
		close(w)
	}
	delete(b.waiters, id)
	b.mu.Unlock()
}

// do runs op through the shared book's sync, again while it conflicts with the
// other nodes' commits (each run of op reads the book as this node has it then),
// with a jittered exponential backoff between the tries, until commitWait has
// passed or ctx ends (kvsync.Sync.Do catches up after each conflict itself).
func (b *Book) do(ctx context.Context, op kvsync.Op) error {
	start := time.Now()
	deadline := start.Add(commitWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	backoff := backoffMin
	for tries := 1; ; tries++ {
		err := b.sync.Do(ctx, op, nil)
		if !errors.Is(err, statelog.ErrConflict) || ctx.Err() != nil {
			return err
		}
		wait := rand.N(backoff) + 1
		if time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("%w (%d tries in %s)", err, tries, time.Since(start).Round(time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		backoff = min(2*backoff, backoffMax)
	}
}

// find reads order id; in a cluster, one this node does not have yet is read again
// once the node has caught up with the book (bounded by missCatchUp), so that an
// order made on another node a moment ago is found.
func (b *Book) find(ctx context.Context, id string) (*Order, error) {
	o, err := b.get(id)
	if !errors.Is(err, ErrNotFound) || !b.shared() || b.opts.CatchUp == nil {
		return o, err
	}
	cctx, cancel := context.WithTimeout(ctx, missCatchUp)
	cerr := b.opts.CatchUp(cctx, b)
	cancel()
	if o, err = b.get(id); errors.Is(err, ErrNotFound) && cerr != nil {
		// Not a final "not found": the order may have been made on another node.
		return nil, fmt.Errorf("qr order %s: not on this node, and %w: %w", id, ErrNotCaughtUp, cerr)
	}
	return o, err
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
	if b.shared() {
		v, err := json.Marshal(&o)
		if err != nil {
			return err
		}
		return b.do(ctx, func() (statelog.Commit, func(), error) {
			var c kvsync.Commit
			c.Set([]byte(prefix+o.ID), v)
			return c.Commit, nil, nil
		})
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.put(ctx, &o)
}

// Get returns the order with its state as of now.
func (b *Book) Get(id string) (Order, error) {
	o, err := b.find(context.Background(), id)
	if err != nil {
		return Order{}, err
	}
	return b.view(o), nil
}

// Wait returns the order once it is no longer open, or after d, or when ctx ends,
// whichever comes first (d = 0: at once).
func (b *Book) Wait(ctx context.Context, id string, d time.Duration) (Order, error) {
	if b.shared() {
		// Caught up (outside the lock: the catch-up waits for ApplyRemote, which
		// wakes waiters under it) when this node does not have the order yet.
		if _, err := b.find(ctx, id); err != nil {
			return Order{}, err
		}
	}
	ch := make(chan struct{})
	b.mu.Lock()
	o, err := b.get(id)
	if err != nil || d <= 0 || b.view(o).State != Open {
		b.mu.Unlock()
		if err != nil {
			return Order{}, err
		}
		return b.settle(ctx, id, b.view(o))
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
	o, err = b.find(ctx, id)
	if err != nil {
		return Order{}, err
	}
	return b.settle(ctx, id, b.view(o))
}

// settle returns v, the order id as this node has it, unless v is an open order
// that has expired on this node's clock in a cluster: another node may have taken
// its payment in time and not yet be applied here, so the expiry is committed
// through the shared book (stored Expired) before the terminal is told. Its commit
// conflicts with a payment ordered first, and the node, caught up, answers what
// that payment made of the order; a payment ordered after it finds the order
// expired (late: refunded). An error (no quorum: the node cannot know) is returned
// as such, not as an expiry.
func (b *Book) settle(ctx context.Context, id string, v Order) (Order, error) {
	if !b.shared() || v.State != Expired {
		return v, nil
	}
	var o *Order
	err := b.do(ctx, func() (statelog.Commit, func(), error) {
		var err error
		if o, err = b.get(id); err != nil {
			return statelog.Commit{}, nil, err
		}
		if o.State != Open || b.view(o).State != Expired {
			return statelog.Commit{}, nil, nil
		}
		o.State = Expired
		val, err := json.Marshal(o)
		if err != nil {
			return statelog.Commit{}, nil, err
		}
		var c kvsync.Commit
		c.Set([]byte(prefix+id), val)
		return c.Commit, func() { b.wake(id) }, nil
	})
	if err != nil {
		return Order{}, fmt.Errorf("qr order %s: its expiry not settled with the cluster's orders: %w", id, err)
	}
	return b.view(o), nil
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
// transaction on an order already paid or refunded is Late (refunded too). In a
// cluster the decision is a compare-and-set on the shared book's revision: when
// another node decided the order first, this node's commit conflicts, the node
// catches up, and decides again on the order as the other node left it.
func (b *Book) Pay(ctx context.Context, id string, p Payment) (Order, Outcome, error) {
	if b.shared() {
		return b.payShared(ctx, id, p)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	o, err := b.get(id)
	if err != nil {
		return Order{}, 0, err
	}
	out, changed := b.decide(o, p)
	if !changed {
		return b.view(o), out, nil
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

// decide applies payment p to o: the outcome, and whether o changed (an open order
// is paid, or refunded when late or of another amount).
func (b *Book) decide(o *Order, p Payment) (Outcome, bool) {
	if o.State != Open && o.TransactionID == p.TransactionID {
		return Again, false
	}
	now := b.opts.Now()
	out := Taken
	cur := b.view(o).State
	if cur != Open || (o.Amount > 0 && p.Amount != o.Amount) || p.Amount <= 0 {
		out = Late
	}
	if o.State != Open && o.State != Expired {
		// Already decided by another transaction: this one is refunded, and the order
		// keeps its first payment. (An order stored Expired, a cluster's expiry
		// committed when a terminal was told, takes this payment as late: refunded.)
		return Late, false
	}
	o.Network, o.Connector, o.TransactionID, o.PaidAmount, o.PaidAt = p.Network, p.Connector, p.TransactionID, p.Amount, now
	o.State = Paid
	if out == Late {
		o.State = Refunded
	}
	return out, true
}

// payShared is Pay in a cluster: the order's change is committed through the
// shared book's sync, ordered after the revision the decision read.
func (b *Book) payShared(ctx context.Context, id string, p Payment) (Order, Outcome, error) {
	if _, err := b.find(ctx, id); err != nil {
		return Order{}, 0, err
	}
	var (
		o   *Order
		out Outcome
	)
	err := b.do(ctx, func() (statelog.Commit, func(), error) {
		var err error
		if o, err = b.get(id); err != nil {
			return statelog.Commit{}, nil, err
		}
		var changed bool
		if out, changed = b.decide(o, p); !changed {
			return statelog.Commit{}, nil, nil
		}
		v, err := json.Marshal(o)
		if err != nil {
			return statelog.Commit{}, nil, err
		}
		var c kvsync.Commit
		c.Set([]byte(prefix+id), v)
		return c.Commit, func() { b.wake(id) }, nil
	})
	if err != nil {
		return Order{}, 0, err
	}
	return b.view(o), out, nil
}
