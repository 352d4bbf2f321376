package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/actorname"
	"github.com/switchyard/switchyard/internal/kvjson"
	"github.com/switchyard/switchyard/internal/statelog"
)

// Op is a lifecycle operation on a merchant or terminal.
type Op string

// The lifecycle operations. Each is requested by one principal and applied when a
// different principal approves it.
const (
	OpMerchantRegister Op = "merchant.register" // create a merchant (status active, or pending)
	OpMerchantChange   Op = "merchant.change"   // change name, MCC, region, tier, rating, limits
	OpMerchantActivate Op = "merchant.activate" // pending -> active
	OpMerchantFreeze   Op = "merchant.freeze"   // active or pending -> frozen
	OpMerchantUnfreeze Op = "merchant.unfreeze" // frozen -> active
	OpMerchantClose    Op = "merchant.close"    // any -> closed (final)
	OpTerminalRegister Op = "terminal.register" // create a terminal (status pending, or active)
	OpTerminalChange   Op = "terminal.change"   // change merchant, kind, binding, location, networks, version, policy, keys
	OpTerminalActivate Op = "terminal.activate" // pending -> active
	OpTerminalSuspend  Op = "terminal.suspend"  // active or pending -> suspended
	OpTerminalResume   Op = "terminal.resume"   // suspended -> active
	OpTerminalClose    Op = "terminal.close"    // any -> closed (final)
	OpTerminalImport   Op = "terminal.import"   // register many terminals at once (CSV import)
	OpMerchantImport   Op = "merchant.import"   // register many merchants at once (CSV import)
	// OpAlertRulePut creates or replaces an alert rule whose actions change terminals
	// (suspend): such a rule can take a whole fleet out of service within a minute,
	// so it is reviewed like the suspensions it makes. Other rules are edited at once.
	OpAlertRulePut Op = "alert-rule.put"
)

// ChangeStatus is the state of a requested change.
type ChangeStatus string

// The change states.
const (
	ChangePending   ChangeStatus = "pending"   // waiting for a reviewer
	ChangeApproved  ChangeStatus = "approved"  // applied
	ChangeRejected  ChangeStatus = "rejected"  // refused by a reviewer
	ChangeCancelled ChangeStatus = "cancelled" // withdrawn by its requester
	// ChangeExpired is how reads (GetChange, Changes) show a pending change past
	// its ExpiresAt: it is stored pending, may be rejected or cancelled, and is
	// never approved. A filter of "pending" leaves it out; "expired" selects it.
	ChangeExpired ChangeStatus = "expired"
)

// DefaultChangeTTL is how long a change waits for its review by default
// (Options.ChangeTTL, registry.change_ttl).
const DefaultChangeTTL = 7 * 24 * time.Hour

// MerchantPatch lists the merchant fields a change sets; nil fields stay as they are.
type MerchantPatch struct {
	Name         *string `json:"name,omitempty"`
	NameLatin    *string `json:"name_latin,omitempty"`    // "" takes the ASCII name away
	NameLanguage *string `json:"name_language,omitempty"` // "": derived from the name's script
	MCC          *string `json:"mcc,omitempty"`
	Region       *string `json:"region,omitempty"`
	Group        *string `json:"group,omitempty"`    // "" takes the merchant out of its group
	Currency     *string `json:"currency,omitempty"` // ISO 4217 numeric; "": any currency
	Tier         *string `json:"tier,omitempty"`
	Rating       *string `json:"rating,omitempty"`
	Limits       *Limits `json:"limits,omitempty"`
}

// TerminalPatch lists the terminal fields a change sets; nil fields stay as they
// are. An empty string unbinds an identity; ClearLocation removes the deployed
// location; an empty AllowedNetworks list allows any source.
type TerminalPatch struct {
	MerchantID      *string         `json:"merchant_id,omitempty"`
	Kind            *TerminalKind   `json:"kind,omitempty"`
	Model           *string         `json:"model,omitempty"`
	DeviceSerial    *string         `json:"device_serial,omitempty"`
	ICCID           *string         `json:"iccid,omitempty"`
	IMEI            *string         `json:"imei,omitempty"`
	Location        *Deployment     `json:"location,omitempty"`
	ClearLocation   bool            `json:"clear_location,omitempty"`
	AllowedNetworks *[]netip.Prefix `json:"allowed_networks,omitempty"`
	MinAppVersion   *string         `json:"min_app_version,omitempty"`
	MissingPolicy   *Policy         `json:"missing_policy,omitempty"`
	Keys            *KeyRefs        `json:"keys,omitempty"`
	AttestMaxAge    *Duration       `json:"attest_max_age,omitempty"`
	AttestLegacy    *bool           `json:"attest_legacy,omitempty"`
}

