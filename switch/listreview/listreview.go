// Package listreview puts the risk-list edits that loosen the rules under the
// registry's two-person review.
//
// An entry on the allow list exempts a card, BIN, terminal, merchant or country
// from the fraud rules (`!lists.allow_card` in a rule), so one analyst alone
// could whitelist a colluding card. An edit that can only tighten the rules is
// made at once: a deny-list addition (that does not end an entry already there
// sooner) and an allow-list removal. Every other edit is a registry change
// (OpAdd, OpRemove) the analyst requests and a reviewer or admin who is not the
// analyst approves: an allow-list addition, a deny-list removal (it lets a card
// the rules stopped trade again), a deny-list addition that would end an entry
// sooner (a removal in disguise), and an edit of any other list, which a rule
// may read either way (`in_list("vip", ...)` to exempt, `in_list("mule", ...)`
// to decline). The change carries the entry (Payload); its approval applies it.
//
// It depends on the registry and the risk lists; the admin API calls it.
package listreview

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/registry"
)

// The reviewed operations.
const (
	// OpAdd puts an entry on a list (replacing the entry of its list, kind and
	// value).
	OpAdd registry.Op = "risk-list.add"
	// OpRemove takes an entry off a list.
	OpRemove registry.Op = "risk-list.remove"
)

// RequestRoles may request the reviewed list edits: the analysts, who edit the
// lists, and admins.
var RequestRoles = []string{registry.RoleAnalyst, registry.RoleAdmin}

// Payload is a list change's Change.Ext: the entry to add (its expiry as
// requested, absolute), or to remove (list, kind and value).
type Payload struct {
	Entry risk.ListEntry `json:"entry"`
}

// Registry is what the review needs of the registry.
type Registry interface {
	RegisterOp(op registry.Op, h registry.ExtOp)
	RequestChange(p registry.Actor, c registry.Change) (*registry.Change, error)
	ApprovedChanges(ops ...registry.Op) ([]*registry.Change, error)
}

// Options configure a Review.
type Options struct {
	// Logger receives the approved edits the lists refused to take (a cluster
	// without quorum at the approval's moment). The zero value logs nothing.
	Logger zerolog.Logger
	// Clock is the time source (nil: time.Now).
	Clock func() time.Time
}

// Review requests and applies the reviewed list edits.
type Review struct {
	reg   Registry
	lists *risk.Lists
	log   zerolog.Logger
	now   func() time.Time
}

// New registers OpAdd and OpRemove with reg, applying approved changes to lists.
// Call it once per registry, on every node (any node may approve).
func New(reg Registry, lists *risk.Lists, opts Options) *Review {
	v := &Review{reg: reg, lists: lists, log: opts.Logger, now: opts.Clock}
	if v.now == nil {
		v.now = time.Now
	}
	reg.RegisterOp(OpAdd, registry.ExtOp{Check: v.check, Apply: v.apply, RequestRoles: RequestRoles})
	reg.RegisterOp(OpRemove, registry.ExtOp{Check: v.check, Apply: v.apply, RequestRoles: RequestRoles})
	return v
}

// current returns the entry of e's list, kind and value in force at now (not
// expired), nil when none.
func current(lists *risk.Lists, e risk.ListEntry, now time.Time) *risk.ListEntry {
	cur, ok := lists.Entry(e.List, e.Kind, e.Value)
	if !ok || (!cur.ExpiresAt.IsZero() && !cur.ExpiresAt.After(now)) {
		return nil
	}
	return &cur
}

// AddNeedsReview says why adding e (normalized) to lists at now needs a second
// person, "" when it is made at once: only a deny-list addition that ends no
// entry in force sooner is.
func AddNeedsReview(lists *risk.Lists, e risk.ListEntry, now time.Time) string {
	if e.List != risk.ListDeny {
		if e.List == risk.ListAllow {
			return "an allow-list entry exempts its " + e.Kind + " from the fraud rules"
		}
		return "list " + e.List + " may be read by a rule to exempt as well as to decline"
	}
	cur := current(lists, e, now)
	if cur == nil {
		return ""
	}
	if sooner := !e.ExpiresAt.IsZero() && (cur.ExpiresAt.IsZero() || e.ExpiresAt.Before(cur.ExpiresAt)); !sooner {
		return ""
	}
	return "it ends the deny-list entry in force sooner"
}

