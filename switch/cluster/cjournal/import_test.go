package cjournal

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/switch/journal"
)

// TestImport: a stopped single switch's records and batch closes, imported through
// one node in two runs (the second going on after the first, through another node),
// reach every node's store: by RRN, by duplicate key, in scans and in OnRemote; its
// terminals' batch closes too. Records out of order, already imported, not final or
// with a cluster node's RRN are refused, and so is a message after another import's.
func TestImport(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// The single switch: 1,200 transactions on two terminals, both batches closed.
	single := t.TempDir()
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(single, "badger")).WithLogger(nil).WithSyncWrites(false))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old, err := journal.Open(db, journal.Options{Dir: filepath.Join(single, "journal")})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	at := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	const n = 1200
	for k := range n {
		if _, err := writeTxn(ctx, old, fmt.Sprintf("S%d", k%2), fmt.Sprintf("%06d", k+1), at.Add(time.Duration(k)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	closes := []BatchClose{{TID: "S0", At: at.Add(2 * time.Hour)}, {TID: "S1", At: at.Add(3 * time.Hour)}}
	for _, c := range closes {
		if err := old.CloseBatch(ctx, c.TID, c.At); err != nil {
			t.Fatal(err)
		}
	}
	var recs []*journal.Record
	if err := old.ScanFrom(ctx, "", func(r *journal.Record) bool { recs = append(recs, r); return true }); err != nil {
		t.Fatal(err)
	}
	if len(recs) != n {
		t.Fatalf("the single switch holds %d records; %d written", len(recs), n)
	}
	var got []BatchClose
	if err := old.BatchCloses(func(tid string, at time.Time) error { got = append(got, BatchClose{tid, at}); return nil }); err != nil || len(got) != 2 || got[1] != closes[1] {
		t.Fatalf("BatchCloses: %v %v", got, err)
	}

	// Messages of about 16 KB (a hundred records), so that each run takes several.
	defer func(m int) { importMsgMax = m }(importMsgMax)
	importMsgMax = 16 << 10

	nc := startCluster(t, ctx, 3)
	base := t.TempDir()
	ms := make([]*member, 3)
	for i := range ms {
		ms[i] = openMember(t, ctx, nc.nodes[i], i+1, 3, filepath.Join(base, fmt.Sprint(i+1)))
	}
	defer func() {
		for _, m := range ms {
			m.close(t)
		}
	}()

	refused := func(what, want string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: %v; want an error saying %q", what, err, want)
		}
	}
	open := *recs[5]
	open.RC, open.State = "", journal.StateSent
	_, err = ms[0].j.Import(ctx, "s1", "", nil, []*journal.Record{recs[0], &open})
	refused("a record not final", "is not final", err)
	_, err = ms[0].j.Import(ctx, "s1", "", nil, []*journal.Record{recs[1], recs[0]})
	refused("records out of order", "ascending RRN order", err)
	nodes := *recs[0]
	nodes.RRN = "100000000001"
	_, err = ms[0].j.Import(ctx, "s1", "", nil, []*journal.Record{&nodes})
	refused("a cluster node's RRN", "not a single switch's", err)
	if st, err := ms[0].j.ImportState(ctx); err != nil || st.Messages != 0 {
		t.Fatalf("refused imports stored %d messages (%v)", st.Messages, err)
	}

	// The first run: the batch closes and 700 records, through node 1.
	res, err := ms[0].j.Import(ctx, "s1", "", closes, recs[:700])
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 700 || res.Closes != 2 || res.Messages < 2 || res.LastRRN != recs[699].RRN || !slices.Equal(res.AppliedBy, []int{1}) {
		t.Fatalf("first run: %+v", res)
	}
	st, err := ms[1].j.ImportState(ctx)
	if err != nil || st.LastRRN != recs[699].RRN || st.Messages != uint64(res.Messages) {
		t.Fatalf("state after the first run, from node 2: %+v %v (run: %+v)", st, err, res)
	}
	// Without an ImportWait, Import returns once node 1's own applier has applied
	// the run.
	if applied, _ := ms[0].j.Position(); applied < st.LastSeq {
		t.Fatalf("node 1's applier stands at %d when the import returns; its last message is %d", applied, st.LastSeq)
	}
	_, err = ms[1].j.Import(ctx, "s1", recs[699].RRN, nil, recs[690:710])
	refused("records imported already", "holds the import up to RRN "+recs[699].RRN, err)
	// An import that read the state before the first run: another moved it.
	_, err = ms[1].j.Import(ctx, "s1", "", nil, recs[700:710])
	if !errors.Is(err, ErrImportConflict) {
		t.Fatalf("an import behind the stream: %v; want ErrImportConflict", err)
	}
	// A message published after another import's: refused, nothing stored.
	stale := st
	stale.LastSeq--
	_, err = ms[1].j.importAfter(ctx, stale, "s1", nil, recs[700:701])
	refused("a stale import", "another import published", err)
	if !errors.Is(err, ErrImportConflict) {
		t.Fatalf("a stale import: %v is not ErrImportConflict", err)
	}

	// Another single switch's journal: refused.
	_, err = ms[1].j.Import(ctx, "s2", recs[699].RRN, nil, recs[700:710])
	refused("another switch's import", "holds an import of another single switch", err)
	_, err = ms[1].j.Import(ctx, "", recs[699].RRN, nil, recs[700:710])
	refused("an import without an identity", "no identity", err)

	// The second run, through node 2, whose ImportWait fails at its third call
	// (the appliers behind): it stops, what it published stays, and a third run
	// goes on after it.
	var (
		waited []uint64
		failAt = 3
	)
	before := st.Messages
	ms[1].j.opts.ImportWait = func(ctx context.Context, seq uint64) ([]int, error) {
		if len(waited) > 0 && seq <= waited[len(waited)-1] {
			return nil, fmt.Errorf("waited for message %d after %d", seq, waited[len(waited)-1])
		}
		waited = append(waited, seq)
		if len(waited) == failAt {
			return nil, fmt.Errorf("%w: node 3 (at 1) below it", ErrImportBehind)
		}
		st, err := ms[1].j.ImportState(ctx)
		if err != nil {
			return nil, err
		}
		// Published beyond the message waited for: never importAhead or more.
		if ahead := st.Messages - before - uint64(len(waited)); ahead >= importAhead {
			return nil, fmt.Errorf("%d messages published beyond message %d before every node applied it", ahead, seq)
		}
		return []int{2, 3}, ms[1].j.WaitApplied(ctx, seq)
	}
	res, err = ms[1].j.Import(ctx, "s1", recs[699].RRN, nil, recs[700:])
	if !errors.Is(err, ErrImportBehind) || !strings.Contains(err.Error(), "node 3 (at 1) below it") || res.Messages != failAt+importAhead-1 {
		t.Fatalf("second run, the appliers behind at its third message: %+v %v; want ErrImportBehind after %d messages", res, err, failAt+importAhead-1)
	}
	if st, err = ms[1].j.ImportState(ctx); err != nil || st.LastRRN != res.LastRRN {
		t.Fatalf("state after the stopped run: %+v %v; want the import up to %s", st, err, res.LastRRN)
	}
	failAt, waited, before = 0, nil, st.Messages
	res2, err := ms[1].j.Import(ctx, "s1", res.LastRRN, nil, recs[700+res.Records:])
	if err != nil || res.Records+res2.Records != n-700 || res2.LastRRN != recs[n-1].RRN {
		t.Fatalf("third run: %+v %v", res2, err)
	}
	if st, err = ms[1].j.ImportState(ctx); err != nil || len(waited) != res2.Messages || waited[len(waited)-1] != st.LastSeq || !slices.Equal(res2.AppliedBy, []int{2, 3}) {
		t.Fatalf("the third run waited for messages %v; it published %d, the last %d, applied by nodes %v (%v)", waited, res2.Messages, st.LastSeq, res2.AppliedBy, err)
	}

	for _, m := range ms {
		if err := m.j.CaughtUp(ctx); err != nil {
			t.Fatal(err)
		}
		all := scanAll(t, ctx, m)
		if len(all) != n {
			t.Fatalf("node %d scans %d records; %d imported", m.num, len(all), n)
		}
		for _, r := range recs {
			g := all[r.RRN]
			if g == nil || g.RC != r.RC || g.State != r.State || g.STAN != r.STAN {
				t.Fatalf("node %d: imported %s is %+v; want %+v", m.num, r.RRN, g, r)
			}
		}
		last := recs[n-1]
		if rrn, ok, err := m.j.LookupDuplicate(last.TID, last.STAN, last.DE7); err != nil || !ok || rrn != last.RRN {
			t.Fatalf("node %d: duplicate lookup of the imported %s: %q %v %v", m.num, last.RRN, rrn, ok, err)
		}
		for _, c := range closes {
			if lb, err := m.j.LastBatch(c.TID); err != nil || !lb.Equal(c.At) {
				t.Fatalf("node %d: batch of %s closed at %v, %v; want %v", m.num, c.TID, lb, err, c.At)
			}
		}
		m.mu.Lock()
		remote := len(m.remote)
		m.mu.Unlock()
		if remote != n {
			t.Fatalf("node %d's OnRemote saw %d imported records; want %d", m.num, remote, n)
		}
	}

	// The import's messages gone from the stream (aged out): a node that holds the
	// records refuses to import them again from nothing.
	if err := ms[2].j.stream.Purge(ctx, jetstream.WithPurgeSubject(importSubject)); err != nil {
		t.Fatal(err)
	}
	_, err = ms[2].j.Import(ctx, "s1", "", nil, recs[:1])
	refused("an import again after its messages aged out", "whose messages are no longer in the stream", err)
}

// TestBeforeFlush: the applier calls BeforeFlush before it writes its position, and
// while BeforeFlush fails (the DUKPT counters raised for the records could not be
// synced) the position stays where it was; once it succeeds the position moves on.
func TestBeforeFlush(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc := startCluster(t, ctx, 1)
	m := openMember(t, ctx, nc.nodes[0], 1, 1, t.TempDir())
	defer m.close(t)
	at := time.Now().UTC().Add(-time.Hour)
	rec := answer(request("000000000001", "S1", "000001", at), at)

	failing := make(chan struct{}, 1)
	m.mu.Lock()
	m.beforeFlush = func() error {
		select {
		case failing <- struct{}{}:
		default:
		}
		return errors.New("sync failed")
	}
	m.mu.Unlock()
	before, _ := m.j.Position()
	// Import publishes the record; its wait for the applier (which cannot write its
	// position here) is left out.
	m.j.opts.ImportWait = func(context.Context, uint64) ([]int, error) { return nil, nil }
	if _, err := m.j.Import(ctx, "s1", "", nil, []*journal.Record{rec}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-failing: // the applier applied the message and tried to write its position
	case <-ctx.Done():
		t.Fatal("the applier never called BeforeFlush")
	}
	if applied, _ := m.j.Position(); applied != before {
		t.Fatalf("position %d after a failed BeforeFlush; want %d kept", applied, before)
	}
	m.mu.Lock()
	m.beforeFlush = nil
	m.mu.Unlock()
	if err := m.j.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if applied, _ := m.j.Position(); applied <= before || m.flushes < 2 || len(m.remote) != 1 {
		t.Fatalf("after BeforeFlush succeeds: position %d (was %d), %d flushes, the record handed on %d times", applied, before, m.flushes, len(m.remote))
	}
}
