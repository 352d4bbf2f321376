package cjournal

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/metrics"
	"github.com/switchyard/switchyard/switch/pipeline"
)

// TestBatchMembershipAcrossNodes: a terminal's batch holds the same records on
// every node of a cluster, each record in exactly one batch (pipeline.BatchTotals
// over each node's journal, the closes replicated): node 2 closes the batch while a
// purchase of node 1 is at its issuer (answered after the close) and before two
// merchant-presented payments are notified (one paid a second before the close on
// node 2, one paid two hours before it on node 1, found in the index of late
// changes, which ScanLate gives the pipeline here). The batch closed holds the
// purchase answered before it only; the next one holds the other three, on both
// nodes.
func TestBatchMembershipAcrossNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc := startCluster(t, ctx, 1)
	m1 := openMember(t, ctx, nc.nodes[0], 1, 1, t.TempDir())
	defer func() { m1.close(t) }()
	m2 := openMember(t, ctx, nc.nodes[0], 2, 1, t.TempDir())
	defer func() { m2.close(t) }()
	const tid = "T9"
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	write := func(m *member, r *journal.Record, first bool) {
		t.Helper()
		if err := m.j.Write(ctx, r, first, true); err != nil {
			t.Fatalf("node %d: write %s: %v", m.num, r.RRN, err)
		}
	}
	rrn := func(m *member) string {
		t.Helper()
		r, err := m.j.NextRRN()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// payment is a merchant-presented payment taken by the order book at paid and
	// journaled at written.
	payment := func(m *member, stan string, paid, written time.Time) {
		r := answer(request(rrn(m), tid, stan, paid), paid)
		r.Written = written
		write(m, r, true)
	}

	before := request(rrn(m1), tid, "000001", at.Add(time.Second))
	write(m1, before, true)
	write(m1, answer(before, at.Add(time.Second+time.Millisecond)), false)
	inFlight := request(rrn(m1), tid, "000002", at.Add(2*time.Second))
	write(m1, inFlight, true)
	if err := m2.j.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	closed := at.Add(3 * time.Second)
	if err := m2.j.CloseBatch(ctx, tid, closed); err != nil {
		t.Fatal(err)
	}
	write(m1, answer(inFlight, at.Add(4*time.Second)), false)
	payment(m2, "000003", closed.Add(-time.Second), at.Add(5*time.Second))
	payment(m1, "000004", closed.Add(-2*time.Hour), at.Add(6*time.Second))

	for _, m := range []*member{m1, m2} {
		if err := m.j.Barrier(ctx); err != nil {
			t.Fatal(err)
		}
		if last, err := m.j.LastBatch(tid); err != nil || !last.Equal(closed) {
			t.Fatalf("node %d: last batch close %v (%v), want %v", m.num, last, err, closed)
		}
		p, err := pipeline.New(pipeline.Config{CardHashKey: []byte("0123456789abcdef0123456789abcdef")}, m.j, nil, nil, nil, metrics.New())
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			from, to time.Time
			want     pipeline.Totals
		}{
			{time.Time{}, closed, pipeline.Totals{PurchaseCount: 1, PurchaseSum: 1000}},
			{closed, at.Add(time.Minute), pipeline.Totals{PurchaseCount: 3, PurchaseSum: 3000}},
		} {
			tots, err := p.BatchTotals(ctx, tid, c.from, c.to)
			if err != nil {
				t.Fatal(err)
			}
			if got := tots["156"]; len(tots) != 1 || got != c.want {
				t.Errorf("node %d: batch closed at %s: %v, want 156 %s", m.num, c.to.Format(time.TimeOnly), tots, c.want)
			}
		}
	}
}
