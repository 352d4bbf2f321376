package registry

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// ExtOp is a reviewed operation owned by another package (switch/apps publishes
// and withdraws terminal applications, switch/sched puts scheduled tasks): its
// requests go through the same two-person review, the same change list and the
// same hash-chained oplog as the registry's own changes, but what it does is the
// owner's. The change carries the owner's payload in Change.Ext.
//
// The registry writes no record for it: the approval commits the change (approved)
// and one oplog entry for the effect Check returned, then calls Apply. An owner
// that must survive a crash between the two rebuilds its state from the approved
// changes (Changes with ChangeFilter.Op) at start, as switch/apps does.
//
// The registry does not know what an owner's record is, so it cannot tell an update
// of nothing from a change: an owner refuses one when it requests the change, with
// NothingToChange (an app-signing key put again as it is, a release published
// again, a task put as defined, a webhook set to the URL and secret in force).
type ExtOp struct {
	// Check says whether the change can be applied now (at the request, in the
	// preview and at the approval) and what it does: the effect shown in the preview
	// and written to the oplog (Type and ID name the owner's record).
	Check func(c *Change) (ChangeEffect, error)
	// Apply is called once the approval is committed, outside the registry's lock.
	// Nil: nothing to do (the owner reads the approved changes itself).
	Apply func(c *Change)
	// RequestRoles, when set, are the roles that may request the operation, in
	// place of the operators and admins who request the registry's own changes
	// (the risk analysts request allow-list additions, switch/listreview). Its
	// changes are reviewed as every other: by a reviewer or admin who is not the
	// requester.
	RequestRoles []string
}

// extOps holds the registered ExtOps by operation.
type extOps struct {
	mu  sync.RWMutex
	ops map[Op]ExtOp
}

func (x *extOps) get(op Op) (ExtOp, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	h, ok := x.ops[op]
	return h, ok
}

// RegisterOp makes op a reviewed operation handled by h. It panics if op is one of
// the registry's own or already registered: two owners of one operation is a wiring
// bug.
func (r *review) RegisterOp(op Op, h ExtOp) {
	if h.Check == nil {
		panic("registry: RegisterOp " + string(op) + ": nil Check")
	}
	probe := Change{Op: op}
	if _, err := r.compute(&probe, r.now()); err == nil || !isUnknownOp(err) {
		panic("registry: RegisterOp " + string(op) + ": the registry handles it already")
	}
	r.ext.mu.Lock()
	defer r.ext.mu.Unlock()
	if r.ext.ops == nil {
		r.ext.ops = map[Op]ExtOp{}
	}
	if _, dup := r.ext.ops[op]; dup {
		panic("registry: RegisterOp " + string(op) + ": registered twice")
	}
	r.ext.ops[op] = h
}

// canRequestOp reports whether p may request a change of op: an operator or
// admin, or for an operation registered with RequestRoles, a holder of one of
// them.
func (r *review) canRequestOp(p Actor, op Op) bool {
	if h, ok := r.ext.get(op); ok && h.RequestRoles != nil {
		return slices.Contains(h.RequestRoles, p.Role)
	}
	return canRequest(p)
}

// computeExt is compute for an operation registered with RegisterOp.
func (r *review) computeExt(c *Change) ([]effect, bool, error) {
	h, ok := r.ext.get(c.Op)
	if !ok {
		return nil, false, nil
	}
	ce, err := h.Check(c)
	if err != nil {
		return nil, true, err
	}
	if ce.After == nil {
		ce.After = json.RawMessage("null")
	}
	return []effect{{xAfter: &ce}}, true, nil
}

// applyExt runs the owner's Apply after c was approved.
func (r *review) applyExt(c *Change) {
	if h, ok := r.ext.get(c.Op); ok && h.Apply != nil && c.Status == ChangeApproved {
		h.Apply(c)
	}
}