// Change is a requested lifecycle change and its review.
type Change struct {
	ID     string `json:"id"`
	Seq    uint64 `json:"seq"`
	Op     Op     `json:"op"`
	Target string `json:"target,omitempty"` // merchant or terminal ID; empty for an import
	Reason string `json:"reason,omitempty"`

	Merchant      *Merchant      `json:"merchant,omitempty"`       // merchant.register
	MerchantPatch *MerchantPatch `json:"merchant_patch,omitempty"` // merchant.change
	Terminal      *Terminal      `json:"terminal,omitempty"`       // terminal.register
	TerminalPatch *TerminalPatch `json:"terminal_patch,omitempty"` // terminal.change
	Terminals     []Terminal     `json:"terminals,omitempty"`      // terminal.import
	Merchants     []Merchant     `json:"merchants,omitempty"`      // merchant.import
	AlertRule     *AlertRule     `json:"alert_rule,omitempty"`     // alert-rule.put
	// Ext is the payload of an operation another package registered (RegisterOp).
	Ext json.RawMessage `json:"ext,omitempty"`
	// Base holds the versions of the existing merchants and terminals the change
	// changes ("merchant/ID", "terminal/ID"), as they were when it was requested: an
	// approval after another change moved one of them is refused, since what the
	// reviewer was shown (the record then, and the change's effect on it) is no
	// longer what approving would apply (a patch of a whole field, limits say, would
	// silently take back the other change). Empty in changes requested before 5
	// December 2026, which are not checked.
	Base map[string]int64 `json:"base,omitempty"`
	// BaseDigests does for the records that carry no version what Base does for
	// merchants and terminals: for each alert rule and each record of another
	// package's operation (an app-signing key, a rollout group, a task, a
	// merchant's webhook) the change puts, keyed "type/ID" as its effect names it,
	// the SHA-256 (hex) of the record as the reviewer was shown it at the
	// request, or "" when there was none (the change creates it). An approval
	// after another change (or a direct edit) replaced, created or removed one of
	// them is refused. Empty in changes requested before 6 December 2026 (third
	// release), which are not checked.
	BaseDigests map[string]string `json:"base_digests,omitempty"`

	Status        ChangeStatus `json:"status"`
	RequestedBy   string       `json:"requested_by"`
	RequestedRole string       `json:"requested_role,omitempty"`
	RequestedAt   time.Time    `json:"requested_at"`
	// ExpiresAt is when the change stops being approvable: RequestedAt plus the
	// requesting node's Options.ChangeTTL, stored with the change so that every
	// node of a cluster judges it alike whatever its own configuration. Zero in
	// changes requested before 6 December 2026, which expire ChangeTTL after
	// RequestedAt on the node that judges.
	ExpiresAt  time.Time  `json:"expires_at,omitzero"`
	ReviewedBy string     `json:"reviewed_by,omitempty"`
	ReviewedAt *time.Time `json:"reviewed_at,omitempty"`
	ReviewNote string     `json:"review_note,omitempty"`
}

// ChangeEffect is what a change does (or did) to one record.
type ChangeEffect struct {
	Type   string          `json:"type"` // merchant, terminal or alert-rule
	ID     string          `json:"id"`
	Before json.RawMessage `json:"before,omitempty"` // absent for a new record
	After  json.RawMessage `json:"after"`
}

// ChangePreview is a change with what it would do if approved now.
type ChangePreview struct {
	Change  *Change        `json:"change"`
	Effects []ChangeEffect `json:"effects,omitempty"`
	// Error says why approving it now would fail (for example, the terminal is no
	// longer suspended). Only for a pending change.
	Error string `json:"error,omitempty"`
	// Warnings are what the reviewer should look at twice before approving: a
	// new merchant or terminal whose ID reads as an existing one's, or as another
	// of the same import's ("00000000000000I" beside "000000000000001":
	// actorname.Same), a first step to moving terminals to a merchant the reviewer
	// takes for another. Only for a pending change.
	Warnings []string `json:"warnings,omitempty"`
}

