package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// DefaultWebhookConcurrency is how many alert webhooks a monitor run posts at
// once when MonitorOptions.WebhookConcurrency gives none.
const DefaultWebhookConcurrency = 8

// DefaultWebhookMaxPerRun is how many posts a monitor run makes to one webhook
// target when MonitorOptions.WebhookMaxPerRun gives none. The others of the run
// wait for the next runs (as failed ones do): a storm of ten thousand alerts
// reaches a receiver at 200 a minute, and a receiver answering slowly holds a
// run for at most 200 of its answers divided by the concurrency, not for the
// whole storm (the run's recoveries and the next run's alerts waited behind it).
const DefaultWebhookMaxPerRun = 200

// A run's webhooks. The monitor posts them from a fixed number of goroutines
// (MonitorOptions.WebhookConcurrency), started by the run and joined before it
// returns, so that a slow receiver costs a storm its post time divided by that
// number, not multiplied by the number of alerts (a thousand alerts at a
// receiver answering in 5 s took over an hour one at a time).
//
// A target's first post of the run goes alone: until the target has answered
// one, its other posts wait (the workers take other targets' posts meanwhile).
// Once a post to a target failed (every attempt), the run's other posts to it are
// not made (downTarget), as before the posts were concurrent: a dead target costs
// a run one post's attempts, not one per worker. A failed post is tried again by
// the next runs (WebhookRetryFor), so each webhook is posted at least once.

// hookKind is what a post of a run is for.
type hookKind int

const (
	hookNew      hookKind = iota // a new (or late) alert's first post
	hookRetry                    // an alert's post that failed in an earlier run
	hookRecovery                 // an alert's recovery (EventTerminalOnline)
)

// hookAlert is an alert with posts in the run: once the last is done, done
// stores the results.
type hookAlert struct {
	a       *Alert
	pending int  // posts not done
	tried   bool // a post was made (not only skipped): there are results to store
	done    func(h *hookAlert) error
}

// hookJob is one post of a run.
type hookJob struct {
	kind   hookKind
	url    string
	body   []byte        // the payload, encoded when queued
	res    *ActionResult // its result, in the alert's (a distinct element per job)
	alert  *hookAlert
	probe  bool  // the target's first post of the run
	skipBy error // not posted: the target failed earlier in the run (this error)
	// deferred: not posted, the run made its WebhookMaxPerRun posts to the target;
	// a later run makes it.
	deferred bool
	// heldUntil, when not zero: not posted, the target asked (Retry-After) for no
	// post before then (retryafter.go); a later run makes it.
	heldUntil time.Time
}

// hookRun posts a run's webhooks.
type hookRun struct {
	mo   *Monitor
	ctx  context.Context
	now  time.Time
	mu   sync.Mutex
	cond *sync.Cond
	jobs []*hookJob // not taken yet, in the order queued
	// The targets of the run: those whose first post is in flight (probing),
	// those that answered one (up), and those whose post failed (down: the
	// run's other posts to them are not made).
	probing  map[string]bool
	up       map[string]bool
	down     map[string]*downTarget
	sent     map[string]int // posts taken per target (WebhookMaxPerRun)
	deferred int            // posts left to later runs by WebhookMaxPerRun
	errs     []error        // of the stores
	// held: posts left to later runs by their target's Retry-After, by target.
	held map[string]int
}

func newHookRun(ctx context.Context, mo *Monitor, now time.Time) *hookRun {
	h := &hookRun{mo: mo, ctx: ctx, now: now, probing: map[string]bool{}, up: map[string]bool{}, down: map[string]*downTarget{}, sent: map[string]int{}, held: map[string]int{}}
	h.cond = sync.NewCond(&h.mu)
	return h
}

// add queues a post of payload to url, whose result is res (of ha's alert).
// Called before run.
func (h *hookRun) add(kind hookKind, ha *hookAlert, res *ActionResult, url string, payload WebhookPayload) error {
	body, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("encode webhook of %s for %s: %w", payload.Alert.ID, url, err)
	}
	ha.pending++
	h.jobs = append(h.jobs, &hookJob{kind: kind, url: url, body: body, res: res, alert: ha})
	return nil
}

// run posts the queued webhooks from at most n goroutines, and returns once all
// are done and their alerts' results stored (the stores' errors joined).
func (h *hookRun) run(n int) []error {
	n = min(n, len(h.jobs))
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := h.next(); j != nil; j = h.next() {
				h.do(j)
			}
		}()
	}
	wg.Wait()
	return h.errs
}

// next takes the first queued post that may go now: one to a target that is up,
// or the first to a target not posted to yet (its probe). A post to a target that
// is down is taken to be skipped. It waits while every queued post waits for its
// target's probe, and returns nil once none is queued.
func (h *hookRun) next() *hookJob {
	h.mu.Lock()
	defer h.mu.Unlock()
	for len(h.jobs) > 0 {
		for i, j := range h.jobs {
			if h.probing[j.url] {
				continue
			}
			h.jobs = append(h.jobs[:i], h.jobs[i+1:]...)
			until := h.mo.heldUntil(j.url, h.mo.clock())
			switch d := h.down[j.url]; {
			case d != nil:
				d.skipped++
				j.skipBy = d.err
			case !until.IsZero():
				j.heldUntil = until
			case h.sent[j.url] >= h.mo.opts.WebhookMaxPerRun:
				j.deferred = true
			case !h.up[j.url]:
				h.probing[j.url], j.probe = true, true
				h.sent[j.url]++
			default:
				h.sent[j.url]++
			}
			return j
		}
		h.cond.Wait() // a probe's end wakes it
	}
	return nil
}

