package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/statelog"
)

// node is one registry of a cluster in these tests: its own Badger directory,
// sharing a statelog.Memory with the others.
type node struct {
	*fixture
}

// newNode opens a registry on a fresh Badger directory that orders its writes
// with log and is given the commits of mem (the log, or what log wraps) by
// mem.Deliver, then loads the demo fleet (once per cluster: the second node's
// load conflicts, catches up and finds nothing missing).
func newNode(t *testing.T, mem *statelog.Memory, log statelog.Log) *node {
	t.Helper()
	return newNodeOpts(t, mem, Options{Log: log})
}

// newNodeOpts is newNode with more options (opts.Log is the node's Log).
func newNodeOpts(t *testing.T, mem *statelog.Memory, opts Options) *node {
	t.Helper()
	opts.SeenFlushInterval = -1
	if opts.CatchUp == nil {
		opts.CatchUp = func(context.Context, statelog.Replica) error { return mem.Deliver() }
	}
	f := &fixture{dir: t.TempDir(), clock: &fakeClock{t: t0}, opts: opts}
	f.open(t)
	mem.Follow(f.reg)
	if _, err := LoadDemoFleet(f.reg, testLoadTerminals); err != nil {
		t.Fatalf("LoadDemoFleet: %v", err)
	}
	t.Cleanup(func() { f.close(t) })
	return &node{f}
}

func deliver(t *testing.T, mem *statelog.Memory) {
	t.Helper()
	if err := mem.Deliver(); err != nil {
		t.Fatal(err)
	}
}

// sameState fails unless a and b hold the same revision, oplog and terminals.
func sameState(t *testing.T, a, b *node) {
	t.Helper()
	if a.reg.Revision() != b.reg.Revision() {
		t.Errorf("revisions %d and %d differ", a.reg.Revision(), b.reg.Revision())
	}
	na, err := a.reg.VerifyOplog()
	if err != nil {
		t.Errorf("oplog of A: %v", err)
	}
	nb, err := b.reg.VerifyOplog()
	if err != nil {
		t.Errorf("oplog of B: %v", err)
	}
	la, _ := a.reg.Oplog(OplogFilter{})
	lb, _ := b.reg.Oplog(OplogFilter{})
	if na != nb || len(la) == 0 || len(la) != len(lb) || la[len(la)-1].Hash != lb[len(lb)-1].Hash {
		t.Errorf("oplogs differ: %d and %d entries", na, nb)
	}
	ta, tb := a.reg.Terminals(TerminalFilter{}), b.reg.Terminals(TerminalFilter{})
	if len(ta) != len(tb) {
		t.Fatalf("%d and %d terminals", len(ta), len(tb))
	}
	for i := range ta {
		if ta[i].ID != tb[i].ID || ta[i].Status != tb[i].Status || ta[i].Version != tb[i].Version {
			t.Errorf("terminal %s: %s v%d on A, %s v%d on B", ta[i].ID, ta[i].Status, ta[i].Version, tb[i].Status, tb[i].Version)
		}
	}
}

// TestSharedChangeEnforcedOnOtherNode: a suspension requested on A and approved on
// B is enforced by A's Check once delivered, survives A's restart, and both nodes
// hold the same oplog chain.
func TestSharedChangeEnforcedOnOtherNode(t *testing.T) {
	mem := &statelog.Memory{}
	a, b := newNode(t, mem, mem), newNode(t, mem, mem)
	deliver(t, mem)
	if n := len(b.reg.Terminals(TerminalFilter{})); n == 0 || n != len(a.reg.Terminals(TerminalFilter{})) {
		t.Fatalf("B has %d demo terminals after delivery", n)
	}
	req, err := a.reg.RequestChange(alice, Change{Op: OpTerminalSuspend, Target: "T0000001", Reason: "stolen"})
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, mem)
	if _, err := b.reg.Approve(bob, req.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	if res := a.reg.Check(a.goodT1()); res.Decline {
		t.Fatalf("A declined before delivery: %s", res.Reason)
	}
	deliver(t, mem)
	if res := a.reg.Check(a.goodT1()); res.Reason != ReasonTerminalSuspended {
		t.Fatalf("A's Check after delivery: %+v; want %s", res, ReasonTerminalSuspended)
	}
	if pv, err := a.reg.GetChange(req.ID); err != nil || pv.Change.Status != ChangeApproved || pv.Change.ReviewedBy != "bob" {
		t.Fatalf("A's view of %s: %+v, %v", req.ID, pv, err)
	}
	sameState(t, a, b)
	rev := a.reg.Revision()
	a.reopen(t)
	if a.reg.Revision() != rev {
		t.Fatalf("revision after restart %d, want %d", a.reg.Revision(), rev)
	}
	if res := a.reg.Check(a.goodT1()); res.Reason != ReasonTerminalSuspended {
		t.Fatalf("A's Check after restart: %s", res.Reason)
	}
}