// review is the review workflow: every change of a merchant or terminal (and of an
// alert rule that suspends terminals) is requested by one principal and applied
// when a different one approves it. It also applies the switch's own suspensions
// (systemSuspend), which need no review. Its writes take the store's lock, which
// also guards chgSeq.
type review struct {
	*store
	alerts *alerting // an approved alert-rule.put replaces one of its rules
	chgSeq uint64    // last change sequence; guarded by store.mu
	ext    extOps    // operations other packages registered (ext.go)
}

// load finds the last change sequence.
func (r *review) load(txn *badger.Txn) error {
	var err error
	r.chgSeq, _, err = lastSeq(txn, pfxChange)
	return err
}

func changeID(seq uint64) string { return "CHG-" + strconv.FormatUint(seq, 10) }

func parseSeqID(id, prefix string) (uint64, error) {
	n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToUpper(id), prefix), 10, 64)
	if err != nil || n == 0 {
		return 0, notFoundf("%q is not a valid ID (want %s<number>)", id, prefix)
	}
	return n, nil
}

func canRequest(p Actor) bool {
	return p.Role == RoleOperator || p.Role == RoleAdmin
}
func canReview(p Actor) bool {
	return p.Role == RoleReviewer || p.Role == RoleAdmin
}

// RequestChange records c as a change requested by p, pending review. It checks
// that the change could be applied now and fills ID, status and requester. Only
// operators and admins may request changes. An alert rule's webhook URL given
// redacted keeps the rule's URL it stands for (keepWebhookURLs); the change
// returned, as every read of it, shows the URLs redacted.
func (r *review) RequestChange(p Actor, c Change) (*Change, error) {
	r.maskChange(p, &c)
	normalizeLanguages(&c)
	return retry(r.store, func() (*Change, error) { return r.requestChange(p, c) })
}

func (r *review) requestChange(p Actor, c Change) (*Change, error) {
	if !r.canRequestOp(p, c.Op) {
		need := "operator or admin"
		if h, ok := r.ext.get(c.Op); ok && h.RequestRoles != nil {
			need = strings.Join(h.RequestRoles, " or ")
		}
		return nil, forbiddenf("%s (%s) may not request %s changes: %s role needed", p.Name, p.Role, c.Op, need)
	}
	if p.Name == "" {
		return nil, invalidf("request of %s: no principal name", c.Op)
	}
	if err := noteError(fmt.Sprintf("request of %s: reason", c.Op), c.Reason); err != nil {
		return nil, err
	}
	if c.AlertRule != nil {
		if err := noteError("alert rule "+c.AlertRule.ID+": description", c.AlertRule.Description); err != nil {
			return nil, err
		}
	}
	now := r.now()
	c.Reason = strings.TrimSpace(c.Reason)
	switch c.Op {
	case OpMerchantRegister:
		if c.Merchant != nil {
			c.Target = c.Merchant.ID
		}
	case OpTerminalRegister:
		if c.Terminal != nil {
			c.Target = c.Terminal.ID
		}
	case OpTerminalImport, OpMerchantImport:
		c.Target = ""
	case OpAlertRulePut:
		if c.AlertRule != nil {
			c.Target = c.AlertRule.ID
		}
	}
	if c.Op != OpAlertRulePut {
		c.AlertRule = nil
	}
	if c.AlertRule != nil {
		ar := *c.AlertRule
		if err := r.alerts.keepWebhookURLs(&ar); err != nil {
			return nil, err
		}
		c.AlertRule = &ar
	}
	if _, ok := r.ext.get(c.Op); !ok {
		c.Ext = nil
	}
	if err := r.checkRequestKeys(&c); err != nil {
		return nil, err
	}
	if c.Op != OpMerchantChange {
		c.MerchantPatch = nil
	}
	if c.Op != OpTerminalChange {
		c.TerminalPatch = nil
	}
	effs, err := r.compute(&c, now)
	if err != nil {
		return nil, err
	}
	if err := trimPatch(&c, effs); err != nil {
		return nil, err
	}
	if err := r.sameAlertRule(&c, effs); err != nil {
		return nil, err
	}
	c.Base = baseVersions(effs)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fillRuleBefore(effs)
	c.BaseDigests = baseDigests(r.hookKey, effs)
	c.Seq = r.chgSeq + 1
	c.ID = changeID(c.Seq)
	c.Status = ChangePending
	c.RequestedBy, c.RequestedRole, c.RequestedAt = p.Name, p.Role, now
	c.ExpiresAt = now.Add(r.opts.ChangeTTL)
	c.ReviewedBy, c.ReviewedAt, c.ReviewNote = "", nil, ""
	logged := c // an import is logged without its rows: each created record gets its own entry on approval
	logged.Terminals, logged.Merchants, logged.Reason = nil, nil, importReason(&c)
	logged.AlertRule = redactedRule(r.hookKey, c.AlertRule)
	b := r.ops()
	b.add(OpEntry{Time: now, Actor: p.Name, Role: p.Role, Action: "change.request", TargetType: "change", Target: c.ID,
		ChangeID: c.ID, Reason: c.Reason, After: rawJSON(&logged)})
	if err := r.commitLocked(func(txn *wtx) error {
		if err := putJSON(txn, seqKey(pfxChange, c.Seq), &c); err != nil {
			return err
		}
		return b.write(txn)
	}); err != nil {
		if errors.Is(err, badger.ErrTxnTooBig) {
			return nil, invalidf("change request %s with %d terminals is too large for one database transaction: split it", c.Op, len(c.Terminals))
		}
		return nil, fmt.Errorf("registry: store change request %s %s: %w", c.Op, c.Target, err)
	}
	b.done()
	r.chgSeq = c.Seq
	r.log.Info().Str("change", c.ID).Str("op", string(c.Op)).Str("target", c.Target).Str("by", p.Name).Msg("change requested")
	return redactedChange(r.hookKey, &c), nil
}

