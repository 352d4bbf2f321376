package qrorder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/internal/statelog/kvsync"
)

// The shared book's requests. A request is one write of an intent commit
// (statelog.Commit.Intent): the order's key, and as its value the request in JSON.
// Every node decides it in the stream's order as it applies it (Resolve), from the
// order as the book has it at that point and from what the request carries, and
// from nothing else: so every node, and a compaction folding the stream into a
// snapshot, reaches the same state.
const (
	opCreate = "create" // make the order unless its ID is there
	opPay    = "pay"    // a payment notification, decided as Pay decides it
	opExpire = "expire" // the order expired, if it is still open at At
)

// request is a shared book's request on one order.
type request struct {
	Op string `json:"op"`
	// Order is, for a creation, the order to make; for a payment or an expiry, the
	// order as the submitting node had it, which a node without it starts from (an
	// order a single switch kept in its Badger before it joined a cluster is on
	// that node alone until a request carries it to the others).
	Order   *Order   `json:"order,omitempty"`
	Payment *Payment `json:"payment,omitempty"`
	// At is when the submitting node received the payment, or found the order
	// expired, on its clock: the decision's time on every node.
	At time.Time `json:"at,omitzero"`
	// Key and KeyUntil are, for a creation, the terminal's request that made the
	// order (RequestKey): the index entry the creation writes (keys.go). A node of
	// a version before 8 December 2026 (fifteenth release) ignores them.
	Key      string    `json:"key,omitempty"`
	KeyUntil time.Time `json:"key_until,omitzero"`
}

// Resolve is the shared book's statelog.Resolver: it decides the requests of an
// intent commit ordered at revision rev, on the orders as get reads them, and
// returns the orders they change. A request it cannot read (or an operation it
// does not know, a newer version's) is an error, not skipped: the node stops
// applying the book rather than fork from the nodes that can.
func Resolve(rev uint64, get func(key []byte) ([]byte, error), c statelog.Commit) (statelog.Commit, error) {
	var out statelog.Commit
	made := map[string][]byte{} // this commit's writes, read back by its later requests
	for i, kv := range c.Writes {
		id, ok := strings.CutPrefix(string(kv.Key), prefix)
		if !ok || id == "" {
			return out, fmt.Errorf("qr orders: request %d of revision %d: key %q is not an order's", i, rev, kv.Key)
		}
		var r request
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return out, fmt.Errorf("qr orders: request %d of revision %d, order %s: %w", i, rev, id, err)
		}
		cur, ok := made[string(kv.Key)]
		if !ok {
			var err error
			if cur, err = get(kv.Key); err != nil {
				return out, fmt.Errorf("qr orders: revision %d: read order %s: %w", rev, id, err)
			}
		}
		var o *Order
		if cur != nil {
			o = new(Order)
			if err := json.Unmarshal(cur, o); err != nil {
				return out, fmt.Errorf("qr orders: revision %d: order %s as stored: %w", rev, id, err)
			}
		}
		next, err := r.decide(id, o, rev)
		if err != nil {
			return out, fmt.Errorf("qr orders: request %d of revision %d, order %s: %w", i, rev, id, err)
		}
		kw, err := r.keyWrite(id, o, next, get, made)
		if err != nil {
			return out, fmt.Errorf("qr orders: request %d of revision %d, order %s: %w", i, rev, id, err)
		}
		if kw != nil {
			out.Writes = append(out.Writes, *kw)
		}
		if next == nil {
			continue
		}
		v, err := json.Marshal(next)
		if err != nil {
			return out, err
		}
		made[string(kv.Key)] = v
		out.Writes = append(out.Writes, statelog.KV{Key: kv.Key, Value: v})
	}
	return out, nil
}

// decide applies r to order id, o as the book has it (nil: not there), and returns
// the order to store, or nil when r changes nothing.
func (r *request) decide(id string, o *Order, rev uint64) (*Order, error) {
	if r.Order != nil && r.Order.ID != id {
		return nil, fmt.Errorf("%s carries order %q", r.Op, r.Order.ID)
	}
	switch r.Op {
	case opCreate:
		if r.Order == nil {
			return nil, errors.New("a creation without its order")
		}
		if o != nil {
			return nil, nil // there already: the submitter tells whether it is its own
		}
		n := *r.Order
		n.State, n.Decided = Open, 0
		return &n, nil
	case opPay:
		if r.Payment == nil {
			return nil, errors.New("a payment without its notification")
		}
		if o == nil && r.Order == nil {
			return nil, nil
		}
		carried := o == nil // an order only the submitting node kept: stored here as carried
		if carried {
			n := *r.Order
			o = &n
		}
		if _, changed := decide(o, *r.Payment, r.At, rev); !changed && !carried {
			return nil, nil
		}
		return o, nil
	case opExpire:
		if o == nil && r.Order == nil {
			return nil, nil
		}
		carried := o == nil
		if carried {
			n := *r.Order
			o = &n
		}
		if o.State != Open || r.At.Before(o.Expires) {
			if carried {
				return o, nil
			}
			return nil, nil
		}
		o.State = Expired
		return o, nil
	default:
		return nil, fmt.Errorf("unknown operation %q: %w", r.Op, statelog.ErrNewerCommit)
	}
}

