package api

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/kcv"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/switch/admin"
)

// ceremonyTimeout is how long a key ceremony waits for its other custodians.
const ceremonyTimeout = 30 * time.Minute

// ceremonies are the key ceremonies in progress (keys/ceremony.go): clear components
// in memory only, by key ID. Each ceremony has a timer that drops it and wipes its
// components when its time is up, whether or not anybody calls again.
//
// mu guards the maps and every ceremony's fields, and is held for memory work only:
// the slow work of a ceremony (the registry's dual-control check, the HSM's split of
// an export, audit writes) runs outside it, with the ceremony marked busy, and the
// other calls on that ceremony wait for it (ceremonies of other keys, and the timers,
// do not). A ceremony dropped while busy (its timer, a sweep, a revoked key) is
// found gone when its busy call takes mu again; components that call holds are its
// own to wipe or hand out (the timer wipes only what the ceremony still holds), so
// nothing is lost to, or left behind by, the race. The completing call removes the
// ceremony under mu before it forms the key: one key per ceremony.
type ceremonies struct {
	mu      sync.Mutex
	m       map[string]*ceremony       // imports, by key ID
	exports map[string]*exportCeremony // exports in components, by key ID
	now     func() time.Time
	// timeout is how long a ceremony waits for its custodians (ceremonyTimeout).
	timeout time.Duration
	// expired, when set, is told of every ceremony its timer dropped ("import
	// ID" or "export ID"), after the wipe (for the tests).
	expired func(what string)
}

type ceremony struct {
	spec    hsm.KeySpec
	of      int
	comps   [][]byte
	by      []string
	started time.Time
	timer   *time.Timer // drops the ceremony at its timeout
	// startedBy is who started it (by[0]).
	startedBy string
	// busy is closed when the slow work in flight on the ceremony ends; nil when
	// none is (see ceremonies).
	busy chan struct{}
}

func (c *ceremony) wipe() {
	c.timer.Stop()
	for _, b := range c.comps {
		clear(b)
	}
	c.comps = nil
}

// startImport stores import ceremony c of key id, with the timer that drops it.
// Caller holds cs.mu.
func (cs *ceremonies) startImport(id string, c *ceremony) {
	cs.m[id] = c
	c.timer = time.AfterFunc(cs.timeout, func() {
		cs.mu.Lock()
		if cs.m[id] != c {
			cs.mu.Unlock() // completed, or dropped by sweep
			return
		}
		delete(cs.m, id)
		c.wipe()
		cs.mu.Unlock()
		if cs.expired != nil {
			cs.expired("import " + id)
		}
	})
}

// startExport stores export ceremony c of key id, with the timer that drops it.
// Caller holds cs.mu.
func (cs *ceremonies) startExport(id string, c *exportCeremony) {
	cs.exports[id] = c
	c.timer = time.AfterFunc(cs.timeout, func() {
		cs.mu.Lock()
		if cs.exports[id] != c {
			cs.mu.Unlock()
			return
		}
		delete(cs.exports, id)
		c.wipe()
		cs.mu.Unlock()
		if cs.expired != nil {
			cs.expired("export " + id)
		}
	})
}

// dropExport drops export ceremony id, wiping its components. Caller holds cs.mu.
func (cs *ceremonies) dropExport(id string) {
	if c := cs.exports[id]; c != nil {
		c.wipe()
		delete(cs.exports, id)
	}
}

// sweep drops the ceremonies whose time is up at now, should their timers be
// late. Caller holds cs.mu.
func (cs *ceremonies) sweep(now time.Time) {
	for id, c := range cs.m {
		if now.Sub(c.started) > cs.timeout {
			c.wipe()
			delete(cs.m, id)
		}
	}
	for id, c := range cs.exports {
		if now.Sub(c.started) > cs.timeout {
			c.wipe()
			delete(cs.exports, id)
		}
	}
}