// TestSharedConcurrentChanges: unrelated changes made at the same time on both
// nodes all land (a conflicting append catches up and runs again), each with its
// own change ID, and both nodes end with the same state.
func TestSharedConcurrentChanges(t *testing.T) {
	mem := &statelog.Memory{}
	a, b := newNode(t, mem, mem), newNode(t, mem, mem)
	deliver(t, mem)
	// Deterministic first: B requests without having seen A's request.
	r1, err := a.reg.RequestChange(alice, Change{Op: OpTerminalSuspend, Target: "T0000001"})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := b.reg.RequestChange(carol, Change{Op: OpTerminalSuspend, Target: "T0000002"})
	if err != nil {
		t.Fatalf("B's unrelated request after A's: %v", err)
	}
	if r1.ID == r2.ID {
		t.Fatalf("both requests got ID %s", r1.ID)
	}
	// Then really concurrent, one writer per node, both up to date (a node that
	// is behind may meet two commits: the one it missed and the concurrent one).
	deliver(t, mem)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, n := range []*node{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = n.reg.PutAlertRule(alice, AlertRule{ID: fmt.Sprintf("R%d", i), Threshold: Duration(time.Hour), Actions: []AlertAction{{Type: ActionLog}}})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent unrelated rules: %v", err)
	}
	deliver(t, mem)
	if got := len(a.reg.AlertRules()); got != 3 || len(b.reg.AlertRules()) != 3 {
		t.Errorf("A has %d rules, B %d; want 3 (the demo rule and two new)", got, len(b.reg.AlertRules()))
	}
	for _, id := range []string{r1.ID, r2.ID} {
		if _, err := a.reg.Approve(bob, id, ""); err != nil {
			t.Fatal(err)
		}
	}
	deliver(t, mem)
	for _, n := range []*node{a, b} {
		for _, id := range []string{"T0000001", "T0000002"} {
			if tm, _ := n.reg.Terminal(id); tm.Status != TerminalSuspended {
				t.Errorf("%s is %s", id, tm.Status)
			}
		}
	}
	sameState(t, a, b)
}

// TestSharedSameChangeTwice: one change approved on both nodes: the first wins, the
// second gets the ordinary clear error (the change is no longer pending) after
// catching up, and the oplog records one approval.
func TestSharedSameChangeTwice(t *testing.T) {
	mem := &statelog.Memory{}
	a, b := newNode(t, mem, mem), newNode(t, mem, mem)
	req, err := a.reg.RequestChange(alice, Change{Op: OpTerminalSuspend, Target: "T0000001"})
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, mem)
	if _, err := b.reg.Approve(bob, req.ID, "b"); err != nil {
		t.Fatal(err)
	}
	_, err = a.reg.Approve(dave, req.ID, "a")
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "is approved, not pending") {
		t.Fatalf("second approval: %v; want a conflict saying the change is approved", err)
	}
	deliver(t, mem)
	if pv, _ := a.reg.GetChange(req.ID); pv.Change.ReviewedBy != "bob" {
		t.Fatalf("reviewed by %q, want bob", pv.Change.ReviewedBy)
	}
	ents, _ := a.reg.Oplog(OplogFilter{Action: "change.approve"})
	if len(ents) != 1 {
		t.Fatalf("%d approvals in the oplog", len(ents))
	}
	sameState(t, a, b)
}

// raced is a Log on which another node always writes first: each append is
// preceded by a foreign commit (a key no registry code reads).
type raced struct {
	*statelog.Memory
	n int
}

func (l *raced) Append(ctx context.Context, c statelog.Commit, after uint64) (uint64, error) {
	l.n++
	foreign := statelog.Commit{Writes: []statelog.KV{{Key: fmt.Appendf(nil, "reg/test/%d", l.n), Value: []byte("x")}}}
	if _, err := l.Memory.Append(ctx, foreign, after); err != nil {
		return 0, err
	}
	return l.Memory.Append(ctx, c, after)
}

