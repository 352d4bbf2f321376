package registry

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMassSilenceNoSuspension: a regional network outage makes the 40 terminals
// of region CN-SH silent at once. An approved suspend rule does not suspend them
// (before, the wave limit let 10 % of the fleet, 4 of them here and 100 in a
// fleet of a thousand, be suspended, and requested a change for each of the
// others: when the network came back those terminals were declined 58, and the
// review queue was flooded): past the mass-silence share of the region the
// monitor assumes a common cause, raises the alerts, suspends none, requests no
// change, counts them in switchyard_registry_suspensions_withheld_total. A lone
// terminal silent later is still suspended.
func TestMassSilenceNoSuspension(t *testing.T) {
	f := stormFleet(t, 1000, Options{Metrics: prometheus.NewRegistry()})
	f.apply(t, Change{Op: OpMerchantRegister, Merchant: &Merchant{ID: "000000000000202", Name: "Shanghai", MCC: "5411", Region: "CN-SH",
		Tier: TierStandard, Rating: RatingLow, Limits: DemoLimitsStandard}})
	sh := make([]Terminal, 40)
	for i := range sh {
		sh[i] = Terminal{ID: fmt.Sprintf("TR%06d", i+1), MerchantID: "000000000000202", Kind: KindPOS, Status: TerminalActive}
	}
	f.apply(t, Change{Op: OpTerminalImport, Terminals: sh})
	f.apply(t, Change{Op: OpAlertRulePut, AlertRule: &AlertRule{ID: "off-1h", Threshold: Duration(time.Hour),
		Actions: []AlertAction{{Type: ActionLog}, {Type: ActionSuspend}}}})
	seenAll := func(prefix string, n int, at time.Time, except string) {
		for i := 1; i <= n; i++ {
			if id := fmt.Sprintf("%s%06d", prefix, i); id != except {
				f.reg.Seen(id, honest, GeoPoint{}, at)
			}
		}
	}
	seenAll("TS", 1000, t0.Add(time.Hour), "") // Beijing keeps trading
	mon := NewMonitor(f.reg, f.clock.Now, MonitorOptions{})
	got, err := mon.RunOnce(context.Background(), t0.Add(61*time.Minute))
	if err != nil || len(got) != 40 {
		t.Fatalf("%d alerts, %v; want the 40 of CN-SH", len(got), err)
	}
	for _, a := range got {
		if res := a.Actions[1]; !strings.HasPrefix(res.Detail, "not suspended: mass silence") || !strings.Contains(res.Detail, "region CN-SH") {
			t.Fatalf("%s: suspend action %+v; want it withheld for the region's mass silence", a.TerminalID, res)
		}
	}
	if n := len(f.reg.Terminals(TerminalFilter{Status: TerminalSuspended})); n != 0 {
		t.Errorf("%d terminals suspended by a regional outage; want none", n)
	}
	if pending, _ := f.reg.Changes(ChangeFilter{Status: ChangePending}); len(pending) != 0 {
		t.Errorf("%d changes requested for review; want none", len(pending))
	}
	if n := testutil.ToFloat64(f.reg.m.withheld.WithLabelValues("mass-silence")); n != 40 {
		t.Errorf("switchyard_registry_suspensions_withheld_total{reason=mass-silence} = %v, want 40", n)
	}
	// The network is back: they trade. Later one of them alone goes silent: it is
	// suspended (the window of the outage's alerts has passed).
	seenAll("TR", 40, t0.Add(3*time.Hour), "")
	seenAll("TS", 1000, t0.Add(3*time.Hour), "")
	seenAll("TR", 40, t0.Add(4*time.Hour), "TR000007")
	seenAll("TS", 1000, t0.Add(4*time.Hour), "")
	got, err = mon.RunOnce(context.Background(), t0.Add(4*time.Hour+5*time.Minute))
	if err != nil || len(got) != 1 || got[0].TerminalID != "TR000007" || got[0].Actions[1].Detail != "terminal suspended" {
		t.Fatalf("lone silent terminal: %+v, %v; want TR000007 suspended", got, err)
	}
}