// waitBusy waits for busy, the slow work in flight on a ceremony of key id, to end.
// The caller holds cs.mu, which is released while waiting and held again on
// return, whatever it returns; err is ctx's end (the caller gone).
func (cs *ceremonies) waitBusy(ctx context.Context, id string, busy chan struct{}) error {
	cs.mu.Unlock()
	defer cs.mu.Lock()
	select {
	case <-busy:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for another custodian's call on the ceremony of %s: %w", id, ctx.Err())
	}
}

// holder says who holds a ceremony of key id and how to end it before its time,
// for a refusal: "started by alice at T, 1 of 2 components entered (alice);
// dropped at T+30m unless completed; alice, or any admin who could enter
// component 2, may cancel it sooner: ...".
func (cs *ceremonies) holder(kind, id, startedBy string, by []string, started time.Time, of int, w custodianWording) string {
	who := "its custodians (" + strings.Join(by, ", ") + ")"
	switch len(by) {
	case 0:
		who = "any admin"
	case 1:
		who = fmt.Sprintf("%s, or any admin who could %s component 2,", by[0], w.verb)
	}
	return fmt.Sprintf("started by %s at %s, %d of %d components %s (%s); dropped at %s unless completed; "+
		"%s may cancel it sooner, with a reason (switchyard keys cancel-ceremony --id %s --kind %s --reason TEXT)",
		startedBy, started.UTC().Format(time.RFC3339), len(by), of, w.did, strings.Join(by, ", "),
		started.Add(cs.timeout).UTC().Format(time.RFC3339), who, id, kind)
}

// accountHistory is what the ceremonies ask of the console's accounts
// (registry.Registry.HeldBoth): why accounts a and b may be one person's, "" when
// no account has held both.
type accountHistory interface {
	HeldBoth(a, b string) (string, error)
}

// custodianWording is how a refusal of a ceremony's custodian reads, for an
// import (components entered) or an export (components taken).
type custodianWording struct {
	did  string // "entered"
	goes string // "must come from"
	verb string // "enter"
}

var (
	importWording = custodianWording{did: "entered", goes: "must come from", verb: "enter"}
	exportWording = custodianWording{did: "took", goes: "goes to", verb: "take"}
)

// checkCustodian refuses name as the custodian of component next of of of key
// when name is not independent of every custodian before it (by): the same name,
// or, through the console's accounts (registry holders), an account that has
// held both theirs (created them or reset their passwords, directly or through
// accounts it created), as the two-person review refuses an approval. A custodian
// is an admin token's name: the registry knows the history of a console account
// of that name, not who was given the token. Demo mode lets one person do it all.
func (g *keysAPI) checkCustodian(name string, by []string, next, of int, key string, w custodianWording) error {
	if g.store.Demo() {
		return nil
	}
	if slices.Contains(by, name) {
		return fmt.Errorf("%w: dual control: %s already %s a component of %s; component %d of %d %s another custodian (only demo mode lets one person %s them all)",
			hsm.ErrPolicy, name, w.did, key, next, of, w.goes, w.verb)
	}
	if g.accounts == nil {
		return nil
	}
	for _, other := range by {
		how, err := g.accounts.HeldBoth(other, name)
		if err != nil {
			return fmt.Errorf("dual control of %s: custodians %s and %s: %w", key, other, name, err)
		}
		if how != "" {
			return fmt.Errorf("%w: dual control: %s %s component %d of %d of %s and %s may not %s component %d: %s; "+
				"component %d %s a custodian whose account none of them has held (only demo mode lets one person %s them all)",
				hsm.ErrPolicy, other, w.did, slices.Index(by, other)+1, of, key, name, w.verb, next, how, next, w.goes, w.verb)
		}
	}
	return nil
}

