package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/registry"
)

// alice is an operator calling the registry directly, not through the API.
var alice = registry.Actor{Name: "alice", Role: registry.RoleOperator}

// TestAlertRuleZeroThresholdRefused: a threshold left out of the JSON body is the
// default; an explicit zero is refused instead of silently becoming 24 h.
func TestAlertRuleZeroThresholdRefused(t *testing.T) {
	a := newAPIFixture(t)
	for _, body := range []string{`{"threshold":"0s"}`, `{"threshold":0}`, `{"threshold":"-1h"}`, `{"threshold":"30s"}`} {
		st, out := a.raw(t, "PUT", "/api/v1/alert-rules/zero", registry.DemoOperatorToken, "application/json", body)
		if st != 400 || !strings.Contains(out, "threshold") {
			t.Errorf("PUT %s: %d %s, want 400 naming the threshold", body, st, out)
		}
	}
	if st, out := a.raw(t, "PUT", "/api/v1/alert-rules/typo", registry.DemoOperatorToken, "application/json", `{"threshold":"1h","filter":{"merchants":["00000000000001"]}}`); st != 400 || !strings.Contains(out, "does not exist") {
		t.Errorf("rule for a merchant that does not exist: %d %s", st, out)
	}
	if st, out := a.raw(t, "PUT", "/api/v1/alert-rules/dflt", registry.DemoOperatorToken, "application/json", `{"filter":{"merchants":["000000000000001"]}}`); st != 200 {
		t.Fatalf("rule without a threshold: %d %s", st, out)
	}
	for _, ar := range a.reg.AlertRules() {
		if ar.ID == "dflt" && time.Duration(ar.Threshold) != registry.DefaultOfflineThreshold {
			t.Errorf("rule without a threshold got %v, want %v", time.Duration(ar.Threshold), registry.DefaultOfflineThreshold)
		}
		if ar.ID == "zero" {
			t.Errorf("rule with a zero threshold was stored: %+v", ar)
		}
	}
}

// TestSuspendRuleNeedsReview: an alert rule with the suspend action can take the
// fleet out of service, so it is a change a different reviewer approves, and so
// are its disabling and deletion; a rule without it is saved at once.
func TestSuspendRuleNeedsReview(t *testing.T) {
	a := newAPIFixture(t)
	ctx := context.Background()
	rule := `{"threshold":"1m","actions":[{"type":"suspend"}],"reason":"kill switch"}`
	st, body := a.raw(t, "PUT", "/api/v1/alert-rules/all-1m", registry.DemoOperatorToken, "application/json", rule)
	if st != 202 {
		t.Fatalf("PUT of a suspend rule: %d %s, want 202 with a change", st, body)
	}
	var c registry.Change
	if err := json.Unmarshal([]byte(body), &c); err != nil || c.Op != registry.OpAlertRulePut || c.Status != registry.ChangePending || c.Target != "all-1m" || c.Reason != "kill switch" {
		t.Fatalf("change = %+v, %v", c, err)
	}
	has := func(id string) *registry.AlertRule {
		for _, r := range a.reg.AlertRules() {
			if r.ID == id {
				return &r
			}
		}
		return nil
	}
	if has("all-1m") != nil {
		t.Fatal("suspend rule in force before review")
	}
	if _, err := a.reg.PutAlertRule(alice, registry.AlertRule{ID: "direct", Threshold: registry.Duration(time.Minute), Actions: []registry.AlertAction{{Type: registry.ActionSuspend}}}); !errors.Is(err, registry.ErrForbidden) {
		t.Errorf("PutAlertRule of a suspend rule: %v, want registry.ErrForbidden", err)
	}
	// The requester may not approve it (admin included: demo-admin did not request it,
	// but demo-operator cannot approve at all).
	if err := a.client(registry.DemoOperatorToken).Do(ctx, "POST", "/api/v1/changes/"+c.ID+"/approve", nil, nil); apiStatus(err) != 403 {
		t.Errorf("operator approving: %v", err)
	}
	var pv registry.ChangePreview
	if err := a.client(registry.DemoReviewerToken).Do(ctx, "GET", "/api/v1/changes/"+c.ID, nil, &pv); err != nil || len(pv.Effects) != 1 || pv.Effects[0].Type != "alert-rule" {
		t.Errorf("preview = %+v, %v", pv, err)
	}
	if err := a.client(registry.DemoReviewerToken).Do(ctx, "POST", "/api/v1/changes/"+c.ID+"/approve", nil, &c); err != nil || c.Status != registry.ChangeApproved {
		t.Fatalf("approve = %+v, %v", c, err)
	}
	if r := has("all-1m"); r == nil || !r.ChangesTerminals() || r.UpdatedBy != "demo-operator" {
		t.Fatalf("rule after approval = %+v", r)
	}
	es, _ := a.reg.Oplog(registry.OplogFilter{Target: "all-1m", Action: string(registry.OpAlertRulePut)})
	if len(es) != 1 || es[0].Actor != "demo-reviewer" || es[0].RequestedBy != "demo-operator" || es[0].ChangeID != c.ID {
		t.Errorf("oplog = %+v", es)
	}
	// Deleting or disabling it is reviewed too (since the fifteenth release); a
	// rule that only logs needs no review.
	if st, body := a.raw(t, "DELETE", "/api/v1/alert-rules/all-1m", registry.DemoOperatorToken, "", ""); st != 403 {
		t.Errorf("deleting: %d %s, want 403", st, body)
	}
	if st, body := a.raw(t, "PUT", "/api/v1/alert-rules/all-1m", registry.DemoOperatorToken, "application/json", `{"threshold":"1m","actions":[{"type":"suspend"}],"disabled":true,"reason":"off"}`); st != 202 {
		t.Errorf("disabling: %d %s, want 202 with a change", st, body)
	}
	if st, body := a.raw(t, "PUT", "/api/v1/alert-rules/log-1h", registry.DemoOperatorToken, "application/json", `{"threshold":"1h"}`); st != 200 {
		t.Errorf("log rule: %d %s", st, body)
	}
}