// TestRestartDowntimeNotSilence: the switch ran until t0+30m (its last-seen
// data flushed then), was down for an hour and started at t0+90m. Its own
// downtime does not count as the terminals' silence: nobody could be seen while
// it was down. Before, every terminal last seen more than the threshold before
// the first run after the restart was alerted (and, under a suspend rule,
// suspended) at once. The quiet half hour before the stop still counts: the
// downtime starts at the last flush, not at the newest last-seen time.
func TestRestartDowntimeNotSilence(t *testing.T) {
	f := stormFleet(t, 3, Options{})
	if _, err := f.reg.PutAlertRule(alice, AlertRule{ID: "off-1h", Threshold: Duration(time.Hour), Actions: []AlertAction{{Type: ActionLog}}}); err != nil {
		t.Fatal(err)
	}
	f.reg.Seen("TS000002", honest, GeoPoint{}, t0) // idle since t0
	f.reg.Seen("TS000001", honest, GeoPoint{}, t0.Add(10*time.Minute))
	f.reg.Seen("TS000003", honest, GeoPoint{}, t0.Add(10*time.Minute))
	f.clock.Advance(30 * time.Minute)
	f.close(t) // stopped at t0+30m ...
	f.clock.Advance(time.Hour)
	f.open(t) // ... started at t0+90m
	mon := NewMonitor(f.reg, f.clock.Now, MonitorOptions{})
	if got, err := mon.RunOnce(context.Background(), t0.Add(91*time.Minute)); err != nil || len(got) != 0 {
		t.Fatalf("first run after the restart: %d alerts (%v), %v; want none", len(got), got, err)
	}
	f.reg.Seen("TS000001", honest, GeoPoint{}, t0.Add(92*time.Minute))
	// An hour of silence while the switch was up: TS000002 (30 m before the stop,
	// 41 m after) and TS000003 (20 m and 41 m); TS000001 was seen since.
	got, err := mon.RunOnce(context.Background(), t0.Add(2*time.Hour+11*time.Minute))
	if err != nil || len(got) != 2 || got[0].TerminalID != "TS000002" || got[1].TerminalID != "TS000003" {
		t.Fatalf("later run: %+v, %v; want TS000002 and TS000003", got, err)
	}
	if d := time.Duration(got[0].OfflineFor); d != 131*time.Minute {
		t.Errorf("offline_for = %v; want the whole 131 m since last seen", d)
	}
}

