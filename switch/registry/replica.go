package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/statelog"
)

// The registry shared by the nodes of a cluster (Options.Log): this node's writes
// are ordered by the Log before they reach Badger (commitLocked), the other nodes'
// come in through ApplyRemote. See docs/cluster.md, "Registry".

var _ statelog.Replica = (*Registry)(nil)

// Revision returns the revision of the cluster's state log this registry last
// applied (0 for none, and always 0 on a single node).
func (r *store) Revision() uint64 { return r.rev.Load() }

// retry runs op, a registry write that takes the store's lock itself. When its
// commit met another node's (statelog.ErrConflict), it waits until this node has
// applied that commit and runs op once more from the top, so that op decides again
// on the current state: an unrelated change made meanwhile on another node does not
// stop it, and a change that no longer fits (the same change approved elsewhere)
// gets op's own clear error. A second conflict is an ErrConflict asking to reload.
func retry[T any](r *store, op func() (T, error)) (T, error) {
	from := r.rev.Load()
	v, err := op()
	if r.opts.Log == nil || !errors.Is(err, statelog.ErrConflict) {
		return v, err
	}
	if cerr := r.catchUp(from); cerr != nil {
		return v, &kindError{ErrConflict, fmt.Sprintf("the registry changed on another node and this node has not caught up (%v); reload and retry", cerr)}
	}
	v, err = op()
	if errors.Is(err, statelog.ErrConflict) {
		return v, &kindError{ErrConflict, fmt.Sprintf("the registry changed on another node; reload and retry (%v)", err)}
	}
	return v, err
}

// catchUp waits, up to Options.CatchUpTimeout, until this node has applied the
// commits that were ordered before its own could be: Options.CatchUp, and in any
// case until the revision has moved past from, the one the refused commit was
// based on. (The second wait matters: on a replicated stream the commit that beat
// ours may still be in flight, not yet the subject's last message, when CatchUp
// asks for it; TestRegistryThreeNodes saw this.)
func (r *store) catchUp(from uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.CatchUpTimeout)
	defer cancel()
	if r.opts.CatchUp != nil {
		if err := r.opts.CatchUp(ctx, r.replica); err != nil {
			return err
		}
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for r.rev.Load() == from {
		select {
		case <-ctx.Done():
			return fmt.Errorf("still at revision %d after %v", from, r.opts.CatchUpTimeout)
		case <-t.C:
		}
	}
	return nil
}

// ApplyRemote implements statelog.Replica: it writes commit c, ordered at revision
// rev, to Badger with the revision, in one transaction, and brings the memory it
// touches up to date: merchants and terminals (Check enforces them at once), alert
// rules and the alerts' index, the last change and incident sequences and the end
// of the oplog chain. A revision this registry has applied already (its own
// commits come back this way) is skipped.
func (r *Registry) ApplyRemote(rev uint64, c statelog.Commit) error {
	approved, err := r.applyRemote(rev, c)
	// Another package's reviewed operations (scheduled tasks, terminal
	// applications) approved on another node take effect here too, as on the
	// node that approved them: outside the registry's lock.
	for _, ch := range approved {
		r.applyExt(ch)
	}
	return err
}

