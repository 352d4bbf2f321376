package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
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

// orderRetry is how long the writer waits after a failed attempt; it doubles
// while attempts fail, up to maxOrderRetry.
const (
	orderRetry    = time.Second
	maxOrderRetry = 16 * time.Second
)

// orderTry is an attempt whose outcome is unknown: the incidents of origins,
// from sequence seq, committed after revision from.
type orderTry struct {
	From    uint64   `json:"from"`
	Seq     uint64   `json:"seq"`
	Origins []string `json:"origins"`
}

// orderWriter is the writer of incidents in a cluster.
func (r *incidents) orderWriter() {
	defer r.wg.Done()
	var pending []incItem // incidents and flush barriers, in order
	failing, wait := false, orderRetry
	for {
		if len(pending) == 0 && r.spilled.Swap(false) {
			pending = r.readSpilled(pending)
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
		var err error
		if pending, err = r.settle(pending); err == nil {
			n, incs := orderPrefix(pending)
			var k int
			var t *orderTry
			k, t, err = r.orderIncidents(incs)
			r.tried = t
			pending = closeBarriers(pending, n, k)
		} else {
			pending = closeBarriers(pending, len(pending), 0)
		}
		switch {
		case err == nil && failing:
			failing, wait = false, orderRetry
			r.log.Info().Int("pending", countIncidents(pending)).Msg("registry: incidents are ordered again")
		case err != nil && !failing:
			failing = true
			r.log.Error().Err(err).Int("pending", countIncidents(pending)).Msg("registry: incidents not ordered yet; retrying")
		}
		if err != nil {
			// Each attempt holds the registry's lock while it waits for the
			// cluster: back off, so that other writes get their turn.
			t := time.NewTimer(wait)
			wait = min(2*wait, maxOrderRetry)
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
// the next run, with the attempt whose outcome is still unknown (settled first
// at the next start).
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
	var err error
	for len(pending) > 0 {
		if pending, err = r.settle(pending); err != nil {
			break
		}
		n, incs := orderPrefix(pending)
		var k int
		k, r.tried, err = r.orderIncidents(incs)
		pending = closeBarriers(pending, n, k)
		if err != nil {
			break
		}
	}
	pending = closeBarriers(pending, len(pending), 0)
	if r.tried != nil {
		if perr := r.putTried(r.tried); perr != nil {
			r.log.Error().Err(perr).Msg("registry: the incidents' last attempt not kept: they may be recorded twice at the next start")
		}
	}
	if len(pending) == 0 {
		return
	}
	for _, it := range pending {
		if it.inc.spillKey == nil {
			r.spill(it.inc)
		}
	}
	r.log.Error().Err(err).Int("incidents", len(pending)).Msg("registry: incidents not ordered at stop; kept on this node's disk for the next start")
}

// keyIncTry holds, on this node only, the incidents' last attempt whose outcome
// was unknown when the node stopped.
const keyIncTry = "reg/inctry"

func (r *incidents) putTried(t *orderTry) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := r.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyIncTry), b) }); err != nil {
		return err
	}
	return r.db.Sync()
}

// loadTried reads the attempt a stop left unsettled (load, before the writer starts).
func (r *incidents) loadTried(txn *badger.Txn) error {
	it, err := txn.Get([]byte(keyIncTry))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("registry: read %s: %w", keyIncTry, err)
	}
	t := new(orderTry)
	if err := it.Value(func(b []byte) error { return json.Unmarshal(b, t) }); err != nil {
		return fmt.Errorf("registry: decode %s: %w", keyIncTry, err)
	}
	if len(t.Origins) > 0 {
		r.tried = t
	}
	return nil
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

// readSpilled appends the oldest spilled incidents to pending, each with its key
// (deleted when it is ordered), up to MaxPendingIncidents held; when more are
// left it sets spilled again.
func (r *incidents) readSpilled(pending []incItem) []incItem {
	room := r.opts.MaxPendingIncidents - countIncidents(pending)
	more := false
	err := r.db.View(func(txn *badger.Txn) error {
		return iterate(txn, pfxIncSpill, func(k, v []byte) error {
			if room == 0 {
				more = true
				return errStopIteration
			}
			inc := new(Incident)
			if err := json.Unmarshal(v, inc); err != nil {
				return fmt.Errorf("decode %s: %w", k, err)
			}
			inc.Seq, inc.ID = 0, ""
			inc.spillKey = append([]byte(nil), k...)
			pending = append(pending, incItem{inc: inc})
			room--
			return nil
		})
	})
	if err != nil && !errors.Is(err, errStopIteration) {
		r.log.Error().Err(err).Msg("registry: read the incidents kept on this node's disk")
		more = true
	}
	if more {
		r.spilled.Store(true)
	}
	return pending
}

var errStopIteration = errors.New("stop")

