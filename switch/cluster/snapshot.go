package cluster

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/switch/cluster/ordered"
)

// Compacting the STATE stream. Without it the stream keeps every commit ever made
// to the registry, the keys, the lists and the cases, and a node that starts on an
// empty directory replays all of them. A compaction folds a store's commits, up to
// the last one, into one snapshot: every key the commits left set, with its last
// value, and every key they deleted (so that a node whose copy is older deletes it
// too). The snapshot goes to the object store snapshotBucket (chunked and checked
// by its SHA-256 digest), and its description to the KV bucket of the same name
// under the store's name, with a compare-and-set, so that of two nodes compacting
// at once one wins and the other's object is deleted. The commits below the
// previous snapshot's revision are then purged from the stream; a store is not
// compacted again until its snapshot is CompactOptions.MinAge old, so a running
// node less than MinAge behind still finds every commit it lacks. The store's last
// commit always stays, because the next commit's compare-and-set names it.
//
// A node restores a snapshot at start, before it opens its stores, when the stream
// no longer holds the commits that follow its own revision (NeedsSnapshot). Every
// commit names the revision it was ordered after (the header headerAfter), so a
// follower that meets a commit ordered after one it never applied stops with
// ErrCommitsPurged instead of forking its copy silently. An intent commit
// (StoreLog.Submit) cannot name its predecessor; it names the revision its
// submitter had applied (headerSeen), which only a gap below it betrays: a node
// restarting behind a snapshot restores it unless the snapshot's PurgedBelow
// shows that nothing after the node's revision was purged, and a running node is
// guarded by MinAge as before. The commits of such a store are folded through
// the store's statelog.Resolver (CompactOptions.Resolve), as its nodes apply them.
const (
	// snapshotBucket is the object store of the snapshots and the KV bucket of
	// their descriptions.
	snapshotBucket = "state_snapshots"
	// headerAfter is the header in which a commit names the revision it was
	// ordered after (the store's previous commit; 0 for its first).
	headerAfter = "Sy-After"
	// headerSeen is the header in which an intent commit (StoreLog.Submit), which
	// is ordered after whatever the stream holds, names the revision its
	// submitting node's store had applied: a lower bound of its predecessor.
	headerSeen = "Sy-Seen"
	// compactWait bounds the wait for one commit while a compaction reads the
	// stream.
	compactWait = 5 * time.Second
	// maxSnapshotBytes bounds a snapshot's encoding before it is deflated: a
	// compaction refuses to record a larger one, which a node could not read back.
	maxSnapshotBytes = 1 << 30
)

// ErrCommitsPurged is wrapped by a follower's error when the stream no longer holds
// commits its store has not applied: a compaction purged them while the node was
// far behind. The node must be restarted, which restores the store's snapshot.
var ErrCommitsPurged = errors.New("the stream no longer holds commits this node has not applied (compacted); restart the node to restore the store's snapshot")

// SnapshotInfo describes a store's snapshot: the value of its key in the KV bucket
// state_snapshots.
type SnapshotInfo struct {
	// Store is the store's name (registry, keys, lists...).
	Store string `json:"store"`
	// Revision is the stream sequence of the last commit the snapshot holds.
	Revision uint64 `json:"revision"`
	// Object is the snapshot's name in the object store: the store's name, the
	// revision and a unique suffix (two nodes compacting at once write two objects).
	Object string `json:"object"`
	// Keys and Deleted count the keys it sets and deletes.
	Keys    int `json:"keys"`
	Deleted int `json:"deleted"`
	// Bytes is its encoded (deflated) size.
	Bytes int `json:"bytes"`
	// Commits is how many commits the compaction folded into the previous
	// snapshot (or, for the first, into nothing).
	Commits int `json:"commits"`
	// PurgedBelow is the stream sequence below which the store's commits were
	// purged after this snapshot was taken (0: none).
	PurgedBelow uint64 `json:"purged_below"`
	// Taken is when it was taken, and By the server that took it.
	Taken time.Time `json:"taken"`
	By    string    `json:"by"`
}

// CompactResult is what Compact did.
type CompactResult struct {
	// Snapshot is the store's snapshot after the call: the new one, or the one
	// there was when there was nothing to compact (nil when there is none).
	Snapshot *SnapshotInfo `json:"snapshot,omitempty"`
	// Compacted is false when the store had no commit since its last snapshot.
	Compacted bool `json:"compacted"`
	// Purged is how many of the store's commits the stream dropped.
	Purged uint64 `json:"purged"`
	// Note says why a store with new commits was not compacted (its latest
	// snapshot is younger than CompactOptions.MinAge).
	Note string `json:"note,omitempty"`
}

