package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
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
	sl := soloStateLog(t, ctx)
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

// addResolver decides the intent commits of TestStateIntents: each write adds its
// value (a decimal) to the key's, a request decided on the key as it is.
func addResolver(_ uint64, get func([]byte) ([]byte, error), c statelog.Commit) (statelog.Commit, error) {
	var out statelog.Commit
	for _, w := range c.Writes {
		cur, err := get(w.Key)
		if err != nil {
			return out, err
		}
		n, _ := strconv.Atoi(string(cur))
		d, err := strconv.Atoi(string(w.Value))
		if err != nil {
			return out, fmt.Errorf("request on %s: %w", w.Key, err)
		}
		out.Writes = append(out.Writes, statelog.KV{Key: w.Key, Value: []byte(strconv.Itoa(n + d))})
	}
	return out, nil
}

// intentReplica is a stateReplica that decides intent commits with addResolver.
type intentReplica struct{ *stateReplica }

func (r intentReplica) ApplyRemote(rev uint64, c statelog.Commit) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rev <= r.rev {
		return nil
	}
	if c.Intent {
		var err error
		if c, err = addResolver(rev, func(k []byte) ([]byte, error) { return []byte(r.state[string(k)]), nil }, c); err != nil {
			return err
		}
	}
	r.apply(c)
	r.rev = rev
	return nil
}

