// Package qrorder keeps merchant-presented QR orders: a terminal asks for a dynamic
// code for an order, the payer scans it and pays in the wallet, the network notifies
// the switch, and the terminal learns the outcome by asking (or waiting). The book
// stores each order in Badger (written durably through the journal's group commit,
// so an order outlives a crash or a restart), says when it expired, takes a payment
// notification exactly once (by the network and its transaction ID), and wakes the
// terminals waiting on it. What the payment means for the journal (a purchase record,
// or a refund of a late payment) is the wiring's: the book only keeps the order.
//
// In a cluster the book is shared (Options.Log, a statelog.Submitter): every
// creation, payment and expiry is a request submitted to the STATE stream without a
// compare-and-set, and every node, the submitting one too, decides the requests in
// the stream's order as it applies them (Resolve), from the order as it is at that
// point and from what the request carries (the notifying node's time, never the
// applying node's clock), so that every node reaches the same state. The submitting
// node waits until it has applied its request and reads the outcome from its copy:
// of two nodes notified of one payment at once, the request ordered first takes the
// order and the other finds it taken. Orders do not contend: only requests on one
// order decide against each other.
//
// Versions before 5 December 2026 cannot read requests (their follower stops on
// one, and such a node cannot start again): until every node's lease says that it
// decides them (Options.Requests), the book commits the orders' values with a
// compare-and-set on the book's revision instead, as those versions do (cas.go).
// Both paths store an order alike, so that a node applies either.
package qrorder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	Expired  = "expired"  // not paid within its time (computed; stored once a terminal is told, see Wait)
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

	Network       string `json:"network,omitempty"`
	Connector     string `json:"connector,omitempty"`
	TransactionID string `json:"transaction_id,omitempty"`
	PaidAmount    int64  `json:"paid_amount,omitempty"`
	// PaidCurrency is the currency the network said the payment was in ("": the
	// order's).
	PaidCurrency string    `json:"paid_currency,omitempty"`
	PaidAt       time.Time `json:"paid_at,omitzero"`
	// Refused says why the merchant could not take a payment the order would
	// otherwise have taken (Payment.Refused): the order is refunded.
	Refused string `json:"refused,omitempty"`
	// Decided is the revision of the shared book's request that paid the order (or
	// refunded it): its submitter tells by it that its own request decided the order
	// rather than an earlier one of the same transaction. 0 alone, and for an order
	// decided before requests were decided at apply time.
	Decided uint64 `json:"decided,omitempty"`
}

// PaidBy reports whether o was decided (paid, or refunded) by the payment that
// network numbered txn. A transaction ID is its network's: two networks may give one
// ID to two payments, so a notification is a repeat of the order's payment only when
// it names the network too. The networks are compared when both are known: an order
// stored without its network (none recorded) and a payment naming none match by the
// transaction ID alone, as every order matched until 6 December 2026 (third release).
// Every version has stored the network with the payment, so an order paid before the
// upgrade is matched by both.
func (o *Order) PaidBy(network, txn string) bool {
	if o.TransactionID == "" || o.TransactionID != txn {
		return false
	}
	return o.Network == "" || network == "" || o.Network == network
}

// ErrNotFound: no order has the ID.
var ErrNotFound = errors.New("qr order not found")

// ErrNotCaughtUp is wrapped when a node that does not have an order could not
// catch up with the cluster's book (no quorum, say): the order may exist, so this is
// not ErrNotFound (a terminal is answered 96 and a notification 500, not "not
// found", which both would take as final).
var ErrNotCaughtUp = errors.New("this node did not catch up with the cluster's orders")

// ErrExists is wrapped when a cluster's book already has another order under the
// ID of an order being created (a single switch's book replaces it, as it always
// did).
var ErrExists = errors.New("qr order: another order has this ID")

// RevisionKey is the Badger key of the shared book's revision (cluster only); the
// orders are under "qrorder/", in a single switch's Badger and a cluster's alike.
const RevisionKey = "qrorders/rev"