// submit submits r on order id to the shared book and waits until this node has
// applied it (bounded by applyWait): the book then holds its outcome. It returns
// the request's revision.
func (b *Book) submit(ctx context.Context, id string, r request) (uint64, error) {
	v, err := json.Marshal(&r)
	if err != nil {
		return 0, fmt.Errorf("qr order %s: encode its %s: %w", id, r.Op, err)
	}
	c := kvsync.Commit{Commit: statelog.Commit{Intent: true}}
	c.Set([]byte(prefix+id), v)
	rev, err := b.sub.Submit(ctx, c.Commit, b.Revision())
	if err != nil {
		return 0, fmt.Errorf("qr order %s: its %s was not ordered: %w", id, r.Op, err)
	}
	actx, cancel := context.WithTimeout(ctx, applyWait)
	defer cancel()
	if err := b.sub.Await(actx, b, rev); err != nil {
		return 0, fmt.Errorf("qr order %s: its %s was ordered at revision %d, and %w: %w", id, r.Op, rev, ErrNotCaughtUp, err)
	}
	return rev, nil
}

// createShared is Create in a cluster: the creation is a request, and the order the
// book holds once it is applied is this one, or another one that had the ID first.
// With a request key, the order is the first one made by a request with the key
// when that one took the key first (keys.go).
func (b *Book) createShared(ctx context.Context, o Order, k RequestKey) (Order, bool, error) {
	if k.Key != "" {
		// Found here already: no order made for the resend.
		if first, dup, err := b.firstOf(k.Key, o.ID, o.Created); err != nil || dup {
			return first, dup, err
		}
	}
	rev, err := b.submit(ctx, o.ID, request{Op: opCreate, Order: &o, Key: k.Key, KeyUntil: k.Until})
	if err != nil {
		return Order{}, false, err
	}
	got, err := b.get(o.ID)
	if err != nil {
		return Order{}, false, fmt.Errorf("qr order %s: created at revision %d, and then: %w", o.ID, rev, err)
	}
	if !sameCreation(got, &o) {
		return Order{}, false, fmt.Errorf("qr order %s: %w (terminal %s, created %s)", o.ID, ErrExists, got.TID, got.Created.Format(time.RFC3339Nano))
	}
	if k.Key != "" {
		// Applied: the index says which creation took the key.
		if first, dup, err := b.firstOf(k.Key, o.ID, o.Created); err != nil || dup {
			return first, dup, err
		}
	}
	return b.view(got), false, nil
}

// sameCreation says whether a and b are the same order as made (a repeat of a
// creation whose outcome was unknown finds its own order).
func sameCreation(a, b *Order) bool {
	return a.TID == b.TID && a.MID == b.MID && a.Currency == b.Currency && a.Amount == b.Amount && a.Payload == b.Payload &&
		a.Created.Equal(b.Created) && a.Expires.Equal(b.Expires)
}

// payShared is Pay in a cluster: the payment is a request carrying this node's time
// of receipt; once applied, the order tells its outcome: decided by this request
// (Decided), by an earlier one of the same transaction of the same network (Again),
// or by another transaction (Late: refunded, the order keeping its payment). While Options.Requests
// says false, the payment is committed with a compare-and-set instead (payCAS).
func (b *Book) payShared(ctx context.Context, id string, p Payment) (Order, Outcome, error) {
	o, err := b.find(ctx, id)
	if err != nil {
		return Order{}, 0, err
	}
	if !b.requests() {
		return b.payCAS(ctx, id, p)
	}
	rev, err := b.submit(ctx, id, request{Op: opPay, Order: o, Payment: &p, At: b.opts.Now()})
	if err != nil {
		return Order{}, 0, err
	}
	if o, err = b.get(id); err != nil {
		return Order{}, 0, fmt.Errorf("qr order %s: payment applied at revision %d, and then: %w", id, rev, err)
	}
	var out Outcome
	switch {
	case o.State != Paid && o.State != Refunded:
		return Order{}, 0, fmt.Errorf("qr order %s: the payment at revision %d left it %s", id, rev, o.State)
	case o.PaidBy(p.Network, p.TransactionID) && o.Decided == rev && o.State == Paid:
		out = Taken
	case o.PaidBy(p.Network, p.TransactionID) && o.Decided == rev:
		out = Late
	case o.PaidBy(p.Network, p.TransactionID):
		out = Again
	default:
		out = Late
	}
	return b.view(o), out, nil
}