// checkRequestKeys checks the key references a terminal register, import or change
// names (checkKeyRefs), once, when it is requested.
func (r *review) checkRequestKeys(c *Change) error {
	switch c.Op {
	case OpTerminalRegister:
		if c.Terminal != nil {
			return r.checkKeyRefs(c.Terminal.ID, c.Terminal.Keys, nil)
		}
	case OpTerminalImport:
		for i := range c.Terminals {
			if err := r.checkKeyRefs(c.Terminals[i].ID, c.Terminals[i].Keys, nil); err != nil {
				return err
			}
		}
	case OpTerminalChange:
		if c.TerminalPatch != nil && c.TerminalPatch.Keys != nil {
			var was *KeyRefs
			if t, ok := r.Terminal(c.Target); ok {
				was = &t.Keys
			}
			return r.checkKeyRefs(c.Target, *c.TerminalPatch.Keys, was)
		}
	}
	return nil
}

func (r *review) loadChange(id string) (*Change, error) {
	n, err := parseSeqID(id, "CHG-")
	if err != nil {
		return nil, err
	}
	c := new(Change)
	err = r.db.View(func(txn *badger.Txn) error { return getJSON(txn, seqKey(pfxChange, n), c) })
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, notFoundf("change %s does not exist", id)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: read change %s: %w", id, err)
	}
	return c, nil
}

// GetChange returns change id and, while it is pending, what approving it now would
// do (or why it would fail). An alert rule's webhook URLs are shown redacted
// (RedactWebhookURL), in the change and its effects.
func (r *review) GetChange(id string) (*ChangePreview, error) {
	c, err := r.loadChange(id)
	if err != nil {
		return nil, err
	}
	pv := &ChangePreview{Change: redactedChange(r.hookKey, c)}
	if c.Status == ChangePending {
		now := r.now()
		effs, err := r.compute(c, now)
		r.mu.Lock()
		r.fillRuleBefore(effs)
		r.mu.Unlock()
		if xerr := r.expired(c, now); xerr != nil {
			pv.Change.Status, err = ChangeExpired, xerr
		}
		if err == nil {
			err = stale(r.hookKey, c, effs)
		}
		if err == nil {
			err = r.checkRequesterEnabled(c, r.canRequestOp)
		}
		if err != nil {
			pv.Error = err.Error()
		}
		for _, e := range effs {
			pv.Effects = append(pv.Effects, e.changeEffect(r.hookKey))
		}
		pv.Warnings = r.lookAlikeIDs(effs)
	}
	return pv, nil
}

// maxLookAlikes is how many look-alike IDs a preview names (lookAlikeIDs).
const maxLookAlikes = 20

