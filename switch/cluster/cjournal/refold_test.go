package cjournal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/journal"
)

// TestReapplyFoldsOnce: OnRemote is how the server folds another node's record into
// the velocity counters and the stand-in book, once, from the record's first final
// version (prev nil or not final: docs/cluster.md, "Velocity counters"). When a
// commit of the local store fails, the applier applies the stream again from its
// last flushed position (reapply); the store lacks the versions of the failed
// group, so OnRemote meets the same final version again with prev nil, and the
// server folds the transaction a second time into counters that already hold it
// (in memory, in this same process). The failure is real: the journal's next
// segment file cannot be created while a directory stands at its name.
func TestReapplyFoldsOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc := startCluster(t, ctx, 1)
	m1 := openMember(t, ctx, nc.nodes[0], 1, 1, t.TempDir())
	defer m1.close(t)

	// Node 2, its journal in segments of one frame each: every group commit starts
	// a new segment file.
	dir := t.TempDir()
	jdir := filepath.Join(dir, "journal")
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "badger")).WithLogger(nil).WithSyncWrites(false))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store, err := journal.Open(db, journal.Options{Dir: jdir, RRNPrefix: "2", IndexDelay: 10 * time.Millisecond, IndexKSN: true, SegmentSize: 1, Prealloc: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	var (
		mu       sync.Mutex
		folds    = map[string]int{} // first final versions OnRemote saw, by RRN
		blockers []string
		unblock  = func() {
			for _, b := range blockers {
				_ = os.Remove(b)
			}
			blockers = nil
		}
	)
	// Each time the applier meets the failed commit it logs that it applies the
	// stream again, and does (the blockers stay: every commit keeps failing).
	reapplied := make(chan struct{}, 64)
	onReapply := func() {
		select {
		case reapplied <- struct{}{}:
		default:
		}
	}
	logger := zerolog.New(io.MultiWriter(zerolog.NewTestWriter(t), onLine{"applying the stream again", onReapply})).Level(zerolog.ErrorLevel)
	j2, err := Open(ctx, nc.nodes[0], store, db, Options{Node: 2, Replicas: 1, AckTimeout: 3 * time.Second, Logger: logger,
		OnRemote: func(rec, prev *journal.Record, _ Latest) {
			if !rec.Final() || (prev != nil && prev.Final()) {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			folds[rec.RRN]++
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()

	// Block the next segment files of node 2's journal: its next commits fail.
	names, err := os.ReadDir(jdir)
	if err != nil {
		t.Fatal(err)
	}
	var segs []string
	for _, e := range names {
		if strings.HasSuffix(e.Name(), ".seg") {
			segs = append(segs, e.Name())
		}
	}
	sort.Strings(segs)
	var last uint32
	if len(segs) > 0 {
		fmt.Sscanf(segs[len(segs)-1], "%08d.seg", &last)
	}
	mu.Lock()
	for n := last + 1; n <= last+64; n++ {
		b := filepath.Join(jdir, fmt.Sprintf("%08d.seg", n))
		if err := os.Mkdir(b, 0o700); err != nil {
			t.Fatal(err)
		}
		blockers = append(blockers, b)
	}
	mu.Unlock()
	defer func() { mu.Lock(); unblock(); mu.Unlock() }()

	// Node 1 journals one transaction; node 2 applies it (and fails to commit it).
	rrn, err := journalTxn(ctx, m1, "T0000001", "000001", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// The applier applies the stream again from its last flushed position twice
	// (each commit fails): each time it meets the transaction's versions again.
	for i := 0; i < 2; i++ {
		select {
		case <-reapplied:
		case <-ctx.Done():
			t.Fatalf("node 2's applier applied the stream again %d times before the test's deadline, want 2", i)
		}
	}
	mu.Lock()
	n := folds[rrn]
	mu.Unlock()
	if n != 1 {
		t.Fatalf("node 2's OnRemote met the first final version of %s %d times (prev nil or not final each time), want 1: the server folds it into the velocity counters and the stand-in book that often", rrn, n)
	}
}

// onLine is a log writer that calls fn for every line that contains sub.
type onLine struct {
	sub string
	fn  func()
}

func (o onLine) Write(p []byte) (int, error) {
	if strings.Contains(string(p), o.sub) {
		o.fn()
	}
	return len(p), nil
}

// TestReapplyRestoresOnce: OnRestored is how the server folds a node's own records,
// given back by the stream to a node rebuilt on an empty disk, into its velocity
// counters (docs/cluster.md, "Velocity counters"). When a commit of the local store
// fails during that restore, the applier applies the stream again from its last
// flushed position; the store lacks the versions of the failed group, so without
// the applier's note of the entries it handed, OnRestored meets the same final
// version again and the server counts the transaction twice. The failure is real,
// as in TestReapplyFoldsOnce: the rebuilt journal's next segment files cannot be
// created.
func TestReapplyRestoresOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc := startCluster(t, ctx, 1)
	m2 := openMember(t, ctx, nc.nodes[0], 2, 1, t.TempDir())
	rrn, err := journalTxn(ctx, m2, "T0000001", "000001", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	m2.close(t)

	// Node 2 again, on an empty disk whose journal cannot commit.
	db, store, jdir := openSegmented(t, t.TempDir(), 2)
	defer blockSegments(t, jdir)()

	var (
		mu    sync.Mutex
		folds = map[string]int{} // final versions OnRestored saw, by RRN
	)
	reapplied := make(chan struct{}, 64)
	onReapply := func() {
		select {
		case reapplied <- struct{}{}:
		default:
		}
	}
	logger := zerolog.New(io.MultiWriter(zerolog.NewTestWriter(t), onLine{"applying the stream again", onReapply})).Level(zerolog.ErrorLevel)
	// Open catches up with the stream before it returns, which the failing
	// commits never let it do: it runs until the test has seen enough.
	octx, ocancel := context.WithCancel(ctx)
	opened := make(chan error, 1)
	go func() {
		j, err := Open(octx, nc.nodes[0], store, db, Options{Node: 2, Replicas: 1, AckTimeout: 3 * time.Second, Logger: logger,
			OnRestored: func(rec, prev *journal.Record, _ Latest) {
				if !rec.Final() || (prev != nil && prev.Final()) {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				folds[rec.RRN]++
			}})
		if err == nil {
			j.Close()
		}
		opened <- err
	}()
	for i := 0; i < 2; i++ {
		select {
		case <-reapplied:
		case <-ctx.Done():
			t.Fatalf("the rebuilt node's applier applied the stream again %d times before the test's deadline, want 2", i)
		}
	}
	ocancel()
	if err := <-opened; err == nil {
		t.Fatal("Open caught up with the stream although every commit of the local store failed")
	}
	mu.Lock()
	n := folds[rrn]
	mu.Unlock()
	if n != 1 {
		t.Fatalf("the rebuilt node's OnRestored met the final version of its own %s %d times (prev nil or not final each time), want 1: the server folds it into the velocity counters that often", rrn, n)
	}
}

// TestLatestSeesUncommitted: OnRemote's latest reads a record as the applier has
// applied it, before the local store shows it. The server folds a void into its
// velocity counters by taking its original back out, once it reads in the original
// that the void reversed it; the original's version that says so comes right before
// the void's own in the stream, and the store shows it only once its group is
// committed (here never: the node's next segment files cannot be created). Read
// from the store, the original did not name the void, and the voided purchase
// stayed in the counters of the nodes that folded it (always on a node rebuilt on
// an empty disk, which meets both versions back to back; now and then on the
// others).
func TestLatestSeesUncommitted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc := startCluster(t, ctx, 1)
	m1 := openMember(t, ctx, nc.nodes[0], 1, 1, t.TempDir())
	defer m1.close(t)
	db, store, jdir := openSegmented(t, t.TempDir(), 2)
	type seen struct {
		reversedBy string
		err        error
	}
	voids := make(chan seen, 8)
	j2, err := Open(ctx, nc.nodes[0], store, db, Options{Node: 2, Replicas: 1, AckTimeout: 3 * time.Second, Logger: zerolog.New(io.Discard),
		OnRemote: func(rec, prev *journal.Record, latest Latest) {
			if rec.Type != "void" || !rec.Final() || (prev != nil && prev.Final()) {
				return
			}
			orig, err := latest(rec.OriginalRRN)
			if err != nil {
				voids <- seen{err: err}
				return
			}
			voids <- seen{reversedBy: orig.ReversedBy}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()

	// Node 1's purchase, which node 2 holds committed.
	at := time.Now()
	rrn, err := journalTxn(ctx, m1, "T0000001", "000001", at)
	if err != nil {
		t.Fatal(err)
	}
	if err := j2.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	defer blockSegments(t, jdir)()

	// Its void: the original's version that names it, then the void's own.
	vrrn, err := m1.j.NextRRN()
	if err != nil {
		t.Fatal(err)
	}
	orig, err := m1.j.Get(rrn)
	if err != nil {
		t.Fatal(err)
	}
	orig.ReversedBy = vrrn
	orig.AddEvent(journal.StateReversed, at.Add(time.Second), vrrn)
	if err := m1.j.Write(ctx, orig, false, true); err != nil {
		t.Fatal(err)
	}
	void := answer(request(vrrn, "T0000001", "000002", at.Add(time.Second)), at.Add(time.Second))
	void.Type, void.ProcCode, void.OriginalRRN = "void", "020000", rrn
	if err := m1.j.Write(ctx, void, true, true); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-voids:
		if got.err != nil || got.reversedBy != vrrn {
			t.Fatalf("node 2 folding void %s read its original %s reversed by %q (%v); want reversed by the void", vrrn, rrn, got.reversedBy, got.err)
		}
	case <-ctx.Done():
		t.Fatalf("node 2 was not handed void %s", vrrn)
	}
}

// TestPositionWrittenAgain: when the applier's write of its position fails (a
// commit of the local store fails), it applies the stream again from its last
// written position and writes the position again, without waiting for another
// message. Before, it went on past the messages it had applied, and wrote its
// position only once a message came or a waiter asked anew: on a stream that had
// nothing more, Open (which waits for the position to reach the stream's end, and
// asks once) waited out its deadline. The stream here holds a barrier of node 1,
// which writes nothing to node 2's store but the position.
func TestPositionWrittenAgain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc := startCluster(t, ctx, 1)
	m1 := openMember(t, ctx, nc.nodes[0], 1, 1, t.TempDir())
	defer m1.close(t)
	if err := m1.j.Barrier(ctx); err != nil {
		t.Fatal(err)
	}

	db, store, jdir := openSegmented(t, t.TempDir(), 2)
	// A commit that fills the journal's first segment file: the next needs another.
	if err := store.PutDurable(ctx, []byte("test/first"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	unblock := blockSegments(t, jdir)
	defer unblock()
	failed := make(chan struct{}, 64)
	onFail := func() {
		select {
		case failed <- struct{}{}:
		default:
		}
	}
	logger := zerolog.New(io.MultiWriter(zerolog.NewTestWriter(t), onLine{"write the applied position", onFail})).Level(zerolog.ErrorLevel)
	opened := make(chan error, 1)
	go func() {
		j, err := Open(ctx, nc.nodes[0], store, db, Options{Node: 2, Replicas: 1, AckTimeout: 3 * time.Second, Logger: logger})
		if err == nil {
			j.Close()
		}
		opened <- err
	}()
	select {
	case <-failed:
	case <-ctx.Done():
		t.Fatal("node 2's applier did not fail to write its position")
	}
	unblock()
	if err := <-opened; err != nil {
		t.Fatalf("node 2's journal did not open once its store could commit again: %v", err)
	}
}

// openSegmented opens node's Badger and local journal in dir, the journal in
// segments of one frame each: every group commit starts a new segment file
// (blockSegments). It returns the journal's directory too.
func openSegmented(t *testing.T, dir string, node int) (*badger.DB, *journal.Store, string) {
	t.Helper()
	jdir := filepath.Join(dir, "journal")
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "badger")).WithLogger(nil).WithSyncWrites(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	store, err := journal.Open(db, journal.Options{Dir: jdir, RRNPrefix: fmt.Sprint(node), IndexDelay: 10 * time.Millisecond, IndexKSN: true, SegmentSize: 1, Prealloc: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return db, store, jdir
}

// blockSegments puts directories where the next 64 segment files of the journal
// in jdir would go: its next commits fail. It returns what takes them away.
func blockSegments(t *testing.T, jdir string) (unblock func()) {
	t.Helper()
	names, err := os.ReadDir(jdir)
	if err != nil {
		t.Fatal(err)
	}
	var last uint32
	for _, e := range names {
		var n uint32
		if _, err := fmt.Sscanf(e.Name(), "%08d.seg", &n); err == nil {
			last = max(last, n)
		}
	}
	var blockers []string
	for n := last + 1; len(blockers) < 64; n++ {
		b := filepath.Join(jdir, fmt.Sprintf("%08d.seg", n))
		if err := os.Mkdir(b, 0o700); errors.Is(err, fs.ErrExist) {
			// The journal started this segment since ReadDir (a background
			// write): block the ones after it.
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		blockers = append(blockers, b)
	}
	return func() {
		for _, b := range blockers {
			_ = os.Remove(b)
		}
	}
}
