package cases

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/internal/statelog/kvsync/kvsynctest"
)

// casesNode is one node's case store on its own Badger directory (with its own
// registry, lists and rules), its cases shared through a statelog.Memory.
type casesNode struct {
	e   *env
	s   *Store
	log *kvsynctest.Log
}

func twoCaseNodes(t *testing.T) (a, b *casesNode, mem *statelog.Memory) {
	t.Helper()
	mem = &statelog.Memory{}
	open := func() *casesNode {
		n := &casesNode{e: newEnv(t), log: kvsynctest.New(mem)}
		n.e.opts.Log = n.log
		n.s = n.e.store(t)
		mem.Follow(n.s)
		return n
	}
	return open(), open(), mem
}

func deliverCases(t *testing.T, mem *statelog.Memory) {
	t.Helper()
	if err := mem.Deliver(); err != nil {
		t.Fatal(err)
	}
}

// openAsync opens a case for rrn on n and returns a channel closed when the writer
// has handled it.
func (n *casesNode) openAsync(t *testing.T, rrn string) chan struct{} {
	in, d, rec := n.e.txn(t, rrn, 150000)
	n.s.Open(context.Background(), in, &d, rec)
	done := make(chan struct{})
	go func() { n.s.Flush(); close(done) }()
	return done
}

// A case opened on A appears on B once delivered; B assigns and decides it, and A
// sees the decision (and its open gauge follows).
func TestClusterCaseOpenedOnAAppearsOnB(t *testing.T) {
	a, b, mem := twoCaseNodes(t)
	<-a.openAsync(t, "000000000001")
	if _, err := b.s.Get("CASE-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("B before delivery: %v", err)
	}
	deliverCases(t, mem)
	c, err := b.s.ByRRN("000000000001")
	if err != nil || c.ID != "CASE-1" || c.Status != StatusOpen || c.PANMasked != "476173******0119" {
		t.Fatalf("B's case: %+v %v", c, err)
	}
	if b.s.open.Load() != 1 {
		t.Fatalf("B's open gauge %d, want 1", b.s.open.Load())
	}
	if _, err := b.s.Assign(analyst2, "CASE-1", "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.s.Decide(analyst2, "CASE-1", VerdictFraud, "cardholder denies it"); err != nil {
		t.Fatal(err)
	}
	deliverCases(t, mem)
	c, err = a.s.Get("CASE-1")
	if err != nil || c.Status != StatusDecided || c.Decision.By != "bob" || c.Decision.Verdict != VerdictFraud {
		t.Fatalf("A's case after B decided: %+v %v", c, err)
	}
	if a.s.open.Load() != 0 || b.s.open.Load() != 0 {
		t.Fatalf("open gauges A %d, B %d, want 0", a.s.open.Load(), b.s.open.Load())
	}
	// The next case on A follows B's changes: no ID is handed out twice.
	e := a.e
	e.now = e.now.Add(1)
	<-a.openAsync(t, "000000000002")
	if c, err := a.s.ByRRN("000000000002"); err != nil || c.ID != "CASE-2" {
		t.Fatalf("A's next case: %+v %v", c, err)
	}
}

// Cases opened on two nodes at once both land, with different IDs, on both.
func TestClusterCasesOpenedConcurrently(t *testing.T) {
	a, b, mem := twoCaseNodes(t)
	<-a.openAsync(t, "000000000001")
	done := b.openAsync(t, "000000000002")
	<-b.log.Conflicts
	deliverCases(t, mem)
	<-done
	deliverCases(t, mem)
	for name, n := range map[string]*casesNode{"A": a, "B": b} {
		c1, err1 := n.s.ByRRN("000000000001")
		c2, err2 := n.s.ByRRN("000000000002")
		if err1 != nil || err2 != nil || c1.ID != "CASE-1" || c2.ID != "CASE-2" {
			t.Fatalf("node %s: %+v %v, %+v %v", name, c1, err1, c2, err2)
		}
		if n.s.open.Load() != 2 || counterValue(n.s.failures) != 0 {
			t.Fatalf("node %s: open %d, write failures %v", name, n.s.open.Load(), counterValue(n.s.failures))
		}
	}
}

// Two analysts decide one case on two nodes: the second is refused once its node
// has caught up. A change that conflicts again is refused with ErrChanged (409).
func TestClusterCaseConflicts(t *testing.T) {
	a, b, mem := twoCaseNodes(t)
	<-a.openAsync(t, "000000000001")
	if _, err := a.s.Assign(analyst, "CASE-1", "", ""); err != nil {
		t.Fatal(err)
	}
	deliverCases(t, mem)
	if _, err := a.s.Decide(analyst, "CASE-1", VerdictCleared, "genuine"); err != nil {
		t.Fatal(err)
	}
	admin := Actor{Name: "root", Role: RoleAdmin}
	errc := make(chan error, 1)
	go func() {
		_, err := b.s.Decide(admin, "CASE-1", VerdictCleared, "looks fine")
		errc <- err
	}()
	<-b.log.Conflicts
	deliverCases(t, mem)
	err := <-errc
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "already decided") || !strings.Contains(err.Error(), "by ana") {
		t.Fatalf("B decides a case A decided: %v", err)
	}

	// A opens a case while B re-runs an assignment: B's second append conflicts.
	<-a.openAsync(t, "000000000002")
	deliverCases(t, mem)
	calls := len(b.log.Commits())
	b.log.Before = func(n int) {
		if n == calls+2 {
			a.e.now = a.e.now.Add(1)
			<-a.openAsync(t, "000000000003")
		}
	}
	<-a.openAsync(t, "000000000004")
	go func() {
		_, err := b.s.Assign(analyst2, "CASE-2", "", "")
		errc <- err
	}()
	<-b.log.Conflicts
	deliverCases(t, mem)
	err = <-errc
	if !errors.Is(err, ErrChanged) || !errors.Is(err, ErrConflict) || !errors.Is(err, statelog.ErrConflict) {
		t.Fatalf("second conflict: %v, want ErrChanged", err)
	}
	deliverCases(t, mem)
	if c, _ := a.s.Get("CASE-2"); c.Status != StatusOpen {
		t.Fatalf("the refused assignment reached A: %+v", c)
	}
}

// A case the cluster could not confirm is not stored on the node (counted as a
// write failure); when it turns out to have been ordered it arrives like another
// node's.
func TestClusterCaseUnavailable(t *testing.T) {
	a, b, mem := twoCaseNodes(t)
	a.log.SetUnknown(true)
	<-a.openAsync(t, "000000000001")
	if _, err := a.s.Get("CASE-1"); !errors.Is(err, ErrNotFound) || counterValue(a.s.failures) != 1 {
		t.Fatalf("A stored an unconfirmed case: %v (failures %v)", err, counterValue(a.s.failures))
	}
	a.log.SetUnknown(false)
	deliverCases(t, mem)
	for name, n := range map[string]*casesNode{"A": a, "B": b} {
		if c, err := n.s.ByRRN("000000000001"); err != nil || c.ID != "CASE-1" {
			t.Fatalf("node %s after delivery: %+v %v", name, c, err)
		}
	}
}
