package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/carddata"
	"github.com/switchyard/switchyard/internal/kvjson"
)

// DefaultOfflineThreshold is the threshold of an alert rule that gives none.
const DefaultOfflineThreshold = 24 * time.Hour

// AlertFilter selects the terminals a rule watches. Each list matches any of its
// values; an empty list matches everything, except Statuses, which defaults to
// active terminals only.
type AlertFilter struct {
	Merchants []string         `json:"merchants,omitempty"`
	Regions   []string         `json:"regions,omitempty"` // the merchant's region
	Kinds     []TerminalKind   `json:"kinds,omitempty"`
	Statuses  []TerminalStatus `json:"statuses,omitempty"`
}

// Action types of alert rules.
const (
	ActionLog     = "log"     // log the alert (warning level)
	ActionWebhook = "webhook" // POST the alert as JSON to URL
	ActionSuspend = "suspend" // suspend the terminal (oplog actor "system"; resume is a reviewed change)
)

// AlertAction is one thing a rule does when it fires.
type AlertAction struct {
	Type string `json:"type"`
	URL  string `json:"url,omitempty"` // webhook only
}

// AlertRule raises an alert for every terminal that matches Filter and has not been
// seen (sent any message) for Threshold. A terminal never seen counts from its
// activation (or creation).
type AlertRule struct {
	ID          string        `json:"id"`
	Description string        `json:"description,omitempty"`
	Threshold   Duration      `json:"threshold"`
	Filter      AlertFilter   `json:"filter"`
	Actions     []AlertAction `json:"actions"`
	Disabled    bool          `json:"disabled,omitempty"`
	UpdatedBy   string        `json:"updated_by,omitempty"`
	UpdatedAt   time.Time     `json:"updated_at"`
}

// Validate checks a rule and fills the default action. A threshold under a minute,
// zero included, is refused: an explicit "0s" cannot mean "24 h", so the default
// threshold is filled only where a threshold was left out (the API's JSON body, the
// CLI's flag), never for a zero given on purpose.
func (ar *AlertRule) Validate() error {
	if !isIdent(ar.ID, 64) {
		return invalidf("alert rule ID %q: want 1 to 64 letters, digits, '-', '_' or '.', and no card number", carddata.MaskID(ar.ID))
	}
	if ar.Threshold < Duration(time.Minute) {
		return invalidf("alert rule %s: threshold %v: want at least 1m (leave it out for the default, %v)", ar.ID, time.Duration(ar.Threshold), DefaultOfflineThreshold)
	}
	for _, k := range ar.Filter.Kinds {
		if !k.Valid() {
			return invalidf("alert rule %s: kind %q: want pos, mpos or softpos", ar.ID, k)
		}
	}
	for _, s := range ar.Filter.Statuses {
		if !s.Valid() {
			return invalidf("alert rule %s: status %q: want pending, active, suspended or closed", ar.ID, s)
		}
	}
	if len(ar.Actions) == 0 {
		ar.Actions = []AlertAction{{Type: ActionLog}}
	}
	for _, a := range ar.Actions {
		switch a.Type {
		case ActionLog, ActionSuspend:
			if a.URL != "" {
				return invalidf("alert rule %s: action %s takes no URL", ar.ID, a.Type)
			}
		case ActionWebhook:
			u, err := url.Parse(a.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				// Quoted as typed (its card numbers masked by the caller): a URL
				// refused here is never stored, so only its sender reads this.
				return invalidf("alert rule %s: webhook URL %q: want an http or https URL", ar.ID, a.URL)
			}
		default:
			return invalidf("alert rule %s: action %q: want log, webhook or suspend", ar.ID, a.Type)
		}
	}
	return nil
}

// ChangesTerminals says whether the rule, enabled, has an action that changes
// terminals (suspend). Such a rule is created or replaced only by a reviewed change
// (OpAlertRulePut), as each resume of what it suspends is.
func (ar *AlertRule) ChangesTerminals() bool {
	if ar.Disabled {
		return false
	}
	for _, a := range ar.Actions {
		if a.Type == ActionSuspend {
			return true
		}
	}
	return false
}

