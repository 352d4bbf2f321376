package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestAlertRuleWebhookURLRedacted: an alert rule's webhook URL, whose path is a
// secret (a Slack-style token), is shown redacted (host and fingerprint) by every
// read: the rules, the saved rule, a change, its preview and list, the alerts and
// the oplog entries written; the monitor still posts to the whole URL. A redacted
// URL sent back (an edit of what was read) keeps the rule's URL; one that stands
// for no URL of the rule is refused. The no-op check of a reviewed change still
// compares the whole URLs, and the oplog's hash chain stays valid. Before, every
// role read the whole URL.
func TestAlertRuleWebhookURLRedacted(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.RequestURI())
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	const secret1, secret2 = "XXXXSECRET1", "XXXXSECRET2"
	url1 := srv.URL + "/services/T000/B000/" + secret1
	url2 := srv.URL + "/services/T000/B000/" + secret2
	f := newFixtureOpts(t, Options{SeenFlushInterval: -1, WebhookAllow: []string{srv.URL + "/services/"}})
	if err := f.reg.DeleteAlertRule(root, "offline-24h"); err != nil {
		t.Fatal(err)
	}
	noSecret := func(what string, v any) {
		t.Helper()
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if s := string(b); strings.Contains(s, "XXXXSECRET") || strings.Contains(s, "/services/") {
			t.Errorf("%s shows the webhook URL's path: %s", what, s)
		}
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	red1, red2 := f.reg.RedactWebhookURL(url1), f.reg.RedactWebhookURL(url2)
	if red1 != "http://"+host+"/… (hmac:"+f.reg.WebhookFingerprint(url1)+")" || red1 == red2 || !IsRedactedWebhookURL(red1) || IsRedactedWebhookURL(url1) {
		t.Fatalf("redacted %q and %q", red1, red2)
	}

	rule := AlertRule{ID: "sp", Threshold: Duration(time.Hour), Filter: AlertFilter{Merchants: []string{"000000000000002"}},
		Actions: []AlertAction{{Type: ActionLog}, {Type: ActionWebhook, URL: url1}}}
	saved, err := f.reg.PutAlertRule(alice, rule)
	if err != nil {
		t.Fatal(err)
	}
	noSecret("saved rule", saved)
	rules := f.reg.AlertRules()
	noSecret("rules", rules)
	if len(rules) != 1 || rules[0].Actions[1].URL != red1 {
		t.Fatalf("rules: %+v; want the webhook shown as %q", rules, red1)
	}

	// An edit of what was read keeps the URL; a redacted URL of nothing is refused.
	edit := rules[0]
	edit.Description = "SoftPOS of merchant 2"
	if _, err := f.reg.PutAlertRule(alice, edit); err != nil {
		t.Fatalf("save the rule as read: %v", err)
	}
	if got := f.reg.alertRules()[0].Actions[1].URL; got != url1 {
		t.Fatalf("stored URL after saving the rule as read: %q; want %q", got, url1)
	}
	edit.Actions[1].URL = red2
	if _, err := f.reg.PutAlertRule(alice, edit); err == nil || !strings.Contains(err.Error(), "redacted") {
		t.Fatalf("save with a redacted URL of no webhook: %v; want refused", err)
	}
	// The plain-SHA-256 form of before (an old oplog entry's) is taken for a
	// redacted URL, never stored to post to, and not matched: a match would
	// confirm a guessed URL.
	edit.Actions[1].URL = "http://" + host + "/… (sha256:" + plainFingerprint(url1) + ")"
	if _, err := f.reg.PutAlertRule(alice, edit); err == nil || !strings.Contains(err.Error(), "before the fingerprint was keyed") {
		t.Fatalf("save with the URL's plain-SHA-256 form: %v; want refused", err)
	}

	// A reviewed change (the rule suspends) to a new URL on the same host.
	put := func(u string) (*Change, error) {
		ar := rule
		ar.Actions = []AlertAction{{Type: ActionWebhook, URL: u}, {Type: ActionSuspend}}
		return f.reg.RequestChange(alice, Change{Op: OpAlertRulePut, AlertRule: &ar, Reason: "suspend too"})
	}
	req, err := put(url2)
	if err != nil {
		t.Fatal(err)
	}
	noSecret("requested change", req)
	pv, err := f.reg.GetChange(req.ID)
	if err != nil || len(pv.Effects) != 1 {
		t.Fatalf("preview: %+v, %v", pv, err)
	}
	noSecret("preview", pv)
	var before, after AlertRule
	if json.Unmarshal(pv.Effects[0].Before, &before) != nil || json.Unmarshal(pv.Effects[0].After, &after) != nil ||
		before.Actions[1].URL != red1 || after.Actions[0].URL != red2 {
		t.Fatalf("preview before %s after %s: want %q then %q (the host, and the fingerprint that changed)", pv.Effects[0].Before, pv.Effects[0].After, red1, red2)
	}
	list, err := f.reg.Changes(ChangeFilter{})
	if err != nil {
		t.Fatal(err)
	}
	noSecret("changes", list)
	approved, err := f.reg.Approve(bob, req.ID, "ok")
	if err != nil {
		t.Fatal(err)
	}
	noSecret("approved change", approved)
	// The same URL again is nothing to change (whole URLs compared) ...
	if _, err := put(url2); err == nil || !strings.Contains(err.Error(), "nothing to change") {
		t.Fatalf("change to the same URL: %v; want nothing to change", err)
	}
	// ... and so is the URL as read.
	if _, err := put(red2); err == nil || !strings.Contains(err.Error(), "nothing to change") {
		t.Fatalf("change to the URL as read: %v; want nothing to change", err)
	}

	// The monitor posts to the whole URL; the alert shows it redacted.
	mon := NewMonitor(f.reg, f.clock.Now, MonitorOptions{WebhookSecret: testWebhookSecret, WebhookAttempts: 1})
	raised, err := mon.RunOnce(context.Background(), t0.Add(2*time.Hour))
	if err != nil || len(raised) == 0 {
		t.Fatalf("run: %d alerts, %v", len(raised), err)
	}
	mu.Lock()
	got := append([]string(nil), paths...)
	mu.Unlock()
	if len(got) == 0 || got[0] != "/services/T000/B000/"+secret2 {
		t.Fatalf("webhook posts went to %q; want /services/T000/B000/%s", got, secret2)
	}
	alerts, err := f.reg.Alerts(AlertFilterQuery{})
	if err != nil || len(alerts) == 0 {
		t.Fatalf("alerts: %d, %v", len(alerts), err)
	}
	noSecret("alerts", alerts)
	one, err := f.reg.GetAlert(alerts[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	noSecret("alert", one)

	off := *f.reg.alerts.rules["sp"]
	off.Disabled = true // a suspending rule is disabled by a reviewed change before its deletion
	f.apply(t, Change{Op: OpAlertRulePut, AlertRule: &off, Reason: "off"})
	if err := f.reg.DeleteAlertRule(alice, "sp"); err != nil {
		t.Fatal(err)
	}
	entries, err := f.reg.Oplog(OplogFilter{})
	if err != nil {
		t.Fatal(err)
	}
	noSecret("oplog", entries)
	if n, err := f.reg.VerifyOplog(); err != nil || n == 0 {
		t.Fatalf("oplog verify: %d entries, %v", n, err)
	}
}

// plainFingerprint is the fingerprint of before the third release of 6 December
// 2026: the first 4 bytes of the URL's plain SHA-256, which anyone can compute.
func plainFingerprint(u string) string {
	sum := sha256.Sum256([]byte(u))
	return hex.EncodeToString(sum[:4])
}

// TestWebhookFingerprintKeyed: a webhook URL's fingerprint is an HMAC under
// Options.WebhookURLKey, not the URL's plain SHA-256 (which let anyone who reads
// the redacted form confirm a guess of a short token offline): two registries
// configured with one key (two nodes of a cluster) show one fingerprint, also
// after a restart, and one with another key (or none: a random key of its own)
// another. The rule list and the oplog entry show the "hmac:" form.
func TestWebhookFingerprintKeyed(t *testing.T) {
	const u = "https://hooks.example.com/services/T000/B000/abc"
	key := bytes.Repeat([]byte{0x42}, 32)
	opts := Options{SeenFlushInterval: -1, WebhookAllow: []string{"https://hooks.example.com/services/"}, WebhookURLKey: key}
	bOpts := opts
	bOpts.WebhookURLKey = bytes.Clone(key)
	a, b := newFixtureOpts(t, opts), newFixtureOpts(t, bOpts)
	other := newFixtureOpts(t, Options{SeenFlushInterval: -1, WebhookURLKey: bytes.Repeat([]byte{0x43}, 32)})
	unkeyed := newFixtureOpts(t, Options{SeenFlushInterval: -1})
	fa := a.reg.WebhookFingerprint(u)
	if fa == plainFingerprint(u) || len(fa) != 8 {
		t.Fatalf("fingerprint %q: want 8 hex digits, not the plain SHA-256's %q", fa, plainFingerprint(u))
	}
	if fb := b.reg.WebhookFingerprint(u); fb != fa || fa != WebhookFingerprint(key, u) {
		t.Fatalf("two registries with one key: %q and %q (package: %q), want equal", fa, fb, WebhookFingerprint(key, u))
	}
	if fo, fu := other.reg.WebhookFingerprint(u), unkeyed.reg.WebhookFingerprint(u); fo == fa || fu == fa || fu == plainFingerprint(u) {
		t.Fatalf("another key %q, none %q: want both unlike %q and the plain %q", fo, fu, fa, plainFingerprint(u))
	}
	bOpts.WebhookURLKey[0] = 0 // the registry keeps its own copy
	if fb := b.reg.WebhookFingerprint(u); fb != fa {
		t.Fatalf("after the caller cleared its key: %q, want %q", fb, fa)
	}
	if _, err := a.reg.PutAlertRule(alice, AlertRule{ID: "hook", Threshold: Duration(time.Hour),
		Actions: []AlertAction{{Type: ActionWebhook, URL: u}}}); err != nil {
		t.Fatal(err)
	}
	a.close(t)
	a.open(t)
	want := "https://hooks.example.com/… (hmac:" + fa + ")"
	var shown string
	for _, r := range a.reg.AlertRules() {
		if r.ID == "hook" {
			shown = r.Actions[0].URL
		}
	}
	if shown != want {
		t.Fatalf("rule list after a restart: %q, want %q", shown, want)
	}
	entries, err := a.reg.Oplog(OplogFilter{})
	if err != nil {
		t.Fatal(err)
	}
	last, _ := json.Marshal(entries[len(entries)-1])
	if !strings.Contains(string(last), want) || strings.Contains(string(last), "/services/") {
		t.Fatalf("oplog entry of the put: %s; want %q", last, want)
	}
}
