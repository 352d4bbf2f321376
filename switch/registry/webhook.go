package registry

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"

	"github.com/switchyard/switchyard/internal/carddata"
)

// Webhook targets and signatures: an alert rule may post only to the configured
// allow-list, and every body is signed so that a receiver can tell the switch's
// posts from anyone else's.

// webhookAllowed checks target against Options.WebhookAllow: an entry allows a URL
// of the same scheme and host (port included) whose path is the entry's or below it,
// without dot segments.
// An empty list allows nothing, so that an alert rule cannot make the switch post to
// an address of its choosing (a local port, a metadata service).
// Its errors show target redacted (RedactWebhookURL): a pending change's preview
// shows them to every role.
// A URL holding a card number is refused (as a merchant's webhook URL is,
// switch/notify): the rule would keep it in clear, and the monitor's posts name it.
func (r *alerting) webhookAllowed(target string) error {
	shown := r.RedactWebhookURL(target)
	if carddata.MaskField(target) != target {
		return fmt.Errorf("webhook URL %q: holds a card number (a webhook URL is stored and shown to reviewers: remove it)", shown)
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("webhook URL %q: want an http or https URL", shown)
	}
	if u.User != nil {
		return fmt.Errorf("webhook URL %q: user information in a webhook URL is refused", shown)
	}
	if dotSegments(u.Path) {
		return fmt.Errorf("webhook URL %q: a path with \".\" or \"..\" segments is refused (the receiver would resolve it outside the allowed path)", shown)
	}
	for _, entry := range r.opts.WebhookAllow {
		if webhookMatches(entry, u) {
			return nil
		}
	}
	if len(r.opts.WebhookAllow) == 0 {
		return fmt.Errorf("webhook URL %q: no webhook target is allowed (configure alerts.webhook_allow)", shown)
	}
	return fmt.Errorf("webhook URL %q is not on the allow-list (alerts.webhook_allow: %s)", shown, strings.Join(r.opts.WebhookAllow, ", "))
}

// dotSegments reports whether the decoded path p has a "." or ".." segment
// (split at "/" and at "\\", which some servers take for one): matched by prefix
// against the allow-list, "/alerts/../admin" passed as below "/alerts".
func dotSegments(p string) bool {
	for _, seg := range strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' }) {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

func webhookMatches(entry string, u *url.URL) bool {
	e, err := url.Parse(entry)
	if err != nil || !strings.EqualFold(e.Scheme, u.Scheme) || !strings.EqualFold(e.Host, u.Host) {
		return false
	}
	ep := strings.TrimSuffix(e.EscapedPath(), "/")
	p := u.EscapedPath()
	return ep == "" || p == ep || strings.HasPrefix(p, ep+"/")
}

// The headers of a signed webhook.
const (
	WebhookTimestampHeader = "X-Switchyard-Timestamp" // Unix seconds of the post (each attempt)
	WebhookSignatureHeader = "X-Switchyard-Signature" // "sha256=" + hex HMAC
	// WebhookSignaturePreviousHeader carries, during a rotation of the webhook
	// secret (alerts.webhook_secret_previous_file), the same signature under the
	// secret being replaced.
	WebhookSignaturePreviousHeader = "X-Switchyard-Signature-Previous"
)

// SignWebhook returns the value of the X-Switchyard-Signature header of a webhook
// body: "sha256=" and the hex HMAC-SHA256, keyed by the webhook secret, of the
// X-Switchyard-Timestamp value, a ".", and the body exactly as received. A receiver
// recomputes it, compares in constant time, and refuses a timestamp far from its
// clock (replay).
func SignWebhook(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}