// TestFlappingTerminal: a terminal on a bad mobile link goes silent past a 5 m
// threshold and back, again and again. Its rule alerts once, the recovery is
// posted, and it does not alert again until the re-alert hold (1 h after the
// alert) has passed: before, each flap posted a terminal-offline and a
// terminal-online webhook, 12 an hour.
func TestFlappingTerminal(t *testing.T) {
	hook := newHookServer(t, 0)
	f := stormFleet(t, 1, Options{WebhookAllow: []string{hook.srv.URL + "/alerts"}})
	if _, err := f.reg.PutAlertRule(alice, AlertRule{ID: "off-5m", Threshold: Duration(5 * time.Minute),
		Actions: []AlertAction{{Type: ActionWebhook, URL: hook.srv.URL + "/alerts"}}}); err != nil {
		t.Fatal(err)
	}
	mon := NewMonitor(f.reg, f.clock.Now, MonitorOptions{WebhookSecret: testWebhookSecret})
	ctx := context.Background()
	alerts := 0
	for cycle := range 6 { // every 10 minutes: seen, then silent 10 minutes
		start := t0.Add(time.Duration(cycle) * 10 * time.Minute)
		f.reg.Seen("TS000001", honest, GeoPoint{}, start)
		got, err := mon.RunOnce(ctx, start.Add(6*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		alerts += len(got)
	}
	if alerts != 1 {
		t.Errorf("%d alerts in an hour of flapping; want 1", alerts)
	}
	hook.mu.Lock()
	events := map[string]int{}
	for _, p := range hook.payloads {
		events[p.Event]++
	}
	hook.mu.Unlock()
	if events[EventTerminalOffline] != 1 || events[EventTerminalOnline] != 1 {
		t.Errorf("webhooks: %v; want one terminal-offline and one terminal-online", events)
	}
	// Past the hold, a terminal silent again alerts.
	f.reg.Seen("TS000001", honest, GeoPoint{}, t0.Add(70*time.Minute))
	if got, err := mon.RunOnce(ctx, t0.Add(76*time.Minute)); err != nil || len(got) != 1 {
		t.Errorf("after the hold: %d alerts, %v; want 1", len(got), err)
	}
}

// TestAlertStormWebhookBudget: a storm of 250 alerts for one target. A run makes
// 200 posts to it (DefaultWebhookMaxPerRun) and leaves the others to the next run,
// which posts them: every alert reaches the receiver once, and no run holds the
// monitor for the whole storm. Before, a run posted all 250 (ten thousand alerts at
// a receiver answering in 5 s held the run, and every recovery and alert behind it,
// for over 1.5 h).
func TestAlertStormWebhookBudget(t *testing.T) {
	hook := newHookServer(t, 0)
	f := stormFleet(t, 250, Options{WebhookAllow: []string{hook.srv.URL + "/alerts"}, Metrics: prometheus.NewRegistry()})
	if _, err := f.reg.PutAlertRule(alice, AlertRule{ID: "off-1m", Threshold: Duration(time.Minute),
		Actions: []AlertAction{{Type: ActionWebhook, URL: hook.srv.URL + "/alerts"}}}); err != nil {
		t.Fatal(err)
	}
	mon := NewMonitor(f.reg, f.clock.Now, MonitorOptions{WebhookSecret: testWebhookSecret})
	calls := func() int {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		return hook.calls
	}
	got, err := mon.RunOnce(context.Background(), t0.Add(2*time.Minute))
	if err != nil || len(got) != 250 {
		t.Fatalf("%d alerts, %v; want 250", len(got), err)
	}
	if n := calls(); n != 200 {
		t.Fatalf("first run: %d posts; want 200", n)
	}
	deferred := 0
	for _, a := range got {
		if strings.HasPrefix(a.Actions[0].Detail, "not posted yet: this run made its 200 posts") {
			deferred++
		}
	}
	if deferred != 50 || testutil.ToFloat64(f.reg.m.webhooks.WithLabelValues("deferred")) != 50 {
		t.Errorf("%d deferred (metric %v); want 50", deferred, testutil.ToFloat64(f.reg.m.webhooks.WithLabelValues("deferred")))
	}
	if _, err := mon.RunOnce(context.Background(), t0.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	hook.mu.Lock()
	defer hook.mu.Unlock()
	ids := map[string]bool{}
	for _, p := range hook.payloads {
		ids[p.Alert.ID] = true
	}
	if hook.calls != 250 || len(ids) != 250 {
		t.Errorf("after two runs: %d posts of %d alerts; want each of the 250 once", hook.calls, len(ids))
	}
}

// TestMassSilenceSpread: an outage's alerts spread over hours (each terminal's
// threshold runs from when it was last seen). 19 terminals of CN-SH went dark at
// t0 and were suspended (under the brake's 20); 19 more went dark at t0+2h. Their
// alerts, an hour later, are past the window of the first ones, but those are still
// open: 38 terminals of the region are dark, so the brake withholds the second
// 19's suspensions. Before, only alerts raised within the window counted.
func TestMassSilenceSpread(t *testing.T) {
	f := stormFleet(t, 1000, Options{})
	f.apply(t, Change{Op: OpMerchantRegister, Merchant: &Merchant{ID: "000000000000202", Name: "Shanghai", MCC: "5411", Region: "CN-SH",
		Tier: TierStandard, Rating: RatingLow, Limits: DemoLimitsStandard}})
	sh := make([]Terminal, 60)
	for i := range sh {
		sh[i] = Terminal{ID: fmt.Sprintf("TR%06d", i+1), MerchantID: "000000000000202", Kind: KindPOS, Status: TerminalActive}
	}
	f.apply(t, Change{Op: OpTerminalImport, Terminals: sh})
	f.apply(t, Change{Op: OpAlertRulePut, AlertRule: &AlertRule{ID: "off-1h", Threshold: Duration(time.Hour), Actions: []AlertAction{{Type: ActionSuspend}}}})
	seen := func(prefix string, from, to int, at time.Time) {
		for i := from; i <= to; i++ {
			f.reg.Seen(fmt.Sprintf("%s%06d", prefix, i), honest, GeoPoint{}, at)
		}
	}
	seen("TR", 1, 19, t0)
	seen("TR", 20, 60, t0.Add(time.Hour))
	seen("TS", 1, 1000, t0.Add(time.Hour))
	mon := NewMonitor(f.reg, f.clock.Now, MonitorOptions{SuspendMaxShare: 1}) // the wave limit off: the brake alone
	if got, err := mon.RunOnce(context.Background(), t0.Add(61*time.Minute)); err != nil || len(got) != 19 || got[0].Actions[0].Detail != "terminal suspended" {
		t.Fatalf("first 19: %d alerts, %v", len(got), err)
	}
	seen("TR", 20, 38, t0.Add(2*time.Hour)) // TR000039-60 keep trading
	seen("TR", 39, 60, t0.Add(3*time.Hour))
	seen("TS", 1, 1000, t0.Add(3*time.Hour))
	got, err := mon.RunOnce(context.Background(), t0.Add(3*time.Hour+time.Minute))
	if err != nil || len(got) != 19 {
		t.Fatalf("second 19: %d alerts, %v", len(got), err)
	}
	for _, a := range got {
		if d := a.Actions[0].Detail; !strings.HasPrefix(d, "not suspended: mass silence, 38 of region CN-SH's 60 terminals") {
			t.Fatalf("%s: %s; want withheld", a.TerminalID, d)
		}
	}
}