// TestAlertRuleWebhookURLRedacted: a Slack-style webhook URL carries its secret
// in the path; the API's answers (the saved rule, the rule list, a change, its
// preview and list, the oplog) show every role only its scheme and host and a
// fingerprint, which differs between the URL in force and the one requested.
// Before, operators, reviewers and analysts all read the whole URL.
func TestAlertRuleWebhookURLRedacted(t *testing.T) {
	hookKey := []byte("the webhook URL fingerprint key of the test")
	a := newAPIFixtureOn(t, newFixtureOpts(t, registry.Options{SeenFlushInterval: -1, WebhookAllow: []string{"https://hooks.example.com/services/"}, WebhookURLKey: hookKey}))
	const url1 = "https://hooks.example.com/services/T000/B000/XXXXSECRET1"
	const url2 = "https://hooks.example.com/services/T000/B000/XXXXSECRET2"
	noSecret := func(what, body string) {
		t.Helper()
		if strings.Contains(body, "XXXXSECRET") || strings.Contains(body, "/services/") {
			t.Errorf("%s shows the webhook URL's path: %s", what, body)
		}
	}
	st, body := a.raw(t, "PUT", "/api/v1/alert-rules/hook", registry.DemoOperatorToken, "application/json",
		`{"threshold":"1h","actions":[{"type":"webhook","url":"`+url1+`"}]}`)
	if st != 200 {
		t.Fatalf("PUT of a webhook rule: %d %s", st, body)
	}
	noSecret("saved rule", body)
	for _, tok := range []string{registry.DemoOperatorToken, registry.DemoReviewerToken, registry.DemoAnalystToken} {
		st, body := a.raw(t, "GET", "/api/v1/alert-rules", tok, "", "")
		if st != 200 || !strings.Contains(body, `"https://hooks.example.com/… (hmac:`+registry.WebhookFingerprint(hookKey, url1)+`)"`) {
			t.Errorf("GET /api/v1/alert-rules: %d %s; want the host and fingerprint", st, body)
		}
		noSecret("rule list", body)
	}
	st, body = a.raw(t, "PUT", "/api/v1/alert-rules/hook", registry.DemoOperatorToken, "application/json",
		`{"threshold":"1h","actions":[{"type":"webhook","url":"`+url2+`"},{"type":"suspend"}],"reason":"suspend too"}`)
	if st != 202 {
		t.Fatalf("PUT of a suspend rule: %d %s", st, body)
	}
	noSecret("change request", body)
	var c registry.Change
	if err := json.Unmarshal([]byte(body), &c); err != nil {
		t.Fatal(err)
	}
	st, body = a.raw(t, "GET", "/api/v1/changes/"+c.ID, registry.DemoReviewerToken, "", "")
	if st != 200 || !strings.Contains(body, registry.WebhookFingerprint(hookKey, url1)) || !strings.Contains(body, registry.WebhookFingerprint(hookKey, url2)) {
		t.Errorf("preview: %d %s; want both fingerprints", st, body)
	}
	noSecret("preview", body)
	for _, path := range []string{"/api/v1/changes", "/api/v1/oplog"} {
		st, body := a.raw(t, "GET", path, registry.DemoAnalystToken, "", "")
		if st != 200 {
			t.Fatalf("GET %s: %d %s", path, st, body)
		}
		noSecret(path, body)
	}
	if st, body := a.raw(t, "POST", "/api/v1/changes/"+c.ID+"/approve", registry.DemoReviewerToken, "application/json", `{}`); st != 200 {
		t.Fatalf("approve: %d %s", st, body)
	} else {
		noSecret("approved change", body)
	}
	st, body = a.raw(t, "GET", "/api/v1/oplog", registry.DemoAnalystToken, "", "")
	if st != 200 || !strings.Contains(body, registry.WebhookFingerprint(hookKey, url2)) {
		t.Errorf("oplog after the approval: %d %s; want the new fingerprint", st, body)
	}
	noSecret("oplog after the approval", body)
}
