package registry

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
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
//
// The fingerprint is keyed (HMAC-SHA256), not the URL's plain SHA-256: a reader of
// the redacted form (every role, and the oplog, kept for good) could otherwise try
// guesses of a short token offline and confirm one by its hash. The key,
// Options.WebhookURLKey, is derived by the switch from its card hash key with
// WebhookURLFingerprintLabel (switch/internal/seal.Key, as the merchants' webhook
// secrets' fingerprints are, switch/notify): every node of a cluster has the same
// card hash key, it does not change across restarts, and no role can read it
// (it is in memory only, at rest a TR-31 block under the LMK). A key of the key
// store would be read through the HSM on every redaction, and a secret kept in the
// registry would be shared through its state log and read by the offline tools;
// the card hash key is already what the switch keys its other fingerprints with.

// WebhookURLFingerprintLabel is the label the switch derives Options.WebhookURLKey
// with from its card hash key (seal.Key).
const WebhookURLFingerprintLabel = "switchyard alert webhook URL fingerprint v1"

// WebhookFingerprint is the short fingerprint of webhook URL u under key shown in
// place of its path: the first 4 bytes of HMAC-SHA256(key, u), in hex. Two rules
// (or a change's before and after) with one URL show one fingerprint; without the
// key it cannot be computed from a guess of the URL. (Until the third release of 6
// December 2026 it was the first 4 bytes of the URL's plain SHA-256, shown as
// "sha256:"; oplog entries written then keep that form.)
func WebhookFingerprint(key []byte, u string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(u))
	return hex.EncodeToString(m.Sum(nil)[:4])
}

// RedactWebhookURL is webhook URL u as read answers show it, fingerprinted under
// key: "https://hooks.example.com/… (hmac:1a2b3c4d)", whatever path, query,
// fragment or user information u has. An empty u stays empty; one that does not
// parse as a URL with a host shows only the fingerprint.
func RedactWebhookURL(key []byte, u string) string {
	if u == "" {
		return ""
	}
	fp := " (hmac:" + WebhookFingerprint(key, u) + ")"
	p, err := url.Parse(u)
	if err != nil || p.Scheme == "" || p.Host == "" {
		return "…" + fp
	}
	return strings.ToLower(p.Scheme) + "://" + p.Host + "/…" + fp
}

// WebhookFingerprint is the fingerprint of webhook URL u as this registry shows
// it (the package's WebhookFingerprint under Options.WebhookURLKey).
func (s *store) WebhookFingerprint(u string) string { return WebhookFingerprint(s.hookKey, u) }

// RedactWebhookURL is webhook URL u as this registry's read answers show it (the
// package's RedactWebhookURL under Options.WebhookURLKey).
func (s *store) RedactWebhookURL(u string) string { return RedactWebhookURL(s.hookKey, u) }

// redactedError is err, a failed post's to webhook URL u, with u redacted in its
// message (RedactWebhookURL), for a log line: the monitor's errors name the URL,
// and an HTTP client's (*url.Error) names it as the request had it. nil for nil.
func redactedError(key []byte, u string, err error) error {
	if err == nil || u == "" {
		return err
	}
	red := RedactWebhookURL(key, u)
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) && ue.URL != "" {
		msg = strings.ReplaceAll(msg, ue.URL, red)
	}
	return errors.New(strings.ReplaceAll(msg, u, red))
}

// redactedURL matches a redacted webhook URL: RedactWebhookURL's "hmac:" form, or
// the "sha256:" form of the versions before, which oplog entries keep.
var redactedURL = regexp.MustCompile(`^(?:[A-Za-z][A-Za-z0-9+.-]*://[^/\s]+/)?… \((sha256|hmac):[0-9a-f]{8}\)$`)

// IsRedactedWebhookURL reports whether s is a webhook URL as read answers show it,
// now (RedactWebhookURL) or before the fingerprint was keyed (an old oplog
// entry's "sha256:" form), not a URL the monitor could post to.
func IsRedactedWebhookURL(s string) bool { return redactedURL.MatchString(s) }

// redactRule returns a copy of ar whose webhook URLs are redacted under key
// (RedactWebhookURL).
func redactRule(key []byte, ar AlertRule) AlertRule {
	ar.Actions = slices.Clone(ar.Actions)
	for i := range ar.Actions {
		ar.Actions[i].URL = RedactWebhookURL(key, ar.Actions[i].URL)
	}
	return ar
}

// redactedRule is a redacted copy of ar (redactRule), nil for nil: for an oplog
// entry's or a change effect's before and after.
func redactedRule(key []byte, ar *AlertRule) *AlertRule {
	if ar == nil {
		return nil
	}
	c := redactRule(key, *ar)
	return &c
}

// redactResults redacts the webhook URL of each result, in its Detail too (a
// post's outcome and an HTTP client's error name the URL).
func redactResults(key []byte, rs []ActionResult) []ActionResult {
	if rs == nil {
		return nil
	}
	rs = slices.Clone(rs)
	for i := range rs {
		if rs[i].URL == "" {
			continue
		}
		red := RedactWebhookURL(key, rs[i].URL)
		rs[i].Detail = strings.ReplaceAll(rs[i].Detail, rs[i].URL, red)
		rs[i].URL = red
	}
	return rs
}

// redactedAlert is a copy of a with its actions' and recovery posts' webhook URLs
// redacted (redactResults); nil for nil.
func redactedAlert(key []byte, a *Alert) *Alert {
	if a == nil {
		return nil
	}
	c := *a
	c.Actions, c.Recovery = redactResults(key, a.Actions), redactResults(key, a.Recovery)
	return &c
}

// redactedChange is a copy of c with its alert rule's webhook URLs redacted; c
// itself when it has no alert rule. nil for nil.
func redactedChange(key []byte, c *Change) *Change {
	if c == nil || c.AlertRule == nil {
		return c
	}
	cc := *c
	cc.AlertRule = redactedRule(key, c.AlertRule)
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
		j := slices.IndexFunc(old, func(o AlertAction) bool { return o.URL != "" && r.RedactWebhookURL(o.URL) == a.URL })
		if j < 0 && strings.Contains(a.URL, "(sha256:") {
			// Not matched against the rule's URLs' plain SHA-256: an answer would
			// confirm a guessed URL, which is what the keyed fingerprint prevents.
			return invalidf("alert rule %s: webhook URL %q is redacted as before the fingerprint was keyed (sha256:, an old oplog entry's form): give the whole URL, or the \"hmac:\" form the rule list shows", ar.ID, a.URL)
		}
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
