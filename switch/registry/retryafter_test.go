package registry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
)

// TestWebhookRetryAfterWaited: a receiver answering 429 with Retry-After: 1 gets
// the next attempt no sooner than a second later, although the backoff is 10 ms;
// the post then succeeds. Before, the attempt came after the backoff.
func TestWebhookRetryAfterWaited(t *testing.T) {
	var mu sync.Mutex
	var arrivals []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		first := len(arrivals) == 1
		mu.Unlock()
		if first {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		}
	}))
	t.Cleanup(srv.Close)
	f := newFixtureOpts(t, Options{SeenFlushInterval: -1, WebhookAllow: []string{srv.URL + "/alerts"}})
	mon := NewMonitor(f.reg, f.clock.Now, MonitorOptions{WebhookSecret: testWebhookSecret, WebhookAttempts: 2, RetryBackoff: 10 * time.Millisecond})
	if err := mon.postWebhook(context.Background(), srv.URL+"/alerts", []byte(`{}`)); err != nil {
		t.Fatalf("post after a Retry-After of 1 s: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(arrivals) != 2 {
		t.Fatalf("%d attempts, want 2", len(arrivals))
	}
	if gap := arrivals[1].Sub(arrivals[0]); gap < time.Second {
		t.Errorf("second attempt %v after the 429 with Retry-After: 1, want at least 1s", gap)
	}
}

// TestWebhookRetryAfterHoldsTarget: a receiver answering 503 with a Retry-After
// date 10 minutes ahead gets one attempt, not the post's three; the run's other
// alert is not posted to it; the next run, 5 minutes later, posts nothing to it
// (counted held, logged) although it is back; the run after the date posts both.
// A Retry-After of years is held for WebhookRetryAfterMax only.
func TestWebhookRetryAfterHoldsTarget(t *testing.T) {
	var mu sync.Mutex
	calls, busy, retryAfter := 0, true, ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if busy {
			w.Header().Set("Retry-After", retryAfter)
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	var logs strings.Builder
	var logMu sync.Mutex
	f := stormFleet(t, 2, Options{Metrics: prometheus.NewRegistry(), WebhookAllow: []string{srv.URL + "/alerts"},
		Logger: zerolog.New(lockedWriter{&logMu, &logs})})
	if _, err := f.reg.PutAlertRule(alice, AlertRule{ID: "off-1m", Threshold: Duration(time.Minute),
		Actions: []AlertAction{{Type: ActionWebhook, URL: srv.URL + "/alerts"}}}); err != nil {
		t.Fatal(err)
	}
	mon := NewMonitor(f.reg, f.clock.Now, MonitorOptions{WebhookSecret: testWebhookSecret, WebhookAttempts: 3, RetryBackoff: 10 * time.Millisecond,
		WebhookRetryAfterMax: 30 * time.Minute})
	state := func() int {
		mu.Lock()
		defer mu.Unlock()
		return calls
	}
	ctx := context.Background()
	until := f.clock.Now().Add(10 * time.Minute)
	mu.Lock()
	retryAfter = until.UTC().Format(http.TimeFormat)
	mu.Unlock()

	got, err := mon.RunOnce(ctx, t0.Add(2*time.Minute))
	if err != nil || len(got) != 2 {
		t.Fatalf("%d alerts, %v; want 2", len(got), err)
	}
	if n := state(); n != 1 {
		t.Fatalf("first run: %d requests, want 1 (the Retry-After ends the post and holds the target)", n)
	}
	for _, a := range got {
		if a.Actions[0].OK {
			t.Errorf("alert %s: webhook OK while the target answered 503", a.ID)
		}
	}

	// 5 minutes on, the receiver is back but asked for 10: nothing posted.
	mu.Lock()
	busy = false
	mu.Unlock()
	f.clock.Advance(5 * time.Minute)
	if _, err := mon.RunOnce(ctx, t0.Add(7*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n := state(); n != 1 {
		t.Errorf("run within the Retry-After: %d requests, want still 1", n)
	}
	if n := testutil.ToFloat64(f.reg.m.webhooks.WithLabelValues("held")); n != 2 {
		t.Errorf("held posts counted %v, want 2", n)
	}
	logMu.Lock()
	if !strings.Contains(logs.String(), "asked to wait (Retry-After)") || !strings.Contains(logs.String(), `"held":2`) {
		t.Errorf("the hold is not logged:\n%s", logs.String())
	}
	logMu.Unlock()

	// Past the date: both alerts are posted.
	f.clock.Advance(6 * time.Minute)
	if _, err := mon.RunOnce(ctx, t0.Add(13*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n := state(); n != 3 {
		t.Errorf("run after the Retry-After: %d requests in all, want 3", n)
	}
	if n := testutil.ToFloat64(f.reg.m.webhooks.WithLabelValues("posted")); n != 2 {
		t.Errorf("posted %v, want 2", n)
	}

	// A Retry-After of years holds the target for WebhookRetryAfterMax (30 min).
	mu.Lock()
	busy, retryAfter = true, "100000000"
	mu.Unlock()
	target := srv.URL + "/alerts"
	if err := mon.postWebhook(ctx, target, []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "Retry-After") {
		t.Fatalf("post answered 503 Retry-After 100000000: %v", err)
	}
	if h := mon.heldUntil(target, f.clock.Now()); !h.Equal(f.clock.Now().Add(30 * time.Minute)) {
		t.Errorf("held until %v, want 30 minutes from %v", h, f.clock.Now())
	}
}

// lockedWriter serialises writes to w (the run's workers log at once).
type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