// CompactOptions tune Compact.
type CompactOptions struct {
	// MinAge is how long a snapshot must have been the store's latest before
	// the commits below it are purged (by the time the bucket's server recorded
	// it): a node less than MinAge behind the stream still finds every commit
	// it lacks. Zero purges at once (tests).
	MinAge time.Duration
	// Resolve decides the store's intent commits as they are folded (the
	// store's own Resolver, the one its nodes apply them with); a store with
	// intent commits and no Resolve is not compacted.
	Resolve statelog.Resolver
}

// CompactReport is what a compaction did to one shared store (the answer of POST
// /api/v1/cluster/compact is one per store).
type CompactReport struct {
	Store string `json:"store"`
	// Held is how many of its commits the stream held before.
	Held uint64 `json:"held"`
	CompactResult
	// Error says why the store was not compacted.
	Error string `json:"error,omitempty"`
}

// snapshots returns the snapshot bucket's object store, creating it (and the KV
// bucket of the descriptions) when create is set; without create, a cluster
// that never compacted gives nil and no error.
func (s *StateLog) snapshots(ctx context.Context, create bool) (jetstream.KeyValue, jetstream.ObjectStore, error) {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	if s.snapKV != nil {
		return s.snapKV, s.snapObj, nil
	}
	replicas := max(s.n.cfg.Replicas, 1)
	// The object store first: a description is recorded only once it exists.
	obj, err := s.n.js.ObjectStore(ctx, snapshotBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) && create {
		obj, err = s.n.js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: snapshotBucket, Replicas: replicas,
			Storage: jetstream.FileStorage, Description: "Switchyard: snapshots of the stores of the STATE stream"})
		if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			obj, err = s.n.js.ObjectStore(ctx, snapshotBucket) // another node made it meanwhile
		}
	}
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound):
		return nil, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("cluster: object store %s (%d replicas): %w", snapshotBucket, replicas, err)
	}
	kv, err := s.n.js.KeyValue(ctx, snapshotBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) && create {
		kv, err = s.n.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: snapshotBucket, Replicas: replicas,
			Storage: jetstream.FileStorage, Description: "Switchyard: the latest snapshot of each store of the STATE stream"})
		if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			kv, err = s.n.js.KeyValue(ctx, snapshotBucket)
		}
	}
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound):
		return nil, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("cluster: KV bucket %s (%d replicas): %w", snapshotBucket, replicas, err)
	}
	s.snapKV, s.snapObj = kv, obj
	return kv, obj, nil
}

// Snapshot returns the description of the store's latest snapshot, its KV
// revision and when the bucket's server recorded it; nil when it has none. It
// reads from the bucket's stream leader, not from a replica that may lag (a KV
// Get is a direct get, which replicas answer).
func (l *StoreLog) Snapshot(ctx context.Context) (*SnapshotInfo, uint64, time.Time, error) {
	data, rev, at, err := l.s.n.readLeader(ctx, snapshotBucket, l.name)
	if err != nil {
		return nil, 0, time.Time{}, fmt.Errorf("cluster: read the snapshot of %s: %w", l.name, err)
	}
	if data == nil {
		return nil, 0, time.Time{}, nil
	}
	info := new(SnapshotInfo)
	if err := json.Unmarshal(data, info); err != nil {
		return nil, 0, time.Time{}, fmt.Errorf("cluster: decode the snapshot description of %s (KV revision %d): %w", l.name, rev, err)
	}
	return info, rev, at, nil
}

// ReadSnapshot reads and decodes the object of info: every key the store's
// commits up to info.Revision left set, and every key they deleted, in key order.
func (l *StoreLog) ReadSnapshot(ctx context.Context, info *SnapshotInfo) (statelog.Commit, error) {
	_, obj, err := l.s.snapshots(ctx, false)
	if err == nil && obj == nil {
		err = errors.New("no snapshot bucket")
	}
	if err != nil {
		return statelog.Commit{}, fmt.Errorf("cluster: read snapshot %s of %s: %w", info.Object, l.name, err)
	}
	data, err := obj.GetBytes(ctx, info.Object)
	if err != nil {
		return statelog.Commit{}, fmt.Errorf("cluster: read snapshot %s of %s: %w", info.Object, l.name, err)
	}
	c, err := decodeCommitMax(data, maxSnapshotBytes)
	if err != nil {
		return statelog.Commit{}, fmt.Errorf("cluster: decode snapshot %s of %s (%d bytes): %w", info.Object, l.name, len(data), err)
	}
	return c, nil
}

