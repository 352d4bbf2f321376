package cjournal

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/journal/wal"
)

// The applier holds another node's write-ahead version in memory and writes its
// final version in its place (hold.go).

// testClock is the clock Options.HoldRemote is measured on.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// waitFor polls cond until it holds, failing the test at ctx's deadline.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if ctx.Err() != nil {
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
		time.Sleep(2 * time.Millisecond) // polling, with the test's deadline
	}
}

// holdPair is a standalone JetStream server with node 1's journal, holding remote
// write-ahead versions on clock for hold, and node 2's, that writes them.
func holdPair(t *testing.T, ctx context.Context, hold time.Duration, maxHeld int) (m1, m2 *member, clock *testClock, reopen func() *member) {
	t.Helper()
	nc := startCluster(t, ctx, 1)
	clock = &testClock{t: time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)}
	dir1 := filepath.Join(t.TempDir(), "m1")
	set := func(o *Options) { o.HoldRemote, o.MaxHeld, o.Now = hold, maxHeld, clock.Now }
	m1 = openMemberWith(t, ctx, nc.nodes[0], 1, 1, dir1, set)
	m2 = openMember(t, ctx, nc.nodes[0], 2, 1, filepath.Join(t.TempDir(), "m2"))
	t.Cleanup(func() { m2.close(t) })
	reopen = func() *member { return openMemberWith(t, ctx, nc.nodes[0], 1, 1, dir1, set) }
	return m1, m2, clock, reopen
}

// writeAhead writes a request's write-ahead version on m, as the pipeline does.
func writeAhead(t *testing.T, ctx context.Context, m *member, tid, stan string, at time.Time) *journal.Record {
	t.Helper()
	rrn, err := m.j.NextRRN()
	if err != nil {
		t.Fatal(err)
	}
	req := request(rrn, tid, stan, at)
	if err := m.j.Write(ctx, req, true, true); err != nil {
		t.Fatalf("write-ahead of %s: %v", rrn, err)
	}
	return req
}

