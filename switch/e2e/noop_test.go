package e2e

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/registry"
)

// TestChangeOfNothingRefusedOutsideTheRegistry: through the CLI and the admin API of
// a running switch, a request that would update an app-signing key, a rollout
// group's release, a scheduled task or a merchant's webhook to what it already is
// exits non-zero (the API answers 400) with "...: nothing to change: ..." naming
// the fields, as a merchant or terminal change of nothing does, and requests
// nothing: no change is pending after them. Before, each was a change
// request a reviewer had to approve for nothing (and the webhook's refusals of the
// registry answered 500).
func TestChangeOfNothingRefusedOutsideTheRegistry(t *testing.T) {
	f := startDemo(t, func(c *config.Config) { c.Notices.AllowPrivate = []string{"127.0.0.1"} })
	defer func() {
		if t.Failed() {
			t.Logf("switch log:\n%s", tail(f.logs.String(), 3000))
		}
	}()
	priv, write := appSigningKey(t, f)
	der, _ := x509.MarshalPKIXPublicKey(priv.Public())
	keyFile := write("again.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	refused := func(want string, args ...string) {
		t.Helper()
		if out, code := f.cli(tokOperator, args...); code == 0 || !strings.Contains(out, want) {
			t.Fatalf("%q: exit %d, want non-zero and %q:\n%s", args, code, want, out)
		}
	}
	refused("app-signing key acq-1: nothing to change: public_key is already sha256:", "app", "key", "add", "acq-1", "--public-key", keyFile)

	pkg := write("demo-pay-1.1.0.bin", []byte(strings.Repeat("demo-pay 1.1.0\n", 100)))
	stmt, _ := cliLocal("app", "statement", pkg, "--name", "demo-pay", "--version", "1.1.0", "--kinds", "pos")
	sig := write("sig", ed25519.Sign(priv, []byte(stmt)))
	if out, code := f.cli(tokOperator, "app", "upload", pkg, "--name", "demo-pay", "--version", "1.1.0", "--kinds", "pos", "--key", "acq-1", "--signature-file", sig); code != 0 {
		t.Fatalf("upload: %d %s", code, out)
	}
	publish := []string{"app", "publish", "--group", "pilot", "--app", "demo-pay", "--version", "1.1.0", "--terminals", "T0000001", "--min-version", "1.0.0"}
	f.requestAndApprove(publish...)
	refused(`rollout group pilot: nothing to change: app is already demo-pay, version is already 1.1.0, target is already {"terminals":["T0000001"],"percent":100}, min_version is already 1.0.0`, publish...)

	task := []string{"task", "put", "weekly-refresh", "--kind", "profiles.refresh", "--schedule", "0 3 * * 0"}
	f.requestAndApprove(task...)
	refused("task weekly-refresh: nothing to change: kind is already profiles.refresh, schedule is already 0 3 * * 0", task...)

	secretFile := write("secret", []byte("merchant-secret-0123456789\n"))
	hook := []string{"merchant", "webhook", "000000000000001", "--url", "http://127.0.0.1:9/notices", "--secret-file", secretFile}
	f.requestAndApprove(hook...)
	refused("webhook of merchant 000000000000001: nothing to change: url is already http://127.0.0.1:9/notices, secret_fingerprint is already ", hook...)
	req, _ := http.NewRequest("PUT", "http://"+f.s.AdminAddr()+"/api/v1/merchants/000000000000001/webhook",
		strings.NewReader(`{"url":"http://127.0.0.1:9/notices","secret":"merchant-secret-0123456789"}`))
	req.Header.Set("Authorization", "Bearer "+tokOperator)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "nothing to change") || strings.Contains(string(body), "merchant-secret") {
		t.Fatalf("PUT of the webhook in force: %d %s, want 400 naming the fields, not the secret", resp.StatusCode, body)
	}

	// Nothing was requested by the refusals: no change is pending.
	var pending []registry.Change
	if out, code := f.cli(tokOperator, "change", "list", "--json"); code != 0 || json.Unmarshal([]byte(out), &pending) != nil || len(pending) != 0 {
		t.Fatalf("pending changes after the refusals: exit %d\n%s", code, out)
	}
}
