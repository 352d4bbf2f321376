package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/internal/statelog"
)

// flaky is a Log over a Memory whose mode a test switches: up orders and
// acknowledges; lose orders but reports no acknowledgement (a publish whose ack
// was lost); lose-then-down does so once, then is down; down orders nothing (no
// quorum). Every failure wraps ErrUnavailable.
type flaky struct {
	*statelog.Memory
	mu   sync.Mutex
	mode string
	// In mode hold an append is kept, unordered, and reported unavailable; the
	// next append in mode up orders it first (a publish that reached the stream
	// late, just before the retry).
	held *heldAppend
}

type heldAppend struct {
	c     statelog.Commit
	after uint64
}

func (l *flaky) set(mode string) {
	l.mu.Lock()
	l.mode = mode
	l.mu.Unlock()
}

func (l *flaky) Append(ctx context.Context, c statelog.Commit, after uint64) (uint64, error) {
	l.mu.Lock()
	mode := l.mode
	l.mu.Unlock()
	switch {
	case mode == "down":
		return 0, fmt.Errorf("test: no quorum: %w", statelog.ErrUnavailable)
	case mode == "hold":
		l.mu.Lock()
		l.held = &heldAppend{c, after}
		l.mu.Unlock()
		return 0, fmt.Errorf("test: no acknowledgement yet: %w", statelog.ErrUnavailable)
	}
	l.mu.Lock()
	h := l.held
	l.held = nil
	l.mu.Unlock()
	if h != nil {
		if _, err := l.Memory.Append(ctx, h.c, h.after); err != nil {
			return 0, fmt.Errorf("test: the held append: %w", err)
		}
	}
	rev, err := l.Memory.Append(ctx, c, after)
	if err == nil && (mode == "lose" || mode == "lose-then-down") {
		if mode == "lose-then-down" {
			l.set("down")
		}
		return 0, fmt.Errorf("test: no acknowledgement: %w", statelog.ErrUnavailable)
	}
	return rev, err
}

// catchUp is the CatchUp of a node on l: without a quorum (down) it cannot
// confirm that the node is current, as the cluster's cannot.
func (l *flaky) catchUp(context.Context, statelog.Replica) error {
	l.mu.Lock()
	mode := l.mode
	l.mu.Unlock()
	if mode == "down" {
		return fmt.Errorf("test: no quorum: %w", statelog.ErrUnavailable)
	}
	return l.Memory.Deliver()
}

// flakyPair is two registries of a cluster on one statelog.Memory, delivered:
// node 1 orders through a flaky Log (up; opts are node 1's extra options), node 2
// through the Memory itself.
func flakyPair(t *testing.T, opts Options) (*statelog.Memory, *flaky, *node, *node) {
	t.Helper()
	mem := &statelog.Memory{}
	l := &flaky{Memory: mem}
	opts.Log, opts.CatchUp, opts.Node = l, l.catchUp, 1
	a := newNodeOpts(t, mem, opts)
	b := newNodeOpts(t, mem, Options{Log: mem, Node: 2})
	deliver(t, mem)
	return mem, l, a, b
}

// softposRule replaces n's default alert rules with one: SoftPOS terminals
// offline for an hour, with actions.
func softposRule(t *testing.T, n *node, actions ...AlertAction) AlertRule {
	t.Helper()
	if err := n.reg.DeleteAlertRule(root, "offline-24h"); err != nil {
		t.Fatal(err)
	}
	ar := AlertRule{ID: "sp", Threshold: Duration(time.Hour), Actions: actions, Filter: AlertFilter{Kinds: []TerminalKind{KindSoftPOS}}}
	if _, err := n.reg.PutAlertRule(alice, ar); err != nil {
		t.Fatal(err)
	}
	return ar
}

// thief is a request of T0000001 from another device: an incident.
func thief(n *node) CheckRequest {
	req := n.goodT1()
	req.DeviceID = "SN-THIEF"
	return req
}