// lookAlikeIDs returns a warning for each new merchant or terminal of effs whose
// ID reads as (actorname.Same) an existing record's of its kind, or as another
// new one's, at most maxLookAlikes and a count of the rest. It reads every
// record's ID once per kind that effs create.
func (r *review) lookAlikeIDs(effs []effect) []string {
	newM, newT := map[string]string{}, map[string]string{} // Key -> new ID
	var out []string
	more := 0
	warn := func(kind, id, other, where string) {
		if len(out) < maxLookAlikes {
			out = append(out, fmt.Sprintf("new %s %s reads as %s %s (%s): make sure it is the one meant", kind, id, where, other, actorname.LookAlike(other, id)))
			return
		}
		more++
	}
	add := func(kind, id string, keys map[string]string) {
		k := actorname.Key(id)
		if other, dup := keys[k]; dup {
			warn(kind, id, other, "new "+kind+" of the same change")
			return
		}
		keys[k] = id
	}
	for _, e := range effs {
		switch {
		case e.mBefore == nil && e.mAfter != nil:
			add("merchant", e.mAfter.ID, newM)
		case e.tBefore == nil && e.tAfter != nil:
			add("terminal", e.tAfter.ID, newT)
		}
	}
	s := r.snap.Load()
	if len(newM) > 0 {
		for id := range s.merchants {
			if n, ok := newM[actorname.Key(id)]; ok && n != id {
				warn("merchant", n, id, "existing merchant")
			}
		}
	}
	if len(newT) > 0 {
		for id := range s.terminals {
			if n, ok := newT[actorname.Key(id)]; ok && n != id {
				warn("terminal", n, id, "existing terminal")
			}
		}
	}
	sort.Strings(out)
	if more > 0 {
		out = append(out, fmt.Sprintf("and %d more IDs that read as others", more))
	}
	return out
}

// base returns the key and version of the existing merchant or terminal e changes
// (ok false for a new record, an alert rule or another package's operation).
func (e effect) base() (key string, version int64, ok bool) {
	switch {
	case e.mBefore != nil:
		return "merchant/" + e.mBefore.ID, e.mBefore.Version, true
	case e.tBefore != nil:
		return "terminal/" + e.tBefore.ID, e.tBefore.Version, true
	}
	return "", 0, false
}

// baseVersions returns Change.Base for a change with effects effs.
func baseVersions(effs []effect) map[string]int64 {
	var m map[string]int64
	for _, e := range effs {
		if k, v, ok := e.base(); ok {
			if m == nil {
				m = map[string]int64{}
			}
			m[k] = v
		}
	}
	return m
}

// fillRuleBefore sets rBefore of each alert-rule effect of effs to the rule in
// force. Call with r.mu held.
func (r *review) fillRuleBefore(effs []effect) {
	for i := range effs {
		if effs[i].rAfter != nil {
			effs[i].rBefore = r.alerts.rules[effs[i].rAfter.ID]
		}
	}
}

// digest returns the key ("alert-rule/ID", "task/NAME") and Change.BaseDigests
// value of an alert-rule effect or another package's (ok false for merchants and
// terminals, which Base covers): the SHA-256 of the record before, as the
// preview shows it (webhook URLs redacted), "" when there is none. rBefore must
// be filled (fillRuleBefore).
func (e effect) digest(hookKey []byte) (key, sum string, ok bool) {
	if e.rAfter == nil && e.xAfter == nil {
		return "", "", false
	}
	ce := e.changeEffect(hookKey)
	key = ce.Type + "/" + ce.ID
	if b := bytes.TrimSpace(ce.Before); len(b) == 0 || string(b) == "null" {
		return key, "", true
	}
	h := sha256.Sum256(ce.Before)
	return key, hex.EncodeToString(h[:]), true
}

// baseDigests returns Change.BaseDigests for a change with effects effs.
func baseDigests(hookKey []byte, effs []effect) map[string]string {
	var m map[string]string
	for _, e := range effs {
		if k, sum, ok := e.digest(hookKey); ok {
			if m == nil {
				m = map[string]string{}
			}
			m[k] = sum
		}
	}
	return m
}

// stale refuses a change one of whose records another change (or the switch's own
// suspension, or a direct edit of an alert rule) moved, created or removed since
// it was requested (Change.Base, Change.BaseDigests). effs' rBefore must be
// filled (fillRuleBefore).
func stale(hookKey []byte, c *Change, effs []effect) error {
	for _, e := range effs {
		k, sum, ok := e.digest(hookKey)
		if !ok {
			continue
		}
		was, known := c.BaseDigests[k]
		if !known || was == sum {
			continue
		}
		what := "changed"
		switch {
		case was == "":
			what = "was created"
		case sum == "":
			what = "was removed"
		}
		return conflictf("%s %s since %s was requested: approving it would apply something other than what it showed; request the change again",
			k, what, c.ID)
	}
	for _, e := range effs {
		k, v, ok := e.base()
		if !ok {
			continue
		}
		if was, known := c.Base[k]; known && was != v {
			return conflictf("%s changed since %s was requested (version %d then, %d now): approving it would apply something other than what it showed; request the change again",
				k, c.ID, was, v)
		}
	}
	return nil
}

