package cjournal

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/journal"
)

// TestScanOwedAcrossNodes: node 2 writes a version of node 1's record that owes its
// 0420 (a void taken on node 2, the queue refusing): every node's store indexes the
// debt under node 2's name as its applier applies the version, so that node 3, the
// survivor settling node 2, finds it (ScanOwed), and node 1's scan of its own
// records is not how it is found. Node 2 marking it reversed takes it out on every
// node.
func TestScanOwedAcrossNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc := startCluster(t, ctx, 1)
	base := t.TempDir()
	ms := make([]*member, 3)
	for i := range ms {
		ms[i] = openMember(t, ctx, nc.nodes[0], i+1, 1, filepath.Join(base, fmt.Sprintf("m%d", i+1)))
	}
	defer func() {
		for _, m := range ms {
			m.close(t)
		}
	}()
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	rrn, err := journalTxn(ctx, ms[0], "T1", "000001", at)
	if err != nil {
		t.Fatal(err)
	}
	caughtUp := func() {
		t.Helper()
		for _, m := range ms {
			if err := m.j.CaughtUp(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	owed := func(m *member, node string) []string {
		t.Helper()
		var out []string
		if err := m.j.ScanOwed(ctx, node, func(r *journal.Record) bool { out = append(out, r.RRN); return true }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	caughtUp()
	// Node 2's version of node 1's record, under the record's lock as the pipeline
	// writes it.
	unlock, err := ms[1].j.LockRecord(ctx, rrn)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := ms[1].j.Get(rrn)
	if err != nil {
		t.Fatal(err)
	}
	orig.OwedBy = ms[1].j.Node()
	orig.AddEvent(journal.StateReversalOwed, at.Add(time.Minute), "200000000001: not queued (no quorum); tried again")
	if err := ms[1].j.Write(ctx, orig, false, true); err != nil {
		t.Fatal(err)
	}
	unlock()
	caughtUp()
	for _, m := range ms {
		if got := owed(m, "2"); !slices.Equal(got, []string{rrn}) {
			t.Errorf("node %d: owed by node 2 %q, want %s", m.num, got, rrn)
		}
		if got := owed(m, "1"); len(got) != 0 {
			t.Errorf("node %d: owed by node 1 %q, want none", m.num, got)
		}
	}
	// Node 2's housekeeping queues the 0420 and marks the record reversed.
	unlock, err = ms[1].j.LockRecord(ctx, rrn)
	if err != nil {
		t.Fatal(err)
	}
	orig, err = ms[1].j.Get(rrn)
	if err != nil {
		t.Fatal(err)
	}
	orig.ReversedBy = "200000000001"
	orig.AddEvent(journal.StateReversed, at.Add(2*time.Minute), orig.ReversedBy)
	if err := ms[1].j.Write(ctx, orig, false, true); err != nil {
		t.Fatal(err)
	}
	unlock()
	caughtUp()
	for _, m := range ms {
		if got := owed(m, "2"); len(got) != 0 {
			t.Errorf("node %d: owed by node 2 after the mark %q, want none", m.num, got)
		}
	}
}
