package registry

import (
	"context"
	"testing"
	"time"
)

// TestAlertRecoveryWebhook: when an alert's terminal is seen again, the alert's
// webhook targets get a terminal-online post, signed like the alert's, carrying
// the alert (its ID, status recovered, when it was seen), once: a failed post is
// tried again by the next runs (across a restart) until it is posted, and not
// after. An acknowledged alert's recovery is posted too. Before, a receiver
// never learned that an offline terminal was back.
func TestAlertRecoveryWebhook(t *testing.T) {
	hook := newHookServer(t, 0)
	target := hook.srv.URL + "/alerts"
	f := newFixtureOpts(t, Options{SeenFlushInterval: -1, WebhookAllow: []string{target}})
	if err := f.reg.DeleteAlertRule(root, "offline-24h"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.PutAlertRule(alice, AlertRule{ID: "sp", Threshold: Duration(time.Hour), Filter: AlertFilter{Merchants: []string{"000000000000002"}},
		Actions: []AlertAction{{Type: ActionLog}, {Type: ActionWebhook, URL: target}}}); err != nil {
		t.Fatal(err)
	}
	mon := NewMonitor(f.reg, f.clock.Now, MonitorOptions{WebhookSecret: testWebhookSecret, WebhookAttempts: 1})
	ctx := context.Background()
	run := func(at time.Duration) {
		t.Helper()
		if _, err := mon.RunOnce(ctx, t0.Add(at)); err != nil {
			t.Fatalf("run at +%v: %v", at, err)
		}
	}
	posts := func() []WebhookPayload {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		if hook.badSigs != 0 {
			t.Fatalf("%d posts with a bad signature", hook.badSigs)
		}
		return append([]WebhookPayload(nil), hook.payloads...)
	}
	run(2 * time.Hour)
	first := posts()
	if len(first) != 1 || first[0].Event != EventTerminalOffline {
		t.Fatalf("posts after the alert: %+v; want one terminal-offline", first)
	}
	id := first[0].Alert.ID

	// Seen again; the recovery's first post fails (the receiver answers 500).
	f.reg.Seen("T0000002", honest, GeoPoint{}, t0.Add(3*time.Hour))
	hook.mu.Lock()
	hook.failures = hook.calls + 1
	hook.mu.Unlock()
	run(3*time.Hour + time.Minute)
	if got := posts(); len(got) != 1 {
		t.Fatalf("posts after a failed recovery post: %+v", got)
	}
	a, err := f.reg.GetAlert(id)
	if err != nil || a.Status != AlertRecovered || len(a.Recovery) != 1 || a.Recovery[0].OK || a.Recovery[0].URL != f.reg.RedactWebhookURL(target) {
		t.Fatalf("alert after the failed recovery post: %+v, %v", a, err)
	}

	// A restart in between: the post is still owed, and the next run makes it.
	f.reopen(t)
	mon = NewMonitor(f.reg, f.clock.Now, MonitorOptions{WebhookSecret: testWebhookSecret, WebhookAttempts: 1})
	run(3*time.Hour + 2*time.Minute)
	got := posts()
	if len(got) != 2 {
		t.Fatalf("posts after the retry: %+v; want 2", got)
	}
	rec := got[1]
	if rec.Event != EventTerminalOnline || rec.Alert == nil || rec.Alert.ID != id || rec.Alert.Status != AlertRecovered ||
		rec.Alert.RecoveredAt == nil || !rec.Alert.RecoveredAt.Equal(t0.Add(3*time.Hour)) || rec.Alert.Actions != nil || rec.Alert.Recovery != nil {
		t.Errorf("recovery post %+v; want terminal-online for %s, recovered at +3h, without action results", rec.Alert, id)
	}
	if a, _ := f.reg.GetAlert(id); len(a.Recovery) != 1 || !a.Recovery[0].OK {
		t.Errorf("stored recovery results %+v", a.Recovery)
	}
	// Once: not again.
	run(3*time.Hour + 3*time.Minute)
	if got := posts(); len(got) != 2 {
		t.Fatalf("posts after a later run: %d; want still 2", len(got))
	}

	// Silent again: a new alert, acknowledged, then seen: its recovery is posted.
	run(4*time.Hour + time.Minute)
	got = posts()
	if len(got) != 3 || got[2].Event != EventTerminalOffline || got[2].Alert.ID == id {
		t.Fatalf("posts after the second silence: %+v", got)
	}
	second := got[2].Alert.ID
	if _, err := f.reg.AcknowledgeAlert(carol, second, "on it"); err != nil {
		t.Fatal(err)
	}
	f.reg.Seen("T0000002", honest, GeoPoint{}, t0.Add(4*time.Hour+2*time.Minute))
	run(4*time.Hour + 3*time.Minute)
	got = posts()
	if len(got) != 4 || got[3].Event != EventTerminalOnline || got[3].Alert.ID != second || got[3].Alert.AckBy != "carol" {
		t.Fatalf("posts after the acknowledged alert recovered: %+v", got)
	}
}

// TestAlertRecoveryWebhookGivenUp: a recovery post that keeps failing is tried
// again for WebhookRetryFor after the alert recovered, then left; and one to a
// target its rule no longer posts to is not made.
func TestAlertRecoveryWebhookGivenUp(t *testing.T) {
	hook := newHookServer(t, 0)
	other := newHookServer(t, 0)
	target, otherTarget := hook.srv.URL+"/alerts", other.srv.URL+"/alerts"
	f := newFixtureOpts(t, Options{SeenFlushInterval: -1, WebhookAllow: []string{target, otherTarget}})
	if err := f.reg.DeleteAlertRule(root, "offline-24h"); err != nil {
		t.Fatal(err)
	}
	rule := AlertRule{ID: "sp", Threshold: Duration(time.Hour), Filter: AlertFilter{Merchants: []string{"000000000000002"}},
		Actions: []AlertAction{{Type: ActionWebhook, URL: target}, {Type: ActionWebhook, URL: otherTarget}}}
	if _, err := f.reg.PutAlertRule(alice, rule); err != nil {
		t.Fatal(err)
	}
	mon := NewMonitor(f.reg, f.clock.Now, MonitorOptions{WebhookSecret: testWebhookSecret, WebhookAttempts: 1})
	calls := func(h *hookServer) int {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.calls
	}
	if _, err := mon.RunOnce(context.Background(), t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	// The second target is taken off the rule; the first is down for good.
	rule.Actions = rule.Actions[:1]
	if _, err := f.reg.PutAlertRule(alice, rule); err != nil {
		t.Fatal(err)
	}
	hook.mu.Lock()
	hook.failures = 1 << 20
	hook.mu.Unlock()
	f.reg.Seen("T0000002", honest, GeoPoint{}, t0.Add(3*time.Hour))
	for i, at := range []time.Duration{3*time.Hour + time.Minute, 4 * time.Hour, 27*time.Hour + time.Minute - time.Second, 27*time.Hour + time.Minute, 30 * time.Hour} {
		if _, err := mon.RunOnce(context.Background(), t0.Add(at)); err != nil {
			t.Fatal(err)
		}
		if i == 0 { // no new alert of its next silence
			f.apply(t, Change{Op: OpTerminalSuspend, Target: "T0000002", Reason: "quiet"})
		}
	}
	// One offline post each, then three recovery attempts to the first target
	// (within the day after the recovery, at +3h1m), none after, none to the second.
	if n := calls(hook); n != 4 {
		t.Errorf("first target: %d posts; want 4 (1 offline, 3 recovery attempts)", n)
	}
	if n := calls(other); n != 1 {
		t.Errorf("second target (off the rule): %d posts; want its 1 offline post", n)
	}
	f.reg.alerts.mu.Lock()
	left := len(f.reg.alerts.recoveries)
	f.reg.alerts.mu.Unlock()
	if left != 0 {
		t.Errorf("%d recoveries still pending a day after they were given up; want none kept", left)
	}
}
