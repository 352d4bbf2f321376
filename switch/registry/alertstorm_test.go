package registry

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// stormFleet opens a registry whose one merchant has n active terminals, never
// seen, and no alert rule.
func stormFleet(t *testing.T, n int, opts Options) *fixture {
	t.Helper()
	opts.SeenFlushInterval = -1
	f := &fixture{dir: t.TempDir(), clock: &fakeClock{t: t0}, opts: opts}
	f.open(t)
	t.Cleanup(func() { f.close(t) })
	f.apply(t, Change{Op: OpMerchantRegister, Merchant: &Merchant{ID: "000000000000201", Name: "Storm", MCC: "5411", Region: "CN-BJ",
		Tier: TierStandard, Rating: RatingLow, Limits: DemoLimitsStandard}})
	ts := make([]Terminal, n)
	for i := range ts {
		ts[i] = Terminal{ID: fmt.Sprintf("TS%06d", i+1), MerchantID: "000000000000201", Kind: KindPOS, Status: TerminalActive}
	}
	f.apply(t, Change{Op: OpTerminalImport, Terminals: ts})
	return f
}

// hangingServer is a webhook target that accepts connections and never answers
// (until the test ends); it counts the requests it got.
func hangingServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // before Close, which waits for the handlers
	return srv, &hits
}

// TestAlertStormDeadTarget: when a whole fleet goes offline at once and the
// webhook target hangs, one run of the monitor does not try every alert's
// webhook in turn (30 alerts, 2 attempts of the timeout each: the run stalled
// for an hour a thousand terminals, holding back every other alert, recovery
// and suspension): after the target's first failure in a run, its other alerts
// of the run are not posted and say why, and a working target still gets all
// of its alerts.
func TestAlertStormDeadTarget(t *testing.T) {
	dead, hits := hangingServer(t)
	good := newHookServer(t, 0)
	f := stormFleet(t, 30, Options{WebhookAllow: []string{dead.URL + "/alerts", good.srv.URL + "/alerts"}})
	for _, r := range []struct{ id, url string }{{"a-dead", dead.URL + "/alerts"}, {"b-good", good.srv.URL + "/alerts"}} {
		if _, err := f.reg.PutAlertRule(alice, AlertRule{ID: r.id, Threshold: Duration(time.Minute),
			Actions: []AlertAction{{Type: ActionWebhook, URL: r.url}, {Type: ActionLog}}}); err != nil {
			t.Fatal(err)
		}
	}
	mon := NewMonitor(f.reg, f.clock.Now, MonitorOptions{WebhookSecret: testWebhookSecret, WebhookTimeout: 100 * time.Millisecond,
		WebhookAttempts: 2, RetryBackoff: time.Millisecond})
	got, err := mon.RunOnce(context.Background(), t0.Add(2*time.Minute))
	if err != nil || len(got) != 60 {
		t.Fatalf("%d alerts, %v; want 60", len(got), err)
	}
	if n := hits.Load(); n < 1 || n > 2 {
		t.Errorf("the hanging target got %d requests in one run; want its 2 attempts at most", n)
	}
	skipped := 0
	for _, a := range got {
		if len(a.Actions) != 2 || !a.Actions[1].OK {
			t.Fatalf("%s: actions %+v; want the log action run after the webhook", a.ID, a.Actions)
		}
		w := a.Actions[0]
		switch {
		case a.RuleID == "b-good" && !w.OK:
			t.Errorf("%s: webhook to the working target failed: %s", a.ID, w.Detail)
		case a.RuleID == "a-dead" && w.OK:
			t.Errorf("%s: webhook to the hanging target succeeded", a.ID)
		case a.RuleID == "a-dead" && strings.Contains(w.Detail, "not posted"):
			skipped++
		}
	}
	if skipped != 29 {
		t.Errorf("%d webhooks to the hanging target skipped, want 29", skipped)
	}
	good.mu.Lock()
	defer good.mu.Unlock()
	if good.calls != 30 || good.badSigs != 0 {
		t.Errorf("working target: %d calls, %d bad signatures; want 30 and 0", good.calls, good.badSigs)
	}
}