// sameSpec reports whether two custodians asked for the same key: every field of
// the spec the first custodian's component started the ceremony with, which the
// key is formed with, activation, expiry and grace included (before 6 December
// 2026 those three were the first custodian's alone, whatever the others asked).
func sameSpec(a, b hsm.KeySpec) bool {
	return a.ID == b.ID && a.Type == b.Type && a.Algorithm == b.Algorithm && a.MACAlgorithm == b.MACAlgorithm &&
		a.Owner == b.Owner && a.ActivateAt.Equal(b.ActivateAt) && a.ExpiresAt.Equal(b.ExpiresAt) &&
		a.Grace == b.Grace && a.SingleLength == b.SingleLength
}

// describeSpec is spec and its number of components for a conflict's message:
// "ZMK TDES-2KEY, 2 components, owner "", activation now, expiry never, grace 0s".
func describeSpec(spec hsm.KeySpec, of int) string {
	at, exp := "now", "never"
	if !spec.ActivateAt.IsZero() {
		at = spec.ActivateAt.UTC().Format(time.RFC3339)
	}
	if !spec.ExpiresAt.IsZero() {
		exp = spec.ExpiresAt.UTC().Format(time.RFC3339)
	}
	s := fmt.Sprintf("%s %s", spec.Type, spec.Algorithm)
	if spec.MACAlgorithm != "" {
		s += " " + string(spec.MACAlgorithm)
	}
	return fmt.Sprintf("%s, %d components, owner %q, activation %s, expiry %s, grace %s", s, of, spec.Owner, at, exp, spec.Grace)
}

