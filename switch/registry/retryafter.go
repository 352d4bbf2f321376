package registry

import (
	"fmt"
	"net/http"
	"time"

	"github.com/switchyard/switchyard/internal/retryafter"
)

// A receiver that answers 429 Too Many Requests or 503 Service Unavailable with a
// Retry-After header (RFC 9110, 10.2.3: delay-seconds or an HTTP date) is posted
// to no sooner than it asked. A short wait (at most webhookRetryAfterInline) is
// waited within the post, before its next attempt, when one is left; a longer one
// ends the post (failed, tried again by later runs as any failure) and holds the
// target: until then the runs make no post to it (switchyard_registry_alert_webhooks_total
// result "held"; a new alert's result says until when) and its alerts are posted
// by the first run after. The wait honoured is at most
// MonitorOptions.WebhookRetryAfterMax (DefaultWebhookRetryAfterMax): a receiver
// cannot silence the alerts for days. A Retry-After that does not parse, or on
// another status, is ignored: the usual backoff applies.

// DefaultWebhookRetryAfterMax is the longest Retry-After honoured when
// MonitorOptions.WebhookRetryAfterMax gives none.
const DefaultWebhookRetryAfterMax = time.Hour

// webhookRetryAfterInline is the longest Retry-After waited within a post, before
// its next attempt: a worker of the run sleeps that long at most (a run's other
// targets are posted by the other workers meanwhile).
const webhookRetryAfterInline = 10 * time.Second

// retryAfterError is an attempt answered 429 or 503 with a Retry-After.
type retryAfterError struct {
	status string        // the answer's status line
	wait   time.Duration // as asked (not capped), from the answer's time
}

func (e *retryAfterError) Error() string {
	return fmt.Sprintf("answer %s, Retry-After %s", e.status, e.wait.Round(time.Second))
}

// retryAfter returns the Retry-After of an answer of status 429 or 503 (read by
// internal/retryafter, shared with the merchant notices), nil for another answer
// or one without a valid header.
func retryAfter(resp *http.Response, now time.Time) *retryAfterError {
	d, ok := retryafter.Of(resp, now)
	if !ok {
		return nil
	}
	return &retryAfterError{status: resp.Status, wait: d}
}

// holdTarget records that target asked for no post before until (a later hold
// wins).
func (mo *Monitor) holdTarget(target string, until time.Time) {
	mo.holdMu.Lock()
	defer mo.holdMu.Unlock()
	if mo.holds == nil {
		mo.holds = map[string]time.Time{}
	}
	if until.After(mo.holds[target]) {
		mo.holds[target] = until
	}
}

// heldUntil returns when target's hold ends, zero when it is not held at now
// (an ended hold is dropped).
func (mo *Monitor) heldUntil(target string, now time.Time) time.Time {
	mo.holdMu.Lock()
	defer mo.holdMu.Unlock()
	until, ok := mo.holds[target]
	if !ok {
		return time.Time{}
	}
	if !now.Before(until) {
		delete(mo.holds, target)
		return time.Time{}
	}
	return until
}
