package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"
)

// MonitorOptions tune a Monitor. The zero value is usable.
type MonitorOptions struct {
	// Interval between runs of Run; default 1 minute.
	Interval time.Duration
	// HTTPClient posts webhooks; nil means a client with WebhookTimeout that
	// uses no proxy and follows no redirect.
	HTTPClient *http.Client
	// WebhookTimeout bounds one webhook attempt; default 5 s.
	WebhookTimeout time.Duration
	// WebhookAttempts is how many times a webhook is tried; default 3.
	WebhookAttempts int
	// RetryBackoff is the wait before the second attempt, doubled each time;
	// default 1 s.
	RetryBackoff time.Duration
	// WebhookConcurrency is how many webhooks a run posts at once; default
	// DefaultWebhookConcurrency (hookrun.go).
	WebhookConcurrency int
	// WebhookMaxPerRun is how many posts a run makes to one target; the others
	// are made by the next runs. Default DefaultWebhookMaxPerRun (hookrun.go).
	WebhookMaxPerRun int
	// WebhookRetryAfterMax is the longest Retry-After (of a 429 or 503 answer)
	// honoured: a target that asks for more is posted to again after this long.
	// Default DefaultWebhookRetryAfterMax (retryafter.go).
	WebhookRetryAfterMax time.Duration
	// WebhookSecret keys the HMAC-SHA256 signature of every webhook body (see
	// SignWebhook). Without one, webhook actions fail rather than post unsigned.
	WebhookSecret []byte
	// WebhookSecretPrevious, while a rotation of WebhookSecret is under way, is the
	// secret it replaces: every body also carries the signature under it
	// (WebhookSignaturePreviousHeader), so that a receiver not yet switched still
	// verifies the posts. Nil: one signature. SetWebhookSecrets changes both.
	WebhookSecretPrevious []byte

	// A suspension wave is the terminals suspended by alert actions within
	// SuspendWindow (default 1 h). Once it would exceed SuspendMaxShare (default
	// 0.1) of the fleet's terminals, or of one merchant's, and SuspendMin (default 3)
	// terminals, the monitor stops suspending: it requests each further suspension
	// as a change for a reviewer instead.
	SuspendMaxShare float64
	SuspendMin      int
	SuspendWindow   time.Duration

	// Mass silence (masssilence.go): once the terminals with an offline alert
	// raised within SuspendWindow (the run's own included) exceed MassSilenceShare
	// (default 0.05) of the fleet's terminals that are not closed, or of a region's,
	// or of a merchant's, and MassSilenceMin (default 20) terminals, the monitor
	// assumes a common cause (a network, issuer or power outage, not stolen
	// terminals): it suspends none of that scope's terminals and requests no
	// change for them; the alerts are raised, their log and webhook actions run.
	MassSilenceShare float64
	MassSilenceMin   int

	// ReAlertAfter: once a rule's alert for a terminal has recovered, the rule
	// raises no new alert for the terminal until ReAlertAfter after that alert was
	// raised (default 1 h; negative: no hold). A terminal on a bad link, silent
	// and back every few minutes, alerts once an hour, not at every flap.
	ReAlertAfter time.Duration

	// Active, when set, is asked before each run: the run is skipped while it
	// returns false. A cluster runs the monitor on one node at a time (its nodes
	// share last-seen data, and each would otherwise raise the same alerts and act
	// on them).
	Active func() bool
}

// Defaults of the suspension wave limit (MonitorOptions).
const (
	DefaultSuspendMaxShare = 0.1
	DefaultSuspendMin      = 3
	DefaultSuspendWindow   = time.Hour
)

// Defaults of the mass-silence brake and the re-alert hold (MonitorOptions).
const (
	DefaultMassSilenceShare = 0.05
	DefaultMassSilenceMin   = 20
	DefaultReAlertAfter     = time.Hour
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
	runMu sync.Mutex // one run at a time (the loop and a task's run-now)

	secretMu sync.RWMutex // guards secrets, which SetWebhookSecrets replaces
	secrets  webhookSecrets

	// holds are the targets that answered a Retry-After too long to wait within
	// a post, and until when none is posted to (retryafter.go).
	holdMu sync.Mutex
	holds  map[string]time.Time

	// down is the switch's own downtime before this monitor started (from the
	// newest last-seen time then to the start), not counted as terminals' silence;
	// zero when none.
	down struct{ from, to time.Time }
}

