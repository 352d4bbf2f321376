package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/statelog"
)

// Incidents in a cluster (Options.Log). Every node sees every incident, whichever
// node's terminal raised it, so that an operator on any node's console handles
// them all, a review case's incident ID means the same on every node, and
// merchant ratings count the same incidents everywhere.
//
// Check only queues an incident, without an ID but with an origin that names it
// uniquely (the node, the time, random bits). The writer (orderWriter) orders
// what is queued, in batches, through the Log like any registry write: under the
// store's lock it gives the batch the next incident sequences and commits them
// with a compare-and-set on the revision, so the sequences are unique
// cluster-wide without a coordinator. A commit that meets another node's is
// given new sequences after this node has caught up.
//
// A commit whose outcome is unknown (no acknowledgement: no quorum) may have been
// stored, now or later. Two rules keep each incident stored once. The writer
// tries again only after this node has caught up with the Log; and ApplyRemote,
// which is how such a commit reaches this node (its revision was never recorded),
// notes this node's origins it applies when something waits for them (landed:
// an attempt of this run, awaited, or a copy on disk), and tryOrder drops those
// from any later attempt. A late commit and a retry are based on the same revision,
// so the compare-and-set stores one of them at most; if the late one wins, the
// retry meets it, catches up, and finds its incidents landed.
//
// Nothing waits for the cluster on Check's path. While incidents cannot be
// ordered they wait in the writer's memory, up to Options.MaxPendingIncidents,
// and from the first failed attempt on this node's Badger too (keep), so that a
// crash loses none; beyond the bound, when the queue is full, and at a stop they
// are written there only. They are kept under their origin (pfxIncSpill), read back in batches,
// and deleted in the Badger transaction that stores them: this node's commit,
// or ApplyRemote's for a commit that landed unacknowledged (before or after a
// restart).

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
		n, incs := orderPrefix(pending)
		err := r.orderIncidents(incs)
		pending = closeBarriers(pending, n)
		r.m.waiting.WithLabelValues("memory").Set(float64(countIncidents(pending)))
		switch {
		case err == nil && failing:
			failing, wait = false, orderRetry
			r.log.Info().Int("pending", countIncidents(pending)).Msg("registry: incidents are ordered again")
		case err != nil && !failing:
			failing = true
			r.log.Error().Err(err).Int("pending", countIncidents(pending)).Msg("registry: incidents not ordered yet; retrying")
		}
		if err != nil {
			r.keep(pending) // durable while the cluster cannot take them
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
// the incidents of pending[:n] that are stored.
func closeBarriers(pending []incItem, n int) []incItem {
	kept := pending[:0]
	for i, it := range pending {
		switch {
		case i < n && it.done != nil:
			close(it.done)
		case i < n && it.inc.stored:
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
	var err error
	for countIncidents(pending) > 0 {
		n, incs := orderPrefix(pending)
		err = r.orderIncidents(incs)
		pending = closeBarriers(pending, n)
		if err != nil {
			break
		}
	}
	pending = closeBarriers(pending, len(pending))
	r.m.waiting.WithLabelValues("memory").Set(0)
	// Under the lock: an ApplyRemote that stores one of them (a late commit; the
	// followers still run) either comes first, and it is not kept, or after,
	// and deletes the kept copy.
	r.mu.Lock()
	defer r.mu.Unlock()
	left := pending[:0]
	for _, it := range pending {
		if _, ok := r.landed[it.inc.Origin]; !ok {
			left = append(left, it)
		}
	}
	if len(left) == 0 {
		return
	}
	r.keep(left)
	r.log.Error().Err(err).Int("incidents", len(left)).Msg("registry: incidents not ordered at stop; kept on this node's disk for the next start")
}

// keep writes the incidents of items not on disk yet to this node's Badger, with
// one sync, so that a crash while the cluster has no quorum loses none of them.
func (r *incidents) keep(items []incItem) {
	var incs []*Incident
	for _, it := range items {
		if it.inc != nil && !it.inc.spilled {
			incs = append(incs, it.inc)
		}
	}
	if err := r.writeCopies(incs); err != nil {
		r.log.Error().Err(err).Int("incidents", len(incs)).Msg("registry: incidents not ordered and not written to this node's disk: a crash would lose them")
	}
}

// spill writes inc, not yet ordered and not held by the writer, to this node's
// Badger, for the writer to read back.
func (r *incidents) spill(inc *Incident) {
	if err := r.writeCopies([]*Incident{inc}); err != nil {
		r.log.Error().Err(err).Str("reason", string(inc.Reason)).Str("terminal", inc.TerminalID).Msg("registry: incident lost: not ordered and not written to this node's disk")
		return
	}
	r.spilled.Store(true)
}

// writeCopies writes incs under their origins (pfxIncSpill) with one transaction
// and one sync, and marks them so.
func (r *incidents) writeCopies(incs []*Incident) error {
	if len(incs) == 0 {
		return nil
	}
	err := r.db.Update(func(txn *badger.Txn) error {
		for _, inc := range incs {
			b, err := json.Marshal(inc)
			if err != nil {
				return err
			}
			if err := txn.Set([]byte(pfxIncSpill+inc.Origin), b); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = r.db.Sync()
	}
	if err != nil {
		return err
	}
	for _, inc := range incs {
		inc.spilled = true
	}
	r.keptOnDisk(int64(len(incs)))
	return nil
}

// keptOnDisk counts incidents written to (n > 0) or deleted from (n < 0) pfxIncSpill.
func (r *incidents) keptOnDisk(n int64) {
	r.m.waiting.WithLabelValues("disk").Set(float64(r.onDisk.Add(n)))
}

// deleteSpilled deletes inc's copy on this node's disk.
func (r *incidents) deleteSpilled(inc *Incident) {
	key := []byte(pfxIncSpill + inc.Origin)
	deleted := false
	if err := r.db.Update(func(txn *badger.Txn) error {
		if _, err := txn.Get(key); errors.Is(err, badger.ErrKeyNotFound) {
			return nil // ApplyRemote's transaction deleted it
		}
		deleted = true
		return txn.Delete(key)
	}); err != nil {
		r.log.Error().Err(err).Str("incident", inc.ID).Msg("registry: an ordered incident's copy not deleted from this node's disk; it will be recorded again")
		return
	}
	if deleted {
		r.keptOnDisk(-1)
	}
}

// readSpilled appends the oldest spilled incidents to pending, up to
// MaxPendingIncidents held; when more are left it sets spilled again.
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
			if err := json.Unmarshal(v, inc); err != nil || inc.Origin == "" {
				r.log.Error().Err(err).Bytes("key", k).Msg("registry: an incident kept on this node's disk cannot be read; left there, skipped")
				return nil
			}
			inc.Seq, inc.ID, inc.spilled = 0, "", true
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

// orderIncidents stores incs in the cluster with one commit and marks those
// stored. After an attempt whose outcome was unknown it first catches up with
// the Log (so that what landed of it is applied, and dropped from this attempt).
// A commit that met another node's is tried once more after catching up.
func (r *incidents) orderIncidents(incs []*Incident) error {
	if len(incs) == 0 {
		return nil
	}
	if r.unsure {
		if err := r.catchUpLog(); err != nil {
			return fmt.Errorf("registry: catch up before incidents are ordered again: %w", err)
		}
		r.unsure = false
	}
	from, err := r.tryOrder(incs)
	if errors.Is(err, statelog.ErrConflict) {
		if cerr := r.catchUp(from); cerr != nil {
			return fmt.Errorf("%w (and not caught up: %v)", err, cerr)
		}
		_, err = r.tryOrder(incs)
	}
	if err != nil && !errors.Is(err, statelog.ErrConflict) {
		r.unsure = true // it may have been ordered all the same
	}
	return err
}

// catchUpLog waits until this node has applied every commit the Log holds.
func (r *incidents) catchUpLog() error {
	if r.opts.CatchUp == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.CatchUpTimeout)
	defer cancel()
	return r.opts.CatchUp(ctx, r.replica)
}

// tryOrder gives the incidents of incs not stored yet the next sequences and
// commits them through the Log, after the revision it returns. Incidents that
// landed with an earlier attempt are marked stored instead.
func (r *incidents) tryOrder(incs []*Incident) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	from := r.rev.Load()
	var todo []*Incident
	for _, inc := range incs {
		if inc.stored {
			continue
		}
		if r.takeLanded(inc) {
			if inc.spilled { // ApplyRemote deleted it already, unless it was spilled after
				r.deleteSpilled(inc)
			}
			continue
		}
		todo = append(todo, inc)
	}
	if len(todo) == 0 {
		return from, nil
	}
	seq := r.incSeq.Load() + 1
	enc := make([][]byte, len(todo))
	for i, inc := range todo {
		inc.Seq = seq + uint64(i)
		inc.ID = incidentID(inc.Seq)
		b, err := json.Marshal(inc)
		if err != nil {
			return from, fmt.Errorf("registry: encode incident of terminal %s (%s): %w", inc.TerminalID, inc.Reason, err)
		}
		enc[i] = b
	}
	err := r.commitLocked(func(txn *wtx) error {
		for i, inc := range todo {
			if err := txn.Set(seqKey(pfxIncident, inc.Seq), enc[i]); err != nil {
				return err
			}
			if inc.Case != "" {
				if err := txn.Set(caseIncidentKey(inc.Case), []byte(inc.ID)); err != nil {
					return err
				}
			}
			if inc.spilled {
				if err := txn.Txn.Delete([]byte(pfxIncSpill + inc.Origin)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil && r.rev.Load() != from {
		// Ordered and committed to Badger; only its sync failed.
		r.log.Error().Err(err).Int("incidents", len(todo)).Msg("registry: incidents stored, but the sync after them failed")
		err = nil
	}
	if err != nil {
		if !errors.Is(err, statelog.ErrConflict) {
			for _, inc := range todo { // they may land later: ApplyRemote notes them
				r.awaited[inc.Origin] = struct{}{}
			}
		}
		return from, fmt.Errorf("registry: order %d incidents from %s: %w", len(todo), incidentID(seq), err)
	}
	if last := seq + uint64(len(todo)) - 1; last > r.incSeq.Load() {
		r.incSeq.Store(last)
	}
	for _, inc := range todo {
		delete(r.awaited, inc.Origin)
		inc.stored = true
		r.logIncident(inc)
		if inc.spilled {
			r.keptOnDisk(-1)
		}
	}
	return from, nil
}

// newOrigin names an incident uniquely across the cluster before it has an ID:
// the node, the time (fixed-width hex, so that spilled incidents sort by time)
// and random bits.
func (r *incidents) newOrigin() string {
	return fmt.Sprintf("%d-%016x%08x", r.opts.Node, r.clock().UnixNano(), rand.Uint32())
}

// ownOrigin says whether origin names an incident of this node.
func (r *incidents) ownOrigin(origin string) bool {
	node, _, ok := strings.Cut(origin, "-")
	return ok && node == strconv.Itoa(r.opts.Node)
}

// orderNow orders one incident at once (a confirmed fraud's, which the caller
// needs the ID of) and returns it stored: inc, or the incident its case already
// has (an earlier decision's, which landed late). An attempt whose outcome is
// unknown is settled before it returns when the Log answers.
func (r *incidents) orderNow(inc *Incident) (*Incident, error) {
	from, err := r.tryOrder([]*Incident{inc})
	if errors.Is(err, statelog.ErrConflict) {
		if cerr := r.catchUp(from); cerr != nil {
			return nil, fmt.Errorf("%w (and not caught up: %v)", err, cerr)
		}
		if prev, perr := r.caseIncident(inc.Case); prev != nil || perr != nil {
			return prev, perr
		}
		_, err = r.tryOrder([]*Incident{inc})
	}
	if err == nil {
		return inc, nil
	}
	if errors.Is(err, statelog.ErrConflict) {
		return nil, err
	}
	if cerr := r.catchUpLog(); cerr != nil {
		return nil, fmt.Errorf("%w; whether it was stored is not known yet (%v)", err, cerr)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.takeLanded(inc) {
		return inc, nil
	}
	delete(r.awaited, inc.Origin) // if it lands later, a new decision finds it by its case
	return nil, err
}

// takeLanded marks inc stored, with its ID, if ApplyRemote noted it landed, and
// forgets the note. r.mu must be held.
func (r *incidents) takeLanded(inc *Incident) bool {
	seq, ok := r.landed[inc.Origin]
	if !ok {
		return false
	}
	delete(r.landed, inc.Origin)
	delete(r.awaited, inc.Origin)
	inc.Seq, inc.ID, inc.stored = seq, incidentID(seq), true
	r.logIncident(inc)
	return true
}