// Compact folds the store's commits since its last snapshot into a new one,
// records it, and purges the commits below the previous snapshot's revision. It
// does nothing when the store has no commit since its last snapshot, or when that
// snapshot is younger than opts.MinAge (so that the purge below it leaves every
// commit of the last MinAge). When another node records a snapshot first,
// Compact deletes its own and returns an error wrapping statelog.ErrConflict.
// It refuses to record a snapshot of commits whose chain (each naming the one
// before it, headerAfter) is broken: the stream lost commits, and a snapshot of
// what is left would silently drop them on every node that restores it.
func (l *StoreLog) Compact(ctx context.Context, opts CompactOptions) (CompactResult, error) {
	prev, kvRev, prevAt, err := l.Snapshot(ctx)
	if err != nil {
		return CompactResult{}, err
	}
	last, err := l.LastRevision(ctx)
	if err != nil {
		return CompactResult{}, err
	}
	if last == 0 || (prev != nil && last <= prev.Revision) {
		return CompactResult{Snapshot: prev}, nil
	}
	if age := time.Since(prevAt); prev != nil && age < opts.MinAge {
		return CompactResult{Snapshot: prev, Note: fmt.Sprintf("the latest snapshot (revision %d) is %v old, under %v: not compacted again yet",
			prev.Revision, age.Round(time.Second), opts.MinAge)}, nil
	}
	state := map[string][]byte{} // nil: deleted
	from, after := uint64(1), uint64(0)
	if prev != nil {
		base, err := l.ReadSnapshot(ctx, prev)
		if err != nil {
			// Another node may have replaced it (and deleted its object) since.
			if cur, _, _, rerr := l.Snapshot(ctx); rerr == nil && (cur == nil || cur.Object != prev.Object) {
				return CompactResult{}, fmt.Errorf("cluster: compact %s: another node compacted it meanwhile: %w", l.name, statelog.ErrConflict)
			}
			return CompactResult{}, err
		}
		fold(state, base)
		from, after = prev.Revision+1, prev.Revision
	}
	commits, err := l.foldStream(ctx, state, from, after, last, opts.Resolve)
	if err != nil {
		return CompactResult{}, err
	}
	info := &SnapshotInfo{Store: l.name, Revision: last, Object: l.name + "." + strconv.FormatUint(last, 10) + "." + nuid.Next(),
		Commits: commits, Taken: time.Now().UTC(), By: l.s.n.name()}
	snap := statelog.Commit{Writes: make([]statelog.KV, 0, len(state))}
	size := 0
	for k, v := range state {
		snap.Writes = append(snap.Writes, statelog.KV{Key: []byte(k), Value: v})
		size += len(k) + len(v) + 2*binary.MaxVarintLen64
		if v == nil {
			info.Deleted++
		} else {
			info.Keys++
		}
	}
	if size > maxSnapshotBytes {
		return CompactResult{}, fmt.Errorf("cluster: the snapshot of %s at %d would be about %d bytes, over the %d a node reads back: not recorded", l.name, last, size, maxSnapshotBytes)
	}
	sort.Slice(snap.Writes, func(i, j int) bool { return string(snap.Writes[i].Key) < string(snap.Writes[j].Key) })
	data, err := encodeCommit(snap)
	if err != nil {
		return CompactResult{}, fmt.Errorf("cluster: encode the snapshot of %s at %d: %w", l.name, last, err)
	}
	info.Bytes = len(data)
	kv, obj, err := l.s.snapshots(ctx, true)
	if err != nil {
		return CompactResult{}, err
	}
	if _, err := obj.PutBytes(ctx, info.Object, data); err != nil {
		return CompactResult{}, fmt.Errorf("cluster: store snapshot %s (%d bytes): %w", info.Object, len(data), err)
	}
	var purgeBelow uint64 // prev has been the latest for MinAge
	res := CompactResult{Snapshot: info, Compacted: true}
	if prev != nil {
		info.PurgedBelow, purgeBelow = prev.Revision, prev.Revision
	}
	desc, err := json.Marshal(info)
	if err != nil {
		return CompactResult{}, err
	}
	if prev == nil {
		_, err = kv.Create(ctx, l.name, desc)
	} else {
		_, err = kv.Update(ctx, l.name, desc, kvRev)
	}
	if err != nil {
		if isConflict(err) {
			l.deleteUnrecorded(ctx, obj, info.Object)
			return CompactResult{}, fmt.Errorf("cluster: record snapshot %s: another node recorded one first: %w", info.Object, statelog.ErrConflict)
		}
		// No answer: the record may have landed. The object goes only if the
		// record does not name it.
		if cur, _, _, rerr := l.Snapshot(ctx); rerr == nil && (cur == nil || cur.Object != info.Object) {
			l.deleteUnrecorded(ctx, obj, info.Object)
		}
		return CompactResult{}, fmt.Errorf("cluster: record snapshot %s: %w", info.Object, err)
	}
	var errs []error
	if purgeBelow > 0 {
		before, err := l.Held(ctx)
		if err == nil {
			err = l.s.stream.Purge(ctx, jetstream.WithPurgeSubject(l.subject), jetstream.WithPurgeSequence(purgeBelow))
			if err != nil {
				err = fmt.Errorf("cluster: purge the commits of %s below %d: %w", l.name, purgeBelow, err)
			}
		}
		if err == nil {
			var after uint64
			if after, err = l.Held(ctx); err == nil && before > after {
				res.Purged = before - after
			}
		}
		errs = append(errs, err)
	}
	if prev != nil { // its commits are in the new one
		if err := obj.Delete(ctx, prev.Object); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			errs = append(errs, fmt.Errorf("cluster: delete the previous snapshot %s: %w", prev.Object, err))
		}
	}
	l.sweep(ctx, obj, info.Object)
	return res, errors.Join(errs...)
}