// expiresAt is when pending change c stops being approvable: its ExpiresAt, or
// for a change requested before changes carried one, RequestedAt plus
// Options.ChangeTTL.
func (r *review) expiresAt(c *Change) time.Time {
	if !c.ExpiresAt.IsZero() {
		return c.ExpiresAt
	}
	return c.RequestedAt.Add(r.opts.ChangeTTL)
}

// expired refuses the approval of change c at now once it is past its expiry,
// naming its age: a reviewer approving a request made weeks ago no longer knows
// why it was made, nor whether its requester still wants it.
func (r *review) expired(c *Change, now time.Time) error {
	at := r.expiresAt(c)
	if now.Before(at) {
		return nil
	}
	return expiredf("change %s expired: requested %s ago by %s (%s), it could be approved until %s (registry.change_ttl %s): reject or cancel it, and request it again if it is still wanted",
		c.ID, ageText(now.Sub(c.RequestedAt)), c.RequestedBy, c.RequestedAt.UTC().Format(time.RFC3339),
		at.UTC().Format(time.RFC3339), ageText(at.Sub(c.RequestedAt)))
}

// ageText writes d in days and hours ("9d3h"), or hours and minutes below a day.
func ageText(d time.Duration) string {
	if d < 24*time.Hour {
		return d.Truncate(time.Minute).String()
	}
	days := d / (24 * time.Hour)
	return fmt.Sprintf("%dd%dh", days, (d-days*24*time.Hour)/time.Hour)
}

// ChangeFilter selects changes; empty fields match everything.
type ChangeFilter struct {
	Status ChangeStatus
	Target string
	Limit  int // the newest this many; 0 means 1000
}

// Changes returns the matching changes, oldest first. Imports are listed without
// their terminals or merchants (GetChange has them); alert rules with their
// webhook URLs redacted.
func (r *review) Changes(f ChangeFilter) ([]*Change, error) {
	now := r.now()
	return kvjson.Newest(r.db, pfxChange, f.Limit, "registry: read change", func(c *Change) bool {
		if c.Status == ChangePending && r.expired(c, now) != nil {
			c.Status = ChangeExpired
		}
		if (f.Status != "" && c.Status != f.Status) || (f.Target != "" && c.Target != f.Target) {
			return false
		}
		c.Reason = importReason(c)
		c.Terminals, c.Merchants = nil, nil
		c.AlertRule = redactedRule(r.hookKey, c.AlertRule)
		return true
	})
}

// importReason is an import's reason with the number of its rows ("... [12
// terminals]"); another change's reason as it is.
func importReason(c *Change) string {
	switch {
	case len(c.Terminals) > 0:
		return strings.TrimSpace(fmt.Sprintf("%s [%d terminals]", c.Reason, len(c.Terminals)))
	case len(c.Merchants) > 0:
		return strings.TrimSpace(fmt.Sprintf("%s [%d merchants]", c.Reason, len(c.Merchants)))
	}
	return c.Reason
}

// importChunk is how many records one Badger transaction of an approval writes.
const importChunk = 500

// Approve applies pending change id on behalf of reviewer p. The reviewer must not
// be the requester; only reviewers and admins may approve. The change takes effect
// at once (Check sees it before Approve returns) and every record it touches gets an
// oplog entry with the record before and after.
func (r *review) Approve(p Actor, id, note string) (*Change, error) {
	if err := noteError("change "+id+": review note", note); err != nil {
		return nil, err
	}
	note = r.maskText(p, "change "+id, "review note", note)
	c, err := retry(r.store, func() (*Change, error) { return r.approve(p, id, note) })
	if err == nil {
		r.applyExt(c)
	}
	return redactedChange(r.hookKey, c), err
}