// TestSharedConflictTwice: a write that meets another node's commit again after
// catching up is refused with ErrConflict saying to reload and retry; nothing of
// it is applied, and this node has applied the other node's commits.
func TestSharedConflictTwice(t *testing.T) {
	mem := &statelog.Memory{}
	f := &fixture{dir: t.TempDir(), clock: &fakeClock{t: t0}, opts: Options{SeenFlushInterval: -1, Log: &raced{Memory: mem},
		CatchUp: func(context.Context, statelog.Replica) error { return mem.Deliver() }}}
	f.open(t)
	t.Cleanup(func() { f.close(t) })
	mem.Follow(f.reg)
	_, err := f.reg.PutAlertRule(alice, AlertRule{ID: "R1", Threshold: Duration(time.Hour), Actions: []AlertAction{{Type: ActionLog}}})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "the registry changed on another node; reload and retry") {
		t.Fatalf("got %v", err)
	}
	deliver(t, mem)
	if len(f.reg.AlertRules()) != 0 || f.reg.Revision() != 2 {
		t.Fatalf("%d rules, revision %d; want none and the 2 foreign commits", len(f.reg.AlertRules()), f.reg.Revision())
	}
}

// lostAck orders commits in a Memory but, when lose is set, reports the append
// as unavailable, like a publish whose acknowledgement never came.
type lostAck struct {
	*statelog.Memory
	mu   sync.Mutex
	lose bool
}

func (l *lostAck) Append(ctx context.Context, c statelog.Commit, after uint64) (uint64, error) {
	rev, err := l.Memory.Append(ctx, c, after)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil && l.lose {
		return 0, fmt.Errorf("test: no acknowledgement: %w", statelog.ErrUnavailable)
	}
	return rev, err
}

// TestSharedUnavailable: an approval whose ordering is unknown (ErrUnavailable)
// applies nothing locally: the change stays pending and Check accepts; a failing
// Log changes nothing either. Once the commit is delivered, it applies.
func TestSharedUnavailable(t *testing.T) {
	mem := &statelog.Memory{}
	la := &lostAck{Memory: mem}
	a, b := newNode(t, mem, la), newNode(t, mem, mem)
	req, err := b.reg.RequestChange(alice, Change{Op: OpTerminalSuspend, Target: "T0000001"})
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, mem)

	mem.Fail = fmt.Errorf("test: no quorum: %w", statelog.ErrUnavailable)
	if _, err := a.reg.Approve(bob, req.ID, ""); !errors.Is(err, statelog.ErrUnavailable) {
		t.Fatalf("approve without a quorum: %v", err)
	}
	mem.Fail = nil
	la.mu.Lock()
	la.lose = true
	la.mu.Unlock()
	rev := a.reg.Revision()
	_, err = a.reg.Approve(bob, req.ID, "")
	if !errors.Is(err, statelog.ErrUnavailable) || !strings.Contains(err.Error(), "no acknowledgement") {
		t.Fatalf("approve with a lost acknowledgement: %v", err)
	}
	if res := a.reg.Check(a.goodT1()); res.Decline || a.reg.Revision() != rev {
		t.Fatalf("applied locally without an acknowledgement: %s, revision %d", res.Reason, a.reg.Revision())
	}
	if pv, _ := a.reg.GetChange(req.ID); pv.Change.Status != ChangePending {
		t.Fatalf("change %s", pv.Change.Status)
	}
	deliver(t, mem) // the commit had been ordered: it comes back like another node's
	for _, n := range []*node{a, b} {
		if res := n.reg.Check(n.goodT1()); res.Reason != ReasonTerminalSuspended {
			t.Fatalf("after delivery: %s", res.Reason)
		}
	}
	sameState(t, a, b)
}