// component takes one custodian's component; the last one forms the key.
func (g *keysAPI) component(r *http.Request, p admin.Principal) (any, error) {
	var req keys.ComponentRequest
	if err := admin.ReadJSON(r, &req); err != nil {
		return nil, badRequest("%v", err)
	}
	spec, err := req.KeySpec()
	if err != nil {
		return nil, err
	}
	if err := spec.Normalize(); err != nil {
		return nil, err
	}
	if req.Components != 2 && req.Components != 3 {
		return nil, fmt.Errorf("%w: components %d: want 2 or 3", hsm.ErrInput, req.Components)
	}
	comp, err := hex.DecodeString(strings.TrimSpace(req.Component))
	if err != nil || len(comp) != spec.Algorithm.KeyLength() {
		clear(comp)
		return nil, fmt.Errorf("%w: the component is not %d hex digits (a %s key is %d bytes)", hsm.ErrInput, 2*spec.Algorithm.KeyLength(), spec.Algorithm, spec.Algorithm.KeyLength())
	}
	k, err := kcv.Compute(comp, spec.Algorithm.KCVMethod())
	if err != nil {
		clear(comp)
		return nil, err
	}
	want := strings.ToUpper(strings.TrimSpace(req.KCV))
	if subtle.ConstantTimeCompare([]byte(k.String()), []byte(want)) != 1 {
		clear(comp)
		return nil, fmt.Errorf("%w: the component's KCV is %s, its form says %q: check the typing (the component was not kept)", hsm.ErrKCVMismatch, k, want)
	}

	cs := g.ceremonies
	cs.mu.Lock()
	var c *ceremony
	for {
		cs.sweep(cs.now())
		c = cs.m[spec.ID]
		if c == nil || c.busy == nil {
			break
		}
		if err := cs.waitBusy(r.Context(), spec.ID, c.busy); err != nil {
			cs.mu.Unlock()
			clear(comp)
			return nil, err
		}
	}
	if c != nil && (!sameSpec(c.spec, spec) || c.of != req.Components) {
		held := cs.holder("import", spec.ID, c.startedBy, c.by, c.started, c.of, importWording)
		cs.mu.Unlock()
		clear(comp)
		return nil, errorf(http.StatusConflict, "a ceremony for %s (%s) is in progress, %s; this component is for %s and was not kept",
			spec.ID, describeSpec(c.spec, c.of), held, describeSpec(spec, req.Components))
	}
	if c == nil {
		// The first component: nobody to be independent of (checkCustodian asks
		// the registry nothing).
		if err := g.checkCustodian(p.Name, nil, 1, req.Components, spec.ID, importWording); err != nil {
			cs.mu.Unlock()
			clear(comp)
			return nil, err
		}
		c = &ceremony{spec: spec, of: req.Components, started: cs.now(), startedBy: p.Name}
		cs.startImport(spec.ID, c)
	} else {
		// The registry's check runs outside cs.mu, the ceremony busy: its
		// custodians stay as they are until it is done.
		busy := make(chan struct{})
		c.busy = busy
		by := slices.Clone(c.by)
		cs.mu.Unlock()
		err := g.checkCustodian(p.Name, by, len(by)+1, req.Components, spec.ID, importWording)
		cs.mu.Lock()
		c.busy = nil
		close(busy)
		if err != nil {
			cs.mu.Unlock()
			clear(comp)
			return nil, err
		}
		if cs.m[spec.ID] != c {
			// Dropped at its timeout while the custodian was checked; its
			// components are wiped, this one is the caller's.
			cs.mu.Unlock()
			clear(comp)
			return nil, errorf(http.StatusConflict, "the ceremony for %s started by %s at %s was dropped at its timeout (%s) before this component was added: it was not kept; start again",
				spec.ID, c.startedBy, c.started.UTC().Format(time.RFC3339), cs.timeout)
		}
	}
	c.comps = append(c.comps, comp)
	c.by = append(c.by, p.Name)
	resp := keys.ComponentResponse{ID: spec.ID, Entered: len(c.by), Of: c.of, Custodians: slices.Clone(c.by), KCV: k.String()}
	if len(c.comps) < c.of {
		resp.Expires = c.started.Add(cs.timeout)
		cs.mu.Unlock()
		return resp, nil
	}
	// The last component: the ceremony leaves the map under cs.mu, so that no other
	// call, timer or sweep can reach its components, which are this call's to form
	// the key with and wipe.
	delete(cs.m, spec.ID)
	c.timer.Stop()
	comps, custodians := c.comps, slices.Clone(c.by)
	c.comps = nil
	cs.mu.Unlock()
	defer func() {
		for _, b := range comps {
			clear(b)
		}
	}()
	actors := slices.Clone(custodians)
	slices.Sort(actors)
	ctx := hsm.WithActor(r.Context(), strings.Join(slices.Compact(actors), "+"))
	res, err := g.hsm.FormKey(ctx, hsm.FormKeyRequest{KeySpec: c.spec, Components: comps})
	if err != nil {
		return nil, fmt.Errorf("form %s from the %d components: %w (the ceremony is over; start again)", spec.ID, c.of, err)
	}
	resp.Result = &res
	return withStatus(http.StatusCreated, resp), nil
}

// exportCeremony is a key split into components, handed out one per custodian.
type exportCeremony struct {
	key    hsm.KeyRef
	keyKCV string
	of     int
	// comps are the components not handed out; the one being handed out is its
	// call's (nil here) until its audit entry is written.
	comps   [][]byte
	kcvs    []string
	by      []string
	started time.Time
	timer   *time.Timer // drops the ceremony at its timeout
	// startedBy is who asked for the split (by[0] once its component is taken:
	// by is empty should that take's audit entry have failed).
	startedBy string
	// busy is closed when the slow work in flight on the ceremony (the split, a
	// take's audit entry, the registry's check) ends; nil when none is.
	busy chan struct{}
}

func (c *exportCeremony) wipe() {
	c.timer.Stop()
	for _, b := range c.comps {
		clear(b)
	}
}