// applyRemote is ApplyRemote under the registry's lock; it returns the changes
// of other packages' operations the commit approved.
func (r *Registry) applyRemote(rev uint64, c statelog.Commit) ([]*Change, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rev <= r.rev.Load() {
		return nil, nil
	}
	// Decode first: a commit this node cannot read must not reach Badger with its
	// revision, or the memory would silently differ from the disk.
	var (
		ms        []*Merchant
		ts        []*Terminal
		rules     = map[string]*AlertRule{} // nil value: deleted
		chgSeq    = r.review.chgSeq
		logSeq    = r.logSeq
		logHash   = r.logHash
		incSeq    = r.incSeq.Load()
		alerts    []*Alert
		own       = map[string]uint64{} // this node's new incidents, by origin
		unspilled int64                 // their copies on this node's disk, deleted
		added     []*Incident           // new incidents, for the hook
		approved  []*Change             // other packages' operations approved
		newAbove  = r.incSeq.Load()     // an incident above this one is new here (not a handling of an old one)
	)
	for _, w := range c.Writes {
		k := string(w.Key)
		switch {
		case strings.HasPrefix(k, pfxMerchant) && w.Value != nil:
			m := new(Merchant)
			if err := json.Unmarshal(w.Value, m); err != nil {
				return nil, fmt.Errorf("registry: revision %d: decode merchant %s: %w", rev, k, err)
			}
			ms = append(ms, m)
		case strings.HasPrefix(k, pfxTerminal) && w.Value != nil:
			t := new(Terminal)
			if err := json.Unmarshal(w.Value, t); err != nil {
				return nil, fmt.Errorf("registry: revision %d: decode terminal %s: %w", rev, k, err)
			}
			ts = append(ts, t)
		case strings.HasPrefix(k, pfxRule):
			var ar *AlertRule
			if w.Value != nil {
				ar = new(AlertRule)
				if err := json.Unmarshal(w.Value, ar); err != nil {
					return nil, fmt.Errorf("registry: revision %d: decode alert rule %s: %w", rev, k, err)
				}
			}
			rules[strings.TrimPrefix(k, pfxRule)] = ar
		case strings.HasPrefix(k, pfxChange):
			if n, err := strconv.ParseUint(strings.TrimPrefix(k, pfxChange), 10, 64); err == nil && n > chgSeq {
				chgSeq = n
			}
			if w.Value != nil {
				ch, err := r.newlyApprovedExt(w.Key, w.Value)
				if err != nil {
					return nil, fmt.Errorf("registry: revision %d: %w", rev, err)
				}
				if ch != nil {
					approved = append(approved, ch)
				}
			}
		case strings.HasPrefix(k, pfxIncident):
			n, err := strconv.ParseUint(strings.TrimPrefix(k, pfxIncident), 10, 64)
			if err == nil && n > incSeq {
				incSeq = n
			}
			if w.Value != nil && err == nil && n > newAbove { // a new incident, not a handling of one
				x := new(Incident)
				if err := json.Unmarshal(w.Value, x); err != nil {
					return nil, fmt.Errorf("registry: revision %d: decode incident %s: %w", rev, k, err)
				}
				added = append(added, x)
				// One of this node's, whose commit landed though its
				// acknowledgement was lost: its copy on disk goes in this
				// transaction, and the writer does not order it again.
				if x.Origin != "" && r.ownOrigin(x.Origin) {
					own[x.Origin] = n
				}
			}
		case strings.HasPrefix(k, pfxAlert) && w.Value != nil:
			a := new(Alert)
			if err := json.Unmarshal(w.Value, a); err != nil {
				return nil, fmt.Errorf("registry: revision %d: decode alert %s: %w", rev, k, err)
			}
			alerts = append(alerts, a)
		case strings.HasPrefix(k, pfxLog) && w.Value != nil:
			var e OpEntry
			if err := json.Unmarshal(w.Value, &e); err != nil {
				return nil, fmt.Errorf("registry: revision %d: decode oplog entry %s: %w", rev, k, err)
			}
			// >=: a commit of MaskStoredText rewrites the last entry (a new hash).
			if e.Seq >= logSeq {
				logSeq, logHash = e.Seq, e.Hash
			}
		}
	}
	if err := r.db.Update(func(txn *badger.Txn) error {
		for _, w := range c.Writes {
			var err error
			if w.Value == nil {
				err = txn.Delete(w.Key)
			} else {
				err = txn.Set(w.Key, w.Value)
			}
			if err != nil {
				return fmt.Errorf("write %s: %w", w.Key, err)
			}
		}
		for origin := range own {
			// Noted only when something waits for it: an attempt of this run
			// (awaited) or a copy on disk (a stop or a crash since); a node
			// replaying its own history notes nothing.
			key := []byte(pfxIncSpill + origin)
			_, err := txn.Get(key)
			switch {
			case err == nil:
				if err := txn.Delete(key); err != nil {
					return fmt.Errorf("delete the spilled copy of incident %s: %w", origin, err)
				}
				unspilled++
			case !errors.Is(err, badger.ErrKeyNotFound):
				return fmt.Errorf("look for the spilled copy of incident %s: %w", origin, err)
			default:
				if _, ok := r.incidents.awaited[origin]; !ok {
					delete(own, origin)
				}
			}
		}
		return txn.Set([]byte(keyRevision), []byte(strconv.FormatUint(rev, 10)))
	}); err != nil {
		return nil, fmt.Errorf("registry: apply revision %d (%d keys): %w", rev, len(c.Writes), err)
	}
	r.rev.Store(rev)
	for _, m := range ms {
		r.publishMerchant(m)
	}
	r.publishTerminals(ts...)
	for id, ar := range rules {
		if ar == nil {
			delete(r.alerting.rules, id)
		} else {
			r.alerting.rules[id] = ar
		}
	}
	r.review.chgSeq, r.logSeq, r.logHash = chgSeq, logSeq, logHash
	r.incSeq.Store(incSeq)
	for origin, seq := range own {
		r.incidents.landed[origin] = seq
	}
	if unspilled > 0 {
		r.keptOnDisk(-unspilled)
	}
	if h := r.incidents.remoteHook; h != nil {
		for _, inc := range added {
			h(inc)
		}
	}
	for _, a := range alerts {
		r.indexAlert(a)
		if a.Seq > r.alrSeq {
			r.alrSeq = a.Seq
		}
	}
	return approved, nil
}

// newlyApprovedExt decodes the change a commit writes under key and returns it
// when it is another package's operation (RegisterOp) that the commit approves:
// approved in the commit and not yet in this node's store.
func (r *Registry) newlyApprovedExt(key, val []byte) (*Change, error) {
	ch := new(Change)
	if err := json.Unmarshal(val, ch); err != nil {
		return nil, fmt.Errorf("decode change %s: %w", key, err)
	}
	if ch.Status != ChangeApproved {
		return nil, nil
	}
	if _, ok := r.ext.get(ch.Op); !ok {
		return nil, nil
	}
	var before Change
	err := r.db.View(func(txn *badger.Txn) error { return getJSON(txn, key, &before) })
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
	case err != nil:
		return nil, fmt.Errorf("read change %s: %w", key, err)
	case before.Status == ChangeApproved:
		return nil, nil
	}
	return ch, nil
}
