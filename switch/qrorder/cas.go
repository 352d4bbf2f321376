package qrorder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/internal/statelog/kvsync"
)

// The shared book's compare-and-set path: how the book committed before its
// requests were decided at apply time (5 December 2026), kept for as long as a node
// of such a version may be in the cluster (Options.Requests says false). A node
// decides on the book as it has it, and commits the order's new value (plain
// writes, which every version applies) with a compare-and-set on the book's
// revision: when another node committed first, the commit conflicts, the node
// catches up and decides again. Every commit of the book contends with every other
// (one revision for all orders), so it serves a few hundred commits a second
// across the cluster, not more. It stores an order exactly as the requests do
// (Resolve), so that a node reads the orders of either path alike.

// ErrConflict is wrapped when another node's orders kept changing the shared book
// while this node tried to commit on the compare-and-set path, for as long as it
// could (commitWait, or the request's deadline).
var ErrConflict = errors.New("qr orders: changed on other nodes meanwhile")

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

// setOrder is the commit that stores o.
func setOrder(o *Order) (statelog.Commit, error) {
	v, err := json.Marshal(o)
	if err != nil {
		return statelog.Commit{}, err
	}
	var c kvsync.Commit
	c.Set([]byte(prefix+o.ID), v)
	return c.Commit, nil
}

// createCAS is Create on the compare-and-set path: the order is committed unless
// the book has its ID; like a creation request, a repeat finds its own order, and
// another order under the ID is ErrExists. (Versions before 5 December 2026
// replaced it.) With a request key, the order and its index entry are committed
// together unless another request with the key made an order still resent to
// (returned, dup true): a commit of the other node's first conflicts with this one.
func (b *Book) createCAS(ctx context.Context, o Order, k RequestKey) (Order, bool, error) {
	var (
		got   *Order
		first Order
		dup   bool
	)
	err := b.do(ctx, func() (statelog.Commit, func(), error) {
		if k.Key != "" {
			var err error
			if first, dup, err = b.firstOf(k.Key, o.ID, o.Created); err != nil || dup {
				return statelog.Commit{}, nil, err
			}
		}
		cur, err := b.get(o.ID)
		switch {
		case err == nil:
			got = cur
			return statelog.Commit{}, nil, nil
		case !errors.Is(err, ErrNotFound):
			return statelog.Commit{}, nil, err
		}
		got = nil
		c, err := setOrder(&o)
		if err != nil || k.Key == "" {
			return c, nil, err
		}
		v, err := json.Marshal(keyEntry{ID: o.ID, Until: k.Until})
		c.Writes = append(c.Writes, statelog.KV{Key: []byte(keyPrefix + k.Key), Value: v})
		return c, nil, err
	})
	if err != nil {
		return Order{}, false, err
	}
	if dup {
		return first, true, nil
	}
	if got != nil && !sameCreation(got, &o) {
		return Order{}, false, fmt.Errorf("qr order %s: %w (terminal %s, created %s)", o.ID, ErrExists, got.TID, got.Created.Format(time.RFC3339Nano))
	}
	return b.view(&o), false, nil
}

// payCAS is Pay on the compare-and-set path: the payment is decided on the order as
// this node has it, at this node's time, and the order's change committed ordered
// after the revision the decision read.
func (b *Book) payCAS(ctx context.Context, id string, p Payment) (Order, Outcome, error) {
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
		if out, changed = decide(o, p, b.opts.Now(), 0); !changed {
			return statelog.Commit{}, nil, nil
		}
		c, err := setOrder(o)
		return c, func() { b.wake(id) }, err
	})
	if err != nil {
		return Order{}, 0, err
	}
	return b.view(o), out, nil
}

// settleCAS is settle's expiry on the compare-and-set path: committed (stored
// Expired) when the order is still open and expired on this node's clock as the
// node has the book; a payment committed first conflicts with it, and the node,
// caught up, answers what that payment made of the order.
func (b *Book) settleCAS(ctx context.Context, id string) (Order, error) {
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
		c, err := setOrder(o)
		return c, func() { b.wake(id) }, err
	})
	if err != nil {
		return Order{}, fmt.Errorf("qr order %s: its expiry not settled with the cluster's orders: %w", id, err)
	}
	return b.view(o), nil
}