// exportComponent hands this custodian the next component of a key, splitting it in
// the HSM on the first call. The split, the registry's check and the audit entry
// run outside cs.mu, the ceremony busy (see ceremonies).
func (g *keysAPI) exportComponent(r *http.Request, p admin.Principal) (any, error) {
	var req keys.ExportComponentsRequest
	if err := admin.ReadJSON(r, &req); err != nil {
		return nil, badRequest("%v", err)
	}
	if req.Components != 2 && req.Components != 3 {
		return nil, fmt.Errorf("%w: components %d: want 2 or 3", hsm.ErrInput, req.Components)
	}
	ex, ok := g.hsm.(hsm.ComponentExporter)
	if !ok {
		return nil, fmt.Errorf("%w: this HSM does not hand out key components (a payShield prints them on its own printer)", hsm.ErrPolicy)
	}
	cs := g.ceremonies
	rec, err := g.store.Key(r.Context(), hsm.KeyRef{ID: r.PathValue("id"), Version: req.Version})
	if err != nil {
		if errors.Is(err, hsm.ErrKeyNotUsable) || errors.Is(err, hsm.ErrKeyNotFound) {
			cs.mu.Lock()
			if c := cs.exports[r.PathValue("id")]; c != nil && (req.Version == 0 || req.Version == c.key.Version) {
				err = fmt.Errorf("%w; the export of %s in components is dropped", err, c.key)
				cs.dropExport(r.PathValue("id"))
			}
			cs.mu.Unlock()
		}
		return nil, err
	}
	cs.mu.Lock()
	var c *exportCeremony
	for {
		cs.sweep(cs.now())
		c = cs.exports[rec.ID]
		if c == nil || c.busy == nil {
			break
		}
		if err := cs.waitBusy(r.Context(), rec.ID, c.busy); err != nil {
			cs.mu.Unlock()
			return nil, err
		}
	}
	if c != nil && (c.key != rec.Ref() || c.of != req.Components) {
		held := cs.holder("export", rec.ID, c.startedBy, c.by, c.started, c.of, exportWording)
		cs.mu.Unlock()
		return nil, errorf(http.StatusConflict, "an export of %s in %d components is in progress, %s; this call asks for %s in %d",
			c.key, c.of, held, rec.Ref(), req.Components)
	}
	busy := make(chan struct{})
	if c == nil {
		// The first custodian (checkCustodian asks the registry nothing): the key
		// is split in the HSM, the ceremony already in place and busy, so that
		// a second custodian waits for this split instead of making another.
		if err := g.checkCustodian(p.Name, nil, 1, req.Components, rec.Ref().String(), exportWording); err != nil {
			cs.mu.Unlock()
			return nil, err
		}
		c = &exportCeremony{key: rec.Ref(), keyKCV: rec.KCV, of: req.Components, started: cs.now(), startedBy: p.Name, busy: busy}
		cs.startExport(rec.ID, c)
		cs.mu.Unlock()
		comps, kcvs, err := ex.ExportComponents(actx(r, p), rec.Ref(), req.Components)
		cs.mu.Lock()
		if err == nil && len(comps) != req.Components {
			err = fmt.Errorf("export %s in components: the HSM made %d components, want %d", rec.Ref(), len(comps), req.Components)
		}
		if err != nil || cs.exports[rec.ID] != c {
			// Failed, or dropped while the HSM split (a revoked key, the
			// timeout): these components go nowhere.
			for _, b := range comps {
				clear(b)
			}
			if cs.exports[rec.ID] == c {
				cs.dropExport(rec.ID)
			}
			c.busy = nil
			close(busy)
			cs.mu.Unlock()
			if err == nil {
				err = errorf(http.StatusConflict, "export %s in components: dropped while the HSM split it (its key revoked, or its time up); nothing was handed out: start again", rec.Ref())
			}
			return nil, err
		}
		c.comps, c.kcvs = comps, kcvs
	} else {
		// Revoked or expired since the split: its other components are not
		// handed out (the HSM checked the key only at the split).
		if err := rec.Usable(cs.now(), hsm.Distribute); err != nil {
			cs.dropExport(rec.ID)
			cs.mu.Unlock()
			return nil, fmt.Errorf("export %s in components: %w; the export is dropped, its components not handed out are wiped", c.key, err)
		}
		c.busy = busy
		by := slices.Clone(c.by)
		cs.mu.Unlock()
		err := g.checkCustodian(p.Name, by, len(by)+1, req.Components, rec.Ref().String(), exportWording)
		cs.mu.Lock()
		if err == nil && cs.exports[rec.ID] != c {
			err = errorf(http.StatusConflict, "the export of %s in components started by %s at %s was dropped (its key revoked, or its time up) before this custodian was checked; nothing was handed out: start again",
				c.key, c.startedBy, c.started.UTC().Format(time.RFC3339))
		}
		if err != nil {
			c.busy = nil
			close(busy)
			cs.mu.Unlock()
			return nil, err
		}
	}
	// This call takes component i out of the ceremony: from here the timer, a
	// sweep or a drop wipes the others, and this one is this call's to hand out or
	// wipe (or give back should its audit entry fail).
	i := len(c.by)
	comp, compKCV := c.comps[i], c.kcvs[i]
	c.comps[i] = nil
	cs.mu.Unlock()
	defer clear(comp)
	// Who took which component is in the audit log before the component is handed
	// out (PCI PIN: a record of every access to a clear component); without the
	// entry, nothing is handed out and the custodian may ask again.
	auditErr := g.store.Audit(r.Context(), hsm.AuditEvent{Actor: p.Name, Action: "take-component", KeyID: c.key.ID, Version: c.key.Version,
		KeyType: string(rec.Type), KCV: c.keyKCV, Detail: fmt.Sprintf("component %d of %d, KCV %s", i+1, c.of, compKCV)})
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c.busy = nil
	close(busy)
	live := cs.exports[rec.ID] == c
	if auditErr != nil {
		if live {
			c.comps[i] = slices.Clone(comp) // given back; the deferred clear wipes this call's copy
		}
		return nil, fmt.Errorf("export %s in components: component %d not handed out: %w", c.key, i+1, auditErr)
	}
	// Audited: handed out, even should the ceremony have been dropped meanwhile
	// (the take was granted before, as the audit entry says).
	c.by = append(c.by, p.Name)
	out := keys.ExportComponentResponse{Key: c.key, KeyKCV: c.keyKCV, Index: i + 1, Of: c.of,
		Component: strings.ToUpper(hex.EncodeToString(comp)), KCV: compKCV, Custodians: slices.Clone(c.by)}
	if live && len(c.by) == c.of {
		c.timer.Stop()
		delete(cs.exports, rec.ID)
	}
	return out, nil
}

