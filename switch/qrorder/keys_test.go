package qrorder

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/statelog"
)

// TestBookResentOrderRequest: an order made by a terminal's request with a
// duplicate key (DE 41, 11, 7) is found by the key until the request's window
// ends; a creation with the key meanwhile is answered with the first order and
// makes none; once the window ended, the key makes a new order. Before, the book
// kept no such key and every resend made an order of its own.
func TestBookResentOrderRequest(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 8, 12, 0, 0, 0, time.UTC)}
	b, err := NewBook(openDB(t, t.TempDir()), Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	order := func(id string) Order {
		return Order{ID: id, TID: "LT000030", MID: "000000000000001", Currency: "156", Amount: 1000, Created: c.now(),
			Expires: c.now().Add(time.Minute), Payload: "000201" + id}
	}
	key := func() RequestKey {
		return RequestKey{Key: "LT000030/777001/1208120000", Until: c.now().Add(5 * time.Minute)}
	}
	if _, ok, err := b.ByKey(key().Key); err != nil || ok {
		t.Fatalf("before any order: %v %v", ok, err)
	}
	if _, dup, err := b.CreateKeyed(ctx, order("000000000001"), key()); err != nil || dup {
		t.Fatalf("first request: dup %v, %v", dup, err)
	}
	c.add(time.Second)
	if o, ok, err := b.ByKey(key().Key); err != nil || !ok || o.ID != "000000000001" || o.Payload != "000201000000000001" || o.State != Open {
		t.Fatalf("by its request's key: %+v %v %v", o, ok, err)
	}
	first, dup, err := b.CreateKeyed(ctx, order("000000000002"), key())
	if err != nil || !dup || first.ID != "000000000001" {
		t.Fatalf("a resend's creation: %+v dup %v, %v; want order 1", first, dup, err)
	}
	if _, err := b.Get("000000000002"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the resend's order was made: %v", err)
	}
	// Window over: the key is free again.
	c.add(5 * time.Minute)
	if _, ok, err := b.ByKey(key().Key); err != nil || ok {
		t.Fatalf("after the window: %v %v", ok, err)
	}
	if _, dup, err := b.CreateKeyed(ctx, order("000000000003"), key()); err != nil || dup {
		t.Fatalf("after the window: dup %v, %v", dup, err)
	}
	if o, ok, _ := b.ByKey(key().Key); !ok || o.ID != "000000000003" {
		t.Fatalf("after the window, by the key: %+v %v", o, ok)
	}
}

// TestBookSharedResentOrderRequest: in a cluster, on both the requests path and the
// compare-and-set path, a resend's creation on another node that has not applied
// the first order yet is answered with the first order (the creation ordered first
// took the key), and both nodes index the key alike.
func TestBookSharedResentOrderRequest(t *testing.T) {
	for _, requests := range []bool{true, false} {
		c := &clock{t: time.Date(2026, 12, 8, 12, 0, 0, 0, time.UTC)}
		mem := &statelog.Memory{}
		var on atomic.Bool
		on.Store(requests)
		a, b := capNode(t, mem, c, &on), capNode(t, mem, c, &on)
		ctx := context.Background()
		order := func(id string) Order {
			return Order{ID: id, TID: "LT000030", MID: "000000000000001", Currency: "156", Amount: 1000, Created: c.now(),
				Expires: c.now().Add(time.Minute), Payload: "000201" + id}
		}
		k := RequestKey{Key: "LT000030/777001/1208120000", Until: c.now().Add(5 * time.Minute)}
		if _, dup, err := a.b.CreateKeyed(ctx, order("100000000001"), k); err != nil || dup {
			t.Fatalf("requests %v: first on A: dup %v, %v", requests, dup, err)
		}
		first, dup, err := b.b.CreateKeyed(ctx, order("200000000001"), k)
		if err != nil || !dup || first.ID != "100000000001" {
			t.Fatalf("requests %v: the resend on B, before delivery: %+v dup %v, %v; want A's order", requests, first, dup, err)
		}
		deliver(t, mem)
		for name, n := range map[string]*sharedNode{"A": a, "B": b} {
			if o, ok, err := n.b.ByKey(k.Key); err != nil || !ok || o.ID != "100000000001" {
				t.Fatalf("requests %v: node %s by the key: %+v %v %v", requests, name, o, ok, err)
			}
		}
	}
}
