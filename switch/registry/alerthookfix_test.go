package registry

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
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

// TestAlertWebhookFailureLogRedacted: the log lines of a failed alert webhook (the
// post's error, a retry's, and the run's summary of the target's skipped posts)
// show its URL redacted, never its path or query (a secret, as every read answer
// treats it). Before, they carried the HTTP client's error naming the whole URL.
func TestAlertWebhookFailureLogRedacted(t *testing.T) {
	dead := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	base := dead.URL
	dead.Close() // connection refused: the client's *url.Error names the URL
	target := base + "/hooks/T000/SECRETPATH?token=QSECRET"
	var logMu sync.Mutex
	var logs strings.Builder
	f := newFixtureOpts(t, Options{SeenFlushInterval: -1, WebhookAllow: []string{base + "/hooks/"},
		Logger: zerolog.New(lockedWriter{&logMu, &logs})})
	if _, err := f.reg.PutAlertRule(alice, AlertRule{ID: "all", Threshold: Duration(time.Hour), Filter: AlertFilter{Merchants: []string{"000000000000001", "000000000000002"}},
		Actions: []AlertAction{{Type: ActionWebhook, URL: target}}}); err != nil {
		t.Fatal(err)
	}
	mon := NewMonitor(f.reg, f.clock.Now, MonitorOptions{WebhookSecret: testWebhookSecret, WebhookAttempts: 1})
	f.clock.Advance(2 * time.Hour)
	if got, err := mon.RunOnce(context.Background(), f.clock.Now()); err != nil || len(got) < 2 {
		t.Fatalf("first run: %d alerts, %v; want 2 or more", len(got), err)
	}
	f.clock.Advance(5 * time.Minute)
	if _, err := mon.RunOnce(context.Background(), f.clock.Now()); err != nil {
		t.Fatalf("second run: %v", err)
	}
	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	for _, want := range []string{"alert webhook failed;", "alert webhook failed again", "first_error", f.reg.RedactWebhookURL(target)} {
		if !strings.Contains(out, want) {
			t.Errorf("the log has no %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "SECRETPATH") || strings.Contains(out, "QSECRET") {
		t.Errorf("the log shows the webhook URL's path or query:\n%s", out)
	}
}

// TestMonitorWebhookClientNoProxy: the monitor's default webhook client uses no
// proxy, as the merchants' webhooks' does (switch/notify): through HTTP(S)_PROXY
// only the proxy's address would be reached, never checked against the
// allow-list. Before, it used Go's default transport, which honours the proxy
// variables.
func TestMonitorWebhookClientNoProxy(t *testing.T) {
	f := newFixtureOpts(t, Options{SeenFlushInterval: -1})
	mon := NewMonitor(f.reg, f.clock.Now, MonitorOptions{WebhookSecret: testWebhookSecret})
	tr, ok := mon.hc.Transport.(*http.Transport)
	if !ok || tr.Proxy != nil {
		t.Fatalf("webhook client transport %T (proxy set: %v); want an *http.Transport without a proxy", mon.hc.Transport, ok && tr.Proxy != nil)
	}
	if mon.hc.CheckRedirect == nil {
		t.Error("the webhook client follows redirects")
	}
}

// TestSuspendingAlertRuleRemovalReviewed: an alert rule that suspends terminals,
// created only through a reviewed change, is not disabled, stripped of its
// suspend action or deleted by one operator alone: each is refused with the
// creation's message, pointing at the change; a reviewed change disables it, and
// the disabled rule can then be deleted. Before, one operator could undo the
// reviewed rule directly.
func TestSuspendingAlertRuleRemovalReviewed(t *testing.T) {
	f := newFixtureOpts(t, Options{SeenFlushInterval: -1})
	rule := AlertRule{ID: "sus", Threshold: Duration(time.Hour), Filter: AlertFilter{Regions: []string{"CN-BJ"}},
		Actions: []AlertAction{{Type: ActionLog}, {Type: ActionSuspend}}}
	f.apply(t, Change{Op: OpAlertRulePut, AlertRule: &rule, Reason: "offline BJ"})
	want := "alert rule sus suspends terminals: it takes effect only through a change (" + string(OpAlertRulePut) + ") approved by a different reviewer"
	disabled := rule
	disabled.Disabled = true
	noSuspend := rule
	noSuspend.Actions = []AlertAction{{Type: ActionLog}}
	for name, ar := range map[string]AlertRule{"disable": disabled, "suspend action off": noSuspend} {
		if _, err := f.reg.PutAlertRule(alice, ar); !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s directly: %v, want 403 %q", name, err, want)
		}
		if !f.reg.AlertRuleNeedsChange(&ar) {
			t.Errorf("%s: AlertRuleNeedsChange false", name)
		}
	}
	if err := f.reg.DeleteAlertRule(alice, "sus"); !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), want) {
		t.Errorf("delete directly: %v, want 403 %q", err, want)
	}
	if r := f.reg.alerts.rules["sus"]; r == nil || !r.ChangesTerminals() {
		t.Fatalf("the rule after the refusals: %+v", r)
	}
	f.apply(t, Change{Op: OpAlertRulePut, AlertRule: &disabled, Reason: "stop"})
	if err := f.reg.DeleteAlertRule(alice, "sus"); err != nil {
		t.Fatalf("delete the rule disabled by a reviewed change: %v", err)
	}
}
