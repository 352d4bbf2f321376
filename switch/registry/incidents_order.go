package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/statelog"
)

// Incidents in a cluster (Options.Log). Every node sees every incident, whichever
// node's terminal raised it, so that an operator on any node's console handles
// them all, a review case's incident ID means the same on every node, and
// merchant ratings count the same incidents everywhere.
//
// Check only queues an incident, without an ID. The writer (orderWriter) orders
// what is queued, in batches, through the Log like any registry write: under the
// store's lock it gives the batch the next incident sequences and commits them
// with a compare-and-set on the revision, so the sequences are unique
// cluster-wide without a coordinator. A commit that meets another node's is
// given new sequences after this node has caught up. A commit whose outcome is
// unknown (no acknowledgement: no quorum) may still have been ordered at the
// revision after the one it was based on; before it is tried again, the writer
// waits until it can catch up and looks whether the first incident's key holds
// exactly what it sent (orderTry): then the batch was stored, through the
// follower, and is not stored twice.
//
// Nothing waits for the cluster on Check's path. While incidents cannot be
// ordered they wait in the writer's memory, up to Options.MaxPendingIncidents;
// beyond that, when the queue is full, and when the node stops, they are written
// to this node's Badger (pfxIncSpill) and ordered later, by this run's writer or
// the next one's.

// orderBatch is the most incidents ordered with one commit: a binding incident
// carries the terminal and merchant records, 1-3 KB of JSON, so a commit stays
// well under the NATS max payload.
const orderBatch = 64

// orderRetry is how long the writer waits after a failed attempt.
const orderRetry = time.Second

// orderTry is an attempt whose outcome is unknown: count incidents from
// sequence seq, committed after revision from; first is the first one's JSON.
type orderTry struct {
	from, seq uint64
	count     int
	first     []byte
}

// orderWriter is the writer of incidents in a cluster.
func (r *incidents) orderWriter() {
	defer r.wg.Done()
	var pending []incItem // incidents and flush barriers, in order
	failing := false
	for {
		if len(pending) == 0 {
			if r.spilled.Swap(false) {
				pending = r.readSpilled()
			}
		}
		if len(pending) == 0 {
			select {
			case it := <-r.incQ:
				pending = append(pending, it)
			case <-r.stop:
				r.stopOrdering(nil)
				return
			}
		}
		pending = r.gatherPending(pending)
		n, incs := orderPrefix(pending)
		k, err := r.orderIncidents(incs)
		pending = closeBarriers(pending, n, k)
		switch {
		case err == nil && failing:
			failing = false
			r.log.Info().Int("pending", countIncidents(pending)).Msg("registry: incidents are ordered again")
		case err != nil && !failing:
			failing = true
			r.log.Error().Err(err).Int("pending", countIncidents(pending)).Msg("registry: incidents not ordered yet; retrying")
		}
		if err != nil {
			t := time.NewTimer(orderRetry)
			select {
			case <-t.C:
			case <-r.stop:
				t.Stop()
				r.stopOrdering(pending)
				return
			}
		}
	}
}

// gatherPending moves what is queued to pending; incidents beyond
// MaxPendingIncidents are spilled to this node's Badger instead.
func (r *incidents) gatherPending(pending []incItem) []incItem {
	held := countIncidents(pending)
	for {
		select {
		case it := <-r.incQ:
			if it.inc != nil && held >= r.opts.MaxPendingIncidents {
				r.spill(it.inc)
				continue
			}
			if it.inc != nil {
				held++
			}
			pending = append(pending, it)
		default:
			return pending
		}
	}
}

// orderPrefix returns how many items of pending the next attempt covers (up to
// orderBatch incidents, and the barriers among and before them) and their
// incidents.
func orderPrefix(pending []incItem) (int, []*Incident) {
	var incs []*Incident
	n := 0
	for ; n < len(pending); n++ {
		if inc := pending[n].inc; inc != nil {
			if len(incs) == orderBatch {
				break
			}
			incs = append(incs, inc)
		}
	}
	return n, incs
}