// RemoveNeedsReview says why removing list/kind/value needs a second person, ""
// when it is made at once: only an allow-list removal is.
func RemoveNeedsReview(list string) string {
	switch list {
	case risk.ListAllow:
		return ""
	case risk.ListDeny:
		return "a deny-list removal lets what the rules stopped trade again"
	}
	return "list " + list + " may be read by a rule to exempt as well as to decline"
}

// target is a list change's Change.Target.
func target(e risk.ListEntry) string { return e.List + "/" + e.Kind + "/" + e.Value }

// RequestAdd requests the addition of e (normalized, its expiry absolute) on
// behalf of p, with why (AddNeedsReview) as part of the change's reason.
func (v *Review) RequestAdd(p registry.Actor, e risk.ListEntry, why string) (*registry.Change, error) {
	return v.request(p, OpAdd, e, why)
}

// RequestRemove requests the removal of list/kind/value on behalf of p. It is
// refused (registry.ErrNotFound) when the value is not on the list.
func (v *Review) RequestRemove(p registry.Actor, list, kind, value, why string) (*registry.Change, error) {
	e := risk.ListEntry{List: list, Kind: kind, Value: value}
	if err := e.Normalize(); err != nil {
		return nil, fmt.Errorf("%w: %v", registry.ErrInvalid, err)
	}
	return v.request(p, OpRemove, e, why)
}

func (v *Review) request(p registry.Actor, op registry.Op, e risk.ListEntry, why string) (*registry.Change, error) {
	e.AddedBy, e.AddedAt = "", time.Time{}
	b, err := json.Marshal(Payload{Entry: e})
	if err != nil {
		return nil, fmt.Errorf("list change %s %s: %w", op, target(e), err)
	}
	reason := why
	if e.Note != "" {
		reason = e.Note + " (" + why + ")"
	}
	return v.reg.RequestChange(p, registry.Change{Op: op, Target: target(e), Reason: reason, Ext: b})
}

// check is the ExtOp's Check: the entry is valid, not expired, and (for a
// removal) on its list; the effect shows the entry in force before and the one
// after (null for a removal).
func (v *Review) check(c *registry.Change) (registry.ChangeEffect, error) {
	var pl Payload
	if err := json.Unmarshal(c.Ext, &pl); err != nil {
		return registry.ChangeEffect{}, fmt.Errorf("%w: %s: payload: %v", registry.ErrInvalid, c.Op, err)
	}
	e := pl.Entry
	if err := e.Normalize(); err != nil {
		return registry.ChangeEffect{}, fmt.Errorf("%w: %s: %v", registry.ErrInvalid, c.Op, err)
	}
	if c.Target != target(e) {
		return registry.ChangeEffect{}, fmt.Errorf("%w: %s: target %q is not the entry %q", registry.ErrInvalid, c.Op, c.Target, target(e))
	}
	ce := registry.ChangeEffect{Type: "list-entry", ID: target(e), After: json.RawMessage("null")}
	cur := current(v.lists, e, v.now())
	if cur != nil {
		ce.Before, _ = json.Marshal(cur)
	}
	switch c.Op {
	case OpAdd:
		if err := e.CheckNew(); err != nil {
			return registry.ChangeEffect{}, fmt.Errorf("%w: %s: %v", registry.ErrInvalid, c.Op, err)
		}
		if !e.ExpiresAt.IsZero() && !e.ExpiresAt.After(v.now()) {
			return registry.ChangeEffect{}, fmt.Errorf("%w: list entry %s: its expiry %s has passed: request it again with a later one",
				registry.ErrConflict, target(e), e.ExpiresAt.UTC().Format(time.RFC3339))
		}
		if cur != nil && cur.ExpiresAt.Equal(e.ExpiresAt) && cur.Note == e.Note {
			return registry.ChangeEffect{}, fmt.Errorf("%w: list entry %s: nothing to change: it is on the list with that expiry and note",
				registry.ErrInvalid, target(e))
		}
		e.AddedBy = c.RequestedBy
		ce.After, _ = json.Marshal(e)
	case OpRemove:
		if cur == nil {
			return registry.ChangeEffect{}, fmt.Errorf("%w: %s is not on the lists", registry.ErrNotFound, target(e))
		}
	default:
		return registry.ChangeEffect{}, fmt.Errorf("%w: %s: not a list operation", registry.ErrInvalid, c.Op)
	}
	return ce, nil
}

