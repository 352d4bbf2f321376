package server

import (
	"context"
	"errors"
	"strings"
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
