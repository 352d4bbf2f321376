package cjournal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/switch/cluster"
	"github.com/switchyard/switchyard/switch/journal"
)

// TestCluster runs three nodes' journals on a 3-node JetStream cluster through the
// life of a cluster: replication, cluster-wide duplicates, retried publishes,
// restarts with and without the data directory, and the loss of the quorum.
func TestCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	nc := startCluster(t, ctx, 3)
	base := t.TempDir()
	dirs := []string{filepath.Join(base, "m1"), filepath.Join(base, "m2"), filepath.Join(base, "m3")}
	ms := make([]*member, 3)
	for i := range ms {
		ms[i] = openMember(t, ctx, nc.nodes[i], i+1, 3, dirs[i])
	}
	defer func() {
		for _, m := range ms {
			m.close(t)
		}
	}()
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	written := map[string]int{} // RRN -> node
	var wmu sync.Mutex

	// Traffic on all three nodes at once; node 1 also closes a batch.
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 20 {
				rrn, err := journalTxn(ctx, m, fmt.Sprintf("T%d", i+1), fmt.Sprintf("%06d", k+1), at.Add(time.Duration(k)*time.Second))
				if err != nil {
					t.Errorf("node %d, transaction %d: %v", i+1, k, err)
					return
				}
				wmu.Lock()
				written[rrn] = i + 1
				wmu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	batchAt := at.Add(time.Hour)
	if err := ms[0].j.CloseBatch(ctx, "T1", batchAt); err != nil {
		t.Fatal(err)
	}
	for rrn, node := range written {
		if rrn[:1] != fmt.Sprint(node) {
			t.Fatalf("node %d handed out RRN %s", node, rrn)
		}
	}

	t.Run("replicated", func(t *testing.T) {
		for _, m := range ms {
			if err := m.j.CaughtUp(ctx); err != nil {
				t.Fatal(err)
			}
		}
		m3 := ms[2]
		for rrn, node := range written {
			rec, err := m3.j.Get(rrn)
			if err != nil {
				t.Fatalf("node 3: %s of node %d: %v", rrn, node, err)
			}
			// The delivery marks go to the stream in the background: poll for them.
			for rec.State != journal.StateResponded && ctx.Err() == nil {
				time.Sleep(time.Millisecond) // polling, with the test's deadline
				rec, _ = m3.j.Get(rrn)
			}
			if rec.RC != "00" || rec.State != journal.StateResponded {
				t.Fatalf("node 3: %s of node %d is %s/%q; want the final version with its delivery", rrn, node, rec.State, rec.RC)
			}
			if got, ok, err := m3.j.LookupDuplicate(rec.TID, rec.STAN, rec.DE7); err != nil || !ok || got != rrn {
				t.Fatalf("node 3: duplicate lookup of %s: %s %v %v", rrn, got, ok, err)
			}
		}
		// Every record exactly once on every node.
		for _, m := range ms {
			got := scanAll(t, ctx, m)
			if len(got) != len(written) {
				t.Fatalf("node %d scans %d records; %d were written", m.num, len(got), len(written))
			}
		}
		if lb, err := m3.j.LastBatch("T1"); err != nil || !lb.Equal(batchAt) {
			t.Fatalf("node 3: batch of T1 closed at %v, %v; want %v", lb, err, batchAt)
		}
		// OnRemote saw each other node's versions (two per transaction), never its own.
		m3.mu.Lock()
		remote := append([]string(nil), m3.remote...)
		m3.mu.Unlock()
		if len(remote) != 2*40 {
			t.Errorf("node 3's OnRemote saw %d versions; want 80", len(remote))
		}
		for _, rrn := range remote {
			if written[rrn] == 3 {
				t.Fatalf("OnRemote of node 3 saw its own %s", rrn)
			}
		}
		// ScanFrom walks the node's own RRNs; ScanNode another node's.
		var own, other int
		if err := m3.j.ScanFrom(ctx, "", func(r *journal.Record) bool { own++; return r.RRN[0] == '3' }); err != nil || own != 20 {
			t.Fatalf("ScanFrom on node 3: %d records, %v; want its 20", own, err)
		}
		if err := m3.j.ScanNode(ctx, 1, func(r *journal.Record) bool { other++; return r.RRN[0] == '1' }); err != nil || other != 20 {
			t.Fatalf("ScanNode(1) on node 3: %d records, %v; want node 1's 20", other, err)
		}
		if st := m3.j.Stats(); st.Lag != 0 || st.Applied == 0 || st.AppliedRemote != 80 {
			t.Fatalf("node 3 stats after catching up: %+v", st)
		}
	})

	// A barrier on node 1 returns once node 1 holds every record node 2 wrote before
	// it: nothing to wait or poll for after it (a survivor's recovery scan).
	t.Run("barrier", func(t *testing.T) {
		var rrns []string
		for k := range 30 {
			rrn, err := journalTxn(ctx, ms[1], "TB", fmt.Sprintf("%06d", k+1), at.Add(2*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			rrns = append(rrns, rrn)
			written[rrn] = 2 // for the scans of the subtests below
		}
		if err := ms[0].j.Barrier(ctx); err != nil {
			t.Fatal(err)
		}
		for _, rrn := range rrns {
			if rec, err := ms[0].j.Get(rrn); err != nil || rec.RC != "00" {
				t.Fatalf("node 1 after a barrier: %s of node 2: %v %v", rrn, rec, err)
			}
		}
		// The barrier is no record and no error, on any node.
		for _, m := range ms {
			if err := m.j.Barrier(ctx); err != nil {
				t.Fatal(err)
			}
			if st := m.j.Stats(); st.ApplyErrors != 0 {
				t.Fatalf("node %d: %d apply errors", m.num, st.ApplyErrors)
			}
			if got := scanAll(t, ctx, m); len(got) != len(written) {
				t.Fatalf("node %d scans %d records; %d were written", m.num, len(got), len(written))
			}
		}
	})

	t.Run("duplicate across nodes", func(t *testing.T) {
		// The same request reaches node 1 and node 2 at the same moment.
		reqAt := at.Add(2 * time.Hour)
		errs := make([]error, 2)
		rrns := make([]string, 2)
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rrns[i], _ = ms[i].j.NextRRN()
				errs[i] = ms[i].j.Write(ctx, request(rrns[i], "TDUP", "000777", reqAt), true, true)
			}()
		}
		wg.Wait()
		win, lose := 0, 1
		if errs[0] != nil {
			win, lose = 1, 0
		}
		var de *journal.DuplicateError
		if errs[win] != nil || !errors.As(errs[lose], &de) {
			t.Fatalf("two first writes of one request: %v, %v; want one success and a DuplicateError", errs[0], errs[1])
		}
		if de.RRN != rrns[win] || de.Key != journal.DupKey("TDUP", "000777", reqAt.Format("0102150405")) {
			t.Fatalf("DuplicateError %+v; want the key and the winner's RRN %s", de, rrns[win])
		}
		if _, err := ms[lose].j.Get(rrns[lose]); !errors.Is(err, journal.ErrNotFound) {
			t.Fatalf("the loser wrote its record locally: %v", err)
		}
		// The loser's entry is in the stream, void: no node applies it.
		for _, m := range ms {
			if err := m.j.Barrier(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := m.j.Get(rrns[lose]); !errors.Is(err, journal.ErrNotFound) {
				t.Fatalf("node %d applied the loser's void first version %s: %v", m.num, rrns[lose], err)
			}
			if got, ok, _ := m.j.LookupDuplicate("TDUP", "000777", reqAt.Format("0102150405")); !ok || got != rrns[win] {
				t.Fatalf("node %d's duplicate index: %s %v; want the winner %s", m.num, got, ok, rrns[win])
			}
		}
		// The loser finds the original at once (the pipeline answers with it).
		if orig, err := ms[lose].j.Get(de.RRN); err != nil || orig.STAN != "000777" {
			t.Fatalf("the loser cannot read the original %s: %+v %v", de.RRN, orig, err)
		}
		// The winner's own retry (a lost acknowledgement) is not a duplicate.
		if err := ms[win].j.Write(ctx, request(rrns[win], "TDUP", "000777", reqAt), true, true); err != nil {
			t.Fatalf("the winner's retry: %v", err)
		}
		if err := ms[lose].j.CaughtUp(ctx); err != nil {
			t.Fatal(err)
		}
		if got, ok, _ := ms[lose].j.LookupDuplicate("TDUP", "000777", reqAt.Format("0102150405")); !ok || got != rrns[win] {
			t.Fatalf("the loser's duplicate index: %s %v; want %s", got, ok, rrns[win])
		}
		written[rrns[win]] = win + 1
	})

	// Entries are decided in stream order, by each applier alone: within one group,
	// the second first version of a key is void though the first is not yet
	// committed to any store; a later group's is void too; every node agrees.
	t.Run("first versions decided in stream order", func(t *testing.T) {
		reqAt := at.Add(4 * time.Hour)
		a := request("200000088001", "TORD", "000001", reqAt)
		b := request("200000088002", "TORD", "000001", reqAt)
		c := request("100000088003", "TORD", "000001", reqAt)
		m := ms[1].j.message(kindGroup, false, append(firstEntry(t, a), firstEntry(t, b)...))
		ms[1].j.setID(m)
		if _, err := ms[1].j.await(ctx, "two first versions of one key", m, nil); err != nil {
			t.Fatal(err)
		}
		m = ms[0].j.message(kindGroup, false, firstEntry(t, c))
		ms[0].j.setID(m)
		if _, err := ms[0].j.await(ctx, "a third", m, nil); err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if err := m.j.CaughtUp(ctx); err != nil {
				t.Fatal(err)
			}
			if rec, err := m.j.Get(a.RRN); err != nil || rec.TID != "TORD" {
				t.Fatalf("node %d lacks the first of the key, %s: %+v %v", m.num, a.RRN, rec, err)
			}
			for _, void := range []string{b.RRN, c.RRN} {
				if _, err := m.j.Get(void); !errors.Is(err, journal.ErrNotFound) {
					t.Fatalf("node %d applied the void %s: %v", m.num, void, err)
				}
			}
			if got, ok, _ := m.j.LookupDuplicate("TORD", "000001", reqAt.Format("0102150405")); !ok || got != a.RRN {
				t.Fatalf("node %d's duplicate index: %s %v; want %s", m.num, got, ok, a.RRN)
			}
		}
		// A writer of node 1 now gets a DuplicateError naming the first.
		d := request("100000088004", "TORD", "000001", reqAt)
		var de *journal.DuplicateError
		if err := ms[0].j.Write(ctx, d, true, true); !errors.As(err, &de) || de.RRN != a.RRN {
			t.Fatalf("a first write of the key on node 1: %v; want a DuplicateError naming %s", err, a.RRN)
		}
		written[a.RRN] = 2
	})

	t.Run("retried publish", func(t *testing.T) {
		j := ms[0].j
		before, err := j.stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := j.message(kindRecord, false, mustEncode(t, answer(request("100000099999", "TR", "000001", at), at)))
		j.setID(m)
		a1, err := j.await(ctx, "first", m, nil)
		if err != nil {
			t.Fatal(err)
		}
		a2, err := j.await(ctx, "retry", m, nil)
		if err != nil {
			t.Fatal(err)
		}
		after, err := j.stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !a2.Duplicate || a2.Sequence != a1.Sequence || after.State.Msgs != before.State.Msgs+1 {
			t.Fatalf("publish and retry of one version: %+v, %+v, stream %d -> %d messages; want it stored once",
				a1, a2, before.State.Msgs, after.State.Msgs)
		}
		// Keep the stream's records consistent with the rest of the test.
		if err := j.Write(ctx, request("100000099999", "TR", "000001", at), true, true); err != nil {
			t.Fatal(err)
		}
		written["100000099999"] = 1
	})

	// A write-ahead record the stream stored but whose acknowledgement was lost (the
	// pipeline answered 91 and keeps the final version for the journal's return):
	// the final version, written later as a first write, reaches the other nodes as
	// an update, not only this node's store.
	var lostRRN string
	t.Run("final version after a lost acknowledgement", func(t *testing.T) {
		j := ms[0].j
		rrn, err := j.NextRRN()
		if err != nil {
			t.Fatal(err)
		}
		lostRRN = rrn
		req := request(rrn, "TLOST", "000001", at.Add(5*time.Hour))
		// The group is stored; nobody waits for its verdict (the writer gave up).
		ack := sendFirst(t, ctx, j, req, "write-ahead, its acknowledgement lost")
		// The applier takes it (the key is free) and writes it to node 1's store.
		if err := j.WaitApplied(ctx, ack.Sequence); err != nil {
			t.Fatal(err)
		}
		if rec, err := j.Get(rrn); err != nil || rec.State != journal.StateReceived {
			t.Fatalf("node 1 holds the write-ahead %s as %+v (%v); want it applied from the stream", rrn, rec, err)
		}
		final := answer(req, at.Add(5*time.Hour+time.Millisecond))
		final.RC, final.AuthCode, final.DecidedBy, final.Reason = "91", "", "journal", "journal-unavailable"
		// A writer waits for the final version's verdict meanwhile: the same
		// RRN's write-ahead entry the resender sends again (late, below) must not
		// be taken for it.
		if err := j.Write(ctx, final, true, true); err != nil {
			t.Fatalf("the final version as a first write: %v", err)
		}
		// The write-ahead entry again, late (a failed group the resender sent after
		// the final version): every node keeps the final version.
		sendFirst(t, ctx, j, req, "the write-ahead record again, late")
		for _, m := range ms {
			if err := m.j.Barrier(ctx); err != nil {
				t.Fatal(err)
			}
			if rec, err := m.j.Get(rrn); err != nil || rec.RC != "91" {
				t.Fatalf("node %d holds %s as %+v (%v); want the final version, 91", m.num, rrn, rec, err)
			}
		}
		if rec, err := j.Get(rrn); err != nil || rec.RC != "91" {
			t.Fatalf("node 1 holds %s as %+v (%v); want the final version", rrn, rec, err)
		}
		written[rrn] = 1
	})

	// The same as the pipeline writes it: the write-ahead record carries "sent",
	// and the final version kept for the journal's return takes it back
	// (pipeline's unsent) and adds its answer, as many events as the write-ahead.
	// Applied after the write-ahead it must still replace it (it did not: the
	// record stayed open, CI's TestClusterNodeKilled); the write-ahead sent again
	// late after it must not.
	var lostRRN2 string
	t.Run("final version as long as the write-ahead", func(t *testing.T) {
		j := ms[0].j
		rrn, err := j.NextRRN()
		if err != nil {
			t.Fatal(err)
		}
		lostRRN2 = rrn
		req := request(rrn, "TLOST", "000002", at.Add(6*time.Hour))
		req.AddEvent(journal.StateSent, at.Add(6*time.Hour), "")
		ack := sendFirst(t, ctx, j, req, "write-ahead, its acknowledgement lost")
		if err := j.WaitApplied(ctx, ack.Sequence); err != nil {
			t.Fatal(err)
		}
		final := *req
		final.Events = append([]journal.Event(nil), req.Events[:1]...) // "sent" taken back
		final.State = journal.StateReceived
		final.RC, final.DecidedBy, final.Reason = "91", "journal", "journal-unavailable"
		final.AddEvent(journal.StateDeclined, at.Add(6*time.Hour+time.Millisecond), "journal unavailable: answered 91")
		if len(final.Events) != len(req.Events) {
			t.Fatalf("the final version has %d events, the write-ahead %d: not the case under test", len(final.Events), len(req.Events))
		}
		if err := j.Write(ctx, &final, true, true); err != nil {
			t.Fatalf("the final version as a first write: %v", err)
		}
		sendFirst(t, ctx, j, req, "the write-ahead record again, late")
		for _, m := range ms {
			if err := m.j.Barrier(ctx); err != nil {
				t.Fatal(err)
			}
			if rec, err := m.j.Get(rrn); err != nil || rec.RC != "91" || !rec.Final() {
				t.Fatalf("node %d holds %s as %+v (%v); want the final version, 91", m.num, rrn, rec, err)
			}
		}
		written[rrn] = 1
	})

	t.Run("restart catches up", func(t *testing.T) {
		ms[2].close(t)
		var missed []string
		for k := range 5 {
			rrn, err := journalTxn(ctx, ms[0], "T1", fmt.Sprintf("%06d", 100+k), at.Add(3*time.Hour+time.Duration(k)*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			written[rrn] = 1
			missed = append(missed, rrn)
		}
		ms[2] = openMember(t, ctx, nc.nodes[2], 3, 3, dirs[2]) // Open returns caught up
		for _, rrn := range missed {
			if rec, err := ms[2].j.Get(rrn); err != nil || rec.RC != "00" {
				t.Fatalf("restarted node 3 lacks %s: %+v %v", rrn, rec, err)
			}
		}
		if got := scanAll(t, ctx, ms[2]); len(got) != len(written) {
			t.Fatalf("restarted node 3 scans %d records; want %d", len(got), len(written))
		}
	})

	t.Run("empty disk catches up everything", func(t *testing.T) {
		var own []string
		for rrn, node := range written {
			if node == 2 {
				own = append(own, rrn)
			}
		}
		ms[1].close(t)
		if err := os.RemoveAll(dirs[1]); err != nil {
			t.Fatal(err)
		}
		ms[1] = openMember(t, ctx, nc.nodes[1], 2, 3, dirs[1])
		got := scanAll(t, ctx, ms[1])
		if len(got) != len(written) {
			t.Fatalf("node 2 with an empty disk scans %d records; want %d", len(got), len(written))
		}
		var top string
		ms[1].mu.Lock()
		restored := map[string]bool{}
		for _, rrn := range ms[1].restored {
			restored[rrn] = true
		}
		ms[1].mu.Unlock()
		for _, rrn := range own {
			if r := got[rrn]; r == nil || r.RC != "00" && r.TID != "TDUP" && r.TID != "TORD" {
				t.Fatalf("node 2 did not get its own %s back: %+v", rrn, r)
			}
			if !restored[rrn] {
				t.Errorf("OnRestored of node 2 did not see its own %s come back from the stream", rrn)
			}
			top = max(top, rrn)
		}
		if len(restored) != len(own) {
			t.Errorf("OnRestored of node 2 saw %d records; want its own %d", len(restored), len(own))
		}
		for _, m := range []*member{ms[0], ms[2]} { // node 3 restarted on its disk
			m.mu.Lock()
			// Node 1's write-ahead records whose writers gave up (lost
			// acknowledgements) were restored from the stream; nothing else.
			var want []string
			if m.num == 1 {
				want = []string{lostRRN, lostRRN2}
			}
			if !slices.Equal(m.restored, want) {
				t.Errorf("OnRestored of node %d, whose disk held its records, saw %v", m.num, m.restored)
			}
			m.mu.Unlock()
		}
		if next, err := ms[1].j.NextRRN(); err != nil || next <= top {
			t.Fatalf("node 2's next RRN %s (%v) is not past its old ones (up to %s)", next, err, top)
		}
		var n int
		if err := ms[1].j.ScanFrom(ctx, "", func(*journal.Record) bool { n++; return true }); err != nil || n != len(own) {
			t.Fatalf("node 2's ScanFrom: %d records, %v; want its %d", n, err, len(own))
		}
	})

	t.Run("no quorum", func(t *testing.T) {
		ms[1].close(t)
		ms[2].close(t)
		nc.stop(1)
		nc.stop(2)
		rrn, _ := ms[0].j.NextRRN()
		wctx, wcancel := context.WithTimeout(ctx, time.Second)
		start := time.Now()
		err := ms[0].j.Write(wctx, request(rrn, "T1", "000900", at.Add(4*time.Hour)), true, true)
		wcancel()
		took := time.Since(start)
		if !errors.Is(err, journal.ErrUnavailable) || !errors.Is(err, cluster.ErrNoQuorum) || took > 2*time.Second {
			t.Fatalf("durable write with two of three servers down: %v after %v; want ErrUnavailable and ErrNoQuorum within the 1s deadline", err, took)
		}
		t.Log(err)
		if _, err := ms[0].j.Get(rrn); !errors.Is(err, journal.ErrNotFound) {
			t.Fatalf("the refused write-ahead record is in the local store: %v", err)
		}
		// A later version (no duplicate check: published and synced together) too.
		old, err := ms[0].j.Get(firstOf(written, 1))
		if err != nil {
			t.Fatal(err)
		}
		wctx, wcancel = context.WithTimeout(ctx, time.Second)
		err = ms[0].j.Write(wctx, answer(old, at.Add(4*time.Hour)), false, true)
		wcancel()
		if !errors.Is(err, journal.ErrUnavailable) || !errors.Is(err, cluster.ErrNoQuorum) {
			t.Fatalf("durable update with two of three servers down: %v; want ErrUnavailable and ErrNoQuorum", err)
		}
		// The servers come back; the same Journal writes again, by itself.
		nc.start(t, ctx, 1)
		nc.start(t, ctx, 2)
		back := time.Now()
		for i := 0; ; i++ {
			wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
			rrn, _ := ms[0].j.NextRRN()
			// A new request each time (a resend of the refused one would be answered
			// as its duplicate, should the refused write have landed after all).
			err := ms[0].j.Write(wctx, request(rrn, "T1", fmt.Sprintf("%06d", 901+i), at.Add(4*time.Hour)), true, true)
			wcancel()
			if err == nil {
				written[rrn] = 1
				t.Logf("a durable write succeeded %v after the servers were started again", time.Since(back).Round(time.Millisecond))
				break
			}
			// Refused for want of a quorum, or not synced within this attempt's own
			// deadline while the servers elect their leaders again: both are retried
			// until the test's deadline.
			retry := errors.Is(err, journal.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
			if !retry || ctx.Err() != nil {
				t.Fatalf("no durable write after the quorum returned: %v", err)
			}
			t.Logf("after the servers were started again: %v", err)
		}
		// The applier follows the stream again by itself.
		if err := ms[0].j.CaughtUp(ctx); err != nil {
			t.Fatalf("node 1's applier after the quorum returned: %v", err)
		}
	})
}

// firstOf returns an RRN written by node.
func firstOf(written map[string]int, node int) string {
	for rrn, n := range written {
		if n == node {
			return rrn
		}
	}
	return ""
}

func mustEncode(t *testing.T, r *journal.Record) []byte {
	t.Helper()
	b, err := r.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// firstEntry is the data of a group message holding r's first version alone, as
// writeFirst queues it (kind f).
// sendFirst publishes r's first version as a group of its own, as the grouper or
// the resender would, with nobody waiting for its verdict (what says which, in
// errors), and returns the stream's acknowledgement.
func sendFirst(t *testing.T, ctx context.Context, j *Journal, r *journal.Record, what string) *jetstream.PubAck {
	t.Helper()
	m := j.message(kindGroup, false, firstEntry(t, r))
	j.setID(m)
	ack, err := j.await(ctx, what, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ack
}

func firstEntry(t *testing.T, r *journal.Record) []byte {
	t.Helper()
	payload := append(append([]byte{byte(len(r.RRN))}, r.RRN...), mustEncode(t, r)...)
	return append(binary.AppendUvarint([]byte(kindFirst), uint64(len(payload))), payload...)
}

// TestSingleNode: an R1 stream on a standalone server (a cluster of one) journals and
// reads back; the stream holds each version once, with the node's headers.
func TestSingleNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc := startCluster(t, ctx, 1)
	m := openMember(t, ctx, nc.nodes[0], 1, 1, t.TempDir())
	defer m.close(t)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	rrn, err := journalTxn(ctx, m, "T1", "000001", at)
	if err != nil {
		t.Fatal(err)
	}
	if rrn != "100000000001" {
		t.Fatalf("first RRN of node 1: %s", rrn)
	}
	if err := m.j.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := m.j.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Request, answer, delivery mark (the mark's acknowledgement may still be on its way).
	if info.State.Msgs < 2 || info.Config.Replicas != 1 || info.Config.Duplicates != DuplicateWindow || info.Config.MaxAge != DefaultMaxAge {
		t.Fatalf("stream: %+v %+v", info.State, info.Config)
	}
	msg, err := m.j.stream.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "journal.1.g" || msg.Header.Get(hdrNode) != "1" || msg.Header.Get(hdrKind) != kindGroup {
		t.Fatalf("first message: %s %v", msg.Subject, msg.Header)
	}
	// Its first entry: the write-ahead record, kind f, led by its RRN.
	var kinds []string
	if err := decodeGroup(msg.Data, func(kind string, payload []byte) error {
		if len(kinds) == 0 && (kind != kindFirst || int(payload[0]) != len(rrn) || string(payload[1:1+len(rrn)]) != rrn) {
			t.Errorf("first entry: kind %s, %q", kind, payload)
		}
		kinds = append(kinds, kind)
		return nil
	}); err != nil || len(kinds) == 0 {
		t.Fatalf("first message's entries %v: %v", kinds, err)
	}
	// The delivery mark is written with the local store's next group, not waited for.
	for {
		got, err := m.j.Get(rrn)
		if err == nil && got.State == journal.StateResponded {
			break
		}
		if err != nil || ctx.Err() != nil {
			t.Fatalf("read back: %+v %v", got, err)
		}
		time.Sleep(time.Millisecond) // polling, with the test's deadline
	}
}

// TestFence: once the fence says the node's lease is lost, a record's first version
// is refused with journal.ErrUnavailable (the pipeline answers 91) and nothing of it
// is written; a later version of a transaction already in flight still goes.
func TestFence(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc := startCluster(t, ctx, 1)
	m := openMember(t, ctx, nc.nodes[0], 1, 1, t.TempDir())
	defer m.close(t)
	lost := errors.New("cluster: another process took node 1's lease")
	var fenced atomic.Bool
	m.j.opts.Fence = func(context.Context) error {
		if fenced.Load() {
			return lost
		}
		return nil
	}
	at := time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC)
	rrn, err := m.j.NextRRN()
	if err != nil {
		t.Fatal(err)
	}
	inFlight := request(rrn, "T1", "000001", at)
	if err := m.j.Write(ctx, inFlight, true, true); err != nil {
		t.Fatal(err)
	}
	fenced.Store(true)
	rrn2, err := m.j.NextRRN()
	if err != nil {
		t.Fatal(err)
	}
	err = m.j.Write(ctx, request(rrn2, "T1", "000002", at), true, true)
	if !errors.Is(err, journal.ErrUnavailable) || !errors.Is(err, lost) {
		t.Fatalf("a new transaction's first version with the lease lost: %v; want ErrUnavailable naming why", err)
	}
	if err := m.j.Write(ctx, answer(inFlight, at.Add(time.Millisecond)), false, true); err != nil {
		t.Fatalf("the final version of a transaction in flight: %v", err)
	}
	if err := m.j.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	got := scanAll(t, ctx, m)
	if _, ok := got[rrn2]; ok || got[rrn] == nil || got[rrn].RC != "00" {
		t.Fatalf("records after the fence: %v", got)
	}
}