// alerting holds the offline alert rules and the alerts they raised, with the
// index that de-duplicates them; the Monitor (monitor.go) evaluates the rules and
// runs their actions. Its writes take the store's lock, which also guards its
// fields: an approved alert-rule.put (review) replaces a rule under that lock.
type alerting struct {
	*store
	alrSeq   uint64                // last alert sequence
	rules    map[string]*AlertRule // by ID
	alertIdx map[string]alertRef   // rule ID + "/" + terminal ID -> latest alert
	// recoveries are the recovered alerts with a recovery post not made yet:
	// sequence -> ClosedAt. Apart from alertIdx, which a later alert of the
	// same rule and terminal takes over.
	recoveries map[uint64]time.Time
}

// load reads the alert rules and indexes the alerts.
func (r *alerting) load(txn *badger.Txn) error {
	if err := iterate(txn, pfxRule, func(k, v []byte) error {
		ar := new(AlertRule)
		if err := json.Unmarshal(v, ar); err != nil {
			return fmt.Errorf("registry: decode alert rule %s: %w", k, err)
		}
		r.rules[ar.ID] = ar
		return nil
	}); err != nil {
		return err
	}
	return iterate(txn, pfxAlert, func(k, v []byte) error {
		a := new(Alert)
		if err := json.Unmarshal(v, a); err != nil {
			return fmt.Errorf("registry: decode alert %s: %w", k, err)
		}
		r.indexAlert(a)
		if a.Seq > r.alrSeq {
			r.alrSeq = a.Seq
		}
		return nil
	})
}

// checkRule validates ar and checks what only the registry knows: the merchants of
// its filter must exist (a mistyped ID would make a rule that silently watches
// nothing), and its webhook targets must be on the allow-list (Options.WebhookAllow).
func (r *alerting) checkRule(ar *AlertRule) error {
	if err := ar.Validate(); err != nil {
		return err
	}
	s := r.snap.Load()
	for _, m := range ar.Filter.Merchants {
		if s.merchants[m] == nil {
			return invalidf("alert rule %s: merchant %q does not exist: the rule would watch nothing", ar.ID, m)
		}
	}
	for _, a := range ar.Actions {
		if a.Type == ActionWebhook {
			if err := r.webhookAllowed(a.URL); err != nil {
				return invalidf("alert rule %s: %v", ar.ID, err)
			}
		}
	}
	return nil
}

func (ar *AlertRule) matches(t *Terminal, m *Merchant) bool {
	f := ar.Filter
	in := func(list []string, v string) bool {
		if len(list) == 0 {
			return true
		}
		for _, x := range list {
			if x == v {
				return true
			}
		}
		return false
	}
	if !in(f.Merchants, t.MerchantID) {
		return false
	}
	if len(f.Regions) > 0 && (m == nil || !in(f.Regions, m.Region)) {
		return false
	}
	kindOK := len(f.Kinds) == 0
	for _, k := range f.Kinds {
		kindOK = kindOK || k == t.Kind
	}
	statusOK := false
	if len(f.Statuses) == 0 {
		statusOK = t.Status == TerminalActive
	}
	for _, s := range f.Statuses {
		statusOK = statusOK || s == t.Status
	}
	return kindOK && statusOK
}

// AlertStatus is the handling state of an alert.
type AlertStatus string

// The alert states.
const (
	AlertOpen         AlertStatus = "open"
	AlertAcknowledged AlertStatus = "acknowledged"
	AlertRecovered    AlertStatus = "recovered" // the terminal was seen again
)