// applyWait bounds how long a node waits to apply a request it submitted (less
// when the request's context ends sooner): the request is ordered, so its outcome
// is decided, but this node cannot tell it until its follower reaches it.
const applyWait = 5 * time.Second

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
	// requests (replicated), and Badger is this node's copy. It must be a
	// statelog.Submitter: the book submits requests, decided as they are applied.
	Log statelog.Log
	// CatchUp waits until the book has applied every commit the Log held
	// (cluster.StoreLog.CatchUp): before a node says that an order is not found,
	// and after a conflict on the compare-and-set path.
	CatchUp func(ctx context.Context, r statelog.Replica) error
	// Requests, with a Log, says whether the book may submit requests now: whether
	// every node of the cluster decides them (every lease seen advertises
	// cluster.LeaseValue.QRRequests). Asked at each creation, payment and expiry;
	// while it says false, the book commits with a compare-and-set on its revision
	// (cas.go), which nodes of earlier versions apply. Nil: always.
	Requests func() bool
}

// Book is the order book. It is safe for concurrent use.
type Book struct {
	db      *badger.DB
	opts    Options
	sync    *kvsync.Sync       // the shared book's copy of the requests (cluster); nil alone
	sub     statelog.Submitter // opts.Log (cluster); nil alone
	mu      sync.Mutex         // serializes updates of orders (alone); guards waiters
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
		sub, ok := opts.Log.(statelog.Submitter)
		if !ok {
			return nil, fmt.Errorf("qr orders: the cluster's log (%T) takes no submitted requests (statelog.Submitter)", opts.Log)
		}
		var err error
		if b.sync, err = kvsync.New(db, kvsync.Config{Name: "qr orders", RevKey: RevisionKey, Log: opts.Log, CatchUp: opts.CatchUp,
			Conflict: ErrConflict, Resolve: Resolve, Applied: b.applied}); err != nil {
			return nil, err
		}
		b.sub = sub
	}
	return b, nil
}

// shared reports whether the book is a cluster's.
func (b *Book) shared() bool { return b.sync != nil }

// requests says whether a cluster's book submits requests now (Options.Requests),
// rather than commit with a compare-and-set.
func (b *Book) requests() bool { return b.opts.Requests == nil || b.opts.Requests() }

// ApplyRemote implements statelog.Replica: a request of any node (this one's too),
// decided as it is applied (Resolve).
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

// applied wakes the terminals waiting on the orders a request decided (called with
// the sync's writer lock held, once Badger has the request's writes).
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
	return b.putRaw(ctx, []byte(prefix+o.ID), v)
}

// putRaw writes key = v on a single switch (durably through Persist when set).
func (b *Book) putRaw(ctx context.Context, k, v []byte) error {
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

// EachID calls fn with the ID of every order this node has (keys only, in key
// order). A cluster node rebuilt on an empty disk notes its own orders' IDs in its
// RRN sequence with it: an order's ID is an RRN that no journal record carries.
func (b *Book) EachID(fn func(id string)) error {
	return b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: []byte(prefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			fn(strings.TrimPrefix(string(it.Item().Key()), prefix))
		}
		return nil
	})
}

// view gives an order its computed state.
func (b *Book) view(o *Order) Order {
	out := *o
	if out.State == Open && !b.opts.Now().Before(out.Expires) {
		out.State = Expired
	}
	return out
}

// Create stores a new open order, durably (not indexed by the terminal's request:
// CreateKeyed).
func (b *Book) Create(ctx context.Context, o Order) error {
	_, _, err := b.CreateKeyed(ctx, o, RequestKey{})
	return err
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
		return b.settle(ctx, id, o)
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
	return b.settle(ctx, id, o)
}

// settle returns the order id as this node has it (o), with its state as of now,
// unless it is open and has expired on this node's clock. In a cluster another node
// may have taken its payment in time and not yet be applied here, so the expiry is
// submitted to the shared book (stored Expired when it is decided) before the
// terminal is told. A payment ordered before it leaves the order paid, and the
// node, having applied both, answers paid; a payment ordered after it finds the
// order expired (late: refunded). An error (no quorum: the node cannot know) is
// returned as such, not as an expiry. While Options.Requests says false, the expiry
// is committed with a compare-and-set instead (settleCAS). A single switch stores
// the expiry before the terminal is told (settleAlone).
func (b *Book) settle(ctx context.Context, id string, o *Order) (Order, error) {
	v := b.view(o)
	if o.State != Open || v.State != Expired {
		return v, nil
	}
	if !b.shared() {
		return b.settleAlone(ctx, id)
	}
	if !b.requests() {
		return b.settleCAS(ctx, id)
	}
	if _, err := b.submit(ctx, id, request{Op: opExpire, Order: o, At: b.opts.Now()}); err != nil {
		return Order{}, fmt.Errorf("qr order %s: its expiry not settled with the cluster's orders: %w", id, err)
	}
	o, err := b.get(id)
	if err != nil {
		return Order{}, fmt.Errorf("qr order %s: its expiry applied, and then: %w", id, err)
	}
	return b.view(o), nil
}

