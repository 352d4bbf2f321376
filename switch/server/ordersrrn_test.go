package server

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/qrorder"
)

// TestRebuiltNodeSkipsItsOrderIDs: a merchant-presented order's ID is an RRN the
// journal handed out, and the order is not a journal record. A cluster node rebuilt
// on an empty disk continues its RRNs after its records (the other nodes give them
// back), and must continue after its orders too: else it hands out an open order's
// ID again, to a purchase whose record the order's payment, notified later, is then
// taken for (or, late, reverses).
func TestRebuiltNodeSkipsItsOrderIDs(t *testing.T) {
	base := t.TempDir()
	js := filepath.Join(base, "jetstream") // the cluster's JetStream store: it outlives the node's disk
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s1 := start(t, oneNodeCluster(t, filepath.Join(base, "a"), js), nil)
	var id string
	for range 3 {
		var err error
		if id, err = s1.Journal.NextRRN(); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	if err := s1.orders.book.Create(ctx, qrorder.Order{ID: id, TID: "T0000001", MID: "000000000000001", Currency: "156", Amount: 500,
		Created: now, Expires: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s1.Drain(); err != nil {
		t.Fatal(err)
	}

	s2 := start(t, oneNodeCluster(t, filepath.Join(base, "b"), js), nil)
	if _, err := s2.orders.book.Get(id); err != nil {
		t.Fatalf("the order on the rebuilt node: %v", err)
	}
	next, err := s2.Journal.NextRRN()
	if err != nil {
		t.Fatal(err)
	}
	if next <= id {
		t.Fatalf("the rebuilt node hands out RRN %s, not after its open order %s", next, id)
	}
}
