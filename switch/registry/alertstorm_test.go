package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
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
	f := stormFleet(t, 30, Options{WebhookAllow: []string{dead.URL + "/alerts", good.srv.URL + "/alerts"}, Metrics: prometheus.NewRegistry()})
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
	// What an operator sees in the metrics.
	for result, want := range map[string]float64{"posted": 30, "failed": 1, "not-posted": 29} {
		if got := testutil.ToFloat64(f.reg.m.webhooks.WithLabelValues(result)); got != want {
			t.Errorf("switchyard_registry_alert_webhooks_total{result=%q} = %v, want %v", result, got, want)
		}
	}
	// The next run tries the failed ones again: one alert's attempts, the
	// others skipped again.
	if _, err := mon.RunOnce(context.Background(), t0.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n := hits.Load(); n < 2 || n > 4 {
		t.Errorf("the hanging target got %d requests in two runs; want 2 to 4", n)
	}
	good.mu.Lock()
	defer good.mu.Unlock()
	if good.calls != 30 || good.badSigs != 0 {
		t.Errorf("working target: %d calls, %d bad signatures; want 30 and 0", good.calls, good.badSigs)
	}
}

// TestAlertWebhookRetried: a webhook that failed (a receiver down for a minute
// answered 500 to its attempts) is tried again by the next runs while the alert
// is open, until it is posted, and not after; an alert is not retried once a day
// has passed since it was raised. Before, the alert's webhook was given up after
// its attempts of one run, a few seconds.
func TestAlertWebhookRetried(t *testing.T) {
	hook := newHookServer(t, 2)
	target := hook.srv.URL + "/alerts"
	f := newFixtureOpts(t, Options{SeenFlushInterval: -1, WebhookAllow: []string{target}})
	if err := f.reg.DeleteAlertRule(root, "offline-24h"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.PutAlertRule(alice, AlertRule{ID: "sp", Threshold: Duration(time.Hour), Filter: AlertFilter{Merchants: []string{"000000000000002"}},
		Actions: []AlertAction{{Type: ActionWebhook, URL: target}}}); err != nil {
		t.Fatal(err)
	}
	mon := NewMonitor(f.reg, f.clock.Now, MonitorOptions{WebhookSecret: testWebhookSecret, WebhookAttempts: 1})
	ctx := context.Background()
	run := func(at time.Duration, wantCalls int, wantOK bool) *Alert {
		t.Helper()
		if _, err := mon.RunOnce(ctx, t0.Add(at)); err != nil {
			t.Fatalf("run at +%v: %v", at, err)
		}
		hook.mu.Lock()
		calls := hook.calls
		hook.mu.Unlock()
		if calls != wantCalls {
			t.Fatalf("run at +%v: %d webhook calls in all, want %d", at, calls, wantCalls)
		}
		as, err := f.reg.Alerts(AlertFilterQuery{Status: AlertOpen})
		if err != nil || len(as) != 1 || len(as[0].Actions) != 1 || as[0].Actions[0].OK != wantOK {
			t.Fatalf("run at +%v: open alerts %+v, %v; want one, webhook ok %v", at, as, err, wantOK)
		}
		return as[0]
	}
	first := run(2*time.Hour, 1, false)
	if d := first.Actions[0].Detail; !strings.Contains(d, "500") {
		t.Errorf("failed webhook's detail %q, want the 500", d)
	}
	run(2*time.Hour+time.Minute, 2, false)
	if a := run(2*time.Hour+2*time.Minute, 3, true); a.ID != first.ID {
		t.Fatalf("alert %s, want %s", a.ID, first.ID)
	}
	run(2*time.Hour+3*time.Minute, 3, true) // posted: not again
	hook.mu.Lock()
	if len(hook.payloads) != 1 || hook.payloads[0].Alert.ID != first.ID || hook.payloads[0].Alert.Actions != nil || hook.badSigs != 0 {
		t.Errorf("payloads %+v (%d bad signatures); want alert %s as first posted", hook.payloads, hook.badSigs, first.ID)
	}
	hook.failures = 1 << 20 // down for good
	hook.mu.Unlock()

	// The terminal talks, falls silent again: a new alert, whose webhook fails,
	// is retried for a day after it was raised, then left as it is.
	f.reg.Seen("T0000002", honest, GeoPoint{}, t0.Add(3*time.Hour))
	second := run(4*time.Hour+time.Minute, 4, false)
	if second.ID == first.ID {
		t.Fatal("no new alert after the terminal recovered")
	}
	run(4*time.Hour+2*time.Minute, 5, false)
	run(28*time.Hour+2*time.Minute, 5, false)
	if a, _ := f.reg.GetAlert(first.ID); a.Status != AlertRecovered {
		t.Errorf("first alert %s", a.Status)
	}
}

// TestWebhookTimestampOfPost: each webhook is signed with the time it is posted,
// not the time its run started: a run that posts many alerts (a storm, a slow
// receiver) signed its last ones with a timestamp receivers refuse as a replay
// ("more than a few minutes from your clock"), and the refusal lost them.
func TestWebhookTimestampOfPost(t *testing.T) {
	var f *fixture
	var stamps []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stamps = append(stamps, r.Header.Get(WebhookTimestampHeader)) // one post at a time
		f.clock.Advance(10 * time.Minute)                             // a slow receiver
	}))
	t.Cleanup(srv.Close)
	f = newFixtureOpts(t, Options{SeenFlushInterval: -1, WebhookAllow: []string{srv.URL + "/"}})
	if _, err := f.reg.PutAlertRule(alice, AlertRule{ID: "all", Threshold: Duration(time.Hour), Filter: AlertFilter{Merchants: []string{"000000000000001", "000000000000002"}},
		Actions: []AlertAction{{Type: ActionWebhook, URL: srv.URL + "/a"}}}); err != nil {
		t.Fatal(err)
	}
	mon := NewMonitor(f.reg, f.clock.Now, MonitorOptions{WebhookSecret: testWebhookSecret})
	f.clock.Advance(2 * time.Hour)
	got, err := mon.RunOnce(context.Background(), f.clock.Now())
	if err != nil || len(got) != 2 {
		t.Fatalf("%d alerts, %v; want 2", len(got), err)
	}
	want := []string{fmt.Sprint(t0.Add(2 * time.Hour).Unix()), fmt.Sprint(t0.Add(2*time.Hour + 10*time.Minute).Unix())}
	if strings.Join(stamps, ",") != strings.Join(want, ",") {
		t.Errorf("timestamps %v, want %v (the clock at each post)", stamps, want)
	}
}

