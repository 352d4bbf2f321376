package cjournal

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/switch/cluster"
	"github.com/switchyard/switchyard/switch/journal"
)

// Changes of one record made on two nodes at once (two refunds of one purchase, a
// void and a refund of it, two completions of one pre-authorization) would each be
// checked against their own node's copy of the record, and both pass: every node
// applies the other's version only once it is in the stream. LockRecord orders them:
// a change holds the record's lock in the LockBucket KV bucket (a compare-and-set
// create, replicated like the stream) while it reads, checks and writes the record,
// and reads it only once its node's applier has applied everything the stream held
// when the lock was taken, which includes every version written under the lock
// before (each was acknowledged by the stream before its lock was given up).

// LockBucket is the KV bucket of the records' cluster-wide locks: key the RRN, value
// the holding node process.
const LockBucket = "RECORD_LOCKS"

const (
	// lockTTL is how long a lock lives at most: a node that dies holding one (or
	// whose release is lost) holds it no longer. A holder keeps it for one durable
	// write of the record (AckTimeout at most) and its catch-up.
	lockTTL = 30 * time.Second
	// lockWait bounds how long LockRecord waits for a lock another change holds
	// (or for the bucket to answer, without a quorum).
	lockWait = 5 * time.Second
	// lockRelease bounds a release's request; a lost one lapses after lockTTL.
	lockRelease = 2 * time.Second
)

// heldLocks are the records whose locks this node holds, each with whether a
// durable write of the record failed meanwhile.
type heldLocks struct {
	mu sync.Mutex
	n  atomic.Int32 // len(m), read without mu by failed
	m  map[string]bool
}

func (h *heldLocks) add(rrn string) {
	h.mu.Lock()
	if h.m == nil {
		h.m = make(map[string]bool)
	}
	h.m[rrn] = false
	h.n.Store(int32(len(h.m)))
	h.mu.Unlock()
}

// failed notes a failed durable write of rrn, if its lock is held.
func (h *heldLocks) failed(rrn string) {
	if h.n.Load() == 0 {
		return
	}
	h.mu.Lock()
	if _, ok := h.m[rrn]; ok {
		h.m[rrn] = true
	}
	h.mu.Unlock()
}

// remove forgets rrn's lock and says whether a write failed under it.
func (h *heldLocks) remove(rrn string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	failed := h.m[rrn]
	delete(h.m, rrn)
	h.n.Store(int32(len(h.m)))
	return failed
}

// lockHeld says whether Create failed because the key exists: ErrKeyExists, or,
// when Create found a delete marker and another node created the key between its
// read and its update, the stream's "wrong last sequence" (code 10071, or 10164 from
// a replicated stream, which nats.go v1.55 returns unwrapped from that path).
func lockHeld(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var api *jetstream.APIError
	return errors.As(err, &api) && (api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// lockKey is the lock's key of the record rrn: the RRN itself when it is letters and
// digits (the switch's own), else "x" and its hex (a DE 37 a terminal sent may hold
// any character, and a KV key may not; an RRN starting with x is encoded too, so
// that no two RRNs share a key).
func lockKey(rrn string) string {
	for i := 0; i < len(rrn); i++ {
		if c := rrn[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return "x" + hex.EncodeToString([]byte(rrn))
		}
	}
	if rrn == "" || rrn[0] == 'x' {
		return "x" + hex.EncodeToString([]byte(rrn))
	}
	return rrn
}

// openLocks creates (or finds) the lock bucket.
func openLocks(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      LockBucket,
		Description: "Switchyard: locks of records changed by a node (refunds, voids, completions of an original)",
		History:     1,
		TTL:         lockTTL,
		Replicas:    max(replicas, 1),
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("cjournal: KV bucket %s (%d replicas): %w", LockBucket, replicas, err)
	}
	return kv, nil
}

// LockRecord returns once this node holds the cluster-wide lock of the record rrn and
// its local journal holds every version of it written under that lock before, so
// that a Get that follows reads the record as the cluster last changed it. unlock
// gives the lock up; the caller calls it once its change is written (durably). A
// lock held elsewhere is waited for, up to 5 s or ctx's deadline; failing that, or
// without a quorum, the error wraps journal.ErrUnavailable (and, without a quorum,
// cluster.ErrNoQuorum): the change is not to be made now.
func (j *Journal) LockRecord(ctx context.Context, rrn string) (unlock func(), err error) {
	ctx, cancel := context.WithTimeout(ctx, lockWait)
	defer cancel()
	start := time.Now()
	wait, waited := time.Millisecond, false
	fail := func(err error) (func(), error) {
		j.stats.lockFailures.Add(1)
		j.cn.Metrics().ObserveRecordLock("failed")
		return nil, fmt.Errorf("cjournal: lock record %q: %w: %w", rrn, journal.ErrUnavailable, err)
	}
	key := lockKey(rrn)
	var rev uint64
	for {
		rev, err = j.locks.Create(ctx, key, []byte(j.idPrefix))
		if err == nil {
			break
		}
		if !lockHeld(err) {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				err = fmt.Errorf("%w: %w", cluster.ErrNoQuorum, err)
			}
			return fail(err)
		}
		if !waited {
			j.stats.lockWaits.Add(1)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			holder := "another change"
			gctx, gcancel := context.WithTimeout(context.Background(), lockRelease)
			if e, gerr := j.locks.Get(gctx, key); gerr == nil {
				holder = "node process " + string(e.Value())
			}
			gcancel()
			return fail(fmt.Errorf("held by %s for over %s", holder, time.Since(start).Round(time.Millisecond)))
		}
		wait, waited = min(2*wait, 50*time.Millisecond), true
	}
	j.held.add(rrn)
	unlock = func() {
		if j.held.remove(rrn) {
			// A durable write of the record failed under the lock: the stream may
			// still store it (its group is sent again), after a next holder read the
			// record without it. The lock lapses instead, after lockTTL.
			j.log.Warn().Str("rrn", rrn).Dur("lapses_in", lockTTL).Msg("cluster journal: a write under the record's lock failed; the lock is kept until it lapses")
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), lockRelease)
		defer cancel()
		if err := j.locks.Delete(ctx, key, jetstream.LastRevision(rev)); err != nil {
			j.log.Warn().Err(err).Str("rrn", rrn).Dur("lapses_in", lockTTL).Msg("cluster journal: record lock not released; it lapses by itself")
		}
	}
	if err := j.CaughtUp(ctx); err != nil {
		unlock()
		return fail(fmt.Errorf("catching up with the stream: %w", err))
	}
	j.stats.locksTaken.Add(1)
	result := "taken"
	if waited {
		result = "waited"
	}
	j.cn.Metrics().ObserveRecordLock(result)
	return unlock, nil
}