// webhookSecrets are the keys a webhook is signed with: cur always, prev besides
// it during a rotation.
type webhookSecrets struct{ cur, prev []byte }

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
	if opts.WebhookConcurrency <= 0 {
		opts.WebhookConcurrency = DefaultWebhookConcurrency
	}
	if opts.WebhookMaxPerRun <= 0 {
		opts.WebhookMaxPerRun = DefaultWebhookMaxPerRun
	}
	if opts.WebhookRetryAfterMax <= 0 {
		opts.WebhookRetryAfterMax = DefaultWebhookRetryAfterMax
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
	if opts.MassSilenceShare <= 0 || opts.MassSilenceShare > 1 {
		opts.MassSilenceShare = DefaultMassSilenceShare
	}
	if opts.MassSilenceMin <= 0 {
		opts.MassSilenceMin = DefaultMassSilenceMin
	}
	if opts.ReAlertAfter == 0 {
		opts.ReAlertAfter = DefaultReAlertAfter
	}
	hc := opts.HTTPClient
	if hc == nil {
		// No proxy (HTTP_PROXY, HTTPS_PROXY are ignored), as for merchants' webhooks
		// (switch/notify): through a proxy the post would go to the proxy's address,
		// not to the allow-listed target the rule's review checked.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil
		// A redirect is not followed: it could lead off the allow-list.
		hc = &http.Client{Timeout: opts.WebhookTimeout, Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	mo := &Monitor{reg: reg, clock: clock, opts: opts, hc: hc}
	mo.secrets = newWebhookSecrets(opts.WebhookSecret, opts.WebhookSecretPrevious)
	mo.down.from, mo.down.to = reg.downtime(clock().UTC())
	if !mo.down.from.IsZero() {
		reg.log.Info().Time("from", mo.down.from).Time("to", mo.down.to).
			Msg("offline monitor: the switch's downtime (newest last-seen time to this start) is not counted as terminals' silence")
	}
	return mo
}

// downtime returns the span before start in which the switch saw no terminal
// because it was down: from its previous run's last flush of last-seen data
// (keyAlive), or the newest last-seen time of the fleet if later (a cluster's
// other nodes), to start. Zero times when neither is known, or it is not before
// start.
func (r *store) downtime(start time.Time) (from, to time.Time) {
	newest := r.aliveAt
	for _, sl := range r.snap.Load().terminals {
		if ls, ok := sl.lastSeen(); ok && ls.Time.After(newest) {
			newest = ls.Time
		}
	}
	if newest.IsZero() || !newest.Before(start) {
		return time.Time{}, time.Time{}
	}
	return newest, start
}

// silence is how long a terminal last heard of at reference has been silent at
// now, the switch's downtime before the monitor's start left out.
func (mo *Monitor) silence(reference, now time.Time) time.Duration {
	d := now.Sub(reference)
	if mo.down.from.IsZero() {
		return d
	}
	from, to := mo.down.from, mo.down.to
	if reference.After(from) {
		from = reference
	}
	if now.Before(to) {
		to = now
	}
	if to.After(from) {
		d -= to.Sub(from)
	}
	return d
}

// newWebhookSecrets copies cur and prev; prev is dropped when it equals cur (one
// signature would be sent twice).
func newWebhookSecrets(cur, prev []byte) webhookSecrets {
	s := webhookSecrets{cur: bytes.Clone(cur)}
	if len(prev) > 0 && !bytes.Equal(prev, cur) {
		s.prev = bytes.Clone(prev)
	}
	return s
}

// SetWebhookSecrets replaces the webhook secrets (a reload, SIGHUP): cur signs
// every body from the next post; prev, when not nil, also signs it, in
// WebhookSignaturePreviousHeader, for the receivers still verifying with the secret
// cur replaced. Posts under way finish with the secrets they started with.
func (mo *Monitor) SetWebhookSecrets(cur, prev []byte) {
	s := newWebhookSecrets(cur, prev)
	mo.secretMu.Lock()
	mo.secrets = s
	mo.secretMu.Unlock()
}

// webhookSecrets returns the secrets in force.
func (mo *Monitor) webhookSecrets() webhookSecrets {
	mo.secretMu.RLock()
	defer mo.secretMu.RUnlock()
	return mo.secrets
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
	Event string `json:"event"` // EventTerminalOffline
	Alert *Alert `json:"alert"`
}

// The events of alert webhooks (WebhookPayload.Event).
const (
	EventTerminalOffline = "terminal-offline" // an alert was raised: the terminal has not been seen for the rule's threshold
	EventTerminalOnline  = "terminal-online"  // the alert's terminal was seen again: the alert is recovered
)

// RunOnce evaluates every enabled rule against every terminal as of now, marks
// alerts of terminals seen again as recovered, raises new alerts and runs their
// actions. It returns the alerts it raised. It does nothing while
// MonitorOptions.Active says so.
func (mo *Monitor) RunOnce(ctx context.Context, now time.Time) ([]*Alert, error) {
	if mo.opts.Active != nil && !mo.opts.Active() {
		return nil, nil
	}
	mo.runMu.Lock() // a second run would act again on the alerts this one has not acted on yet
	defer mo.runMu.Unlock()
	r := mo.reg
	now = now.UTC()
	rules := r.alertRules()
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
			// retry: in a cluster, a commit that met another node's is decided
			// again on the state that node made (an alert it raised is not raised twice).
			a, err := retry(r.store, func() (*Alert, error) { return mo.evaluate(&ar, t, m, ls, seen, thr, now) })
			if err != nil {
				errs = append(errs, err)
			}
			if a != nil {
				raised = append(raised, a)
			}
		}
	}
	// Alerts stored without their actions' results get their actions now: an
	// action runs at least once. (Only those older than a run: another node's
	// monitor, in a failover, may be acting on a new one.)
	late, err := r.unactedAlerts(now, mo.opts.Interval)
	if err != nil {
		errs = append(errs, err)
	}
	for _, a := range late {
		r.log.Warn().Str("alert", a.ID).Str("rule", a.RuleID).Str("terminal", a.TerminalID).Msg("alert stored without its actions' results: running them now")
	}
	// Failed webhooks of earlier runs, read before this run's actions (which may
	// fail too, and are tried again by the next run, not this one).
	retries, err := r.failedWebhookAlerts(now)
	if err != nil {
		errs = append(errs, err)
	}
	// Actions run outside the registry lock. The webhooks are posted at the end,
	// several at once (hookrun.go), each alert's results stored once its posts
	// are done: the new alerts' first, then the recoveries, then the failed ones
	// of earlier runs, which the new alerts thus precede at each target.
	wave := mo.newWave(now)
	mass := mo.newMassSilence(now) // after this run's alerts are stored: they count
	hooks := newHookRun(ctx, mo, now)
	for _, a := range append(late, raised...) {
		var ar *AlertRule
		for i := range rules {
			if rules[i].ID == a.RuleID {
				ar = &rules[i]
			}
		}
		if ar == nil || ar.Disabled { // only a late alert's rule can be
			a.Actions = []ActionResult{{Type: "none", OK: true, Detail: "rule disabled or deleted since the alert: no action"}}
		} else {
			a.Actions = mo.act(ar, a, now, wave, mass)
		}
		ha := &hookAlert{a: a, done: func(ha *hookAlert) error { return r.setAlertActions(ha.a) }}
		body := *a // as first posted: no action results
		body.Actions, body.Acted = nil, false
		for i := range a.Actions {
			if res := &a.Actions[i]; res.Type == ActionWebhook {
				if err := hooks.add(hookNew, ha, res, res.URL, WebhookPayload{Event: EventTerminalOffline, Alert: &body}); err != nil {
					res.Detail = err.Error()
				}
			}
		}
		if ha.pending == 0 {
			if err := r.setAlertActions(a); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// The recoveries: those of this run, and those whose post failed earlier.
	recovered, err := r.pendingRecoveries(now)
	if err != nil {
		errs = append(errs, err)
	}
	for _, a := range recovered {
		if err := mo.queueRecovery(hooks, a, rules); err != nil {
			errs = append(errs, err)
		}
	}
	for _, a := range retries {
		if err := mo.queueRetries(hooks, a, rules); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, hooks.run(mo.opts.WebhookConcurrency)...)
	hooks.logDown()
	mass.log(mo)
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
			rt, closed := ls.Time, now
			a.RecoveredAt, a.ClosedAt = &rt, &closed
			a.Recovery = recoveryTargets(ar, a)
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
	if mo.silence(reference, now) < thr {
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
		case AlertRecovered:
			if hold := mo.opts.ReAlertAfter; hold > 0 && now.Sub(ref.raised) < hold {
				return nil, nil // flapping: one alert per hold
			}
		}
	}
	seq := r.alrSeq + 1
	a := &Alert{
		ID: alertID(seq), Seq: seq, RuleID: ar.ID, TerminalID: t.ID, MerchantID: t.MerchantID, Kind: t.Kind,
		Time: now, Reference: reference, OfflineFor: Duration(now.Sub(reference)), Threshold: ar.Threshold, Status: AlertOpen,
		Node: r.opts.Node,
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

// recoveryTargets returns the recovery posts due for alert a, recovering, as
// results not posted yet: one per webhook target of its actions that rule ar
// still posts to.
func recoveryTargets(ar *AlertRule, a *Alert) []ActionResult {
	var out []ActionResult
	for _, res := range a.Actions {
		if res.Type != ActionWebhook || res.URL == "" || !slices.Contains(ar.Actions, AlertAction{Type: ActionWebhook, URL: res.URL}) ||
			slices.ContainsFunc(out, func(o ActionResult) bool { return o.URL == res.URL }) {
			continue
		}
		out = append(out, ActionResult{Type: ActionWebhook, URL: res.URL, Detail: "not posted yet"})
	}
	return out
}

// queueRecovery queues in hooks the recovery posts of alert a not made yet, to
// the targets that its rule (enabled) still has; the run stores a's recovery
// results if it made one.
func (mo *Monitor) queueRecovery(hooks *hookRun, a *Alert, rules []AlertRule) error {
	var ar *AlertRule
	for i := range rules {
		if rules[i].ID == a.RuleID && !rules[i].Disabled {
			ar = &rules[i]
		}
	}
	if ar == nil {
		return nil // disabled or deleted since: not posted
	}
	body := *a
	body.Actions, body.Acted, body.Recovery = nil, false, nil
	ha := &hookAlert{a: a, done: func(ha *hookAlert) error {
		if !ha.tried {
			return nil
		}
		return mo.reg.setRecoveryResults(ha.a)
	}}
	for i := range a.Recovery {
		res := &a.Recovery[i]
		if res.OK || res.URL == "" || !slices.Contains(ar.Actions, AlertAction{Type: ActionWebhook, URL: res.URL}) {
			continue
		}
		if err := hooks.add(hookRecovery, ha, res, res.URL, WebhookPayload{Event: EventTerminalOnline, Alert: &body}); err != nil {
			return err
		}
	}
	return nil
}

// downTarget is a webhook target that failed in a run, and how many of the run's
// posts to it were not made since.
type downTarget struct {
	err     error
	skipped int
}

// act runs rule ar's actions for alert a but its webhooks: their results name
// their targets, and the run posts them (hookrun.go).
func (mo *Monitor) act(ar *AlertRule, a *Alert, now time.Time, wave *suspendWave, mass *massSilence) []ActionResult {
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
			res.URL, res.Detail = act.URL, "not posted yet"
		case ActionSuspend:
			why := fmt.Sprintf("%s%s: rule %s, not seen for %v", offlineAlertNote, a.ID, a.RuleID, time.Duration(a.OfflineFor).Round(time.Second))
			if cause := mass.over(a); cause != "" {
				res.OK, res.Detail = true, "not suspended: mass silence, "+cause+": a common cause assumed (network, issuer or switch outage)"
				mass.withheld++
				r.m.withheld.WithLabelValues("mass-silence").Inc()
				break
			}
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

// queueRetries queues in hooks the posts of alert a's webhooks that failed, those
// that its rule (enabled) still has; the run stores a's results if it made one.
// The body is the alert as first posted (no action results).
func (mo *Monitor) queueRetries(hooks *hookRun, a *Alert, rules []AlertRule) error {
	var ar *AlertRule
	for i := range rules {
		if rules[i].ID == a.RuleID && !rules[i].Disabled {
			ar = &rules[i]
		}
	}
	if ar == nil {
		return nil // disabled or deleted since: not retried
	}
	body := *a
	body.Actions, body.Acted = nil, false
	ha := &hookAlert{a: a, done: func(ha *hookAlert) error {
		if !ha.tried {
			return nil // every post skipped: its results stay as they were
		}
		return mo.reg.setAlertActions(ha.a)
	}}
	for i := range a.Actions {
		res := &a.Actions[i]
		if res.Type != ActionWebhook || res.OK || res.URL == "" || !slices.Contains(ar.Actions, AlertAction{Type: ActionWebhook, URL: res.URL}) {
			continue
		}
		if err := hooks.add(hookRetry, ha, res, res.URL, WebhookPayload{Event: EventTerminalOffline, Alert: &body}); err != nil {
			return err
		}
	}
	return nil
}

// webhookResult is the switchyard_registry_alert_webhooks_total label of a post
// that returned err.
func webhookResult(err error) string {
	if err != nil {
		return "failed"
	}
	return "posted"
}

// postWebhook posts body to target, signed, in up to WebhookAttempts attempts,
// none before a Retry-After the target answered has passed (retryafter.go).
func (mo *Monitor) postWebhook(ctx context.Context, target string, body []byte) error {
	// Checked again here: the rule may predate the allow-list as configured now.
	if err := mo.reg.webhookAllowed(target); err != nil {
		return err
	}
	if until := mo.heldUntil(target, mo.clock()); !until.IsZero() {
		return fmt.Errorf("webhook %s: not posted: the target asked (Retry-After) for no post before %s", target, until.UTC().Format(time.RFC3339))
	}
	secrets := mo.webhookSecrets()
	if len(secrets.cur) == 0 {
		return fmt.Errorf("webhook %s: no webhook secret configured (alerts.webhook_secret_file or alerts.webhook_secret_env): bodies are never sent unsigned", target)
	}
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
		// Signed with the time of this attempt, not of the run: a run that posts
		// many alerts would sign its last ones minutes in the past, and receivers
		// refuse a timestamp far from their clock (a replay).
		ts := strconv.FormatInt(mo.clock().Unix(), 10)
		prev := ""
		if secrets.prev != nil {
			prev = SignWebhook(secrets.prev, ts, body)
		}
		last = mo.postOnce(ctx, target, body, ts, SignWebhook(secrets.cur, ts, body), prev)
		if last == nil {
			return nil
		}
		var ra *retryAfterError
		if !errors.As(last, &ra) {
			continue
		}
		d := min(ra.wait, mo.opts.WebhookRetryAfterMax)
		if attempt < mo.opts.WebhookAttempts && d <= webhookRetryAfterInline {
			wait = max(wait, d) // the next attempt waits for it
			continue
		}
		until := mo.clock().Add(d)
		mo.holdTarget(target, until)
		mo.reg.log.Warn().Str("webhook", mo.reg.RedactWebhookURL(target)).Str("status", ra.status).Dur("retry_after", ra.wait).
			Time("until", until.UTC()).Msg("alert webhook target asked to wait (Retry-After): no post to it until then; its alerts are posted by the first run after")
		return fmt.Errorf("webhook %s: %w; not posted to before %s", target, last, until.UTC().Format(time.RFC3339))
	}
	return fmt.Errorf("webhook %s failed after %d attempts: %w", target, mo.opts.WebhookAttempts, last)
}

// postOnce makes one attempt; prevSig, when not empty, goes in
// WebhookSignaturePreviousHeader.
func (mo *Monitor) postOnce(ctx context.Context, target string, body []byte, ts, sig, prevSig string) error {
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
	if prevSig != "" {
		req.Header.Set(WebhookSignaturePreviousHeader, prevSig)
	}
	resp, err := mo.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if ra := retryAfter(resp, mo.clock()); ra != nil {
		return ra
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("answer %s", resp.Status)
	}
	return nil
}
