package pipeline

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal"
)

// heldFinal is a real journal that holds the final (approved) write of the first
// purchase after arm until release is closed: the write of a decision the pipeline
// has taken, not yet readable.
type heldFinal struct {
	*journal.Store
	mu      sync.Mutex
	armed   bool
	held    chan struct{} // closed once the write is held
	release chan struct{}
}

func (j *heldFinal) arm() {
	j.mu.Lock()
	j.armed, j.held, j.release = true, make(chan struct{}), make(chan struct{})
	j.mu.Unlock()
}

func (j *heldFinal) Write(ctx context.Context, rec *journal.Record, first, durable bool) error {
	j.mu.Lock()
	hold := j.armed && !first && rec.Type == "purchase" && rec.Approved()
	if hold {
		j.armed = false
	}
	held, release := j.held, j.release
	j.mu.Unlock()
	if hold {
		close(held)
		<-release
	}
	return j.Store.Write(ctx, rec, first, durable)
}

// TestBatchWaitsForDecisionsBeingWritten: a purchase the issuer approved before the
// terminal's 0500 came, whose final version the journal has not taken yet when the
// 0500 is totalled, is in that batch (the batch waits for the write) and not in the
// next one. Before, the batch read the purchase's write ahead (not approved) and left
// it out, answered 95, and the next batch left it out too as decided before its
// previous close: it was in no batch.
func TestBatchWaitsForDecisionsBeingWritten(t *testing.T) {
	j := &heldFinal{Store: openStore(t)}
	h := newHarness(t, func(h *harness, _ *Config) { h.store = j })

	if a := h.approved(1000); a.RC != "00" { // in batch 1, written before it
		t.Fatalf("first purchase: %s %q", a.RC, a.Reason)
	}
	h.clock.Advance(time.Second)
	j.arm()
	free := sync.OnceFunc(func() { close(j.release) })
	defer free()
	body := h.frame(h.purchase(2500))
	type result struct {
		resp frontend.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := h.p.Process(context.Background(), h.conn, body)
		done <- result{resp, err}
	}()
	<-j.held // decided (approved) now, its final write not readable
	h.clock.Advance(time.Second)

	// The write is let go only once the batch waits for it: a batch that does not
	// wait totals without it.
	var waited atomic.Bool
	h.p.onBatchDrain = func() { waited.Store(true); free() }
	a1 := h.batchOf("2,3500,0,0")
	free()
	r := <-done
	if r.err != nil {
		t.Fatalf("purchase written across the close: %v", r.err)
	}
	if p := h.answered(r.resp, true); p.RC != "00" {
		t.Fatalf("purchase written across the close: %s %q, want 00", p.RC, p.Reason)
	}
	if a1.RC != "00" {
		t.Fatalf("batch 1 (both purchases decided before it): %s %q, want 00 (waited for the write: %v)", a1.RC, a1.Reason, waited.Load())
	}
	if !waited.Load() {
		t.Fatal("batch 1 did not wait for the purchase being written")
	}
	h.clock.Advance(time.Second)
	if a := h.batchOf("0,0,0,0"); a.RC != "00" {
		t.Fatalf("batch 2 (nothing decided since batch 1): %s %q, want 00", a.RC, a.Reason)
	}
}

// TestDecisionGateDrain: a drain waits for the decisions entered before it only (not
// one entered once it began); one that gives up (its bound passed) says how many are
// left, and the next drain waits for those too.
func TestDecisionGateDrain(t *testing.T) {
	g := newDecisionGate()
	if n, err := g.drain(t.Context(), nil); n != 0 || err != nil {
		t.Fatalf("empty gate: %d %v", n, err)
	}
	stuck := g.enter()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if n, err := g.drain(ctx, nil); n != 1 || !errors.Is(err, context.Canceled) {
		t.Fatalf("drain with a decision being written: %d %v, want 1 and canceled", n, err)
	}
	before := g.enter() // after the drain that gave up, before the next one
	var after *decisionGen
	waiting := make(chan struct{})
	drained := make(chan error, 1)
	go func() {
		_, err := g.drain(t.Context(), func() {
			after = g.enter() // after the next drain began: not waited for
			close(waiting)
		})
		drained <- err
	}()
	<-waiting
	stuck.leave()
	select {
	case err := <-drained:
		t.Fatalf("drain returned (%v) before a decision entered before it left", err)
	default:
	}
	before.leave()
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	after.leave()
	if n, err := g.drain(t.Context(), nil); n != 0 || err != nil {
		t.Fatalf("gate with every decision left: %d %v", n, err)
	}
}

// TestDecisionGateConcurrent: with decisions entering and leaving on several
// goroutines while drains run, every decision that took its number (its "time")
// before a drain began has left when that drain returns.
func TestDecisionGateConcurrent(t *testing.T) {
	g := newDecisionGate()
	const workers, each = 4, 2000
	var clock atomic.Int64
	left := make([]atomic.Bool, workers*each+1)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				d := g.enter()
				at := clock.Add(1)
				left[at].Store(true)
				d.leave()
			}
		})
	}
	stop := make(chan struct{})
	drains := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				drains <- nil
				return
			default:
			}
			closeAt := clock.Load()
			if _, err := g.drain(t.Context(), nil); err != nil {
				drains <- err
				return
			}
			for at := int64(1); at <= closeAt; at++ {
				if !left[at].Load() {
					drains <- errors.New("a decision taken before the drain had not left when it returned")
					return
				}
			}
		}
	}()
	wg.Wait()
	close(stop)
	if err := <-drains; err != nil {
		t.Fatal(err)
	}
}