// TestWebhookAllowListDotSegments: a webhook URL whose path climbs out of the
// allowed one with dot segments ("/alerts/../admin", encoded or not) is refused:
// its prefix matched the allow-list entry, and the receiving server resolves it
// to a path the entry does not allow.
func TestWebhookAllowListDotSegments(t *testing.T) {
	allowed := "https://ops.example/alerts"
	f := newFixtureOpts(t, Options{SeenFlushInterval: -1, WebhookAllow: []string{allowed}})
	for _, bad := range []string{allowed + "/../admin", allowed + "/%2e%2e/admin", allowed + "/%2E%2E%2Fadmin", allowed + "/./x/../../admin", allowed + "/.."} {
		if _, err := f.reg.PutAlertRule(alice, AlertRule{ID: "dots", Threshold: Duration(time.Hour), Actions: []AlertAction{{Type: ActionWebhook, URL: bad}}}); !errors.Is(err, ErrInvalid) {
			t.Errorf("webhook %s: %v, want ErrInvalid", bad, err)
		}
	}
	for _, good := range []string{allowed, allowed + "/team..a/x", allowed + "/sub?x=../y"} {
		if _, err := f.reg.PutAlertRule(alice, AlertRule{ID: "ok", Threshold: Duration(time.Hour), Actions: []AlertAction{{Type: ActionWebhook, URL: good}}}); err != nil {
			t.Errorf("webhook %s: %v", good, err)
		}
	}
}

// TestWebhookBadTargets: targets that misbehave make the webhook action fail with
// an error that says why (or succeed, for a 2xx with an endless body, read no
// further than 64 KiB), and the run ends: a connection closed inside the answer's
// status line, a certificate the switch does not trust, an endless body. (A 2xx
// whose body is cut short counts as posted: the status is the receiver's word.)
func TestWebhookBadTargets(t *testing.T) {
	closer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Write([]byte("HTTP/1.1 2")) // cut inside the status line
			conn.Close()
		}
	}))
	t.Cleanup(closer.Close)
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(tlsSrv.Close)
	endless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 32<<10)
		for i := 0; i < 1<<15; i++ { // up to 1 GiB, until the client hangs up
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	t.Cleanup(endless.Close)
	cases := []struct{ name, url, want string }{
		{"closed mid-answer", closer.URL + "/a", "connection broken"},
		{"untrusted certificate", tlsSrv.URL + "/a", "certificate"},
		{"endless body", endless.URL + "/a", ""},
	}
	var allow []string
	for _, c := range cases {
		allow = append(allow, c.url)
	}
	f := newFixtureOpts(t, Options{SeenFlushInterval: -1, WebhookAllow: allow})
	if err := f.reg.DeleteAlertRule(root, "offline-24h"); err != nil {
		t.Fatal(err)
	}
	var acts []AlertAction
	for _, c := range cases {
		acts = append(acts, AlertAction{Type: ActionWebhook, URL: c.url})
	}
	if _, err := f.reg.PutAlertRule(alice, AlertRule{ID: "bad", Threshold: Duration(time.Hour), Filter: AlertFilter{Merchants: []string{"000000000000002"}}, Actions: acts}); err != nil {
		t.Fatal(err)
	}
	mon := NewMonitor(f.reg, f.clock.Now, MonitorOptions{WebhookSecret: testWebhookSecret, WebhookAttempts: 1, WebhookTimeout: 5 * time.Second})
	got, err := mon.RunOnce(context.Background(), t0.Add(2*time.Hour))
	if err != nil || len(got) != 1 || len(got[0].Actions) != len(cases) {
		t.Fatalf("alerts %+v, %v", got, err)
	}
	for i, c := range cases {
		res := got[0].Actions[i]
		if c.want == "" && !res.OK || c.want != "" && (res.OK || !strings.Contains(res.Detail, c.want)) {
			t.Errorf("%s: %+v, want failure naming %q", c.name, res, c.want)
		}
	}
}