// settleAlone is settle on a single switch: the expiry the terminal is about to be
// told is stored (under the book's lock, on the order as it is then), so that a
// payment notified after it is late whatever the clock says by then (a clock stepped
// back before the expiry would otherwise find the order open and take the payment).
func (b *Book) settleAlone(ctx context.Context, id string) (Order, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o, err := b.get(id)
	if err != nil {
		return Order{}, err
	}
	if o.State != Open || b.view(o).State != Expired {
		return b.view(o), nil
	}
	o.State = Expired
	if err := b.put(ctx, o); err != nil {
		return Order{}, fmt.Errorf("qr order %s: its expiry not stored: %w", id, err)
	}
	return b.view(o), nil
}

// Payment is a network's notification that an order was paid.
type Payment struct {
	Network       string `json:"network,omitempty"`
	Connector     string `json:"connector,omitempty"`
	TransactionID string `json:"transaction_id"`
	Amount        int64  `json:"amount"`
	// Currency is the payment's currency (ISO 4217 numeric) when the network named
	// it; "": the order's.
	Currency string `json:"currency,omitempty"`
	// Refused, when set, says why the merchant cannot take the payment (a limit, a
	// merchant not active: the notifying node's checks, made before it submits the
	// payment, so that every node of a cluster decides alike): the order takes it as
	// late, refunded.
	Refused string `json:"refused,omitempty"`
}

// Outcome says what a notification did.
type Outcome int

// Outcomes of Pay.
const (
	// Taken: the order was open and is paid now.
	Taken Outcome = iota
	// Late: the order had expired (or the amount or the currency was not the
	// order's, or the payment was refused: Payment.Refused): it is marked refunded,
	// and the caller refunds the payment.
	Late
	// Again: the same notification came before (the same network's transaction
	// ID, PaidBy): nothing changed.
	Again
)

// Pay records a payment notification for the order id. It decides under the book's
// lock, so that two notifications of one order never both take it; a different
// transaction on an order already paid or refunded (another ID, or the same ID of
// another network) is Late (refunded too). In a
// cluster the payment is a request decided in the shared book's order by every
// node as it applies it (at the time this node received it): when another node's
// request on the order was ordered first, this one is decided on the order as that
// one left it.
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
	out, changed := decide(o, p, b.opts.Now(), 0)
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

// decide applies payment p, received at at, to o: the outcome, and whether o
// changed (an open order is paid, or refunded when late, of another amount or in
// another currency).
// rev is the shared book's revision of the request that carries p (0 alone),
// recorded on the order it decides.
func decide(o *Order, p Payment, at time.Time, rev uint64) (Outcome, bool) {
	if o.State != Open && o.TransactionID == p.TransactionID {
		// The order is left as it is, whichever network: as versions before 6
		// December 2026 (third release) decide it, so that every node of a cluster
		// being upgraded stores the same order. Only the outcome tells the
		// network's own repeat from another network's payment under the same ID,
		// which is refunded (the order keeps its first payment).
		if o.PaidBy(p.Network, p.TransactionID) {
			return Again, false
		}
		return Late, false
	}
	out := Taken
	if o.State != Open || !at.Before(o.Expires) || (o.Amount > 0 && p.Amount != o.Amount) || p.Amount <= 0 ||
		(p.Currency != "" && p.Currency != o.Currency) || p.Refused != "" {
		out = Late
	}
	if o.State != Open && o.State != Expired {
		// Already decided by another transaction: this one is refunded, and the order
		// keeps its first payment. (An order stored Expired, a cluster's expiry
		// committed when a terminal was told, takes this payment as late: refunded.)
		return Late, false
	}
	o.Network, o.Connector, o.TransactionID, o.PaidAmount, o.PaidCurrency, o.PaidAt = p.Network, p.Connector, p.TransactionID, p.Amount, p.Currency, at
	o.Refused = p.Refused
	o.State, o.Decided = Paid, rev
	if out == Late {
		o.State = Refunded
	}
	return out, true
}