func (r *review) approve(p Actor, id, note string) (*Change, error) {
	if !canReview(p) {
		return nil, forbiddenf("%s (%s) may not approve changes: reviewer or admin role needed", p.Name, p.Role)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.loadChange(id)
	if err != nil {
		return nil, err
	}
	if c.Status != ChangePending {
		return nil, conflictf("change %s is %s, not pending", c.ID, c.Status)
	}
	if err := r.expired(c, r.now()); err != nil {
		return nil, err
	}
	if p.Name == "" || p.Name == c.RequestedBy {
		return nil, forbiddenf("change %s was requested by %s: a different reviewer must approve it", c.ID, c.RequestedBy)
	}
	// "Alice" approving alice's change (a console account beside a token of that
	// name, say) is one person as far as anyone reading the oplog can tell.
	if actorname.Same(p.Name, c.RequestedBy) {
		return nil, forbiddenf("change %s was requested by %s and may not be approved by %s: %s; a different reviewer must approve it",
			c.ID, c.RequestedBy, p.Name, sameNameText(c.RequestedBy, p.Name))
	}
	// Two people, not two names: no one may have held both accounts (created them
	// or reset their passwords, directly or through users created so). That covers
	// a reviewer whose account the requester has held, a requester whose account
	// the reviewer has held, and an admin who made both.
	if err := r.checkIndependent(c.ID, c.RequestedBy, p.Name); err != nil {
		return nil, err
	}
	if err := r.checkRequesterEnabled(c, r.canRequestOp); err != nil {
		return nil, err
	}
	now := r.now()
	effs, err := r.compute(c, now)
	if err != nil {
		return nil, fmt.Errorf("approve %s (%s %s): %w", c.ID, c.Op, c.Target, err)
	}
	r.fillRuleBefore(effs)
	if err := stale(r.hookKey, c, effs); err != nil {
		return nil, err
	}
	c.Status, c.ReviewedBy, c.ReviewedAt, c.ReviewNote = ChangeApproved, p.Name, &now, strings.TrimSpace(note)
	for start := 0; start < len(effs); start += importChunk {
		chunk := effs[start:min(start+importChunk, len(effs))]
		last := start+importChunk >= len(effs)
		b := r.ops()
		for _, e := range chunk {
			ce := e.changeEffect(r.hookKey)
			b.add(OpEntry{Time: now, Actor: p.Name, Role: p.Role, Action: string(c.Op), TargetType: ce.Type, Target: ce.ID,
				ChangeID: c.ID, RequestedBy: c.RequestedBy, Reason: c.Reason, Before: ce.Before, After: ce.After})
		}
		if last {
			b.add(OpEntry{Time: now, Actor: p.Name, Role: p.Role, Action: "change.approve", TargetType: "change", Target: c.ID,
				ChangeID: c.ID, RequestedBy: c.RequestedBy, Reason: c.ReviewNote})
		}
		err := r.commitLocked(func(txn *wtx) error {
			for _, e := range chunk {
				if e.xAfter != nil {
					continue // the owner's record: written by its Apply
				}
				if e.rAfter != nil {
					if err := putJSON(txn, []byte(pfxRule+e.rAfter.ID), e.rAfter); err != nil {
						return err
					}
				} else if e.mAfter != nil {
					if err := putJSON(txn, []byte(pfxMerchant+e.mAfter.ID), e.mAfter); err != nil {
						return err
					}
				} else if err := putJSON(txn, []byte(pfxTerminal+e.tAfter.ID), e.tAfter); err != nil {
					return err
				}
			}
			if last {
				if err := putJSON(txn, seqKey(pfxChange, c.Seq), c); err != nil {
					return err
				}
			}
			return b.write(txn)
		})
		if err != nil {
			return nil, fmt.Errorf("registry: apply change %s (records %d to %d of %d): %w", c.ID, start+1, start+len(chunk), len(effs), err)
		}
		b.done()
		var ts []*Terminal
		for _, e := range chunk {
			if e.xAfter != nil {
				continue
			}
			if e.rAfter != nil {
				r.alerts.rules[e.rAfter.ID] = e.rAfter
			} else if e.mAfter != nil {
				r.publishMerchant(e.mAfter)
			} else {
				ts = append(ts, e.tAfter)
			}
		}
		r.publishTerminals(ts...)
	}
	r.log.Info().Str("change", c.ID).Str("op", string(c.Op)).Str("target", c.Target).Str("requested_by", c.RequestedBy).
		Str("approved_by", p.Name).Int("records", len(effs)).Msg("change approved")
	return c, nil
}

// Reject refuses pending change id on behalf of reviewer p; nothing is applied.
func (r *review) Reject(p Actor, id, note string) (*Change, error) {
	if !canReview(p) {
		return nil, forbiddenf("%s (%s) may not reject changes: reviewer or admin role needed", p.Name, p.Role)
	}
	return r.closeChange(p, id, note, ChangeRejected, "change.reject")
}

// Cancel withdraws pending change id; only its requester may.
func (r *review) Cancel(p Actor, id, note string) (*Change, error) {
	return r.closeChange(p, id, note, ChangeCancelled, "change.cancel")
}

func (r *review) closeChange(p Actor, id, note string, to ChangeStatus, action string) (*Change, error) {
	if err := noteError("change "+id+": review note", note); err != nil {
		return nil, err
	}
	note = r.maskText(p, "change "+id, "review note", note)
	c, err := retry(r.store, func() (*Change, error) { return r.closeChangeOnce(p, id, note, to, action) })
	return redactedChange(r.hookKey, c), err
}

func (r *review) closeChangeOnce(p Actor, id, note string, to ChangeStatus, action string) (*Change, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.loadChange(id)
	if err != nil {
		return nil, err
	}
	if c.Status != ChangePending {
		return nil, conflictf("change %s is %s, not pending", c.ID, c.Status)
	}
	if to == ChangeCancelled && p.Name != c.RequestedBy {
		return nil, forbiddenf("change %s was requested by %s: only the requester may cancel it", c.ID, c.RequestedBy)
	}
	now := r.now()
	c.Status, c.ReviewedBy, c.ReviewedAt, c.ReviewNote = to, p.Name, &now, strings.TrimSpace(note)
	b := r.ops()
	b.add(OpEntry{Time: now, Actor: p.Name, Role: p.Role, Action: action, TargetType: "change", Target: c.ID,
		ChangeID: c.ID, RequestedBy: c.RequestedBy, Reason: c.ReviewNote})
	if err := r.commitLocked(func(txn *wtx) error {
		if err := putJSON(txn, seqKey(pfxChange, c.Seq), c); err != nil {
			return err
		}
		return b.write(txn)
	}); err != nil {
		return nil, fmt.Errorf("registry: %s %s: %w", action, c.ID, err)
	}
	b.done()
	return c, nil
}

// systemSuspend suspends terminal id at once on behalf of the switch itself
// ("system" in the oplog), for a device-integrity finding or an alert action. It
// returns false when the terminal was not active or pending (nothing to do). The
// suspension is visible to Check even if the Badger write fails (the error is
// returned and logged).
func (r *review) systemSuspend(id, why string, now time.Time) (bool, error) {
	return retry(r.store, func() (bool, error) { return r.systemSuspendOnce(id, why, now) })
}

func (r *review) systemSuspendOnce(id, why string, now time.Time) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.Terminal(id)
	if !ok {
		return false, notFoundf("terminal %s does not exist", id)
	}
	if t.Status != TerminalActive && t.Status != TerminalPending {
		return false, nil
	}
	n := *t
	n.Status, n.Note, n.UpdatedAt, n.Version = TerminalSuspended, why, now.UTC(), t.Version+1
	r.publishTerminals(&n)
	b := r.ops()
	b.add(OpEntry{Time: now, Actor: SystemActor, Action: string(OpTerminalSuspend), TargetType: "terminal", Target: id,
		Reason: why, Before: rawJSON(t), After: rawJSON(&n)})
	if err := r.commitLocked(func(txn *wtx) error {
		if err := putJSON(txn, []byte(pfxTerminal+id), &n); err != nil {
			return err
		}
		return b.write(txn)
	}); err != nil {
		if errors.Is(err, statelog.ErrConflict) {
			// Another node wrote first: show the record as it was, so that the
			// retry decides again on the state once caught up.
			r.publishTerminals(t)
			return false, err
		}
		r.log.Error().Err(err).Str("terminal", id).Msg("registry: automatic suspension not stored (in effect until restart)")
		return true, fmt.Errorf("registry: store automatic suspension of terminal %s: %w", id, err)
	}
	b.done()
	r.log.Warn().Str("terminal", id).Str("why", why).Msg("terminal suspended automatically, pending review")
	return true, nil
}

// autoSuspend suspends a SoftPOS terminal that reported device-integrity findings.
func (r *review) autoSuspend(id string, now time.Time, findings []string) {
	why := "device-compromised: " + strings.Join(findings, ",")
	if done, _ := r.systemSuspend(id, why, now); done {
		r.m.suspensions.WithLabelValues("device-compromised").Inc()
	}
}
