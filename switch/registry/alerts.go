package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
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
		return invalidf("alert rule ID %q: want 1 to 64 letters, digits, '-', '_' or '.'", ar.ID)
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

// checkRule validates ar and checks what only the registry knows: the merchants of
// its filter must exist (a mistyped ID would make a rule that silently watches
// nothing), and its webhook targets must be on the allow-list (Options.WebhookAllow).
func (r *Registry) checkRule(ar *AlertRule) error {
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
}

func alertID(seq uint64) string { return "ALR-" + strconv.FormatUint(seq, 10) }

// alertRef is the latest alert of a rule for a terminal, for de-duplication.
type alertRef struct {
	seq       uint64
	status    AlertStatus
	reference time.Time
	ackAt     time.Time
}

func alertKey(rule, terminal string) string { return rule + "/" + terminal }

// indexAlert remembers a (the newest wins). r.mu must be held (or be in load).
func (r *Registry) indexAlert(a *Alert) {
	k := alertKey(a.RuleID, a.TerminalID)
	if old, ok := r.alertIdx[k]; ok && old.seq > a.Seq {
		return
	}
	ref := alertRef{seq: a.Seq, status: a.Status, reference: a.Reference}
	if a.AckAt != nil {
		ref.ackAt = *a.AckAt
	}
	r.alertIdx[k] = ref
}

// --- alert rules ---