// TestApplyRemoteCost measures ApplyRemote for the demo fleet and for an import of
// 10,000 terminals approved on another node (20 commits of 500).
func TestApplyRemoteCost(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	mem := &statelog.Memory{}
	a := newNode(t, mem, mem)
	bf := &fixture{dir: t.TempDir(), clock: &fakeClock{t: t0}, opts: Options{SeenFlushInterval: -1, Log: mem,
		CatchUp: func(context.Context, statelog.Replica) error { return mem.Deliver() }}}
	bf.open(t)
	t.Cleanup(func() { bf.close(t) })
	mem.Follow(bf.reg)
	start := time.Now()
	deliver(t, mem)
	t.Logf("demo fleet (%d terminals, revision %d) applied in %v", len(bf.reg.Terminals(TerminalFilter{})), bf.reg.Revision(), time.Since(start).Round(time.Microsecond))

	const n = 10000
	ts := make([]Terminal, n)
	for i := range ts {
		ts[i] = Terminal{ID: fmt.Sprintf("L%07d", i), MerchantID: "000000000000001", Kind: KindPOS, Status: TerminalActive,
			Binding: Binding{DeviceSerial: fmt.Sprintf("SN-L%07d", i)}}
	}
	req, err := a.reg.RequestChange(alice, Change{Op: OpTerminalImport, Terminals: ts})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.reg.Approve(bob, req.ID, ""); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	deliver(t, mem)
	took := time.Since(start)
	if got := len(bf.reg.Terminals(TerminalFilter{})); got < n {
		t.Fatalf("%d terminals on B", got)
	}
	t.Logf("import of %d terminals (request + %d approval commits) applied on the other node in %v", n, (n+importChunk-1)/importChunk, took.Round(time.Millisecond))
	if res := bf.reg.Check(CheckRequest{TerminalID: "L0009999", MerchantID: "000000000000001", DeviceID: "SN-L0009999", SourceIP: honest, Now: t0}); res.Terminal == nil {
		t.Fatalf("imported terminal unknown on B: %+v", res)
	}

	// One ordinary change in a fleet of 12,000: what every approval costs the others.
	req, err = a.reg.RequestChange(alice, Change{Op: OpTerminalSuspend, Target: "L0000007"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.reg.Approve(bob, req.ID, ""); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	deliver(t, mem)
	t.Logf("a suspension (request and approval, 2 commits) applied on the other node, %d terminals, in %v",
		len(bf.reg.Terminals(TerminalFilter{})), time.Since(start).Round(time.Microsecond))
	if tm, _ := bf.reg.Terminal("L0000007"); tm.Status != TerminalSuspended {
		t.Fatalf("L0000007 is %s on B", tm.Status)
	}
}

// TestSharedDemoLoadedTogether: three nodes starting at once all load the demo
// fleet; it is created once and every node ends with the same state.
func TestSharedDemoLoadedTogether(t *testing.T) {
	mem := &statelog.Memory{}
	nodes := make([]*node, 3)
	for i := range nodes {
		f := &fixture{dir: t.TempDir(), clock: &fakeClock{t: t0}, opts: Options{SeenFlushInterval: -1, Log: mem,
			CatchUp: func(context.Context, statelog.Replica) error { return mem.Deliver() }}}
		f.open(t)
		mem.Follow(f.reg)
		t.Cleanup(func() { f.close(t) })
		nodes[i] = &node{f}
	}
	var wg sync.WaitGroup
	created := make([]int, 3)
	errs := make([]error, 3)
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			created[i], errs[i] = LoadDemo(n.reg)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	deliver(t, mem)
	want := len(DemoMerchants()) + len(DemoTerminals())
	if sum := created[0] + created[1] + created[2]; sum != want {
		t.Errorf("created %v records, %d in all; want %d once", created, sum, want)
	}
	sameState(t, nodes[0], nodes[1])
	sameState(t, nodes[0], nodes[2])
}

// TestSharedExtOpApplied: another package's reviewed operation approved on node
// A takes effect on node B when B applies the approval (its owner's Apply runs
// there too, once), not when B applies the request.
func TestSharedExtOpApplied(t *testing.T) {
	mem := &statelog.Memory{}
	a, b := newNode(t, mem, mem), newNode(t, mem, mem)
	const op Op = "widget.put"
	var onA, onB []string
	for _, x := range []struct {
		n   *node
		got *[]string
	}{{a, &onA}, {b, &onB}} {
		x.n.reg.RegisterOp(op, ExtOp{
			Check: func(c *Change) (ChangeEffect, error) {
				return ChangeEffect{Type: "widget", ID: c.Target, After: c.Ext}, nil
			},
			Apply: func(c *Change) { *x.got = append(*x.got, c.ID) },
		})
	}
	deliver(t, mem)
	c, err := a.reg.RequestChange(alice, Change{Op: op, Target: "w1", Ext: json.RawMessage(`{"colour":"blue"}`)})
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, mem)
	if len(onB) != 0 {
		t.Fatalf("applied on B at the request: %v", onB)
	}
	if _, err := a.reg.Approve(bob, c.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	deliver(t, mem)
	deliver(t, mem)
	if strings.Join(onA, ",") != c.ID || strings.Join(onB, ",") != c.ID {
		t.Fatalf("applied on A %v, on B %v; want %s once on each", onA, onB, c.ID)
	}
}
