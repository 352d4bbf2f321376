package qrorder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/statelog"
)

// The book's index of the terminals' requests that made its orders, by their
// duplicate key (DE 41, 11 and 7: journal.DupKey), so that a terminal resending an
// order request whose answer it lost is answered with the order its first request
// made, not given another one (until 8 December 2026, fifteenth release, every
// resend made an order). An entry names the order and until when a request with
// the key is a resend of it (the first request's time plus the switch's duplicate
// window); after that the key is free again.
//
// In a cluster the entry is written by the creation request that makes the order
// (Resolve), in the stream's order: of two creations with one key on two nodes at
// once, the one ordered first takes the key and the other's submitter is answered
// with the first order. The later order is still made (as a node of an earlier
// version, which does not know the index, makes it, so that every node holds the
// same orders), open and known to no terminal: it expires unpaid. On the
// compare-and-set path the entry is written with the order, in the same commit.

// keyPrefix is where the index is kept (not under prefix: EachID lists orders only).
const keyPrefix = "qrorderkey/"

// RequestKey is the terminal's request that makes an order: its duplicate key ("":
// none, the order is not indexed) and until when a request with the same key is a
// resend of it.
type RequestKey struct {
	Key   string
	Until time.Time
}

// keyEntry is an entry of the index.
type keyEntry struct {
	ID    string    `json:"id"`
	Until time.Time `json:"until"`
}

// liveEntry decodes the index entry v (nil: none) and returns it when a request
// made at is still a resend of its order; nil otherwise. An entry that cannot be
// read is taken as none (every node reads it alike).
func liveEntry(v []byte, at time.Time) *keyEntry {
	if v == nil {
		return nil
	}
	var e keyEntry
	if err := json.Unmarshal(v, &e); err != nil || e.ID == "" || !at.Before(e.Until) {
		return nil
	}
	return &e
}

// readKey reads the index entry of key from this node's Badger (nil: none).
func (b *Book) readKey(key string) ([]byte, error) {
	var v []byte
	err := b.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte(keyPrefix + key))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		v, err = it.ValueCopy(nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("qr orders: read the order of request %s: %w", key, err)
	}
	return v, nil
}

// firstOf returns the order that another request with key made (not order id),
// when a request made at is still a resend of it, as this node has the book.
func (b *Book) firstOf(key, id string, at time.Time) (Order, bool, error) {
	v, err := b.readKey(key)
	if err != nil {
		return Order{}, false, err
	}
	e := liveEntry(v, at)
	if e == nil || e.ID == id {
		return Order{}, false, nil
	}
	o, err := b.get(e.ID)
	if errors.Is(err, ErrNotFound) {
		return Order{}, false, nil
	}
	if err != nil {
		return Order{}, false, err
	}
	return b.view(o), true, nil
}

// ByKey returns, with its state as of now, the order that the terminal's request
// with the duplicate key key made, if a request made now is still a resend of it;
// ok false otherwise. It reads this node's copy of the book: in a cluster an order
// made on another node a moment ago may not be here yet, and the creation of the
// resend's order finds it then (CreateKeyed).
func (b *Book) ByKey(key string) (o Order, ok bool, err error) {
	return b.firstOf(key, "", b.opts.Now())
}

// CreateKeyed is Create for an order made by the terminal's request k: when another
// request with k's key made an order that a request made at o.Created is still a
// resend of, that order is returned (dup true), and o is not made (in a cluster,
// where two nodes made both at once, it may be: see above).
func (b *Book) CreateKeyed(ctx context.Context, o Order, k RequestKey) (first Order, dup bool, err error) {
	if o.ID == "" || o.TID == "" || o.Expires.IsZero() {
		return Order{}, false, fmt.Errorf("qr order: id, terminal and expiry are required (got %q, %q, %v)", o.ID, o.TID, o.Expires)
	}
	o.State, o.Decided = Open, 0
	if b.shared() && b.requests() {
		return b.createShared(ctx, o, k)
	}
	if b.shared() {
		return b.createCAS(ctx, o, k)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if k.Key != "" {
		if first, dup, err := b.firstOf(k.Key, o.ID, o.Created); err != nil || dup {
			return first, dup, err
		}
	}
	if err := b.put(ctx, &o); err != nil {
		return Order{}, false, err
	}
	if k.Key != "" {
		v, err := json.Marshal(keyEntry{ID: o.ID, Until: k.Until})
		if err != nil {
			return Order{}, false, err
		}
		if err := b.putRaw(ctx, []byte(keyPrefix+k.Key), v); err != nil {
			return Order{}, false, fmt.Errorf("qr order %s: made, and its request %s not indexed: %w", o.ID, k.Key, err)
		}
	}
	return b.view(&o), false, nil
}

// keyWrite returns the index entry that creation request r on order id writes (nil:
// none): the key is r's unless another order made by a request with it is still
// resent to at r's order's creation, and only when the order under id is r's (made
// now, next, or by an earlier repeat of r, o).
func (r *request) keyWrite(id string, o, next *Order, get func(key []byte) ([]byte, error), made map[string][]byte) (*statelog.KV, error) {
	if r.Op != opCreate || r.Key == "" || r.Order == nil {
		return nil, nil
	}
	if next == nil && (o == nil || !sameCreation(o, r.Order)) {
		return nil, nil
	}
	k := []byte(keyPrefix + r.Key)
	cur, ok := made[string(k)]
	if !ok {
		var err error
		if cur, err = get(k); err != nil {
			return nil, fmt.Errorf("read the order of request %s: %w", r.Key, err)
		}
	}
	if e := liveEntry(cur, r.Order.Created); e != nil {
		return nil, nil // its own (a repeat) or another order's, still resent to
	}
	v, err := json.Marshal(keyEntry{ID: id, Until: r.KeyUntil})
	if err != nil {
		return nil, err
	}
	made[string(k)] = v
	return &statelog.KV{Key: k, Value: v}, nil
}