// AlertRules returns the rules, ordered by ID.
func (r *Registry) AlertRules() []AlertRule {
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
// changes terminals (ChangesTerminals) is refused: it needs a reviewed change,
// RequestChange with OpAlertRulePut (the API's PUT does that itself).
func (r *Registry) PutAlertRule(p Actor, ar AlertRule) (*AlertRule, error) {
	if !canHandle(p) {
		return nil, forbiddenf("%s (%s) may not edit alert rules: operator or admin role needed", p.Name, p.Role)
	}
	if err := r.checkRule(&ar); err != nil {
		return nil, err
	}
	if ar.ChangesTerminals() {
		return nil, forbiddenf("alert rule %s suspends terminals: it takes effect only through a change (%s) approved by a different reviewer", ar.ID, OpAlertRulePut)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	ar.UpdatedBy, ar.UpdatedAt = p.Name, now
	var before any
	if old := r.rules[ar.ID]; old != nil {
		before = old
	}
	b := r.ops()
	b.add(OpEntry{Time: now, Actor: p.Name, Role: p.Role, Action: "alert-rule.put", TargetType: "alert-rule", Target: ar.ID,
		Before: rawJSON(before), After: rawJSON(&ar)})
	if err := r.commitLocked(func(txn *badger.Txn) error {
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

// DeleteAlertRule removes rule id on behalf of operator p. Its alerts stay.
func (r *Registry) DeleteAlertRule(p Actor, id string) error {
	if !canHandle(p) {
		return forbiddenf("%s (%s) may not edit alert rules: operator or admin role needed", p.Name, p.Role)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.rules[id]
	if old == nil {
		return notFoundf("alert rule %s does not exist", id)
	}
	now := r.now()
	b := r.ops()
	b.add(OpEntry{Time: now, Actor: p.Name, Role: p.Role, Action: "alert-rule.delete", TargetType: "alert-rule", Target: id,
		Before: rawJSON(old)})
	if err := r.commitLocked(func(txn *badger.Txn) error {
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

// Alerts returns the matching alerts, oldest first.
func (r *Registry) Alerts(f AlertFilterQuery) ([]*Alert, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	var out []*Alert
	err := r.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: []byte(pfxAlert), PrefetchValues: true, PrefetchSize: 50})
		defer it.Close()
		for it.Seek([]byte(pfxAlert + "\xff")); it.Valid() && len(out) < f.Limit; it.Next() {
			a := new(Alert)
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, a) }); err != nil {
				return fmt.Errorf("registry: read alert %s: %w", it.Item().Key(), err)
			}
			if (f.Status != "" && a.Status != f.Status) || (f.RuleID != "" && a.RuleID != f.RuleID) || (f.TerminalID != "" && a.TerminalID != f.TerminalID) {
				continue
			}
			out = append(out, a)
		}
		return nil
	})
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, err
}

func (r *Registry) readAlert(seq uint64, id string) (*Alert, error) {
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

// GetAlert returns alert id.
func (r *Registry) GetAlert(id string) (*Alert, error) {
	n, err := parseSeqID(id, "ALR-")
	if err != nil {
		return nil, err
	}
	return r.readAlert(n, id)
}

// AcknowledgeAlert marks open alert id as acknowledged by operator p. The rule will
// not alert again for that terminal until it has been seen again, or until one more
// threshold has passed since the acknowledgement.
func (r *Registry) AcknowledgeAlert(p Actor, id, note string) (*Alert, error) {
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
	if err := r.commitLocked(func(txn *badger.Txn) error {
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
func (r *Registry) storeAlertLocked(a *Alert) error {
	if err := r.commitLocked(func(txn *badger.Txn) error { return putJSON(txn, seqKey(pfxAlert, a.Seq), a) }); err != nil {
		return fmt.Errorf("registry: store alert %s (rule %s, terminal %s): %w", a.ID, a.RuleID, a.TerminalID, err)
	}
	r.indexAlert(a)
	return nil
}

// --- monitor ---

// MonitorOptions tune a Monitor. The zero value is usable.
type MonitorOptions struct {
	// Interval between runs of Run; default 1 minute.
	Interval time.Duration
	// HTTPClient posts webhooks; nil means a client with WebhookTimeout.
	HTTPClient *http.Client
	// WebhookTimeout bounds one webhook attempt; default 5 s.
	WebhookTimeout time.Duration
	// WebhookAttempts is how many times a webhook is tried; default 3.
	WebhookAttempts int
	// RetryBackoff is the wait before the second attempt, doubled each time;
	// default 1 s.
	RetryBackoff time.Duration
	// WebhookSecret keys the HMAC-SHA256 signature of every webhook body (see
	// SignWebhook). Without one, webhook actions fail rather than post unsigned.
	WebhookSecret []byte

	// A suspension wave is the terminals suspended by alert actions within
	// SuspendWindow (default 1 h). Once it would exceed SuspendMaxShare (default
	// 0.1) of the fleet's terminals, or of one merchant's, and SuspendMin (default 3)
	// terminals, the monitor stops suspending: it requests each further suspension
	// as a change for a reviewer instead.
	SuspendMaxShare float64
	SuspendMin      int
	SuspendWindow   time.Duration
}

// Defaults of the suspension wave limit (MonitorOptions).
const (
	DefaultSuspendMaxShare = 0.1
	DefaultSuspendMin      = 3
	DefaultSuspendWindow   = time.Hour
)

// Monitor watches when terminals were last seen and raises alerts by the registry's
// alert rules.
//
// De-duplication: while a rule's alert for a terminal is open, the rule does not
// alert again for it. When the terminal is seen again, the open alert becomes
// "recovered" and the next offline period alerts anew. An acknowledged alert
// silences the rule for that terminal until it is seen again or one more threshold
// has passed since the acknowledgement (then a new alert is raised).
type Monitor struct {
	reg   *Registry
	clock func() time.Time
	opts  MonitorOptions
	hc    *http.Client
}

// NewMonitor returns a monitor of reg's terminals; clock (nil: the registry's) gives
// the time of each scheduled run.
func NewMonitor(reg *Registry, clock func() time.Time, opts MonitorOptions) *Monitor {
	if clock == nil {
		clock = reg.clock
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Minute
	}
	if opts.WebhookTimeout <= 0 {
		opts.WebhookTimeout = 5 * time.Second
	}
	if opts.WebhookAttempts <= 0 {
		opts.WebhookAttempts = 3
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = time.Second
	}
	if opts.SuspendMaxShare <= 0 || opts.SuspendMaxShare > 1 {
		opts.SuspendMaxShare = DefaultSuspendMaxShare
	}
	if opts.SuspendMin <= 0 {
		opts.SuspendMin = DefaultSuspendMin
	}
	if opts.SuspendWindow <= 0 {
		opts.SuspendWindow = DefaultSuspendWindow
	}
	hc := opts.HTTPClient
	if hc == nil {
		// A redirect is not followed: it could lead off the allow-list.
		hc = &http.Client{Timeout: opts.WebhookTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return &Monitor{reg: reg, clock: clock, opts: opts, hc: hc}
}

// Run calls RunOnce every Interval until ctx is done.
func (mo *Monitor) Run(ctx context.Context) {
	t := time.NewTicker(mo.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := mo.RunOnce(ctx, mo.clock()); err != nil {
				mo.reg.log.Error().Err(err).Msg("offline monitor run failed")
			}
		}
	}
}

// WebhookPayload is the JSON body a webhook action posts.
type WebhookPayload struct {
	Event string `json:"event"` // "terminal-offline"
	Alert *Alert `json:"alert"`
}

// RunOnce evaluates every enabled rule against every terminal as of now, marks
// alerts of terminals seen again as recovered, raises new alerts and runs their
// actions. It returns the alerts it raised.
func (mo *Monitor) RunOnce(ctx context.Context, now time.Time) ([]*Alert, error) {
	r := mo.reg
	now = now.UTC()
	rules := r.AlertRules()
	s := r.snap.Load()
	ids := make([]string, 0, len(s.terminals))
	for id := range s.terminals {
		ids = append(ids, id)
	}
	sort.Strings(ids)

	var raised []*Alert
	var errs []error
	for _, ar := range rules {
		if ar.Disabled {
			continue
		}
		thr := time.Duration(ar.Threshold)
		for _, id := range ids {
			sl := s.terminals[id]
			t := sl.rec.Load()
			var m *Merchant
			if msl := s.merchants[t.MerchantID]; msl != nil {
				m = msl.rec.Load()
			}
			ls, seen := sl.lastSeen()
			a, err := mo.evaluate(&ar, t, m, ls, seen, thr, now)
			if err != nil {
				errs = append(errs, err)
			}
			if a != nil {
				raised = append(raised, a)
			}
		}
	}
	// Actions run outside the registry lock; webhooks may take a while.
	wave := mo.newWave(now)
	for _, a := range raised {
		var ar AlertRule
		for _, x := range rules {
			if x.ID == a.RuleID {
				ar = x
			}
		}
		a.Actions = mo.act(ctx, &ar, a, now, wave)
		r.mu.Lock()
		err := r.storeAlertLocked(a)
		r.mu.Unlock()
		if err != nil {
			errs = append(errs, err)
		}
	}
	if wave.held > 0 {
		r.log.Error().Int("held", wave.held).Int("suspended_in_window", wave.fleetDone).Int("fleet", wave.fleetTotal).
			Dur("window", mo.opts.SuspendWindow).Float64("max_share", mo.opts.SuspendMaxShare).
			Msg("suspension wave limit reached: further suspensions by alert rules are held as changes for review")
	}
	return raised, errors.Join(errs...)
}

// evaluate decides about one rule and terminal; it stores state changes and returns
// a new alert (stored without action results) if one fires.
func (mo *Monitor) evaluate(ar *AlertRule, t *Terminal, m *Merchant, ls LastSeen, seen bool, thr time.Duration, now time.Time) (*Alert, error) {
	r := mo.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	key := alertKey(ar.ID, t.ID)
	ref, has := r.alertIdx[key]
	if has && ref.status != AlertRecovered && seen && ls.Time.After(ref.reference) {
		// Seen again since the alert: recovered.
		a, err := r.readAlert(ref.seq, alertID(ref.seq))
		if err != nil {
			return nil, err
		}
		if a.Status == AlertOpen || a.Status == AlertAcknowledged {
			a.Status = AlertRecovered
			rt := ls.Time
			a.RecoveredAt = &rt
			if err := r.storeAlertLocked(a); err != nil {
				return nil, err
			}
		}
		ref = r.alertIdx[key]
	}
	if !ar.matches(t, m) {
		return nil, nil
	}
	reference := t.ActivatedAt
	if reference.IsZero() {
		reference = t.CreatedAt
	}
	if seen {
		reference = ls.Time
	}
	if now.Sub(reference) < thr {
		return nil, nil
	}
	if has {
		switch ref.status {
		case AlertOpen:
			return nil, nil
		case AlertAcknowledged:
			if now.Sub(ref.ackAt) < thr {
				return nil, nil
			}
		}
	}
	seq := r.alrSeq + 1
	a := &Alert{
		ID: alertID(seq), Seq: seq, RuleID: ar.ID, TerminalID: t.ID, MerchantID: t.MerchantID, Kind: t.Kind,
		Time: now, Reference: reference, OfflineFor: Duration(now.Sub(reference)), Threshold: ar.Threshold, Status: AlertOpen,
	}
	if m != nil {
		a.Region = m.Region
	}
	if seen {
		l := ls
		a.LastSeen = &l
	}
	if err := r.storeAlertLocked(a); err != nil {
		return nil, err
	}
	r.alrSeq = seq
	r.m.alerts.WithLabelValues(ar.ID).Inc()
	return a, nil
}

func (mo *Monitor) act(ctx context.Context, ar *AlertRule, a *Alert, now time.Time, wave *suspendWave) []ActionResult {
	r := mo.reg
	var out []ActionResult
	for _, act := range ar.Actions {
		res := ActionResult{Type: act.Type}
		switch act.Type {
		case ActionLog:
			r.log.Warn().Str("alert", a.ID).Str("rule", a.RuleID).Str("terminal", a.TerminalID).Str("merchant", a.MerchantID).
				Dur("offline_for", time.Duration(a.OfflineFor)).Time("reference", a.Reference).Msg("terminal offline")
			res.OK = true
		case ActionWebhook:
			err := mo.postWebhook(ctx, act.URL, WebhookPayload{Event: "terminal-offline", Alert: a}, now)
			res.OK = err == nil
			res.Detail = "posted to " + act.URL
			if err != nil {
				res.Detail = err.Error()
				r.log.Error().Err(err).Str("alert", a.ID).Msg("alert webhook failed")
			}
		case ActionSuspend:
			why := fmt.Sprintf("%s%s: rule %s, not seen for %v", offlineAlertNote, a.ID, a.RuleID, time.Duration(a.OfflineFor).Round(time.Second))
			if limit := wave.over(a.MerchantID); limit != "" {
				res.OK, res.Detail = mo.holdSuspension(a, why, limit)
				wave.held++
				break
			}
			done, err := r.systemSuspend(a.TerminalID, why, now)
			if done {
				wave.add(a.MerchantID)
			}
			switch {
			case err != nil:
				res.Detail = err.Error()
			case done:
				res.OK, res.Detail = true, "terminal suspended"
				r.m.suspensions.WithLabelValues("offline-alert").Inc()
			default:
				res.OK, res.Detail = true, "terminal not active; nothing to do"
			}
		}
		out = append(out, res)
	}
	return out
}

func (mo *Monitor) postWebhook(ctx context.Context, target string, payload WebhookPayload, now time.Time) error {
	// Checked again here: the rule may predate the allow-list as configured now.
	if err := mo.reg.webhookAllowed(target); err != nil {
		return err
	}
	if len(mo.opts.WebhookSecret) == 0 {
		return fmt.Errorf("webhook %s: no webhook secret configured (alerts.webhook_secret_file or alerts.webhook_secret_env): bodies are never sent unsigned", target)
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("encode webhook for %s: %w", payload.Alert.ID, err)
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := SignWebhook(mo.opts.WebhookSecret, ts, body)
	wait := mo.opts.RetryBackoff
	var last error
	for attempt := 1; attempt <= mo.opts.WebhookAttempts; attempt++ {
		if attempt > 1 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("webhook %s: %w (after %d attempts: %v)", target, ctx.Err(), attempt-1, last)
			case <-time.After(wait):
			}
			wait *= 2
		}
		last = mo.postOnce(ctx, target, body, ts, sig)
		if last == nil {
			return nil
		}
	}
	return fmt.Errorf("webhook %s failed after %d attempts: %w", target, mo.opts.WebhookAttempts, last)
}

func (mo *Monitor) postOnce(ctx context.Context, target string, body []byte, ts, sig string) error {
	ctx, cancel := context.WithTimeout(ctx, mo.opts.WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "switchyard-offline-monitor")
	req.Header.Set(WebhookTimestampHeader, ts)
	req.Header.Set(WebhookSignatureHeader, sig)
	resp, err := mo.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("answer %s", resp.Status)
	}
	return nil
}