// applied waits until m's journal serves rrn (held or stored) and returns it.
func applied(t *testing.T, ctx context.Context, m *member, rrn string, final bool) *journal.Record {
	t.Helper()
	var rec *journal.Record
	waitFor(t, ctx, "record "+rrn+" on node 1", func() bool {
		var err error
		rec, err = m.j.Get(rrn)
		if err != nil && !errors.Is(err, journal.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil && rec.Final() == final
	})
	return rec
}

// inStore says whether m's local store (not the held versions) has rrn.
func inStore(t *testing.T, m *member, rrn string) bool {
	t.Helper()
	_, err := m.store.GetStored(rrn)
	if err != nil && !errors.Is(err, journal.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// logVersions counts the versions of each record in the local log of a closed
// member.
func logVersions(t *testing.T, m *member) map[string]int {
	t.Helper()
	n := map[string]int{}
	l, err := wal.Open(filepath.Join(m.dir, "journal"), wal.Options{MaxKind: 255, NoSync: true}, wal.Pos{}, func(f wal.Frame) error {
		if f.Kind == 1 || f.Kind == 2 { // a record's first or later version
			var r journal.Record
			if err := r.UnmarshalBinary(f.Payload); err != nil {
				return err
			}
			n[r.RRN]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestHoldRemoteOneVersion: another node's write-ahead version is held in memory,
// served by Get and LookupDuplicate as if stored (a request resent to this node is
// its duplicate, and waits for it), and its final version alone goes to the local
// store.
func TestHoldRemoteOneVersion(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m1, m2, _, _ := holdPair(t, ctx, time.Minute, 0)
	defer m1.close(t)
	at := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	req := writeAhead(t, ctx, m2, "T9", "000001", at)
	got := applied(t, ctx, m1, req.RRN, false)
	if got.TID != "T9" || got.STAN != "000001" || len(got.Events) != 1 {
		t.Fatalf("held record read back: %+v", got)
	}
	if inStore(t, m1, req.RRN) {
		t.Fatal("the write-ahead version of another node went to the local store: want it held in memory")
	}
	if rrn, ok, err := m1.j.LookupDuplicate("T9", "000001", req.DE7); err != nil || !ok || rrn != req.RRN {
		t.Fatalf("duplicate lookup of the held request: %q %v %v, want %s", rrn, ok, err, req.RRN)
	}
	// The server's readers of the local store (API, console, settlement) see it too.
	if r, err := m1.store.Get(req.RRN); err != nil || r.RRN != req.RRN {
		t.Fatalf("the store's Get of the held request: %+v %v", r, err)
	}
	if rrn, ok, err := m1.store.LookupDuplicate("T9", "000001", req.DE7); err != nil || !ok || rrn != req.RRN {
		t.Fatalf("the store's duplicate lookup of the held request: %q %v %v", rrn, ok, err)
	}
	// The same request resent to node 1: the stream's Nats-Msg-Id says node 2 has it.
	rrn1, err := m1.j.NextRRN()
	if err != nil {
		t.Fatal(err)
	}
	var dup *journal.DuplicateError
	if err := m1.j.Write(ctx, request(rrn1, "T9", "000001", at), true, true); !errors.As(err, &dup) || dup.RRN != req.RRN {
		t.Fatalf("the request resent to node 1: %v, want a duplicate of %s", err, req.RRN)
	}
	if r, err := m1.j.Get(dup.RRN); err != nil || r.Final() {
		t.Fatalf("the original in flight, read on node 1: %+v %v", r, err)
	}

	if err := m2.j.Write(ctx, answer(req, at.Add(time.Millisecond)), false, true); err != nil {
		t.Fatal(err)
	}
	if err := m2.j.MarkDelivery(req.RRN, true, at.Add(2*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if r := applied(t, ctx, m1, req.RRN, true); r.RC != "00" {
		t.Fatalf("final version on node 1: %+v", r)
	}
	waitFor(t, ctx, "the final version and its delivery in node 1's store", func() bool {
		r, err := m1.store.GetStored(req.RRN)
		return err == nil && r.Final() && r.State == journal.StateResponded
	})
	if rrn, ok, err := m1.j.LookupDuplicate("T9", "000001", req.DE7); err != nil || !ok || rrn != req.RRN {
		t.Fatalf("duplicate lookup of the stored request: %q %v %v", rrn, ok, err)
	}
	if st := m1.j.Stats(); st.Held != 1 || st.HeldReplaced != 1 || st.HeldWritten != 0 {
		t.Fatalf("stats: %+v", st)
	}
	m1.close(t)
	if n := logVersions(t, m1)[req.RRN]; n != 1 {
		t.Fatalf("node 1's log holds %d versions of node 2's record, want 1 (the final)", n)
	}
}

// TestHoldRemoteBound: a held version with no final one is written after
// HoldRemote, beyond MaxHeld, for a delivery mark, before a write of this node to
// it, and for a scan of its node (a survivor settling a dead node's transactions).
func TestHoldRemoteBound(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m1, m2, clock, _ := holdPair(t, ctx, 2*time.Second, 3)
	defer m1.close(t)
	at := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)

	a := writeAhead(t, ctx, m2, "T1", "000001", at)
	applied(t, ctx, m1, a.RRN, false)
	if inStore(t, m1, a.RRN) {
		t.Fatal("write-ahead version stored at once: want it held")
	}
	clock.Add(2 * time.Second)
	waitFor(t, ctx, "the held version written after HoldRemote", func() bool { return inStore(t, m1, a.RRN) })

	// MaxHeld 3: a fourth one held writes the oldest.
	var held []*journal.Record
	for i, stan := range []string{"000002", "000003", "000004", "000005"} {
		held = append(held, writeAhead(t, ctx, m2, "T1", stan, at.Add(time.Duration(i+1)*time.Second)))
	}
	applied(t, ctx, m1, held[3].RRN, false)
	waitFor(t, ctx, "the oldest beyond MaxHeld written", func() bool { return inStore(t, m1, held[0].RRN) })
	for _, r := range held[1:] {
		if inStore(t, m1, r.RRN) {
			t.Fatalf("%s stored: want it held (3 at most)", r.RRN)
		}
	}

	// A delivery mark for a held version: the version first.
	if err := m2.j.MarkDelivery(held[1].RRN, false, at.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the marked version stored with its mark", func() bool {
		r, err := m1.store.GetStored(held[1].RRN)
		return err == nil && r.State == journal.StateUndeliver
	})

	// Node 1 writes a version of a held record (as it reverses another node's
	// request): the held one goes first and never over it.
	mine := answer(held[2], at.Add(time.Hour))
	mine.RC, mine.DecidedBy = "91", "switch"
	if err := m1.j.Write(ctx, mine, false, true); err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Hour)
	waitFor(t, ctx, "nothing held but the last", func() bool {
		m1.j.hold.mu.Lock()
		defer m1.j.hold.mu.Unlock()
		return m1.j.hold.held <= 1
	})
	if r, err := m1.j.Get(held[2].RRN); err != nil || r.RC != "91" {
		t.Fatalf("node 1's own version of %s: %+v %v, want RC 91", held[2].RRN, r, err)
	}

	// A query of the local store sees a held one (written there first).
	q := writeAhead(t, ctx, m2, "T2", "000001", at.Add(5*time.Second))
	applied(t, ctx, m1, q.RRN, false)
	var found bool
	if err := m1.store.Scan(ctx, journal.Query{TID: "T2"}, func(r *journal.Record) bool { found = found || r.RRN == q.RRN; return true }); err != nil || !found {
		t.Fatalf("a query of terminal T2 on node 1's store: found %v, %v", found, err)
	}

	// A scan of node 2's records (the settlement of a lost node) sees the held one.
	e := writeAhead(t, ctx, m2, "T1", "000006", at.Add(10*time.Second))
	applied(t, ctx, m1, e.RRN, false)
	var seen []string
	if err := m1.j.ScanNode(ctx, 2, func(r *journal.Record) bool { seen = append(seen, r.RRN); return true }); err != nil {
		t.Fatal(err)
	}
	for _, r := range append([]*journal.Record{a, e}, held...) {
		if !slices.Contains(seen, r.RRN) {
			t.Fatalf("ScanNode(2) saw %v, not %s", seen, r.RRN)
		}
	}
	if r, err := m1.j.Get(held[2].RRN); err != nil || r.RC != "91" {
		t.Fatalf("node 1's own version of %s after the scan: %+v %v", held[2].RRN, r, err)
	}
}

// TestHoldRemoteRestart: the applier's position stays behind a held version, so a
// node that stops (or dies) with one held reads it again from the stream; what it
// had stored up to there it neither applies again nor rolls back.
func TestHoldRemoteRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	m1, m2, _, reopen := holdPair(t, ctx, time.Minute, 0)
	at := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)

	y := writeAhead(t, ctx, m2, "T1", "000001", at)
	x, err := journalTxn(ctx, m2, "T1", "000002", at.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	applied(t, ctx, m1, y.RRN, false)
	applied(t, ctx, m1, x, true)
	waitFor(t, ctx, "x stored", func() bool { return inStore(t, m1, x) })
	if inStore(t, m1, y.RRN) {
		t.Fatal("write-ahead version stored at once: want it held")
	}
	m1.close(t) // the held version goes nowhere, as in a crash

	m1 = reopen()
	defer m1.close(t)
	if r, err := m1.j.Get(y.RRN); err != nil || r.Final() {
		t.Fatalf("after the restart, the write-ahead version of %s: %+v %v", y.RRN, r, err)
	}
	if inStore(t, m1, y.RRN) {
		t.Fatal("after the restart, the write-ahead version went to the store: want it held again")
	}
	if r, err := m1.store.GetStored(x); err != nil || !r.Final() {
		t.Fatalf("after the restart, %s: %+v %v, want its final version", x, r, err)
	}
	m1.mu.Lock()
	remote := slices.Clone(m1.remote)
	m1.mu.Unlock()
	if !slices.Equal(remote, []string{y.RRN}) {
		t.Fatalf("after the restart the applier handed on %v, want only %s (x was stored)", remote, y.RRN)
	}

	if err := m2.j.Write(ctx, answer(y, at.Add(time.Millisecond)), false, true); err != nil {
		t.Fatal(err)
	}
	applied(t, ctx, m1, y.RRN, true)
	if err := m1.j.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	m1.close(t)
	if n := logVersions(t, m1); n[y.RRN] != 1 || n[x] != 1 {
		t.Fatalf("versions in node 1's log: %v, want one of %s and of %s", n, y.RRN, x)
	}
}