// orphanAge is how old an object of the store that no description names must be
// before a compaction deletes it: one left by a compaction killed between storing
// and recording it, or whose old snapshot's deletion failed. Far longer than a
// compaction takes, so that another node's snapshot stored and about to be
// recorded is never taken for one.
var orphanAge = 10 * time.Minute

// sweep deletes the store's objects other than keep that are older than
// orphanAge. Failures are logged: the next compaction sweeps again.
func (l *StoreLog) sweep(ctx context.Context, obj jetstream.ObjectStore, keep string) {
	list, err := obj.List(ctx)
	if err != nil {
		if !errors.Is(err, jetstream.ErrNoObjectsFound) {
			l.s.n.log.Warn().Err(err).Str("store", l.name).Msg("cluster: list the snapshots to sweep")
		}
		return
	}
	for _, o := range list {
		if o.Name == keep || !strings.HasPrefix(o.Name, l.name+".") || time.Since(o.ModTime) < orphanAge {
			continue
		}
		if err := obj.Delete(ctx, o.Name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			l.s.n.log.Warn().Err(err).Str("object", o.Name).Msg("cluster: delete a snapshot no description names")
		}
	}
}

// deleteUnrecorded deletes a snapshot object that no description names.
func (l *StoreLog) deleteUnrecorded(ctx context.Context, obj jetstream.ObjectStore, name string) {
	if err := obj.Delete(ctx, name); err != nil {
		l.s.n.log.Warn().Err(err).Str("object", name).Msg("cluster: delete a snapshot not recorded")
	}
}

// Held returns how many of the store's commits the stream holds.
func (l *StoreLog) Held(ctx context.Context) (uint64, error) {
	info, err := l.s.stream.Info(ctx, jetstream.WithSubjectFilter(l.subject))
	if err != nil {
		return 0, fmt.Errorf("cluster: count the commits of %s: %w", l.name, err)
	}
	return info.State.Subjects[l.subject], nil
}

// fold applies c's writes to state.
func fold(state map[string][]byte, c statelog.Commit) {
	for _, w := range c.Writes {
		state[string(w.Key)] = w.Value
	}
}