// maxCancelReason is the longest reason a ceremony's cancel takes, in bytes.
const maxCancelReason = 500

// cancelCeremony ends the import or export ceremony of a key ID before its time
// (keys/ceremony.go): asked by one of its custodians, or, while one component only
// is in, by an admin who could be its next custodian. The audit entry is written
// before the components are wiped; should it fail, the ceremony stays.
func (g *keysAPI) cancelCeremony(r *http.Request, p admin.Principal) (any, error) {
	var req keys.CancelCeremonyRequest
	if err := admin.ReadJSON(r, &req); err != nil {
		return nil, badRequest("%v", err)
	}
	id := r.PathValue("id")
	req.Reason = strings.TrimSpace(req.Reason)
	if req.Reason == "" || len(req.Reason) > maxCancelReason {
		return nil, badRequest("cancel the ceremony of %s: a reason of 1 to %d bytes is needed (for the audit log), got %d", id, maxCancelReason, len(req.Reason))
	}
	if err := noteError("cancel the ceremony of "+id+": reason", req.Reason); err != nil {
		return nil, err
	}
	maskText(r, p, "key "+id, "reason", &req.Reason)
	cs := g.ceremonies
	cs.mu.Lock()
	defer cs.mu.Unlock()
	// cer is the ceremony, whichever kind: what the cancel needs of it.
	type cer struct {
		by          []string
		startedBy   string
		of          int
		started     time.Time
		busy        *chan struct{}
		live        func() bool
		drop        func()
		what, label string
		w           custodianWording
	}
	var c cer
	for {
		cs.sweep(cs.now())
		switch req.Kind {
		case "import":
			ic := cs.m[id]
			if ic == nil {
				return nil, errorf(http.StatusNotFound, "no ceremony for %s in progress on this switch node: nothing to cancel", id)
			}
			c = cer{by: ic.by, startedBy: ic.startedBy, of: ic.of, started: ic.started, busy: &ic.busy, w: importWording,
				live: func() bool { return cs.m[id] == ic }, drop: func() { ic.wipe(); delete(cs.m, id) },
				what: fmt.Sprintf("import of %s (%s)", id, describeSpec(ic.spec, ic.of)), label: id}
		case "export":
			ec := cs.exports[id]
			if ec == nil {
				return nil, errorf(http.StatusNotFound, "no export of %s in components in progress on this switch node: nothing to cancel", id)
			}
			c = cer{by: ec.by, startedBy: ec.startedBy, of: ec.of, started: ec.started, busy: &ec.busy, w: exportWording,
				live: func() bool { return cs.exports[id] == ec }, drop: func() { cs.dropExport(id) },
				what: fmt.Sprintf("export of %s in %d components", ec.key, ec.of), label: ec.key.String()}
		default:
			return nil, badRequest("cancel the ceremony of %s: kind %q: want import or export", id, req.Kind)
		}
		if *c.busy == nil {
			break
		}
		if err := cs.waitBusy(r.Context(), id, *c.busy); err != nil {
			return nil, err
		}
	}
	// A custodian: one who entered or took a component, or asked for the split
	// of an export none of whose components is taken (its first take's audit
	// entry failed: anybody may then cancel it, there is nobody to be
	// independent of).
	by := slices.Clone(c.by)
	custodian := slices.Contains(by, p.Name) || p.Name == c.startedBy
	if !custodian && len(by) > 1 {
		return nil, fmt.Errorf("%w: dual control: %s may not cancel the %s: %d of %d components are %s (%s), and only its custodians may end it before its time (%s)",
			hsm.ErrPolicy, p.Name, c.what, len(by), c.of, c.w.did, strings.Join(by, ", "), c.started.Add(cs.timeout).UTC().Format(time.RFC3339))
	}
	busy := make(chan struct{})
	*c.busy = busy
	cs.mu.Unlock()
	err := func() error {
		if !custodian {
			// Whoever could be the next custodian may end a ceremony of one
			// component instead: the registry's check, outside cs.mu.
			if err := g.checkCustodian(p.Name, by, 2, c.of, c.label, c.w); err != nil {
				return fmt.Errorf("%s may not cancel the %s (only its custodian, or an admin who could %s component 2): %w", p.Name, c.what, c.w.verb, err)
			}
		}
		return g.store.Audit(r.Context(), hsm.AuditEvent{Actor: p.Name, Action: "cancel-ceremony", KeyID: id,
			Detail: fmt.Sprintf("%s started by %s at %s, %d of %d components %s (%s), cancelled: %s",
				c.what, c.startedBy, c.started.UTC().Format(time.RFC3339), len(by), c.of, c.w.did, strings.Join(by, ", "), req.Reason)})
	}()
	cs.mu.Lock()
	*c.busy = nil
	close(busy)
	if err != nil {
		return nil, fmt.Errorf("cancel the %s: %w (the ceremony goes on)", c.what, err)
	}
	if c.live() {
		c.drop()
	}
	return keys.CancelCeremonyResponse{ID: id, Kind: req.Kind, Started: c.started, StartedBy: c.startedBy, Done: len(by), Of: c.of,
		Custodians: by, CancelledBy: p.Name}, nil
}