// settle settles the last attempt if its outcome is unknown: once this node has
// caught up with the Log, the attempt was ordered if the first of its
// sequences holds its first incident (by origin). Its incidents are then stored
// (the follower applied them): they leave pending and this node's disk. An error
// means the Log is still out of reach; pending is unchanged.
func (r *incidents) settle(pending []incItem) ([]incItem, error) {
	t := r.tried
	if t == nil {
		return pending, nil
	}
	landed, err := r.landed(t)
	if err != nil {
		return pending, fmt.Errorf("registry: settle the outcome of %d incidents sent after revision %d: %w", len(t.Origins), t.From, err)
	}
	r.tried = nil
	if err := r.db.Update(func(txn *badger.Txn) error { return txn.Delete([]byte(keyIncTry)) }); err != nil {
		r.log.Error().Err(err).Msg("registry: delete the settled attempt of incidents")
	}
	if !landed {
		return pending, nil
	}
	at := make(map[string]uint64, len(t.Origins))
	for i, o := range t.Origins {
		at[o] = t.Seq + uint64(i)
	}
	var spills [][]byte
	kept := pending[:0]
	for _, it := range pending {
		if it.inc != nil {
			if seq, ok := at[it.inc.Origin]; ok {
				it.inc.Seq, it.inc.ID = seq, incidentID(seq)
				r.logIncident(it.inc)
				if it.inc.spillKey != nil {
					spills = append(spills, it.inc.spillKey)
				}
				delete(at, it.inc.Origin)
				continue
			}
		}
		kept = append(kept, it)
	}
	clear(pending[len(kept):])
	if len(at) > 0 { // after a restart, the attempt's incidents may still be on disk only
		if err := r.db.View(func(txn *badger.Txn) error {
			return iterate(txn, pfxIncSpill, func(k, v []byte) error {
				var x struct {
					Origin string `json:"origin"`
				}
				if json.Unmarshal(v, &x) == nil {
					if _, ok := at[x.Origin]; ok {
						spills = append(spills, append([]byte(nil), k...))
					}
				}
				return nil
			})
		}); err != nil {
			r.log.Error().Err(err).Msg("registry: look for the settled incidents kept on this node's disk")
		}
	}
	r.deleteSpilled(spills)
	return kept, nil
}

// deleteSpilled deletes keys of spilled incidents that were ordered.
func (r *incidents) deleteSpilled(keys [][]byte) {
	if len(keys) == 0 {
		return
	}
	if err := r.db.Update(func(txn *badger.Txn) error {
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		// They were ordered; a copy left behind would be ordered again at the next
		// start. Say so rather than hide it.
		r.log.Error().Err(err).Int("incidents", len(keys)).Msg("registry: ordered incidents' copies not deleted from this node's disk; they will be recorded again")
	}
}

// orderIncidents stores incs in the cluster with one commit and returns how many
// of them are stored: all, or none with an error. A commit that met another
// node's is tried once more after catching up; any other failure may have been
// ordered all the same: it returns that attempt, to be settled (settle) before
// anything is tried again.
func (r *incidents) orderIncidents(incs []*Incident) (int, *orderTry, error) {
	if len(incs) == 0 {
		return 0, nil, nil
	}
	t, err := r.tryOrder(incs)
	if errors.Is(err, statelog.ErrConflict) {
		if cerr := r.catchUp(t.From); cerr != nil {
			return 0, nil, fmt.Errorf("%w (and not caught up: %v)", err, cerr)
		}
		t, err = r.tryOrder(incs)
	}
	switch {
	case err == nil:
		return len(incs), nil, nil
	case errors.Is(err, statelog.ErrConflict):
		return 0, nil, err
	}
	return 0, &t, err
}

// tryOrder gives incs the next sequences and commits them through the Log.
func (r *incidents) tryOrder(incs []*Incident) (orderTry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := orderTry{From: r.rev.Load(), Seq: r.incSeq.Load() + 1, Origins: make([]string, len(incs))}
	enc := make([][]byte, len(incs))
	for i, inc := range incs {
		inc.Seq = t.Seq + uint64(i)
		inc.ID = incidentID(inc.Seq)
		t.Origins[i] = inc.Origin
		b, err := json.Marshal(inc)
		if err != nil {
			return t, fmt.Errorf("registry: encode incident of terminal %s (%s): %w", inc.TerminalID, inc.Reason, err)
		}
		enc[i] = b
	}
	err := r.commitLocked(func(txn *wtx) error {
		for i, inc := range incs {
			if err := txn.Set(seqKey(pfxIncident, inc.Seq), enc[i]); err != nil {
				return err
			}
			if inc.Case != "" {
				if err := txn.Set(caseIncidentKey(inc.Case), []byte(inc.ID)); err != nil {
					return err
				}
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
		return t, fmt.Errorf("registry: order %d incidents from %s: %w", len(incs), incidentID(t.Seq), err)
	}
	if last := t.Seq + uint64(len(incs)) - 1; last > r.incSeq.Load() {
		r.incSeq.Store(last)
	}
	for _, inc := range incs {
		r.logIncident(inc)
	}
	return t, nil
}

// landed says whether attempt t, whose outcome was unknown, was ordered: it
// waits until this node has applied what the Log holds and looks whether the
// first of t's sequences holds t's first incident. An error means the Log is
// still out of reach.
func (r *incidents) landed(t *orderTry) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.CatchUpTimeout)
	defer cancel()
	if r.opts.CatchUp != nil {
		if err := r.opts.CatchUp(ctx, r.replica); err != nil {
			return false, err
		}
	}
	var got struct {
		Origin string `json:"origin"`
	}
	err := r.db.View(func(txn *badger.Txn) error { return getJSON(txn, seqKey(pfxIncident, t.Seq), &got) })
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return got.Origin == t.Origins[0], nil
}

// newOrigin names an incident uniquely across the cluster before it has an ID.
func (r *incidents) newOrigin() string {
	return fmt.Sprintf("%d-%016x", r.opts.Node, rand.Uint64())
}

// orderNow orders one incident at once (a confirmed fraud's, which the caller
// needs the ID of). An attempt whose outcome is unknown is settled at once when
// the Log answers; otherwise the error says so.
func (r *incidents) orderNow(inc *Incident) error {
	k, t, err := r.orderIncidents([]*Incident{inc})
	if k == 1 {
		return nil
	}
	if t != nil {
		landed, lerr := r.landed(t)
		if lerr == nil && landed {
			inc.Seq, inc.ID = t.Seq, incidentID(t.Seq)
			r.logIncident(inc)
			return nil
		}
		if lerr != nil {
			return fmt.Errorf("%w; whether it was stored is not known yet (%v)", err, lerr)
		}
	}
	return err
}