// foldStream folds the store's commits from sequence from to last into state and
// returns how many it folded. The first must have been ordered after after, and
// each after the one before it (commits of versions before headerAfter carry no
// such name and are taken as they are; an intent commit must not have been
// submitted by a node ahead of the commit before it). Intent commits are decided
// by resolve on state as folded so far.
func (l *StoreLog) foldStream(ctx context.Context, state map[string][]byte, from, after, last uint64, resolve statelog.Resolver) (int, error) {
	fol, err := ordered.Follow(l.s.n.js, ordered.Config{Stream: stateStream, Subjects: []string{l.subject}, From: from})
	if err != nil {
		return 0, fmt.Errorf("cluster: read %s from %d: %w", l.subject, from, err)
	}
	defer fol.Stop()
	n := 0
	t := time.NewTimer(compactWait)
	defer t.Stop()
	for {
		t.Reset(compactWait)
		var m jetstream.Msg
		select {
		case m = <-fol.C():
		case <-t.C:
			return n, fmt.Errorf("cluster: read %s from %d, %d commits read, waited %v for the one at %d", l.subject, from, n, compactWait, last)
		case <-ctx.Done():
			return n, fmt.Errorf("cluster: read %s from %d, %d commits read, waiting for the one at %d: %w", l.subject, from, n, last, ctx.Err())
		}
		meta, err := m.Metadata()
		if err != nil {
			return n, fmt.Errorf("cluster: read %s: message metadata: %w", l.subject, err)
		}
		seq := meta.Sequence.Stream
		if seq > last {
			return n, nil
		}
		if a, ok := commitAfter(m.Headers()); ok && a != after {
			return n, fmt.Errorf("cluster: %s commit at sequence %d was ordered after %d, but the commit before it in the stream is %d: commits are missing, no snapshot recorded", l.name, seq, a, after)
		}
		if s, ok := commitSeen(m.Headers()); ok && s > after {
			return n, fmt.Errorf("cluster: %s intent commit at sequence %d was submitted by a node at %d, but the commit before it in the stream is %d: commits are missing, no snapshot recorded", l.name, seq, s, after)
		}
		c, err := decodeCommit(m.Data())
		if err != nil {
			return n, fmt.Errorf("cluster: %s commit at sequence %d: %w", l.name, seq, err)
		}
		if c.Intent {
			if resolve == nil {
				return n, fmt.Errorf("cluster: %s commit at sequence %d is an intent commit, and the compaction was given no way to decide it: no snapshot recorded", l.name, seq)
			}
			get := func(key []byte) ([]byte, error) { return state[string(key)], nil }
			if c, err = resolve(seq, get, c); err != nil {
				return n, fmt.Errorf("cluster: %s intent commit at sequence %d: %w", l.name, seq, err)
			}
		}
		fold(state, c)
		n++
		after = seq
		if seq == last {
			return n, nil
		}
	}
}

// NeedsSnapshot returns the snapshot a store at revision local must restore
// before it follows the stream: the latest one, when it is above local and the
// stream no longer holds the commit that follows local (its first commit after
// local was not ordered after local, or is an intent commit and the snapshot's
// PurgedBelow is above local's next). It returns nil when the stream holds
// everything local lacks. ReadSnapshot then reads it, for a store's Badger
// before the store opens (kvsync.Restore).
func (l *StoreLog) NeedsSnapshot(ctx context.Context, local uint64) (*SnapshotInfo, error) {
	info, _, _, err := l.Snapshot(ctx)
	if err != nil || info == nil || info.Revision <= local {
		return nil, err
	}
	m, err := l.s.stream.GetMsg(ctx, local+1, jetstream.WithGetMsgSubject(l.subject))
	switch {
	case err == nil:
		if after, ok := commitAfter(m.Header); ok && after == local {
			return nil, nil
		}
		// An intent commit names no predecessor; the stream holds every commit
		// from the latest compaction's purge on (earlier ones purged less).
		if seen, ok := commitSeen(m.Header); ok && seen <= local && local+1 >= info.PurgedBelow {
			return nil, nil
		}
	case !errors.Is(err, jetstream.ErrMsgNotFound):
		return nil, fmt.Errorf("cluster: the first commit of %s after %d: %w", l.name, local, err)
	}
	return info, nil
}

// commitAfter reads the headerAfter of a commit; ok is false when it has none (a
// commit of a version before it, or an intent commit) or it does not parse.
func commitAfter(h nats.Header) (uint64, bool) { return headerUint(h, headerAfter) }

// commitSeen reads the headerSeen of an intent commit; ok is false when it has
// none (a commit with a compare-and-set) or it does not parse.
func commitSeen(h nats.Header) (uint64, bool) { return headerUint(h, headerSeen) }

func headerUint(h nats.Header, key string) (uint64, bool) {
	v := h.Get(key)
	if v == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 64)
	return n, err == nil
}