// closeBarriers closes the flush barriers among pending[:n] (a flush waits for
// one attempt, not for the quorum) and returns pending without them and without
// its first ordered incidents.
func closeBarriers(pending []incItem, n, ordered int) []incItem {
	kept := pending[:0]
	for i, it := range pending {
		switch {
		case i < n && it.done != nil:
			close(it.done)
		case i < n && ordered > 0:
			ordered--
		default:
			kept = append(kept, it)
		}
	}
	clear(pending[len(kept):])
	return kept
}

func countIncidents(items []incItem) int {
	n := 0
	for _, it := range items {
		if it.inc != nil {
			n++
		}
	}
	return n
}

// stopOrdering is the writer's end: what is queued joins pending, one more
// attempt orders what it can, and the rest is spilled to this node's Badger for
// the next run.
func (r *incidents) stopOrdering(pending []incItem) {
	for { // nothing is queued after qclosed is set
		select {
		case it := <-r.incQ:
			pending = append(pending, it)
			continue
		default:
		}
		break
	}
	for len(pending) > 0 {
		n, incs := orderPrefix(pending)
		k, err := r.orderIncidents(incs)
		pending = closeBarriers(pending, n, k)
		if err != nil {
			left := countIncidents(pending)
			for _, it := range pending {
				if it.inc != nil && it.inc.spillKey == nil {
					r.spill(it.inc)
				}
			}
			r.log.Error().Err(err).Int("incidents", left).Msg("registry: incidents not ordered at stop; kept on this node's disk for the next start")
			return
		}
	}
}

// spill writes inc, not yet ordered, to this node's Badger.
func (r *incidents) spill(inc *Incident) {
	key := seqKey(pfxIncSpill, r.spillSeq.Add(1))
	b, err := json.Marshal(inc)
	if err == nil {
		err = r.db.Update(func(txn *badger.Txn) error { return txn.Set(key, b) })
	}
	if err == nil {
		err = r.db.Sync()
	}
	if err != nil {
		r.log.Error().Err(err).Str("reason", string(inc.Reason)).Str("terminal", inc.TerminalID).Msg("registry: incident lost: not ordered and not written to this node's disk")
		return
	}
	r.spilled.Store(true)
}

// readSpilled returns the spilled incidents, oldest first, each with its key
// (deleted when it is ordered).
func (r *incidents) readSpilled() []incItem {
	var items []incItem
	err := r.db.View(func(txn *badger.Txn) error {
		return iterate(txn, pfxIncSpill, func(k, v []byte) error {
			inc := new(Incident)
			if err := json.Unmarshal(v, inc); err != nil {
				return fmt.Errorf("decode %s: %w", k, err)
			}
			inc.Seq, inc.ID = 0, ""
			inc.spillKey = append([]byte(nil), k...)
			items = append(items, incItem{inc: inc})
			return nil
		})
	})
	if err != nil {
		r.log.Error().Err(err).Msg("registry: read the incidents kept on this node's disk")
		r.spilled.Store(true)
	}
	return items
}

// orderIncidents stores incs in the cluster with one commit, first settling the
// outcome of the last attempt if it is unknown (whose incidents are the first of
// incs: the writer tries the same ones again). It returns how many of incs, from
// the first, are stored: all of them unless it returns an error.
func (r *incidents) orderIncidents(incs []*Incident) (int, error) {
	stored := 0
	if t := r.tried; t != nil && len(incs) > 0 {
		landed, err := r.landed(t)
		if err != nil {
			return 0, fmt.Errorf("registry: settle the outcome of %d incidents sent after revision %d: %w", t.count, t.from, err)
		}
		r.tried = nil
		if landed {
			r.ordered(incs[:t.count], t.seq, true)
			stored, incs = t.count, incs[t.count:]
		}
	}
	if len(incs) == 0 {
		return stored, nil
	}
	t, err := r.tryOrder(incs)
	if errors.Is(err, statelog.ErrConflict) {
		if cerr := r.catchUp(t.from); cerr != nil {
			return stored, fmt.Errorf("%w (and not caught up: %v)", err, cerr)
		}
		t, err = r.tryOrder(incs)
	}
	if errors.Is(err, statelog.ErrUnavailable) {
		r.tried = &t
	}
	if err != nil {
		return stored, err
	}
	return stored + len(incs), nil
}