// TestStateIntents: intent commits on a store's subject (StoreLog.Submit) are
// ordered without a compare-and-set, among the store's plain commits (whose
// compare-and-set goes on after them), reach the follower marked as intents (Await
// sees them applied), are folded by a compaction through the store's Resolve (and
// refused without one), and a node whose revision is below an intent commit's
// Sy-Seen after a purge restores the snapshot or, following, stops with
// ErrCommitsPurged; one whose next commits the stream holds replays them.
func TestStateIntents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := startSolo(t, ctx)
	defer n.Close()
	sl, err := n.StateLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := sl.Store("counts")
	add := func(key string, d int, seen uint64) uint64 {
		t.Helper()
		r, err := st.Submit(ctx, statelog.Commit{Intent: true, Writes: []statelog.KV{{Key: []byte(key), Value: []byte(strconv.Itoa(d))}}}, seen)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if _, err := st.Submit(ctx, statelog.Commit{Writes: []statelog.KV{{Key: []byte("a"), Value: []byte("1")}}}, 0); err == nil {
		t.Fatal("a plain commit submitted without a compare-and-set")
	}
	live := intentReplica{newStateReplica()}
	f := st.Follow(ctx, live)
	defer f.Close()

	r1 := add("a", 1, 0)
	r2, err := st.Append(ctx, statelog.Commit{Writes: []statelog.KV{{Key: []byte("b"), Value: []byte("x")}}}, r1)
	if err != nil {
		t.Fatalf("a plain commit after an intent commit: %v", err)
	}
	r3 := add("a", 2, 0) // submitted by a node at 0: never a conflict
	if err := st.Await(ctx, live, r3); err != nil {
		t.Fatal(err)
	}
	if got := live.snapshot(); got["a"] != "3" || got["b"] != "x" || live.Revision() != r3 {
		t.Fatalf("the follower: %v at %d; want a=3 b=x at %d", got, live.Revision(), r3)
	}
	if _, err := st.Append(ctx, statelog.Commit{Writes: []statelog.KV{{Key: []byte("b"), Value: []byte("y")}}}, r2); !errors.Is(err, statelog.ErrConflict) {
		t.Fatalf("a plain commit after a stale revision (an intent commit since): %v; want ErrConflict", err)
	}
	m, err := sl.stream.GetMsg(ctx, r3)
	if err != nil {
		t.Fatal(err)
	}
	if m.Data[0] != commitIntent || m.Header.Get(headerSeen) != "0" || m.Header.Get(headerAfter) != "" {
		t.Fatalf("the intent commit's message: encoding %d, headers %v", m.Data[0], m.Header)
	}

	if res, err := st.Compact(ctx, CompactOptions{}); err == nil || !strings.Contains(err.Error(), "is an intent commit, and the compaction was given no way to decide it") {
		t.Fatalf("compacting intent commits without a resolver: %+v, %v", res, err)
	}
	res, err := st.Compact(ctx, CompactOptions{Resolve: addResolver})
	if err != nil || !res.Compacted || res.Snapshot.Revision != r3 {
		t.Fatalf("first compaction: %+v, %v", res, err)
	}
	for _, local := range []uint64{0, r1} {
		if info, err := st.NeedsSnapshot(ctx, local); err != nil || info != nil {
			t.Fatalf("a store at %d, nothing purged: %+v, %v; want no snapshot (replay)", local, info, err)
		}
	}
	r4 := add("a", 10, r3)
	r5 := add("c", 5, r4)
	if err := st.Await(ctx, live, r5); err != nil {
		t.Fatal(err)
	}
	res, err = st.Compact(ctx, CompactOptions{Resolve: addResolver})
	if err != nil || !res.Compacted || res.Snapshot.PurgedBelow != r3 || res.Purged != 2 {
		t.Fatalf("second compaction: %+v %+v, %v; want the 2 commits below %d purged", res, res.Snapshot, err, r3)
	}
	snapped, err := st.ReadSnapshot(ctx, res.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	folded := newStateReplica()
	folded.apply(snapped)
	if got, want := folded.snapshot(), live.snapshot(); !maps.Equal(got, want) {
		t.Fatalf("the snapshot: %v; the follower: %v", got, want)
	}
	// The first commit after r1 is now r3, submitted by a node at 0 (≤ r1), but the
	// snapshot's PurgedBelow says commits after r1 are gone.
	for _, local := range []uint64{0, r1} {
		if info, err := st.NeedsSnapshot(ctx, local); err != nil || info == nil || info.Revision != r5 {
			t.Fatalf("a store at %d after the purge below %d: %+v, %v; want the snapshot at %d", local, r3, info, err, r5)
		}
	}
	for _, local := range []uint64{r2, r4} {
		if info, err := st.NeedsSnapshot(ctx, local); err != nil || info != nil {
			t.Fatalf("a store at %d: %+v, %v; want no snapshot (the commits after it are held)", local, info, err)
		}
	}

	// Followers that did not restore, at 0 and at r1: each meets r3 first, submitted
	// by a node at 0 (no gap its Sy-Seen could show), and is stopped by the check of
	// its consumer's first commit against the purge below r3.
	for _, local := range []uint64{0, r1} {
		stale := intentReplica{newStateReplica()}
		stale.rev = local
		sf := st.Follow(ctx, stale)
		for !errors.Is(sf.Err(), ErrCommitsPurged) {
			if stale.Revision() != local {
				t.Fatalf("the stale follower at %d applied up to %d across the gap (%v)", local, stale.Revision(), sf.Err())
			}
			select {
			case <-ctx.Done():
				t.Fatalf("a follower at %d after the purge: %v, at %d; want ErrCommitsPurged", local, sf.Err(), stale.Revision())
			case <-time.After(10 * time.Millisecond): // polling the follower's state
			}
		}
		sf.Close()
		if !strings.Contains(sf.Err().Error(), fmt.Sprintf("were purged below %d", r3)) {
			t.Fatalf("the stale follower's error: %v", sf.Err())
		}
	}
	// One at r2 (all it lacks is held) follows to the end.
	behind := intentReplica{newStateReplica()}
	behind.apply(statelog.Commit{Writes: []statelog.KV{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Value: []byte("x")}}})
	behind.rev = r2
	bf := st.Follow(ctx, behind)
	defer bf.Close()
	if err := st.Await(ctx, behind, r5); err != nil {
		t.Fatal(err, bf.Err())
	}
	if got, want := behind.snapshot(), live.snapshot(); !maps.Equal(got, want) {
		t.Fatalf("the follower from %d: %v; the live one: %v", r2, got, want)
	}

	// A follower that passed the purge's check meets an intent commit submitted by
	// a node ahead of it: it stops (the lower bound seen).
	r6 := add("c", 1, r5+100)
	ahead := intentReplica{live.copy()}
	af := st.Follow(ctx, ahead)
	defer af.Close()
	for !errors.Is(af.Err(), ErrCommitsPurged) {
		if ahead.Revision() >= r6 {
			t.Fatalf("the follower applied %d, submitted by a node ahead of it", r6)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("a follower at %d meeting a commit submitted at %d: %v; want ErrCommitsPurged", ahead.Revision(), r5+100, af.Err())
		case <-time.After(10 * time.Millisecond): // polling the follower's state
		}
	}
	if !strings.Contains(af.Err().Error(), fmt.Sprintf("submitted by a node at %d", r5+100)) {
		t.Fatalf("the follower's error: %v", af.Err())
	}
}
