package registry

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestAlertRuleWebhookURLCardNumberRefused: an alert rule whose webhook URL holds
// a card number is refused, directly and as a reviewed change, as a merchant's
// webhook URL is; the error quotes the URL redacted, never the card number.
// Before, the rule was stored with the card number in clear.
func TestAlertRuleWebhookURLCardNumberRefused(t *testing.T) {
	const allowed = "http://127.0.0.1:25590/hooks/"
	f := newFixtureOpts(t, Options{SeenFlushInterval: -1, WebhookAllow: []string{allowed}})
	for _, u := range []string{allowed + "card/4111111111111111", allowed + "x?pan=4111-1111-1111-1111", allowed + "card4111111111111111"} {
		_, err := f.reg.PutAlertRule(alice, AlertRule{ID: "pn2", Threshold: Duration(time.Hour), Actions: []AlertAction{{Type: ActionWebhook, URL: u}}})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "card number") {
			t.Errorf("put with webhook %s: %v, want ErrInvalid naming a card number", u, err)
		}
		if err != nil && (strings.Contains(err.Error(), "4111111111111111") || strings.Contains(err.Error(), "4111-1111-1111-1111")) {
			t.Errorf("the refusal quotes the card number: %v", err)
		}
		_, err = f.reg.RequestChange(alice, Change{Op: OpAlertRulePut, Reason: "r", AlertRule: &AlertRule{ID: "pn2", Threshold: Duration(time.Hour),
			Actions: []AlertAction{{Type: ActionSuspend}, {Type: ActionWebhook, URL: u}}}})
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("change with webhook %s: %v, want ErrInvalid", u, err)
		}
	}
	if _, ok := f.reg.alerts.rules["pn2"]; ok {
		t.Fatal("a rule with a card number in its webhook URL was stored")
	}
	if _, err := f.reg.PutAlertRule(alice, AlertRule{ID: "ok", Threshold: Duration(time.Hour), Actions: []AlertAction{{Type: ActionWebhook, URL: allowed + "card/1234"}}}); err != nil {
		t.Fatalf("a webhook URL without a card number: %v", err)
	}
}