// ActionResult is the outcome of one alert action.
type ActionResult struct {
	Type   string `json:"type"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	// URL is a webhook action's target: a failed post is tried again from it
	// (Monitor.RunOnce, WebhookRetryFor). Empty in alerts stored before 5
	// December 2026, which are not retried.
	URL string `json:"url,omitempty"`
}

// Alert says that a terminal has been offline longer than a rule's threshold.
type Alert struct {
	ID         string         `json:"id"`
	Seq        uint64         `json:"seq"`
	RuleID     string         `json:"rule_id"`
	TerminalID string         `json:"terminal_id"`
	MerchantID string         `json:"merchant_id"`
	Region     string         `json:"region,omitempty"`
	Kind       TerminalKind   `json:"kind"`
	Time       time.Time      `json:"time"`                // when it fired
	LastSeen   *LastSeen      `json:"last_seen,omitempty"` // nil: never seen
	Reference  time.Time      `json:"reference"`           // last seen, or activation when never seen
	OfflineFor Duration       `json:"offline_for"`
	Threshold  Duration       `json:"threshold"`
	Actions    []ActionResult `json:"actions,omitempty"`

	Status      AlertStatus `json:"status"`
	AckBy       string      `json:"acknowledged_by,omitempty"`
	AckAt       *time.Time  `json:"acknowledged_at,omitempty"`
	AckNote     string      `json:"acknowledge_note,omitempty"`
	RecoveredAt *time.Time  `json:"recovered_at,omitempty"`
	// Node is the cluster node whose offline monitor raised it (0 on a single node).
	Node int `json:"node,omitempty"`
	// Acted says that its actions ran and Actions holds their results.
	Acted bool `json:"acted,omitempty"`
	// ClosedAt is when the monitor found the terminal seen again and marked the
	// alert recovered (RecoveredAt is when the terminal was seen). Nil for
	// alerts recovered before 6 December 2026.
	ClosedAt *time.Time `json:"closed_at,omitempty"`
	// Recovery holds the results of the recovery's webhook posts
	// (EventTerminalOnline), one per webhook target of the alert that its rule
	// still has when it recovers: posted once, tried again by each run for
	// WebhookRetryFor after ClosedAt while one failed.
	Recovery []ActionResult `json:"recovery,omitempty"`
}

func alertID(seq uint64) string { return "ALR-" + strconv.FormatUint(seq, 10) }

// alertRef is the latest alert of a rule for a terminal, for de-duplication.
type alertRef struct {
	seq       uint64
	status    AlertStatus
	reference time.Time
	ackAt     time.Time
	raised    time.Time
	acted     bool // its actions' results are stored
	// hookFailed: a webhook action failed (its result names the URL): tried
	// again while the alert is open, for WebhookRetryFor after it was raised.
	hookFailed bool
}

func alertKey(rule, terminal string) string { return rule + "/" + terminal }

// indexAlert remembers a (the newest wins). r.mu must be held (or be in load).
func (r *alerting) indexAlert(a *Alert) {
	if recoveryDue(a) {
		r.recoveries[a.Seq] = *a.ClosedAt
	} else {
		delete(r.recoveries, a.Seq)
	}
	k := alertKey(a.RuleID, a.TerminalID)
	if old, ok := r.alertIdx[k]; ok && old.seq > a.Seq {
		return
	}
	ref := alertRef{seq: a.Seq, status: a.Status, reference: a.Reference, raised: a.Time, acted: a.Acted || len(a.Actions) > 0}
	for _, res := range a.Actions {
		ref.hookFailed = ref.hookFailed || res.Type == ActionWebhook && !res.OK && res.URL != ""
	}
	if a.AckAt != nil {
		ref.ackAt = *a.AckAt
	}
	r.alertIdx[k] = ref
}

// --- alert rules ---

// AlertRules returns the rules, ordered by ID, as every read answer shows them:
// their webhook URLs redacted (AlertRule.Redacted). The monitor reads them whole
// (alertRules).
func (r *alerting) AlertRules() []AlertRule {
	out := r.alertRules()
	for i := range out {
		out[i] = redactRule(r.hookKey, out[i])
	}
	return out
}

// alertRules returns the rules as stored, webhook URLs whole, ordered by ID.
func (r *alerting) alertRules() []AlertRule {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]AlertRule, 0, len(r.rules))
	for _, ar := range r.rules {
		out = append(out, *ar)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// PutAlertRule creates or replaces a rule on behalf of operator p. A rule that
// changes terminals (ChangesTerminals), or that replaces one that does, is
// refused: it needs a reviewed change,
// RequestChange with OpAlertRulePut (the API's PUT does that itself). A webhook URL
// given redacted, as read answers show it, keeps the rule's URL it stands for
// (keepWebhookURLs). The rule returned, and the oplog entry, show the webhook URLs
// redacted.
func (r *alerting) PutAlertRule(p Actor, ar AlertRule) (*AlertRule, error) {
	if err := noteError("alert rule "+ar.ID+": description", ar.Description); err != nil {
		return nil, err
	}
	ar.Description = r.maskText(p, "alert rule "+ar.ID, "description", ar.Description)
	saved, err := retry(r.store, func() (*AlertRule, error) { return r.putAlertRule(p, ar) })
	return redactedRule(r.hookKey, saved), err
}

func (r *alerting) putAlertRule(p Actor, ar AlertRule) (*AlertRule, error) {
	if !canHandle(p) {
		return nil, forbiddenf("%s (%s) may not edit alert rules: operator or admin role needed", p.Name, p.Role)
	}
	if err := r.keepWebhookURLs(&ar); err != nil {
		return nil, err
	}
	if err := r.checkRule(&ar); err != nil {
		return nil, err
	}
	if ar.ChangesTerminals() {
		return nil, suspendingRuleErr(ar.ID)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	ar.UpdatedBy, ar.UpdatedAt = p.Name, now
	var before any
	if old := r.rules[ar.ID]; old != nil {
		if old.ChangesTerminals() {
			// Disabling it, or taking its suspend action off, is reviewed as
			// its creation was: one operator alone could otherwise stop the
			// suspensions a reviewer approved.
			return nil, suspendingRuleErr(ar.ID)
		}
		before = redactedRule(r.hookKey, old)
	}
	b := r.ops()
	b.add(OpEntry{Time: now, Actor: p.Name, Role: p.Role, Action: "alert-rule.put", TargetType: "alert-rule", Target: ar.ID,
		Before: rawJSON(before), After: rawJSON(redactedRule(r.hookKey, &ar))})
	if err := r.commitLocked(func(txn *wtx) error {
		if err := putJSON(txn, []byte(pfxRule+ar.ID), &ar); err != nil {
			return err
		}
		return b.write(txn)
	}); err != nil {
		return nil, fmt.Errorf("registry: store alert rule %s: %w", ar.ID, err)
	}
	b.done()
	r.rules[ar.ID] = &ar
	return &ar, nil
}

// suspendingRuleErr is the refusal of a direct edit of alert rule id that
// suspends terminals (ChangesTerminals), before or after the edit.
func suspendingRuleErr(id string) error {
	return forbiddenf("alert rule %s suspends terminals: it takes effect only through a change (%s) approved by a different reviewer", id, OpAlertRulePut)
}

// AlertRuleNeedsChange says whether putting ar takes a reviewed change
// (OpAlertRulePut) rather than PutAlertRule: it changes terminals, or the rule it
// replaces does (disabling it, or taking its suspend action off, is reviewed too).
func (r *alerting) AlertRuleNeedsChange(ar *AlertRule) bool {
	if ar.ChangesTerminals() {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.rules[ar.ID]
	return old != nil && old.ChangesTerminals()
}

// DeleteAlertRule removes rule id on behalf of operator p. Its alerts stay. A
// rule that changes terminals (ChangesTerminals) is refused: it is disabled
// first through a reviewed change (OpAlertRulePut), then deleted.
func (r *alerting) DeleteAlertRule(p Actor, id string) error {
	_, err := retry(r.store, func() (struct{}, error) { return struct{}{}, r.deleteAlertRule(p, id) })
	return err
}

func (r *alerting) deleteAlertRule(p Actor, id string) error {
	if !canHandle(p) {
		return forbiddenf("%s (%s) may not edit alert rules: operator or admin role needed", p.Name, p.Role)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.rules[id]
	if old == nil {
		return notFoundf("alert rule %s does not exist", id)
	}
	if old.ChangesTerminals() {
		return forbiddenf("alert rule %s suspends terminals: it takes effect only through a change (%s) approved by a different reviewer; to delete it, disable it first through such a change", id, OpAlertRulePut)
	}
	now := r.now()
	b := r.ops()
	b.add(OpEntry{Time: now, Actor: p.Name, Role: p.Role, Action: "alert-rule.delete", TargetType: "alert-rule", Target: id,
		Before: rawJSON(redactedRule(r.hookKey, old))})
	if err := r.commitLocked(func(txn *wtx) error {
		if err := txn.Delete([]byte(pfxRule + id)); err != nil {
			return err
		}
		return b.write(txn)
	}); err != nil {
		return fmt.Errorf("registry: delete alert rule %s: %w", id, err)
	}
	b.done()
	delete(r.rules, id)
	return nil
}

// --- alerts ---

// AlertFilterQuery selects alerts; empty fields match everything.
type AlertFilterQuery struct {
	Status     AlertStatus
	RuleID     string
	TerminalID string
	Limit      int // the newest this many; 0 means 1000
}

// Alerts returns the matching alerts, oldest first, their webhook URLs redacted
// (redactedAlert).
func (r *alerting) Alerts(f AlertFilterQuery) ([]*Alert, error) {
	as, err := kvjson.Newest(r.db, pfxAlert, f.Limit, "registry: read alert", func(a *Alert) bool {
		return (f.Status == "" || a.Status == f.Status) && (f.RuleID == "" || a.RuleID == f.RuleID) && (f.TerminalID == "" || a.TerminalID == f.TerminalID)
	})
	for i := range as {
		as[i] = redactedAlert(r.hookKey, as[i])
	}
	return as, err
}

func (r *alerting) readAlert(seq uint64, id string) (*Alert, error) {
	a := new(Alert)
	err := r.db.View(func(txn *badger.Txn) error { return getJSON(txn, seqKey(pfxAlert, seq), a) })
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, notFoundf("alert %s does not exist", id)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: read alert %s: %w", id, err)
	}
	return a, nil
}

// GetAlert returns alert id, its webhook URLs redacted (redactedAlert).
func (r *alerting) GetAlert(id string) (*Alert, error) {
	n, err := parseSeqID(id, "ALR-")
	if err != nil {
		return nil, err
	}
	a, err := r.readAlert(n, id)
	return redactedAlert(r.hookKey, a), err
}

// AcknowledgeAlert marks open alert id as acknowledged by operator p. The rule will
// not alert again for that terminal until it has been seen again, or until one more
// threshold has passed since the acknowledgement. The alert returned shows its
// webhook URLs redacted.
func (r *alerting) AcknowledgeAlert(p Actor, id, note string) (*Alert, error) {
	if err := noteError("alert "+id+": note", note); err != nil {
		return nil, err
	}
	note = r.maskText(p, "alert "+id, "note", note)
	a, err := retry(r.store, func() (*Alert, error) { return r.acknowledgeAlert(p, id, note) })
	return redactedAlert(r.hookKey, a), err
}

func (r *alerting) acknowledgeAlert(p Actor, id, note string) (*Alert, error) {
	if !canHandle(p) {
		return nil, forbiddenf("%s (%s) may not handle alerts: operator or admin role needed", p.Name, p.Role)
	}
	n, err := parseSeqID(id, "ALR-")
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	a, err := r.readAlert(n, id)
	if err != nil {
		return nil, err
	}
	if a.Status != AlertOpen {
		return nil, conflictf("alert %s is %s, not open", a.ID, a.Status)
	}
	now := r.now()
	a.Status, a.AckBy, a.AckAt, a.AckNote = AlertAcknowledged, p.Name, &now, strings.TrimSpace(note)
	b := r.ops()
	b.add(OpEntry{Time: now, Actor: p.Name, Role: p.Role, Action: "alert.ack", TargetType: "alert", Target: a.ID, Reason: a.AckNote,
		Before: rawJSON(map[string]any{"status": AlertOpen}), After: rawJSON(map[string]any{"status": a.Status})})
	if err := r.commitLocked(func(txn *wtx) error {
		if err := putJSON(txn, seqKey(pfxAlert, a.Seq), a); err != nil {
			return err
		}
		return b.write(txn)
	}); err != nil {
		return nil, fmt.Errorf("registry: store acknowledgement of %s: %w", a.ID, err)
	}
	b.done()
	r.indexAlert(a)
	return a, nil
}

// storeAlertLocked writes a (new or updated). r.mu must be held.
func (r *alerting) storeAlertLocked(a *Alert) error {
	if err := r.commitLocked(func(txn *wtx) error { return putJSON(txn, seqKey(pfxAlert, a.Seq), a) }); err != nil {
		return fmt.Errorf("registry: store alert %s (rule %s, terminal %s): %w", a.ID, a.RuleID, a.TerminalID, err)
	}
	r.indexAlert(a)
	return nil
}

// setAlertActions stores the results of a's actions in the alert as it is now:
// in a cluster an operator on another node may have acknowledged it meanwhile.
func (r *alerting) setAlertActions(a *Alert) error {
	_, err := retry(r.store, func() (*Alert, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		cur, err := r.readAlert(a.Seq, a.ID)
		if err != nil {
			return nil, err
		}
		cur.Actions, cur.Acted = a.Actions, true
		return cur, r.storeAlertLocked(cur)
	})
	return err
}

// WebhookRetryFor is how long after an alert was raised a webhook action of it
// that failed is tried again (once a run, while the alert is open).
const WebhookRetryFor = 24 * time.Hour

// failedWebhookAlerts returns the open alerts raised less than WebhookRetryFor
// before now with a webhook action that failed.
func (r *alerting) failedWebhookAlerts(now time.Time) ([]*Alert, error) {
	return r.alertsWhere(func(ref alertRef) bool {
		return ref.status == AlertOpen && ref.hookFailed && now.Sub(ref.raised) < WebhookRetryFor
	})
}

// recoveryDue says whether a recovered alert has a recovery post not made yet.
func recoveryDue(a *Alert) bool {
	if a.Status != AlertRecovered || a.ClosedAt == nil {
		return false
	}
	for _, res := range a.Recovery {
		if !res.OK && res.URL != "" {
			return true
		}
	}
	return false
}

// pendingRecoveries returns the recovered alerts with a recovery post not made
// yet, closed less than WebhookRetryFor before now, oldest first. Those closed
// longer ago are given up: dropped from r.recoveries (which a start fills again
// from the alerts, and the first run empties).
func (r *alerting) pendingRecoveries(now time.Time) ([]*Alert, error) {
	r.mu.Lock()
	var seqs []uint64
	for seq, closed := range r.recoveries {
		if now.Sub(closed) < WebhookRetryFor {
			seqs = append(seqs, seq)
		} else {
			delete(r.recoveries, seq)
		}
	}
	r.mu.Unlock()
	return r.readAlerts(seqs)
}

// readAlerts reads the alerts of seqs, oldest first (it sorts seqs).
func (r *alerting) readAlerts(seqs []uint64) ([]*Alert, error) {
	slices.Sort(seqs)
	out := make([]*Alert, 0, len(seqs))
	for _, seq := range seqs {
		a, err := r.readAlert(seq, alertID(seq))
		if err != nil {
			return out, err
		}
		out = append(out, a)
	}
	return out, nil
}

// setRecoveryResults stores the results of a's recovery posts in the alert as
// it is now.
func (r *alerting) setRecoveryResults(a *Alert) error {
	_, err := retry(r.store, func() (*Alert, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		cur, err := r.readAlert(a.Seq, a.ID)
		if err != nil {
			return nil, err
		}
		cur.Recovery = a.Recovery
		return cur, r.storeAlertLocked(cur)
	})
	return err
}

// unactedAlerts returns the open alerts raised at least age before now whose
// actions' results were never stored: the node stopped between storing an alert
// and acting on it, or, in a cluster, the alert's commit was stored although its
// acknowledgement was lost, and came back through the follower.
func (r *alerting) unactedAlerts(now time.Time, age time.Duration) ([]*Alert, error) {
	return r.alertsWhere(func(ref alertRef) bool {
		return ref.status == AlertOpen && !ref.acted && now.Sub(ref.raised) >= age
	})
}

// alertsWhere reads the alerts whose index entries match, oldest first.
func (r *alerting) alertsWhere(match func(alertRef) bool) ([]*Alert, error) {
	r.mu.Lock()
	var seqs []uint64
	for _, ref := range r.alertIdx {
		if match(ref) {
			seqs = append(seqs, ref.seq)
		}
	}
	r.mu.Unlock()
	return r.readAlerts(seqs)
}
