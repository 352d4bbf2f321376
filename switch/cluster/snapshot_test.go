package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/internal/statelog"
)

// stateReplica is a store's keys as a follower leaves them.
type stateReplica struct {
	mu    sync.Mutex
	rev   uint64
	state map[string]string
}

func newStateReplica() *stateReplica { return &stateReplica{state: map[string]string{}} }

func (r *stateReplica) ApplyRemote(rev uint64, c statelog.Commit) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rev <= r.rev {
		return nil
	}
	r.apply(c)
	r.rev = rev
	return nil
}

func (r *stateReplica) apply(c statelog.Commit) {
	for _, w := range c.Writes {
		if w.Value == nil {
			delete(r.state, string(w.Key))
		} else {
			r.state[string(w.Key)] = string(w.Value)
		}
	}
}

func (r *stateReplica) Revision() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rev
}

func (r *stateReplica) copy() *stateReplica {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &stateReplica{rev: r.rev, state: maps.Clone(r.state)}
}

func (r *stateReplica) snapshot() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.state)
}

// TestStateCompaction: a store's commits folded into a snapshot (keys set and
// deleted), the commits below the previous snapshot purged while the store's last
// stays (the compare-and-set goes on), a node whose commits are purged restores the
// snapshot and ends with the same keys as one that followed every commit, a node
// whose commits are still there is told to replay them, a follower that meets a
// purged gap stops with ErrCommitsPurged, and of two compactions at once one wins
// and the other's object is deleted.
func TestStateCompaction(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := startSolo(t, ctx)
	defer n.Close()
	sl, err := n.StateLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reg, _ := sl.Store("registry")
	other, _ := sl.Store("keys") // another store's commits in between
	var rev uint64
	commit := func(kvs ...string) uint64 {
		t.Helper()
		var c statelog.Commit
		for i := 0; i < len(kvs); i += 2 {
			kv := statelog.KV{Key: []byte(kvs[i])}
			if kvs[i+1] != "-" {
				kv.Value = []byte(kvs[i+1])
			}
			c.Writes = append(c.Writes, kv)
		}
		r, err := reg.Append(ctx, c, rev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Append(ctx, statelog.Commit{Writes: []statelog.KV{{Key: []byte("k"), Value: []byte("v")}}}, r-1); err != nil && !errors.Is(err, statelog.ErrConflict) {
			t.Fatal(err)
		}
		rev = r
		return r
	}
	if res, err := reg.Compact(ctx, CompactOptions{}); err != nil || res.Compacted || res.Snapshot != nil {
		t.Fatalf("compacting a store without commits: %+v, %v", res, err)
	}

	live := newStateReplica() // follows every commit
	f := reg.Follow(ctx, live)
	defer f.Close()

	r1 := commit("a", "1", "b", "1")
	behind := newStateReplica() // a node stopped after the first commit
	behind.apply(statelog.Commit{Writes: []statelog.KV{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Value: []byte("1")}}})
	behind.rev = r1
	commit("a", "-", "c", "3")
	r3 := commit("b", "2")

	if err := reg.CatchUp(ctx, live); err != nil { // before a purge: MinAge 0 gives no grace
		t.Fatal(err)
	}
	res, err := reg.Compact(ctx, CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Compacted || res.Snapshot.Revision != r3 || res.Snapshot.Keys != 2 || res.Snapshot.Deleted != 1 || res.Snapshot.Commits != 3 || res.Purged != 0 {
		t.Fatalf("first compaction: %+v %+v; want revision %d, 2 keys set (b, c), 1 deleted (a), 3 commits, nothing purged", res, res.Snapshot, r3)
	}
	if info, err := reg.NeedsSnapshot(ctx, r1); err != nil || info != nil {
		t.Fatalf("a store at %d while the stream holds the commits after it: %+v, %v; want no snapshot (replay)", r1, info, err)
	}

	commit("d", "4")
	r5 := commit("b", "-", "e", "5")
	if err := reg.CatchUp(ctx, live); err != nil {
		t.Fatal(err)
	}
	res, err = reg.Compact(ctx, CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Compacted || res.Snapshot.Revision != r5 || res.Snapshot.Keys != 3 || res.Snapshot.Deleted != 2 || res.Snapshot.PurgedBelow != r3 || res.Purged != 2 {
		t.Fatalf("second compaction: %+v %+v; want revision %d, keys c d e, a and b deleted, the 2 commits below %d purged", res, res.Snapshot, r5, r3)
	}
	if held, err := reg.Held(ctx); err != nil || held != 3 {
		t.Fatalf("the stream holds %d commits of the store (%v), want 3", held, err)
	}
	if res, err := reg.Compact(ctx, CompactOptions{}); err != nil || res.Compacted || res.Snapshot.Revision != r5 {
		t.Fatalf("compacting with no new commit: %+v, %v", res, err)
	}

	// The compare-and-set goes on after the purge.
	if _, err := reg.Append(ctx, statelog.Commit{Writes: []statelog.KV{{Key: []byte("x"), Value: []byte("x")}}}, r3); !errors.Is(err, statelog.ErrConflict) {
		t.Fatalf("a commit after a stale revision: %v; want ErrConflict", err)
	}
	r6 := commit("f", "6")
	if res, err := reg.Compact(ctx, CompactOptions{MinAge: time.Hour}); err != nil || res.Compacted || res.Snapshot.Revision != r5 ||
		!strings.Contains(res.Note, "under 1h0m0s: not compacted again yet") {
		t.Fatalf("compacting within MinAge of the latest snapshot: %+v, %v", res, err)
	}
	if err := reg.CatchUp(ctx, live); err != nil {
		t.Fatal(err)
	}

	// The node behind: its next commits are purged, so it restores, and then
	// follows from the snapshot.
	for _, local := range []uint64{r1, 0} {
		info, err := reg.NeedsSnapshot(ctx, local)
		if err != nil || info == nil || info.Revision != r5 {
			t.Fatalf("a store at %d after the purge: %+v, %v; want the snapshot at %d", local, info, err, r5)
		}
		snap, err := reg.ReadSnapshot(ctx, info)
		if err != nil {
			t.Fatal(err)
		}
		restored := behind.copy()
		if local == 0 {
			restored = newStateReplica()
		}
		restored.apply(snap)
		restored.rev = info.Revision
		rf := reg.Follow(ctx, restored)
		if err := reg.CatchUp(ctx, restored); err != nil {
			t.Fatal(err)
		}
		rf.Close()
		if got, want := restored.snapshot(), live.snapshot(); !maps.Equal(got, want) || restored.Revision() != r6 {
			t.Fatalf("restored from %d: %v at %d; the node that followed every commit: %v at %d", local, got, restored.Revision(), want, r6)
		}
	}

	// A follower that did not restore meets the gap and says so.
	stale := behind.copy()
	sf := reg.Follow(ctx, stale)
	defer sf.Close()
	for !errors.Is(sf.Err(), ErrCommitsPurged) {
		if stale.Revision() != r1 {
			t.Fatalf("the stale follower applied up to %d across the gap (%v)", stale.Revision(), sf.Err())
		}
		select {
		case <-ctx.Done():
			t.Fatalf("a follower at %d after the purge: %v, at %d; want ErrCommitsPurged", r1, sf.Err(), stale.Revision())
		case <-time.After(10 * time.Millisecond): // polling the follower's state
		}
	}
	if stale.Revision() != r1 {
		t.Fatalf("the stale follower applied up to %d across the gap", stale.Revision())
	}

	// A stream that lost commits (purged with no snapshot): no snapshot of what
	// is left is recorded.
	lost, _ := sl.Store("lost")
	var lr uint64
	for i := range 3 {
		if lr, err = lost.Append(ctx, statelog.Commit{Writes: []statelog.KV{{Key: fmt.Appendf(nil, "k%d", i), Value: []byte("v")}}}, lr); err != nil {
			t.Fatal(err)
		}
	}
	if err := sl.stream.Purge(ctx, jetstream.WithPurgeSubject("state.lost"), jetstream.WithPurgeSequence(lr)); err != nil {
		t.Fatal(err)
	}
	if res, err := lost.Compact(ctx, CompactOptions{}); err == nil || !strings.Contains(err.Error(), "commits are missing, no snapshot recorded") {
		t.Fatalf("compacting a store whose first commits are gone: %+v, %v", res, err)
	}
	if info, _, _, err := lost.Snapshot(ctx); err != nil || info != nil {
		t.Fatalf("the store whose commits are gone has a snapshot: %+v, %v", info, err)
	}

	// An object no description names (a compaction killed between storing and
	// recording it) goes with the next compaction once it is orphanAge old.
	_, obj, _ := sl.snapshots(ctx, false)
	if _, err := obj.PutBytes(ctx, "registry.1.orphan", []byte("left by a kill")); err != nil {
		t.Fatal(err)
	}
	if _, err := obj.PutBytes(ctx, "keys.1.other", []byte("another store's")); err != nil {
		t.Fatal(err)
	}
	orphanAge = 0
	commit("h", "8")
	res, err = reg.Compact(ctx, CompactOptions{})
	orphanAge = 10 * time.Minute
	if err != nil || !res.Compacted {
		t.Fatalf("compaction after an orphan: %+v, %v", res, err)
	}
	if _, err := obj.GetInfo(ctx, "registry.1.orphan"); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Fatalf("the registry's orphan after a compaction: %v; want it deleted", err)
	}
	if err := obj.Delete(ctx, "keys.1.other"); err != nil { // another store's: left alone
		t.Fatalf("another store's object: %v", err)
	}

	// Two compactions at once: one records its snapshot; the other finds it
	// there, or loses the compare-and-set and deletes its object.
	commit("g", "7")
	var wg sync.WaitGroup
	results := make([]CompactResult, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() { results[i], errs[i] = reg.Compact(ctx, CompactOptions{}) })
	}
	wg.Wait()
	won := 0
	for i := range 2 {
		switch {
		case errs[i] == nil && results[i].Compacted:
			won++
		case errs[i] == nil, errors.Is(errs[i], statelog.ErrConflict):
		default:
			t.Fatalf("compaction %d: %v", i, errs[i])
		}
	}
	if won != 1 {
		t.Fatalf("two compactions at once: %d recorded a snapshot (%v)", won, errs)
	}
	info, _, _, err := reg.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lister, err := obj.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range lister {
		names = append(names, o.Name)
	}
	if !slices.Equal(names, []string{info.Object}) {
		t.Fatalf("objects in the store: %v; want only the recorded snapshot %s", names, info.Object)
	}
}
