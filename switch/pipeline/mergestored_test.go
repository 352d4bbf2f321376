package pipeline

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/journal"
)

// TestMergeStoredKeepsAnotherNodesDebt: a final version kept for the journal's
// return is written over the stored one by settle; a reversal another node owes on
// the record (its void's 0420 refused by its queue: the reversal_owed event and
// OwedBy) must survive that write, or that node's recovery, which finds its debts by
// OwedBy, would never queue the 0420.
func TestMergeStoredKeepsAnotherNodesDebt(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	kept := &journal.Record{RRN: "000000000001", RC: "91", State: journal.StateResponded, Events: []journal.Event{
		{State: journal.StateReceived, At: t0},
		{State: journal.StateSent, At: t0.Add(time.Millisecond)},
		{State: journal.StateResponded, At: t0.Add(3 * time.Millisecond)},
	}}
	stored := &journal.Record{RRN: kept.RRN, RC: "00", OwedBy: "2", State: journal.StateReversalOwed, Rev: 3, Events: []journal.Event{
		{State: journal.StateReceived, At: t0},
		{State: journal.StateSent, At: t0.Add(time.Millisecond)},
		{State: journal.StateResponded, At: t0.Add(2 * time.Millisecond)},
		{State: journal.StateReversalOwed, At: t0.Add(time.Second), Note: "void 000000000009 on node 2"},
	}}
	mergeStored(kept, stored)
	if kept.OwedBy != "2" {
		t.Errorf("OwedBy %q after the merge, want 2: node 2's recovery would not find its debt", kept.OwedBy)
	}
	last := kept.Events[len(kept.Events)-1]
	if last.State != journal.StateReversalOwed || kept.State != journal.StateReversalOwed {
		t.Errorf("last event %s, state %s: want the reversal_owed event kept, last", last.State, kept.State)
	}
	if kept.Rev != 3 {
		t.Errorf("Rev %d, want 3", kept.Rev)
	}

	// A record already reversed owes nothing: the debt is not carried.
	rev := &journal.Record{RRN: kept.RRN, ReversedBy: "switch:timeout", Events: []journal.Event{{State: journal.StateReversed, At: t0}}}
	mergeStored(rev, stored)
	if rev.OwedBy != "" {
		t.Errorf("a reversed record took OwedBy %q", rev.OwedBy)
	}
}