// batchServer is a webhook target that answers its first request at once and
// then holds the requests until size of them are in flight together (or the
// last of total has arrived), then answers them all: a receiver that only gets
// through a storm when posted to size at a time. It records the most requests
// in flight at once.
type batchServer struct {
	srv         *httptest.Server
	size, total int

	mu       sync.Mutex
	calls    int
	inflight int
	most     int
	firstIn  int // requests in flight when the first arrived
	badSigs  int
	alertIDs map[string]bool
	gate     chan struct{} // closed when the batch that is filling is released
}

func newBatchServer(t *testing.T, size, total int) *batchServer {
	b := &batchServer{size: size, total: total, alertIDs: map[string]bool{}, gate: make(chan struct{})}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p WebhookPayload
		_ = json.Unmarshal(body, &p)
		b.mu.Lock()
		b.calls++
		b.inflight++
		b.most = max(b.most, b.inflight)
		if SignWebhook(testWebhookSecret, r.Header.Get(WebhookTimestampHeader), body) != r.Header.Get(WebhookSignatureHeader) {
			b.badSigs++
		}
		if p.Alert != nil {
			b.alertIDs[p.Alert.ID] = true
		}
		gate := b.gate
		if b.calls == 1 {
			b.firstIn = b.inflight
		}
		if b.calls == 1 || (b.calls-1)%b.size == 0 || b.calls == b.total {
			close(b.gate) // the probe, or a full batch, or the last one
			b.gate = make(chan struct{})
		}
		b.mu.Unlock()
		ok := true
		select {
		case <-gate:
		case <-r.Context().Done():
			ok = false
		}
		b.mu.Lock()
		b.inflight-- // before the answer: the poster's next request comes after
		b.mu.Unlock()
		if !ok {
			http.Error(w, "gave up", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// TestAlertStormSlowTarget: a storm's webhooks are posted several at once
// (DefaultWebhookConcurrency), never more, to a receiver that only answers
// requests in batches of that many: one at a time, the run held each post for
// its timeout (a thousand alerts at 5 s: 83 minutes) and the first post's
// failure left the others unposted. The target's first post goes alone. Every
// alert's webhook is posted in the run and none waited for its timeout (it
// would have failed); the run's goroutines are joined when RunOnce returns.
func TestAlertStormSlowTarget(t *testing.T) {
	const n = 100
	recv := newBatchServer(t, DefaultWebhookConcurrency, n)
	target := recv.srv.URL + "/alerts"
	f := stormFleet(t, n, Options{WebhookAllow: []string{target}})
	if _, err := f.reg.PutAlertRule(alice, AlertRule{ID: "storm", Threshold: Duration(time.Minute),
		Actions: []AlertAction{{Type: ActionWebhook, URL: target}}}); err != nil {
		t.Fatal(err)
	}
	mon := NewMonitor(f.reg, f.clock.Now, MonitorOptions{WebhookSecret: testWebhookSecret, WebhookTimeout: 5 * time.Second, WebhookAttempts: 1})
	got, err := mon.RunOnce(context.Background(), t0.Add(2*time.Minute))
	if err != nil || len(got) != n {
		t.Fatalf("%d alerts, %v; want %d", len(got), err, n)
	}
	for _, a := range got {
		if len(a.Actions) != 1 || !a.Actions[0].OK {
			t.Fatalf("%s: webhook %+v; want posted in the run", a.ID, a.Actions)
		}
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if recv.calls != n || len(recv.alertIDs) != n || recv.badSigs != 0 {
		t.Errorf("receiver: %d calls for %d alerts, %d bad signatures; want %d, %d, 0", recv.calls, len(recv.alertIDs), recv.badSigs, n, n)
	}
	if recv.most != DefaultWebhookConcurrency || recv.firstIn != 1 {
		t.Errorf("at most %d posts in flight at once, %d when the first arrived; want %d and 1", recv.most, recv.firstIn, DefaultWebhookConcurrency)
	}
	if recv.inflight != 0 {
		t.Errorf("%d posts still in flight after the run", recv.inflight)
	}
	stored, err := f.reg.Alerts(AlertFilterQuery{Limit: 2 * n})
	if err != nil || len(stored) != n {
		t.Fatalf("%d stored alerts, %v", len(stored), err)
	}
	for _, a := range stored {
		if !a.Acted || len(a.Actions) != 1 || !a.Actions[0].OK {
			t.Fatalf("stored %s: acted %v, actions %+v", a.ID, a.Acted, a.Actions)
		}
	}
}
