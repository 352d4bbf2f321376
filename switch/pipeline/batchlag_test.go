package pipeline

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/metrics"
	"github.com/switchyard/switchyard/switch/termclient"
)

// laggingJournal is the fake journal of a cluster node whose applier has not yet
// applied what the stream holds: another node's records (in pending) appear in it
// when CaughtUp is called, as cjournal.Journal.CaughtUp waits for them.
type laggingJournal struct {
	*fakeJournal
	mu      sync.Mutex
	pending []*journal.Record
	batches map[string]time.Time // batch closes in the stream, not applied here yet
	waits   int
}

func (j *laggingJournal) CaughtUp(context.Context) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.waits++
	for _, r := range j.pending {
		j.fakeJournal.remote(r)
	}
	j.pending = nil
	for tid, at := range j.batches {
		_ = j.fakeJournal.CloseBatch(context.Background(), tid, at)
	}
	j.batches = nil
	return nil
}

// TestBatchOnALaggingNode: a terminal's 0500 reaches a node of a cluster whose
// journal's applier has not yet applied the terminal's last purchase, made on
// another node a moment before (any node serves any terminal; right after a
// failover an applier is seconds behind), or its last batch close there. The batch
// must be totalled over the whole cluster's records (as a settlement is: it waits
// for the applier first), not over what this node happens to hold: otherwise the
// terminal is answered 95 (batch totals differ) for a batch that matches, and the
// batch is closed at this request's time, so that the purchase received before it
// is in neither the closed batch nor the next one.
func TestBatchOnALaggingNode(t *testing.T) {
	// lagging is a harness whose pipeline runs on a lagging journal.
	lagging := func(t *testing.T) (*harness, *laggingJournal) {
		h := newHarness(t)
		lj := &laggingJournal{fakeJournal: h.j}
		p, err := New(Config{CardHashKey: []byte("0123456789abcdef0123456789abcdef"), Now: h.clock.Now}, lj, h.q,
			&fakeRoutes{byPrefix: map[string]*fakeLink{"62": h.bank}}, nil, metrics.New())
		if err != nil {
			t.Fatal(err)
		}
		h.p = p
		return h, lj
	}
	batch := func(h *harness, bt string) answer {
		tx := h.purchase(0)
		tx.MTI, tx.ProcCode, tx.PAN, tx.Expiry = "0500", message.PCBatch, "", ""
		tx.TLV = [][2]string{{message.TagBatchTotals, bt}}
		return h.do(tx)
	}
	// elsewhere is a copy of rec as node 2 journaled it.
	elsewhere := func(rec *journal.Record, stan string, amount int64) *journal.Record {
		c := copyRecord(rec)
		c.RRN, c.STAN, c.Amount = "2"+c.RRN[1:], stan, amount
		return c
	}
	t.Run("the terminal's purchase on another node not applied yet", func(t *testing.T) {
		h, lj := lagging(t)
		own := h.record(h.approved(1000).RRN)
		h.clock.Advance(time.Second)
		lj.pending = []*journal.Record{elsewhere(own, "900001", 2500)}
		h.clock.Advance(time.Second)
		if a := batch(h, "2,3500,0,0"); a.RC != "00" {
			t.Fatalf("0500 with the terminal's two purchases (10.00 here, 25.00 on node 2, in the stream, not applied here yet): %s %q, want 00 (the applier waited for %d times)", a.RC, a.Reason, lj.waits)
		}
	})
	t.Run("the terminal's batch closed on another node, not applied yet", func(t *testing.T) {
		h, lj := lagging(t)
		h.approved(1000) // in the batch node 2 closed
		h.clock.Advance(time.Second)
		lj.batches = map[string]time.Time{testTID: h.clock.Now()}
		h.clock.Advance(time.Second)
		h.approved(400)
		h.clock.Advance(time.Second)
		if a := batch(h, "1,400,0,0"); a.RC != "00" {
			t.Fatalf("0500 of the batch after the one closed on node 2 (one purchase of 4.00): %s %q, want 00 (the applier waited for %d times)", a.RC, a.Reason, lj.waits)
		}
	})
	// A void or reversal of a purchase whose batch another node closed a moment
	// before (in the stream, not applied here yet) is judged after the catch-up:
	// declined as of a closed batch. Before 8 December 2026 it was judged by the
	// closes this node held, and approved.
	for _, c := range []struct {
		name   string
		change func(h *harness, tx termclient.Txn, a answer) termclient.Txn
		reason string
	}{
		{"void", func(h *harness, _ termclient.Txn, a answer) termclient.Txn { return h.void(a, 1000) }, ReasonVoidBatchClosed},
		{"reversal", func(h *harness, tx termclient.Txn, _ answer) termclient.Txn { return h.reversal(tx, 1000) }, ReasonReversalBatchClosed},
	} {
		t.Run(c.name+" after the batch closed on another node, not applied yet", func(t *testing.T) {
			h, lj := lagging(t)
			tx := h.purchase(1000)
			a := h.do(tx)
			if a.RC != "00" {
				t.Fatalf("purchase: %s %q", a.RC, a.Reason)
			}
			h.clock.Advance(time.Second)
			lj.batches = map[string]time.Time{testTID: h.clock.Now()}
			h.clock.Advance(time.Second)
			if got := h.do(c.change(h, tx, a)); got.RC != "12" || got.Reason != c.reason {
				t.Fatalf("%s of a purchase of a batch closed on node 2: %s %q, want 12 %s (the applier waited for %d times)", c.name, got.RC, got.Reason, c.reason, lj.waits)
			}
			if o := h.record(a.RRN); o.Reversed() {
				t.Fatalf("declined %s: original reversed by %q", c.name, o.ReversedBy)
			}
		})
	}
}
