package pipeline

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/switchyard/switchyard/switch/journal"
)

// A transaction's batch is the first one of its terminal closed after its BatchTime
// (the later of its decision and its first write), but the time is taken before the
// version that carries it is journaled: between the two a 0500 may be received and
// totalled, and would not find the transaction (its journal still holds the write
// ahead, not approved), while the next batch leaves it out as decided before its
// previous close. So every decision (and a notified payment's first write) is taken
// inside the decision gate, from just before its time is read to just after the
// write that carries it returns, and a batch, once its close time is fixed, waits
// until every decision entered before then has left (decisionGate.drain): those
// decided before the close are then readable, and those decided after it are in the
// next batch by their time.
//
// The gate is a generation counter, as read-copy-update's grace periods are: a
// decision adds one to the current generation's count and takes it back after its
// write; a batch replaces the generation with a new one and waits until the count of
// the one it replaced (and of any earlier one a batch gave up on) is zero. A decision
// costs two atomic adds and two loads of one shared word, no lock and no allocation;
// a batch allocates one generation.

// decisionGate lets a batch wait for the decisions taken before its close whose
// journal write has not returned yet. The zero value is not ready: newDecisionGate.
type decisionGate struct {
	cur atomic.Pointer[decisionGen]
	// mu guards open: the generations replaced whose decisions have not all left
	// (a batch that gave up on one leaves it there for the next batch to wait for).
	mu   sync.Mutex
	open []*decisionGen
}

// decisionGen is one generation of the decision gate.
type decisionGen struct {
	n       atomic.Int64 // decisions entered and not left
	retired atomic.Bool  // a batch replaced it: its count only falls now
	closed  atomic.Bool  // done is closed
	done    chan struct{}
}

// newDecisionGate returns a gate with its first generation.
func newDecisionGate() *decisionGate {
	g := &decisionGate{}
	g.cur.Store(&decisionGen{done: make(chan struct{})})
	return g
}

// enter is called before a decision's time is read; the generation it returns is
// left (decisionGen.leave) once the journal write that carries the decision has
// returned, written or not. The count is taken back and taken again in the new
// generation when a batch replaced the generation meanwhile: a batch that retired it
// may already have seen its count at zero, and the decision's time, read after this
// returns, is after that batch's close anyway.
func (g *decisionGate) enter() *decisionGen {
	for {
		d := g.cur.Load()
		d.n.Add(1)
		if g.cur.Load() == d {
			return d
		}
		d.leave()
	}
}

// leave takes back a decision entered in d; the last one out of a retired
// generation tells the batches waiting for it.
func (d *decisionGen) leave() {
	if d.n.Add(-1) == 0 && d.retired.Load() && d.closed.CompareAndSwap(false, true) {
		close(d.done)
	}
}

// drain replaces the current generation and waits until every decision entered
// before (in it, or in an earlier one a batch gave up on) has left, or ctx is done:
// it then returns how many have not, with ctx's error. waiting, when not nil, is
// called before it blocks (tests). Only batches call it, without being inside the
// gate themselves.
func (g *decisionGate) drain(ctx context.Context, waiting func()) (pending int64, err error) {
	g.mu.Lock()
	old := g.cur.Swap(&decisionGen{done: make(chan struct{})})
	old.retired.Store(true)
	g.open = append(g.open, old)
	wait := g.open[:0:0]
	for _, d := range g.open {
		if d.n.Load() != 0 {
			wait = append(wait, d)
		}
	}
	g.open = wait
	wait = append([]*decisionGen(nil), wait...)
	g.mu.Unlock()
	if len(wait) > 0 && waiting != nil {
		waiting()
	}
	for i, d := range wait {
		if d.n.Load() == 0 {
			continue
		}
		select {
		case <-d.done:
		case <-ctx.Done():
			for _, d := range wait[i:] {
				pending += max(0, d.n.Load())
			}
			return pending, ctx.Err()
		}
	}
	return 0, nil
}

// answered adds t's answered event (its decision) with note, at the time now, inside
// the decision gate: a batch received after that time waits for the write that
// carries it (leaveDecision).
func (p *Pipeline) answered(t *txn, note string) {
	if t.decided == nil {
		t.decided = p.decisions.enter()
	}
	t.rec.AddEvent(journal.StateAnswered, p.now().UTC(), note)
}

// leaveDecision takes t out of the decision gate, if it is in it: its decision's
// write has returned, or the transaction ends without one.
func (p *Pipeline) leaveDecision(t *txn) {
	if t.decided != nil {
		t.decided.leave()
		t.decided = nil
	}
}