// do posts j (or records its skip), then stores its alert's results if it was
// the alert's last post.
func (h *hookRun) do(j *hookJob) {
	mo := h.mo
	var err error
	held := !j.heldUntil.IsZero()
	posted := j.skipBy == nil && !j.deferred && !held
	switch {
	case posted:
		err = mo.postWebhook(h.ctx, j.url, j.body)
		mo.reg.m.webhooks.WithLabelValues(webhookResult(err)).Inc()
	case j.deferred:
		mo.reg.m.webhooks.WithLabelValues("deferred").Inc()
	case held:
		mo.reg.m.webhooks.WithLabelValues("held").Inc()
	default:
		mo.reg.m.webhooks.WithLabelValues("not-posted").Inc()
	}
	h.result(j, err)
	h.mu.Lock()
	if j.deferred {
		h.deferred++
	}
	if held {
		h.held[j.url]++
	}
	if posted {
		j.alert.tried = true
		switch {
		case err != nil && h.down[j.url] == nil:
			h.down[j.url] = &downTarget{err: err}
		case err == nil:
			h.up[j.url] = true
		}
		if j.probe {
			delete(h.probing, j.url)
			h.cond.Broadcast()
		}
	}
	j.alert.pending--
	last := j.alert.pending == 0
	h.mu.Unlock()
	if !last || j.alert.done == nil {
		return
	}
	if serr := j.alert.done(j.alert); serr != nil {
		h.mu.Lock()
		h.errs = append(h.errs, serr)
		h.mu.Unlock()
	}
}

// result writes the outcome of j (posted with err, or skipped) in its result and
// logs a failure, the URL redacted (redactedError): its path is a secret. The
// result keeps it whole (the alert's read answers redact it, redactResults).
func (h *hookRun) result(j *hookJob, err error) {
	mo, a, res := h.mo, j.alert.a, j.res
	switch {
	case j.deferred && j.kind == hookNew:
		res.Detail = fmt.Sprintf("not posted yet: this run made its %d posts to %s; a later run posts it", mo.opts.WebhookMaxPerRun, j.url)
	case j.deferred:
		// A retry's or recovery's result stays as it was: a later run posts it.
	case !j.heldUntil.IsZero() && j.kind == hookNew:
		res.Detail = fmt.Sprintf("not posted yet: %s asked (Retry-After) for no post before %s; a later run posts it", j.url, j.heldUntil.UTC().Format(time.RFC3339))
	case !j.heldUntil.IsZero():
		// A retry's or recovery's result stays as it was: a later run posts it.
	case j.skipBy != nil && j.kind == hookNew:
		res.Detail = fmt.Sprintf("not posted: webhook %s failed earlier in this run (%v)", j.url, j.skipBy)
	case j.skipBy != nil:
		// A retry's result stays as it was: tried again by the next run.
	case err == nil && j.kind == hookNew:
		res.OK, res.Detail = true, "posted to "+j.url
	case err == nil && j.kind == hookRetry:
		res.OK, res.Detail = true, fmt.Sprintf("posted to %s (at %s, after failing)", j.url, h.now.Format(time.RFC3339))
	case err == nil:
		res.OK, res.Detail = true, fmt.Sprintf("posted to %s at %s", j.url, h.now.Format(time.RFC3339))
	case j.kind == hookNew:
		res.Detail = err.Error()
		mo.reg.log.Error().Err(redactedError(mo.reg.hookKey, j.url, err)).Str("alert", a.ID).Str("rule", a.RuleID).Msg("alert webhook failed; the run's other alerts to it are not posted")
	default:
		res.Detail = fmt.Sprintf("%v (tried at %s; again each run until %s)", err, h.now.Format(time.RFC3339),
			hookRetryFrom(j.kind, a).Add(WebhookRetryFor).Format(time.RFC3339))
		what := "alert webhook failed again"
		if j.kind == hookRecovery {
			what = "alert recovery webhook failed"
		}
		mo.reg.log.Error().Err(redactedError(mo.reg.hookKey, j.url, err)).Str("alert", a.ID).Str("rule", a.RuleID).Msg(what)
	}
}

// hookRetryFrom is the time from which a failed post of kind is tried again for
// WebhookRetryFor: the alert's raising, or its recovery's.
func hookRetryFrom(kind hookKind, a *Alert) time.Time {
	if kind == hookRecovery && a.ClosedAt != nil {
		return *a.ClosedAt
	}
	return a.Time
}

// logDown logs, once a run, each target that failed and how many of the run's
// posts to it were not made, and how many posts WebhookMaxPerRun left to later runs.
func (h *hookRun) logDown() {
	if h.deferred > 0 {
		h.mo.reg.log.Warn().Int("deferred", h.deferred).Int("max_per_target", h.mo.opts.WebhookMaxPerRun).
			Msg("alert webhooks left to later runs: this run made its posts to their targets")
	}
	for target, n := range h.held {
		h.mo.reg.log.Warn().Str("webhook", h.mo.reg.RedactWebhookURL(target)).Int("held", n).
			Time("until", h.mo.heldUntil(target, h.mo.clock()).UTC()).
			Msg("alert webhooks not posted in this run: their target asked to wait (Retry-After); a later run posts them")
	}
	for target, d := range h.down {
		if d.skipped > 0 {
			h.mo.reg.log.Error().Str("webhook", h.mo.reg.RedactWebhookURL(target)).Int("not_posted", d.skipped).AnErr("first_error", redactedError(h.mo.reg.hookKey, target, d.err)).
				Msg("alert webhooks not posted in this run: their target failed")
		}
	}
}