// tryOrder gives incs the next sequences and commits them through the Log.
func (r *incidents) tryOrder(incs []*Incident) (orderTry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := orderTry{from: r.rev.Load(), seq: r.incSeq.Load() + 1, count: len(incs)}
	enc := make([][]byte, len(incs))
	for i, inc := range incs {
		inc.Seq = t.seq + uint64(i)
		inc.ID = incidentID(inc.Seq)
		b, err := json.Marshal(inc)
		if err != nil {
			return t, fmt.Errorf("registry: encode incident of terminal %s (%s): %w", inc.TerminalID, inc.Reason, err)
		}
		enc[i] = b
	}
	t.first = enc[0]
	err := r.commitLocked(func(txn *wtx) error {
		for i, inc := range incs {
			if err := txn.Set(seqKey(pfxIncident, inc.Seq), enc[i]); err != nil {
				return err
			}
			if inc.spillKey != nil {
				if err := txn.Txn.Delete(inc.spillKey); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return t, fmt.Errorf("registry: order %d incidents from %s: %w", len(incs), incidentID(t.seq), err)
	}
	if last := t.seq + uint64(len(incs)) - 1; last > r.incSeq.Load() {
		r.incSeq.Store(last)
	}
	r.ordered(incs, t.seq, false)
	return t, nil
}

// landed says whether attempt t, whose outcome was unknown, was ordered: it
// waits until this node has applied what the Log holds and compares the first
// incident's key with what t sent. An error means the Log is still out of reach.
func (r *incidents) landed(t *orderTry) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.CatchUpTimeout)
	defer cancel()
	if r.opts.CatchUp != nil {
		if err := r.opts.CatchUp(ctx, r.replica); err != nil {
			return false, err
		}
	}
	var got []byte
	err := r.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(seqKey(pfxIncident, t.seq))
		if err != nil {
			return err
		}
		got, err = it.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return bytes.Equal(got, t.first), nil
}

// ordered finishes incs, stored from sequence seq: their IDs, the log line, and
// (when the follower stored them) their spilled copies deleted.
func (r *incidents) ordered(incs []*Incident, seq uint64, viaFollower bool) {
	var spills [][]byte
	for i, inc := range incs {
		inc.Seq = seq + uint64(i)
		inc.ID = incidentID(inc.Seq)
		r.logIncident(inc)
		if viaFollower && inc.spillKey != nil {
			spills = append(spills, inc.spillKey)
		}
	}
	if len(spills) == 0 {
		return
	}
	if err := r.db.Update(func(txn *badger.Txn) error {
		for _, k := range spills {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		// They were ordered; a copy left behind would be ordered again at the next
		// start. Say so rather than hide it.
		r.log.Error().Err(err).Int("incidents", len(spills)).Msg("registry: ordered incidents' copies not deleted from this node's disk; they will be recorded again")
	}
}

// orderNow orders one incident at once (a confirmed fraud's, which the caller
// needs the ID of).
func (r *incidents) orderNow(inc *Incident) error {
	t, err := r.tryOrder([]*Incident{inc})
	if errors.Is(err, statelog.ErrConflict) {
		if cerr := r.catchUp(t.from); cerr != nil {
			return fmt.Errorf("%w (and not caught up: %v)", err, cerr)
		}
		_, err = r.tryOrder([]*Incident{inc})
	}
	return err
}