// GroupMinimums is what the rollout groups (switch/apps) hold a terminal to: Check
// asks it at every request, from the terminal's and its merchant's current
// records, so that a terminal registered or changed into a group is held to the
// group's minimum from its first request, not from the owner's next resolution of
// its groups.
type GroupMinimums interface {
	// GroupMinimum returns the minimum application version the rollout groups hold
	// terminal t of merchant m (nil when unknown) to when it runs the application
	// app (DE 48 AN, or the app claim of a verified AJ; "" when it said none), as
	// a dotted version and its parts (ParseVersion); "" and nil when none. It is
	// called on the hot path: it must not block and should not allocate.
	GroupMinimum(t *Terminal, m *Merchant, app string) (version string, parts []int)
}

// groupMins holds the GroupMinimums in force (an atomic.Pointer needs a type).
type groupMins struct{ g GroupMinimums }

// SetGroupMinimums sets what holds each terminal to its rollout groups' minimum
// application version (switch/apps sets it at every resolution of its groups):
// Check holds the terminal to the higher of it and the terminal's own
// MinAppVersion, and declines an older AV with 58 app-version-low as before (a
// group's rollout never lowers a floor set on the terminal). Nil: the terminals'
// own minimums only. It is not stored: the owner sets it again at every start.
func (r *store) SetGroupMinimums(g GroupMinimums) {
	if g == nil {
		r.groupMins.Store(nil)
		return
	}
	r.groupMins.Store(&groupMins{g: g})
}

// groupMinimum is the rollout groups' minimum of terminal t of merchant m running
// app ("" and nil when none).
func (r *store) groupMinimum(t *Terminal, m *Merchant, app string) (string, []int) {
	gm := r.groupMins.Load()
	if gm == nil {
		return "", nil
	}
	return gm.g.GroupMinimum(t, m, app)
}

// GroupMinimum returns the minimum version terminal id is held to by its rollout
// groups when it runs app ("" when it says none), "" when none.
func (r *store) GroupMinimum(id, app string) string {
	t, ok := r.Terminal(id)
	if !ok {
		return ""
	}
	m, _ := r.Merchant(t.MerchantID)
	v, _ := r.groupMinimum(t, m, app)
	return v
}

// ApprovedChanges returns the approved changes of the operations ops, in their
// order (by sequence): what an owner of RegisterOp operations folds into its state.
// It reads every change but decodes in full only those of ops, so an owner can call
// it often (switch/apps every 30 s) however large the imports in the change list.
func (r *review) ApprovedChanges(ops ...Op) ([]*Change, error) {
	return r.changesOf([]ChangeStatus{ChangeApproved}, ops)
}

// PendingChanges is ApprovedChanges for the pending changes of ops.
func (r *review) PendingChanges(ops ...Op) ([]*Change, error) {
	return r.changesOf([]ChangeStatus{ChangePending}, ops)
}

// ClosedChanges is ApprovedChanges for the rejected and cancelled changes of ops:
// an owner deletes what it kept for them (switch/notify, the staged secrets).
func (r *review) ClosedChanges(ops ...Op) ([]*Change, error) {
	return r.changesOf([]ChangeStatus{ChangeRejected, ChangeCancelled}, ops)
}

// changesOf returns the changes of ops in one of statuses, in their order,
// decoding in full only those.
func (r *review) changesOf(statuses []ChangeStatus, ops []Op) ([]*Change, error) {
	var out []*Change
	err := r.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxChange), PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			err := it.Item().Value(func(v []byte) error {
				var head struct {
					Op     Op           `json:"op"`
					Status ChangeStatus `json:"status"`
				}
				if err := json.Unmarshal(v, &head); err != nil {
					return err
				}
				if !slices.Contains(statuses, head.Status) || !slices.Contains(ops, head.Op) {
					return nil
				}
				c := new(Change)
				if err := json.Unmarshal(v, c); err != nil {
					return err
				}
				out = append(out, c)
				return nil
			})
			if err != nil {
				return fmt.Errorf("registry: read change %s: %w", it.Item().Key(), err)
			}
		}
		return nil
	})
	return out, err
}
