package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/switch/registry"
)

// TestAlertsConfigWired: alerts.webhook_allow reaches the registry (a rule posting
// elsewhere is refused over the admin API), a missing webhook secret stops the
// start, and the key store backs the import's key reference check.
func TestAlertsConfigWired(t *testing.T) {
	c := demoConfig(t, t.TempDir())
	c.Alerts.WebhookAllow = []string{"https://ops.example/hooks"}
	c.Alerts.WebhookSecretEnv = "SWITCHYARD_TEST_WEBHOOK_SECRET"
	if _, err := New(c, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "SWITCHYARD_TEST_WEBHOOK_SECRET") {
		t.Fatalf("start without the secret: %v", err)
	}
	t.Setenv("SWITCHYARD_TEST_WEBHOOK_SECRET", "0123456789abcdef-secret")
	s := start(t, c, nil)
	op := &apiclient.Client{BaseURL: "http://" + s.AdminAddr(), Token: registry.DemoOperatorToken}
	ctx := context.Background()
	rule := func(target string) registry.AlertRule {
		return registry.AlertRule{Threshold: registry.Duration(time.Hour), Actions: []registry.AlertAction{{Type: registry.ActionWebhook, URL: target}}}
	}
	var ae *apiclient.APIError
	if err := op.Do(ctx, "PUT", "/api/v1/alert-rules/local", rule("http://127.0.0.1:9/x"), nil); !errors.As(err, &ae) || ae.Status != 400 {
		t.Errorf("webhook to a local port: %v, want 400", err)
	}
	if err := op.Do(ctx, "PUT", "/api/v1/alert-rules/ops", rule("https://ops.example/hooks/switchyard"), nil); err != nil {
		t.Errorf("webhook on the allow-list: %v", err)
	}
	var rep registry.ImportReport
	csv := "terminal_id,merchant_id,kind,pin_mode,tpk\nT5000001,000000000000001,pos,tpk,demo.ZPK\nT5000002,000000000000001,pos,tpk,T0000001.TPK\n"
	if err := op.Do(ctx, "POST", "/api/v1/terminals/import", registry.ImportRequest{CSV: csv, DryRun: true}, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 2 || rep.Rows[0].OK || !strings.Contains(rep.Rows[0].Error, "is a ZPK") || !rep.Rows[1].OK {
		t.Errorf("import report = %+v", rep)
	}
}

// TestAlertWebhookSecretReload: a reload (SIGHUP) reads the alert webhooks'
// secrets again, so that an operator rotates the secret without a restart: with
// alerts.webhook_secret_previous_env set, the monitor's posts carry the new
// secret's signature and, in X-Switchyard-Signature-Previous, the old one's.
func TestAlertWebhookSecretReload(t *testing.T) {
	oldSecret, newSecret := "0123456789abcdef-old-secret", "0123456789abcdef-new-secret"
	t.Setenv("SWITCHYARD_TEST_HOOK_OLD", oldSecret)
	t.Setenv("SWITCHYARD_TEST_HOOK_NEW", newSecret)
	type post struct{ ts, sig, prev, body string }
	var mu sync.Mutex
	var posts []post
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		posts = append(posts, post{r.Header.Get(registry.WebhookTimestampHeader), r.Header.Get(registry.WebhookSignatureHeader),
			r.Header.Get(registry.WebhookSignaturePreviousHeader), string(body)})
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	c := demoConfig(t, t.TempDir())
	c.Alerts.WebhookAllow = []string{hook.URL + "/alerts"}
	c.Alerts.WebhookSecretEnv = "SWITCHYARD_TEST_HOOK_OLD"
	s := start(t, c, nil)
	op := &apiclient.Client{BaseURL: "http://" + s.AdminAddr(), Token: registry.DemoOperatorToken}
	ctx := context.Background()
	rule := registry.AlertRule{Threshold: registry.Duration(time.Hour), Filter: registry.AlertFilter{Merchants: []string{"000000000000001"}},
		Actions: []registry.AlertAction{{Type: registry.ActionWebhook, URL: hook.URL + "/alerts"}}}
	if err := op.Do(ctx, "PUT", "/api/v1/alert-rules/rotation", rule, nil); err != nil {
		t.Fatal(err)
	}

	next := *c
	next.Alerts.WebhookSecretEnv, next.Alerts.WebhookSecretPreviousEnv = "SWITCHYARD_TEST_HOOK_NEW", "SWITCHYARD_TEST_HOOK_OLD"
	s.Reload(&next)
	if _, err := s.monitor.RunOnce(ctx, time.Now().Add(72*time.Hour)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(posts) == 0 {
		t.Fatal("no webhook posted")
	}
	for _, p := range posts {
		if p.sig != registry.SignWebhook([]byte(newSecret), p.ts, []byte(p.body)) || p.prev != registry.SignWebhook([]byte(oldSecret), p.ts, []byte(p.body)) {
			t.Fatalf("after the reload: signature %q, previous %q; want the new secret's and the old one's", p.sig, p.prev)
		}
	}
}
