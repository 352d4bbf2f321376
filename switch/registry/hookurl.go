package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// An alert rule's webhook URL is a secret as much as an address: a Slack-style
// URL carries its token in the path (https://hooks.slack.com/services/T/B/XXXX),
// and anyone who has it can post to the channel. The registry stores it whole (the
// monitor posts to it) but every read answer shows it redacted: scheme, host and
// port, "/…", and a fingerprint, so that a reviewer sees where alerts go and
// whether a change replaces the URL, never its path, query or user information.

// WebhookFingerprint is the short fingerprint of webhook URL u shown in place of
// its path: the first 4 bytes of the SHA-256 of the whole URL, in hex. Two rules
// (or a change's before and after) with one URL show one fingerprint.
func WebhookFingerprint(u string) string {
	sum := sha256.Sum256([]byte(u))
	return hex.EncodeToString(sum[:4])
}

// RedactWebhookURL is webhook URL u as read answers show it:
// "https://hooks.example.com/… (sha256:1a2b3c4d)", whatever path, query, fragment
// or user information u has. An empty u stays empty; one that does not parse as a
// URL with a host shows only the fingerprint.
func RedactWebhookURL(u string) string {
	if u == "" {
		return ""
	}
	fp := " (sha256:" + WebhookFingerprint(u) + ")"
	p, err := url.Parse(u)
	if err != nil || p.Scheme == "" || p.Host == "" {
		return "…" + fp
	}
	return strings.ToLower(p.Scheme) + "://" + p.Host + "/…" + fp
}

// redactedURL matches a redacted webhook URL (RedactWebhookURL).
var redactedURL = regexp.MustCompile(`^(?:[A-Za-z][A-Za-z0-9+.-]*://[^/\s]+/)?… \(sha256:[0-9a-f]{8}\)$`)

// IsRedactedWebhookURL reports whether s is a webhook URL as read answers show it
// (RedactWebhookURL), not a URL the monitor could post to.
func IsRedactedWebhookURL(s string) bool { return redactedURL.MatchString(s) }

// Redacted returns a copy of ar whose webhook URLs are redacted (RedactWebhookURL).
func (ar AlertRule) Redacted() AlertRule {
	ar.Actions = slices.Clone(ar.Actions)
	for i := range ar.Actions {
		ar.Actions[i].URL = RedactWebhookURL(ar.Actions[i].URL)
	}
	return ar
}

// redactedRule is a redacted copy of ar (Redacted), nil for nil: for an oplog
// entry's or a change effect's before and after.
func redactedRule(ar *AlertRule) *AlertRule {
	if ar == nil {
		return nil
	}
	c := ar.Redacted()
	return &c
}

// redactResults redacts the webhook URL of each result, in its Detail too (a
// post's outcome and an HTTP client's error name the URL).
func redactResults(rs []ActionResult) []ActionResult {
	if rs == nil {
		return nil
	}
	rs = slices.Clone(rs)
	for i := range rs {
		if rs[i].URL == "" {
			continue
		}
		red := RedactWebhookURL(rs[i].URL)
		rs[i].Detail = strings.ReplaceAll(rs[i].Detail, rs[i].URL, red)
		rs[i].URL = red
	}
	return rs
}

// redactedAlert is a copy of a with its actions' and recovery posts' webhook URLs
// redacted (redactResults); nil for nil.
func redactedAlert(a *Alert) *Alert {
	if a == nil {
		return nil
	}
	c := *a
	c.Actions, c.Recovery = redactResults(a.Actions), redactResults(a.Recovery)
	return &c
}

// redactedChange is a copy of c with its alert rule's webhook URLs redacted; c
// itself when it has no alert rule. nil for nil.
func redactedChange(c *Change) *Change {
	if c == nil || c.AlertRule == nil {
		return c
	}
	cc := *c
	cc.AlertRule = redactedRule(c.AlertRule)
	return &cc
}

// keepWebhookURLs puts back, in place of each redacted webhook URL of ar (one an
// edit read from a list, a form or an earlier answer and sent back unchanged), the
// URL of the rule in force that it stands for: same redacted form, fingerprint
// included. A redacted URL that stands for none of them is refused, as it would
// post nowhere. ar's actions are copied before they are changed.
func (r *alerting) keepWebhookURLs(ar *AlertRule) error {
	var cloned bool
	for i, a := range ar.Actions {
		if !IsRedactedWebhookURL(a.URL) {
			continue
		}
		r.mu.Lock()
		var old []AlertAction
		if cur := r.rules[ar.ID]; cur != nil {
			old = cur.Actions
		}
		r.mu.Unlock()
		j := slices.IndexFunc(old, func(o AlertAction) bool { return o.URL != "" && RedactWebhookURL(o.URL) == a.URL })
		if j < 0 {
			return invalidf("alert rule %s: webhook URL %q is a redacted URL that stands for none of the rule's webhooks: give the whole URL", ar.ID, a.URL)
		}
		if !cloned {
			ar.Actions, cloned = slices.Clone(ar.Actions), true
		}
		ar.Actions[i].URL = old[j].URL
	}
	return nil
}