// sameIncidents fails unless every node lists want incidents, the same IDs with
// the same node, reason and status.
func sameIncidents(t *testing.T, want int, nodes ...*node) []*Incident {
	t.Helper()
	var first []*Incident
	for i, n := range nodes {
		incs, err := n.reg.Incidents(IncidentFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(incs) != want {
			t.Fatalf("node %d lists %d incidents, want %d", i+1, len(incs), want)
		}
		if i == 0 {
			first = incs
			continue
		}
		for j, inc := range incs {
			f := first[j]
			if inc.ID != f.ID || inc.Node != f.Node || inc.Reason != f.Reason || inc.Status != f.Status || inc.TerminalID != f.TerminalID {
				t.Errorf("node %d: incident %d is %s (node %d, %s, %s), node 1 has %s (node %d, %s, %s)", i+1, j,
					inc.ID, inc.Node, inc.Reason, inc.Status, f.ID, f.Node, f.Reason, f.Status)
			}
		}
	}
	for j, inc := range first {
		if want := fmt.Sprintf("INC-%d", j+1); inc.ID != want {
			t.Errorf("incident %d is %s, want %s: IDs unique and without gaps", j, inc.ID, want)
		}
	}
	return first
}

// TestSharedIncidents: in a cluster every node lists every node's incidents under
// one sequence of IDs (a node that records one before it has applied another
// node's takes the next ID), with the node that saw it; acknowledging on one node
// is seen on the other, and a second acknowledgement is refused; a confirmed
// fraud's incident has its ID at once, the same everywhere.
func TestSharedIncidents(t *testing.T) {
	mem, _, a, b := flakyPair(t, Options{})

	a.reg.Check(thief(a))
	a.reg.FlushIncidents()
	req := b.goodT1()
	req.SIM = "89860000000000000999"
	b.reg.Check(req) // B has not applied A's incident: its commit conflicts first
	b.reg.FlushIncidents()
	deliver(t, mem)
	incs := sameIncidents(t, 2, a, b)
	if incs[0].Node != 1 || incs[0].Reason != ReasonDeviceMismatch || incs[1].Node != 2 || incs[1].Reason != ReasonSIMMismatch {
		t.Fatalf("incidents: %s node %d %s, %s node %d %s", incs[0].ID, incs[0].Node, incs[0].Reason, incs[1].ID, incs[1].Node, incs[1].Reason)
	}

	if _, err := b.reg.AcknowledgeIncident(carol, "INC-1", "calling the merchant"); err != nil {
		t.Fatal(err)
	}
	deliver(t, mem)
	if inc, err := a.reg.GetIncident("INC-1"); err != nil || inc.Status != IncidentAcknowledged || inc.AckBy != "carol" {
		t.Fatalf("INC-1 on node 1 after node 2's acknowledgement: %+v, %v", inc, err)
	}
	if _, err := a.reg.AcknowledgeIncident(carol, "INC-1", ""); !errors.Is(err, ErrConflict) {
		t.Errorf("second acknowledgement: %v", err)
	}

	fraud, err := a.reg.OpenFraudIncident("CASE-7", "000000000000001", "T0000001")
	if err != nil || fraud.ID != "INC-3" || fraud.Node != 1 {
		t.Fatalf("fraud incident: %+v, %v", fraud, err)
	}
	deliver(t, mem)
	if inc, err := b.reg.GetIncident("INC-3"); err != nil || inc.Case != "CASE-7" || inc.Reason != ReasonConfirmedFraud {
		t.Fatalf("INC-3 on node 2: %+v, %v", inc, err)
	}
	sameIncidents(t, 3, a, b)
	sameState(t, a, b)
}

// TestSharedIncidentOutcomeUnknown: an incident whose commit got no
// acknowledgement is stored once, whether the commit was ordered (lose: the
// writer finds it in the log before it tries again) or not (down).
func TestSharedIncidentOutcomeUnknown(t *testing.T) {
	for _, mode := range []string{"lose", "down"} {
		t.Run(mode, func(t *testing.T) {
			mem, l, a, b := flakyPair(t, Options{})
			l.set(mode)
			a.reg.Check(thief(a))
			a.reg.FlushIncidents() // at least one attempt, without an acknowledgement
			l.set("up")
			a.reg.FlushIncidents() // the next attempt settles the outcome
			deliver(t, mem)
			sameIncidents(t, 1, a, b)
		})
	}
}

// TestSharedIncidentsKeptWhileDown: without a quorum incidents wait (in memory
// up to MaxPendingIncidents, beyond it and when the queue is full on this node's
// disk, and on the disk at a stop); once the quorum is back every one is ordered
// exactly once, including those the node kept across a restart.
func TestSharedIncidentsKeptWhileDown(t *testing.T) {
	mem, l, a, b := flakyPair(t, Options{IncidentQueue: 1, MaxPendingIncidents: 2})
	l.set("down")
	for range 20 {
		a.reg.Check(thief(a))
	}
	if incs, err := a.reg.Incidents(IncidentFilter{}); err != nil || len(incs) != 0 {
		t.Fatalf("without a quorum: %d incidents listed, %v; want none yet (no IDs), and no wait for the quorum", len(incs), err)
	}
	restart(t, mem, a) // stops without a quorum: what is left goes to disk
	if n := countKeys(t, a.db, pfxIncSpill); n != 20 {
		t.Fatalf("%d incidents kept on disk at the stop, want 20", n)
	}
	if n := testutil.ToFloat64(a.reg.m.waiting.WithLabelValues("disk")); n != 20 {
		t.Errorf("switchyard_registry_incidents_waiting{where=disk} %v after the restart, want 20", n)
	}
	l.set("up")
	for i := 0; ; i++ {
		a.reg.FlushIncidents()
		incs, err := a.reg.Incidents(IncidentFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(incs) == 20 {
			break
		}
		if i == 10 {
			t.Fatalf("%d of 20 incidents ordered after %d flushes", len(incs), i+1)
		}
	}
	deliver(t, mem)
	sameIncidents(t, 20, a, b)
	for _, where := range []string{"memory", "disk"} {
		if n := testutil.ToFloat64(a.reg.m.waiting.WithLabelValues(where)); n != 0 {
			t.Errorf("switchyard_registry_incidents_waiting{where=%s} %v once all are ordered", where, n)
		}
	}
	restart(t, mem, a)
	a.reg.FlushIncidents()
	deliver(t, mem)
	sameIncidents(t, 20, a, b)
	if n := countKeys(t, a.db, pfxIncSpill); n != 0 {
		t.Errorf("%d ordered incidents still kept on disk", n)
	}
}

// restart closes n's registry and database and opens them again, followed.
func restart(t *testing.T, mem *statelog.Memory, n *node) {
	t.Helper()
	mem.Unfollow(n.reg)
	n.reopen(t)
	mem.Follow(n.reg)
}

func countKeys(t *testing.T, db *badger.DB, prefix string) int {
	t.Helper()
	n := 0
	if err := db.View(func(txn *badger.Txn) error {
		return iterate(txn, prefix, func(_, _ []byte) error { n++; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSharedAlerts: an alert raised by one node's monitor is every node's: a
// second monitor that runs before it has applied it meets it, catches up and
// raises nothing; an acknowledgement on the other node holds on the first.
func TestSharedAlerts(t *testing.T) {
	mem, _, a, b := flakyPair(t, Options{})
	softposRule(t, a)
	deliver(t, mem)
	ctx := context.Background()
	monA := NewMonitor(a.reg, a.clock.Now, MonitorOptions{})
	monB := NewMonitor(b.reg, b.clock.Now, MonitorOptions{})
	raised, err := monA.RunOnce(ctx, t0.Add(time.Hour))
	if err != nil || len(raised) != 1 || raised[0].Node != 1 {
		t.Fatalf("node 1's monitor: %+v, %v", raised, err)
	}
	id := raised[0].ID
	if got, err := monB.RunOnce(ctx, t0.Add(time.Hour)); err != nil || len(got) != 0 {
		t.Fatalf("node 2's monitor, before it applied node 1's alert: %d raised, %v", len(got), err)
	}
	deliver(t, mem)
	for i, n := range []*node{a, b} {
		as, err := n.reg.Alerts(AlertFilterQuery{})
		if err != nil || len(as) != 1 || as[0].ID != id || as[0].Node != 1 {
			t.Fatalf("node %d's alerts: %+v, %v", i+1, as, err)
		}
	}
	a.clock.Advance(70 * time.Minute)
	b.clock.Advance(70 * time.Minute)
	if _, err := b.reg.AcknowledgeAlert(carol, id, "technician sent"); err != nil {
		t.Fatal(err)
	}
	deliver(t, mem)
	if al, err := a.reg.GetAlert(id); err != nil || al.Status != AlertAcknowledged || al.AckBy != "carol" {
		t.Fatalf("%s on node 1: %+v, %v", id, al, err)
	}
	if got, err := monA.RunOnce(ctx, t0.Add(100*time.Minute)); err != nil || len(got) != 0 {
		t.Fatalf("node 1's monitor after node 2's acknowledgement: %d raised, %v", len(got), err)
	}
	sameState(t, a, b)
}

// TestSharedIncidentLandedThenHandled: a commit whose acknowledgement was lost
// was stored, and another node's operator acknowledged the incident before this
// node could look: the node still finds it (by its origin), and does not record
// it again.
func TestSharedIncidentLandedThenHandled(t *testing.T) {
	mem, l, a, b := flakyPair(t, Options{})
	l.set("lose-then-down") // the next attempts cannot catch up: the outcome stays unknown
	a.reg.Check(thief(a))
	a.reg.FlushIncidents()
	mem.Unfollow(a.reg) // node 1 is cut off; node 2 applies the incident and handles it
	deliver(t, mem)
	if _, err := b.reg.AcknowledgeIncident(carol, "INC-1", "on it"); err != nil {
		t.Fatal(err)
	}
	mem.Follow(a.reg)
	l.set("up")
	a.reg.FlushIncidents()
	deliver(t, mem)
	incs := sameIncidents(t, 1, a, b)
	if incs[0].Status != IncidentAcknowledged {
		t.Errorf("INC-1 is %s, want acknowledged", incs[0].Status)
	}
}

// TestSharedIncidentLostAckThenRestart: a commit whose acknowledgement was lost,
// and a stop before the node could catch up (no quorum): the incident is kept on
// disk; at the next start the node catches up first, applies the commit (which
// deletes the kept copy), and the incident is stored once.
func TestSharedIncidentLostAckThenRestart(t *testing.T) {
	mem, l, a, b := flakyPair(t, Options{})
	l.set("lose-then-down") // the next attempts cannot catch up: the outcome stays unknown
	a.reg.Check(thief(a))
	a.reg.FlushIncidents()
	restart(t, mem, a)
	if n := countKeys(t, a.db, pfxIncSpill); n != 1 {
		t.Fatalf("%d incidents kept on disk at the stop, want 1", n)
	}
	l.set("up")
	for i := 0; countKeys(t, a.db, pfxIncSpill) > 0; i++ {
		if i == 5 {
			t.Fatal("the kept incident still on disk after 5 flushes")
		}
		a.reg.FlushIncidents()
	}
	deliver(t, mem)
	sameIncidents(t, 1, a, b)
}

// TestSharedFraudIncidentOnce: a confirmed fraud's incident is ordered at once;
// a lost acknowledgement is settled before the call returns; a second call for
// the same case (the analyst decides again after a failure) returns the same
// incident; without a quorum the call fails and stores nothing.
func TestSharedFraudIncidentOnce(t *testing.T) {
	mem, l, a, b := flakyPair(t, Options{})
	l.set("lose")
	inc, err := a.reg.OpenFraudIncident("CASE-7", "000000000000001", "T0000001")
	if err != nil || inc.ID != "INC-1" {
		t.Fatalf("with a lost acknowledgement: %+v, %v", inc, err)
	}
	l.set("up")
	if again, err := a.reg.OpenFraudIncident("CASE-7", "000000000000001", "T0000001"); err != nil || again.ID != "INC-1" {
		t.Fatalf("decided again: %+v, %v; want INC-1", again, err)
	}
	l.set("down")
	if _, err := a.reg.OpenFraudIncident("CASE-8", "000000000000001", "T0000001"); !errors.Is(err, statelog.ErrUnavailable) {
		t.Fatalf("without a quorum: %v", err)
	}
	l.set("up")
	if inc, err := a.reg.OpenFraudIncident("CASE-8", "000000000000001", "T0000001"); err != nil || inc.ID != "INC-2" {
		t.Fatalf("CASE-8 decided again: %+v, %v", inc, err)
	}
	deliver(t, mem)
	if again, err := b.reg.OpenFraudIncident("CASE-8", "000000000000001", "T0000001"); err != nil || again.ID != "INC-2" {
		t.Fatalf("CASE-8 on node 2: %+v, %v; want INC-2", again, err)
	}
	// No acknowledgement, and the commit reaches the log only when the case is
	// decided again: that decision finds it, and opens no second incident.
	l.set("hold")
	if _, err := a.reg.OpenFraudIncident("CASE-9", "000000000000001", "T0000001"); !errors.Is(err, statelog.ErrUnavailable) {
		t.Fatalf("CASE-9 without an acknowledgement: %v", err)
	}
	l.set("up")
	if inc, err := a.reg.OpenFraudIncident("CASE-9", "000000000000001", "T0000001"); err != nil || inc.ID != "INC-3" || inc.Case != "CASE-9" {
		t.Fatalf("CASE-9 decided again: %+v, %v; want INC-3", inc, err)
	}
	deliver(t, mem)
	sameIncidents(t, 3, a, b)
}

// TestAlertActedAtLeastOnce: an alert whose commit was stored although its
// acknowledgement was lost comes back through the follower without its actions'
// results; the monitor's next run acts on it.
func TestAlertActedAtLeastOnce(t *testing.T) {
	mem, l, a, _ := flakyPair(t, Options{})
	softposRule(t, a, AlertAction{Type: ActionLog})
	mon := NewMonitor(a.reg, a.clock.Now, MonitorOptions{})
	ctx := context.Background()
	l.set("lose")
	if raised, err := mon.RunOnce(ctx, t0.Add(time.Hour)); !errors.Is(err, statelog.ErrUnavailable) || len(raised) != 0 {
		t.Fatalf("run with a lost acknowledgement: %d raised, %v", len(raised), err)
	}
	l.set("up")
	deliver(t, mem)
	if as, _ := a.reg.Alerts(AlertFilterQuery{}); len(as) != 1 || as[0].Acted {
		t.Fatalf("after delivery: %+v; want one alert, not acted on", as)
	}
	if raised, err := mon.RunOnce(ctx, t0.Add(time.Hour+30*time.Second)); err != nil || len(raised) != 0 {
		t.Fatalf("a run within the monitor's interval: %d raised, %v", len(raised), err)
	}
	if as, _ := a.reg.Alerts(AlertFilterQuery{}); len(as) != 1 || as[0].Acted {
		t.Fatalf("acted on within the monitor's interval (another node's monitor may be acting): %+v", as)
	}
	if raised, err := mon.RunOnce(ctx, t0.Add(time.Hour+time.Minute)); err != nil || len(raised) != 0 {
		t.Fatalf("the next run: %d raised, %v", len(raised), err)
	}
	as, _ := a.reg.Alerts(AlertFilterQuery{})
	if len(as) != 1 || !as[0].Acted || len(as[0].Actions) != 1 || !as[0].Actions[0].OK || as[0].Actions[0].Type != ActionLog {
		t.Fatalf("after the next run: %+v; want its log action run", as)
	}

}

// TestSharedIncidentLandsLate: a commit with no acknowledgement reaches the log
// only after the node has caught up and just before its retry: the retry meets
// it, catches up, finds the incident landed, and does not store it again.
func TestSharedIncidentLandsLate(t *testing.T) {
	mem, l, a, b := flakyPair(t, Options{})
	l.set("hold")
	a.reg.Check(thief(a))
	a.reg.FlushIncidents()
	l.set("up")
	a.reg.FlushIncidents()
	deliver(t, mem)
	sameIncidents(t, 1, a, b)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held != nil {
		t.Fatal("the held commit never reached the log")
	}
}

// TestLateAlertOfDisabledRule: an alert left without its actions' results whose
// rule was disabled since is marked acted with no action run.
func TestLateAlertOfDisabledRule(t *testing.T) {
	mem, l, a, _ := flakyPair(t, Options{})
	ar := softposRule(t, a, AlertAction{Type: ActionLog})
	mon := NewMonitor(a.reg, a.clock.Now, MonitorOptions{})
	ctx := context.Background()
	l.set("lose")
	if _, err := mon.RunOnce(ctx, t0.Add(time.Hour)); !errors.Is(err, statelog.ErrUnavailable) {
		t.Fatalf("run with a lost acknowledgement: %v", err)
	}
	l.set("up")
	deliver(t, mem)
	ar.Disabled = true
	if _, err := a.reg.PutAlertRule(alice, ar); err != nil {
		t.Fatal(err)
	}
	if _, err := mon.RunOnce(ctx, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	as, _ := a.reg.Alerts(AlertFilterQuery{})
	if len(as) != 1 || !as[0].Acted || len(as[0].Actions) != 1 || as[0].Actions[0].Type != "none" {
		t.Fatalf("the late alert of a disabled rule: %+v; want no action run", as[0].Actions)
	}
}

// TestLandedOnlyWhenAwaited: a node that replays its own incidents (the same
// node number on a new disk) notes none of them as landed: only an attempt of
// this run or a copy on disk waits for one, and nothing else would ever take
// the note back.
func TestLandedOnlyWhenAwaited(t *testing.T) {
	mem := &statelog.Memory{}
	a := newNodeOpts(t, mem, Options{Log: mem, Node: 1})
	deliver(t, mem)
	for range 5 {
		a.reg.Check(thief(a))
	}
	a.reg.FlushIncidents()
	c := newNodeOpts(t, mem, Options{Log: mem, Node: 1}) // node 1 again, on a new disk
	deliver(t, mem)
	sameIncidents(t, 5, a, c)
	c.reg.mu.Lock()
	n := len(c.reg.incidents.landed)
	c.reg.mu.Unlock()
	if n != 0 {
		t.Errorf("%d of node 1's replayed incidents noted as landed; none waits for them", n)
	}
}

// TestRemoteIncidentHook: OnRemoteIncident sees each new incident of another
// node once, not this node's own, nor an acknowledgement of one.
func TestRemoteIncidentHook(t *testing.T) {
	mem, _, a, b := flakyPair(t, Options{})
	var onA, onB []string
	a.reg.OnRemoteIncident(func(inc *Incident) { onA = append(onA, inc.ID+" "+string(inc.Reason)) })
	b.reg.OnRemoteIncident(func(inc *Incident) { onB = append(onB, inc.ID+" "+string(inc.Reason)) })
	a.reg.Check(thief(a))
	a.reg.FlushIncidents()
	if _, err := a.reg.OpenFraudIncident("CASE-1", "000000000000001", "T0000001"); err != nil {
		t.Fatal(err)
	}
	deliver(t, mem)
	if _, err := b.reg.AcknowledgeIncident(carol, "INC-2", ""); err != nil {
		t.Fatal(err)
	}
	deliver(t, mem)
	if got := strings.Join(onB, ", "); got != "INC-1 device-mismatch, INC-2 confirmed-fraud" {
		t.Errorf("node 2's hook saw %q", got)
	}
	if len(onA) != 0 {
		t.Errorf("node 1's hook saw %q: its own incidents, or node 2's acknowledgement", onA)
	}
}
