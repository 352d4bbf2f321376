package registry

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type hookServer struct {
	mu       sync.Mutex
	payloads []WebhookPayload
	calls    int
	failures int // answer 500 to this many calls first
	badSigs  int // calls whose signature did not verify
	srv      *httptest.Server
}

// testWebhookSecret signs the webhooks of the tests.
var testWebhookSecret = []byte("test-webhook-secret-0123456789")

func newHookServer(t *testing.T, failures int) *hookServer {
	h := &hookServer{failures: failures}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.calls++
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("webhook got %s with Content-Type %q", r.Method, r.Header.Get("Content-Type"))
		}
		body, _ := io.ReadAll(r.Body)
		// What a receiver does: recompute the HMAC over timestamp "." body.
		want := SignWebhook(testWebhookSecret, r.Header.Get(WebhookTimestampHeader), body)
		if r.Header.Get(WebhookTimestampHeader) == "" || !hmac.Equal([]byte(r.Header.Get(WebhookSignatureHeader)), []byte(want)) {
			h.badSigs++
		}
		if h.calls <= h.failures {
			http.Error(w, "try later", http.StatusInternalServerError)
			return
		}
		var p WebhookPayload
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("webhook body is not JSON: %v", err)
		}
		h.payloads = append(h.payloads, p)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func TestMonitorWebhookAndSuspend(t *testing.T) {
	hook := newHookServer(t, 1)
	f := newFixtureOpts(t, Options{SeenFlushInterval: -1, WebhookAllow: []string{hook.srv.URL + "/alerts"}})
	// A rule that suspends is a reviewed change.
	f.apply(t, Change{Op: OpAlertRulePut, AlertRule: &AlertRule{ID: "bj-1h", Threshold: Duration(time.Hour),
		Filter:  AlertFilter{Merchants: []string{"000000000000001", "000000000000009"}, Regions: []string{"CN-BJ"}, Kinds: []TerminalKind{KindPOS}},
		Actions: []AlertAction{{Type: ActionLog}, {Type: ActionWebhook, URL: hook.srv.URL + "/alerts"}, {Type: ActionSuspend}}}})
	// T0000001 and T0000009 talk at t0; T0000009 keeps talking.
	addr := netip.MustParseAddr("10.20.30.40")
	f.reg.Check(f.goodT1())
	f.reg.Seen("T0000001", addr, GeoPoint{}, t0)
	mon := NewMonitor(f.reg, f.clock.Now, MonitorOptions{RetryBackoff: time.Millisecond, WebhookTimeout: 5 * time.Second, WebhookSecret: testWebhookSecret})
	ctx := context.Background()

	f.reg.Seen("T0000009", addr, GeoPoint{}, t0.Add(50*time.Minute))
	if got, err := mon.RunOnce(ctx, t0.Add(59*time.Minute)); err != nil || len(got) != 0 {
		t.Fatalf("before the threshold: %d alerts, %v", len(got), err)
	}
	got, err := mon.RunOnce(ctx, t0.Add(61*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	// T0000003 is suspended (rules watch active terminals by default), T0000009 was
	// seen 11 minutes ago, the LT terminals are another merchant.
	if len(got) != 1 || got[0].TerminalID != "T0000001" {
		t.Fatalf("alerts = %+v, want one for T0000001", got)
	}
	a := got[0]
	if a.RuleID != "bj-1h" || time.Duration(a.OfflineFor) != 61*time.Minute || a.LastSeen == nil || a.LastSeen.Address != addr ||
		a.Region != "CN-BJ" || a.Status != AlertOpen || len(a.Actions) != 3 {
		t.Errorf("alert = %+v", a)
	}
	for _, r := range a.Actions {
		if !r.OK {
			t.Errorf("action %s failed: %s", r.Type, r.Detail)
		}
	}
	hook.mu.Lock()
	if hook.calls != 2 || hook.badSigs != 0 || len(hook.payloads) != 1 || hook.payloads[0].Event != "terminal-offline" ||
		hook.payloads[0].Alert.TerminalID != "T0000001" || hook.payloads[0].Alert.ID != a.ID {
		t.Errorf("webhook: %d calls, payloads %+v", hook.calls, hook.payloads)
	}
	hook.mu.Unlock()
	// Suspended by the system, so its next transaction is refused.
	if tt, _ := f.reg.Terminal("T0000001"); tt.Status != TerminalSuspended || !strings.Contains(tt.Note, a.ID) {
		t.Errorf("T0000001 after alert = %s %q", tt.Status, tt.Note)
	}
	if res := f.reg.Check(f.goodT1()); res.Reason != ReasonTerminalSuspended {
		t.Errorf("Check after suspend action: %q", res.Reason)
	}
	if es, _ := f.reg.Oplog(OplogFilter{Target: "T0000001", Action: "terminal.suspend"}); len(es) != 1 || es[0].Actor != SystemActor {
		t.Errorf("oplog of suspend action = %d entries", len(es))
	}
	// Stored with its action results.
	stored, err := f.reg.GetAlert(a.ID)
	if err != nil || len(stored.Actions) != 3 || stored.Actions[2].Detail != "terminal suspended" {
		t.Errorf("stored alert = %+v, %v", stored, err)
	}
	// No second alert while it is open.
	if got, _ := mon.RunOnce(ctx, t0.Add(3*time.Hour)); len(got) != 1 || got[0].TerminalID != "T0000009" {
		t.Errorf("later run = %+v, want only T0000009 (now offline too)", got)
	}
}

func TestMonitorDeduplication(t *testing.T) {
	f := newFixture(t)
	if err := f.reg.DeleteAlertRule(root, "offline-24h"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.PutAlertRule(alice, AlertRule{ID: "sp", Threshold: Duration(time.Hour), Filter: AlertFilter{Kinds: []TerminalKind{KindSoftPOS}}}); err != nil {
		t.Fatal(err)
	}
	mon := NewMonitor(f.reg, f.clock.Now, MonitorOptions{})
	ctx := context.Background()
	run := func(at time.Duration) []*Alert {
		t.Helper()
		got, err := mon.RunOnce(ctx, t0.Add(at))
		if err != nil {
			t.Fatalf("run at +%v: %v", at, err)
		}
		return got
	}
	// Never seen: counts from activation (t0).
	if got := run(30 * time.Minute); len(got) != 0 {
		t.Fatalf("+30m: %d alerts", len(got))
	}
	first := run(time.Hour)
	if len(first) != 1 || first[0].TerminalID != "T0000002" || first[0].LastSeen != nil || !first[0].Reference.Equal(t0) {
		t.Fatalf("+1h: %+v", first)
	}
	if got := run(90 * time.Minute); len(got) != 0 {
		t.Fatalf("+90m while open: %d alerts", len(got))
	}
	// Seen again: the open alert recovers, and a new offline period alerts anew.
	f.reg.Seen("T0000002", honest, GeoPoint{}, t0.Add(100*time.Minute))
	if got := run(105 * time.Minute); len(got) != 0 {
		t.Fatalf("+105m after being seen: %d alerts", len(got))
	}
	if a, _ := f.reg.GetAlert(first[0].ID); a.Status != AlertRecovered || a.RecoveredAt == nil {
		t.Errorf("first alert after the terminal was seen = %+v", a)
	}
	second := run(161 * time.Minute)
	if len(second) != 1 || second[0].ID == first[0].ID {
		t.Fatalf("+161m: %+v", second)
	}
	// Acknowledged: silent for one more threshold, then alerts again.
	f.clock.Advance(170 * time.Minute)
	if _, err := f.reg.AcknowledgeAlert(erin, second[0].ID, ""); !errors.Is(err, ErrForbidden) {
		t.Errorf("analyst ack: %v", err)
	}
	if a, err := f.reg.AcknowledgeAlert(carol, second[0].ID, "on it"); err != nil || a.Status != AlertAcknowledged || a.AckBy != "carol" {
		t.Fatalf("ack = %+v, %v", a, err)
	}
	if _, err := f.reg.AcknowledgeAlert(carol, second[0].ID, ""); !errors.Is(err, ErrConflict) {
		t.Errorf("second ack: %v", err)
	}
	if got := run(220 * time.Minute); len(got) != 0 {
		t.Fatalf("+220m, 50m after ack: %d alerts", len(got))
	}
	// Survives a restart.
	f.reopen(t)
	mon = NewMonitor(f.reg, f.clock.Now, MonitorOptions{})
	if got := run(225 * time.Minute); len(got) != 0 {
		t.Fatalf("+225m after reopen: %d alerts", len(got))
	}
	third := run(231 * time.Minute)
	if len(third) != 1 || third[0].ID == second[0].ID {
		t.Fatalf("+231m, 61m after ack: %+v", third)
	}
	open, _ := f.reg.Alerts(AlertFilterQuery{Status: AlertOpen})
	all, _ := f.reg.Alerts(AlertFilterQuery{})
	if len(open) != 1 || len(all) != 3 {
		t.Errorf("alerts: %d open, %d in all; want 1 and 3", len(open), len(all))
	}
}

func TestAlertRuleValidation(t *testing.T) {
	f := newFixture(t)
	ar, err := f.reg.PutAlertRule(alice, AlertRule{ID: "default", Threshold: Duration(time.Hour)})
	if err != nil || len(ar.Actions) != 1 || ar.Actions[0].Type != ActionLog || ar.UpdatedBy != "alice" {
		t.Errorf("rule with defaults = %+v, %v", ar, err)
	}
	for _, bad := range []AlertRule{
		{ID: "bad id!"},
		{ID: "x", Threshold: Duration(time.Second)},
		{ID: "x"}, // a zero threshold is not "the default"
		{ID: "x", Threshold: Duration(-time.Hour)},
		{ID: "x", Actions: []AlertAction{{Type: "email"}}},
		{ID: "x", Actions: []AlertAction{{Type: ActionWebhook, URL: "ftp://example.com"}}},
		{ID: "x", Filter: AlertFilter{Kinds: []TerminalKind{"atm"}}},
	} {
		if _, err := f.reg.PutAlertRule(alice, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("PutAlertRule(%+v): err = %v, want ErrInvalid", bad, err)
		}
	}
	// A card number in the ID, even glued to letters, is refused, and quoted masked.
	_, err = f.reg.PutAlertRule(alice, AlertRule{ID: "z4761739001010267", Threshold: Duration(time.Hour)})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"z476173******0267"`) {
		t.Errorf("an ID holding a card number: %v, want ErrInvalid quoting it masked", err)
	}
	if _, err := f.reg.PutAlertRule(bob, AlertRule{ID: "y"}); !errors.Is(err, ErrForbidden) {
		t.Errorf("reviewer editing rules: %v", err)
	}
	if err := f.reg.DeleteAlertRule(alice, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete unknown rule: %v", err)
	}
}

func TestMonitorRunSchedule(t *testing.T) {
	f := newFixture(t)
	f.clock.Advance(25 * time.Hour)
	mon := NewMonitor(f.reg, nil, MonitorOptions{Interval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { mon.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	var n int
	for time.Now().Before(deadline) {
		as, _ := f.reg.Alerts(AlertFilterQuery{RuleID: "offline-24h"})
		if n = len(as); n == 3 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	// The demo rule watches T0000001, T0000002 and T0000009 (active); T0000003 is suspended.
	if n != 3 {
		t.Errorf("scheduled monitor raised %d alerts, want 3", n)
	}
}

func TestMetrics(t *testing.T) {
	promReg := prometheus.NewRegistry()
	f := &fixture{dir: t.TempDir(), clock: &fakeClock{t: t0}, opts: Options{SeenFlushInterval: -1, Metrics: promReg}}
	f.open(t)
	t.Cleanup(func() { f.close(t) })
	if _, err := LoadDemoFleet(f.reg, testLoadTerminals); err != nil {
		t.Fatal(err)
	}
	req := f.goodT1()
	req.DeviceID = "SN-X"
	f.reg.Check(req)
	f.reg.Check(req)
	f.reg.Check(CheckRequest{TerminalID: "NOPE0000"})
	r2 := f.goodT2()
	r2.Findings = []string{"emulator"}
	f.reg.Check(r2)
	f.reg.FlushIncidents()
	mon := NewMonitor(f.reg, nil, MonitorOptions{})
	if _, err := mon.RunOnce(context.Background(), t0.Add(25*time.Hour)); err != nil {
		t.Fatal(err)
	}

	val := func(name, label, value string) float64 {
		mfs, err := promReg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					if lp.GetName() == label && lp.GetValue() == value {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
		return -1
	}
	checks := []struct {
		name, label, value string
		want               float64
	}{
		{"switchyard_registry_incidents_total", "reason", "device-mismatch", 2},
		{"switchyard_registry_incidents_total", "reason", "device-compromised", 1},
		{"switchyard_registry_incidents_total", "reason", "sim-mismatch", 0},
		{"switchyard_registry_declines_total", "reason", "terminal-unknown", 1},
		{"switchyard_registry_declines_total", "reason", "device-mismatch", 2},
		{"switchyard_registry_auto_suspensions_total", "cause", "device-compromised", 1},
		{"switchyard_registry_alerts_total", "rule", "offline-24h", 2}, // T0000001, T0000009 (T0000002 now suspended)
	}
	for _, c := range checks {
		if got := val(c.name, c.label, c.value); got != c.want {
			t.Errorf("%s{%s=%q} = %v, want %v", c.name, c.label, c.value, got, c.want)
		}
	}
	// A second registry on the same Prometheus registry is refused.
	if _, err := New(f.db, nil, Options{Metrics: promReg}); err == nil {
		t.Error("second registration of the metrics: no error")
	}
}

// A terminal's bound identity holding a card number is refused (the switch masks
// one a terminal sends, so it could never match), quoted masked; an IMEI and an
// ICCID, which pass the Luhn check, are not taken for one.
func TestBindingHoldsNoCardNumber(t *testing.T) {
	for _, b := range []Binding{
		{DeviceSerial: "4761738000000014"},
		{DeviceSerial: "SN4761738000000014"},
		{DeviceSerial: "SN-1", IMEI: "4761738000000014"},
		{DeviceSerial: "SN-1", ICCID: "4761739001010119005"},
	} {
		tm := Terminal{ID: "TY000001", MerchantID: "000000000000001", Kind: KindPOS, Status: TerminalActive, MissingPolicy: PolicyDecline, Binding: b}
		err := tm.Validate()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "holds a card number") || strings.Contains(err.Error(), "738000000014") {
			t.Errorf("binding %+v: %v, want ErrInvalid quoting it masked", b, err)
		}
	}
	ok := Terminal{ID: "TY000001", MerchantID: "000000000000001", Kind: KindPOS, Status: TerminalActive, MissingPolicy: PolicyDecline,
		Binding: Binding{DeviceSerial: "SN-1", IMEI: "352099001761481", ICCID: "8986001234567890120"}}
	if err := ok.Validate(); err != nil {
		t.Errorf("an IMEI and an ICCID passing the Luhn check: %v", err)
	}
}