// Who is how an approved list edit names its people in the lists' audit and
// the entry's AddedBy: "erin, approved by bob (CHG-12)".
func Who(c *registry.Change) string {
	return fmt.Sprintf("%s, approved by %s (%s)", c.RequestedBy, c.ReviewedBy, c.ID)
}

// ReconcileWindow is how far back Reconcile looks for approved list changes.
const ReconcileWindow = 24 * time.Hour

// Reconcile applies the list changes approved within ReconcileWindow that the
// lists' audit does not show applied (Who), and that no later edit of their
// entry superseded: an approval committed just before a crash, or one whose
// edit the lists refused. It returns how many it applied. The switch calls it
// at start, after the lists have caught up with the cluster.
func (v *Review) Reconcile() (int, error) {
	cs, err := v.reg.ApprovedChanges(OpAdd, OpRemove)
	if err != nil {
		return 0, fmt.Errorf("listreview: read approved list changes: %w", err)
	}
	now, n := v.now(), 0
	for _, c := range cs {
		if c.ReviewedAt == nil || now.Sub(*c.ReviewedAt) > ReconcileWindow {
			continue
		}
		audit, err := v.lists.Audit(c.ReviewedAt.Add(-time.Minute), 0)
		if err != nil {
			return n, fmt.Errorf("listreview: read the lists' audit for %s: %w", c.ID, err)
		}
		var pl Payload
		if err := json.Unmarshal(c.Ext, &pl); err != nil {
			return n, fmt.Errorf("listreview: %s: payload: %w", c.ID, err)
		}
		if pl.Entry.Normalize() != nil {
			continue
		}
		done := false
		for _, a := range audit {
			if a.Who == Who(c) || target(a.Entry) == target(pl.Entry) && a.Time.After(*c.ReviewedAt) {
				done = true // applied, or superseded by a later edit of the entry
				break
			}
		}
		if !done {
			v.log.Warn().Str("change", c.ID).Str("entry", c.Target).Msg("listreview: applying an approved list change the lists lack")
			if err := v.applyErr(c); err != nil {
				v.log.Error().Err(err).Str("change", c.ID).Msg("listreview: an approved list change cannot be applied: request it again")
				continue
			}
			n++
		}
	}
	return n, nil
}

// apply is the ExtOp's Apply: it makes the approved edit. One the lists refuse
// (a cluster without quorum) is logged: the change reads approved, the list
// does not have it until Reconcile (the next start) or a new request.
func (v *Review) apply(c *registry.Change) {
	if err := v.applyErr(c); err != nil {
		v.log.Error().Err(err).Str("change", c.ID).Str("op", string(c.Op)).Str("entry", c.Target).
			Msg("listreview: an approved list change was not applied (the next start applies it, within a day)")
	}
}

// applyErr makes approved change c's edit.
func (v *Review) applyErr(c *registry.Change) error {
	var pl Payload
	if err := json.Unmarshal(c.Ext, &pl); err != nil {
		return fmt.Errorf("listreview: %s: payload: %w", c.ID, err)
	}
	var err error
	switch c.Op {
	case OpAdd:
		_, err = v.lists.Add(Who(c), pl.Entry)
	case OpRemove:
		_, err = v.lists.Remove(Who(c), pl.Entry.List, pl.Entry.Kind, pl.Entry.Value)
	}
	if err != nil {
		return fmt.Errorf("listreview: apply %s (%s %s): %w", c.ID, c.Op, c.Target, err)
	}
	return nil
}
