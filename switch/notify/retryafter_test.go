package notify

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/syncbuf"
)

// TestRetryAfterHoldsHost: a webhook host answering 429 or 503 with a Retry-After
// (delay-seconds or an HTTP date) gets no post, from any merchant on it, before the
// time it asked for, by the outbox's clock; the merchant's next attempt waits for it
// too (its retry_in), though the backoff is 10 ms; once the time has passed, the
// notices go. A Retry-After longer than RetryAfterMax holds the host that long only.
// Before, the answer counted as any failure: the next post came after the backoff.
func TestRetryAfterHoldsHost(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 14, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		status     int
		retryAfter string
		held       time.Duration // the hold expected
	}{
		{"429 seconds", http.StatusTooManyRequests, "120", 2 * time.Minute},
		{"503 date", http.StatusServiceUnavailable, t0.Add(10 * time.Minute).Format(http.TimeFormat), 10 * time.Minute},
		{"capped", http.StatusTooManyRequests, "86400", time.Hour}, // RetryAfterMax
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var posts []string // paths, in order
			busy := true
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				posts = append(posts, r.URL.Path)
				if busy {
					busy = false
					w.Header().Set("Retry-After", tc.retryAfter)
					w.WriteHeader(tc.status)
				}
			}))
			defer hs.Close()
			count := func() int {
				mu.Lock()
				defer mu.Unlock()
				return len(posts)
			}
			clock := &testClock{t: t0}
			logs := &syncbuf.Buffer{}
			b, err := Open(openDB(t), Options{CardHashKey: testKey, AllowPrivate: loopback, RetryMin: 10 * time.Millisecond,
				RetryMax: 20 * time.Millisecond, RetryAfterMax: time.Hour, Now: clock.Now, Logger: zerolog.New(logs)})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range []string{"M1", "M2"} {
				if err := b.SetEndpoint(m, hs.URL+"/"+m, "0123456789abcdef", "op", ""); err != nil {
					t.Fatal(err)
				}
			}
			deliverOne(t, b, "M1", "000000000001")
			if n := count(); n != 1 {
				t.Fatalf("%d posts, want 1 (M1's, answered %d)", n, tc.status)
			}
			if want := fmt.Sprintf(`"retry_in":%d`, tc.held.Milliseconds()); !strings.Contains(logs.String(), want) {
				t.Errorf("M1's next attempt not put off for %s (the log's %s):\n%s", tc.held, want, logs.String())
			}
			// M2, on the same host, within the hold: not posted.
			clock.Set(t0.Add(tc.held - time.Second))
			deliverOne(t, b, "M2", "000000000002")
			if n := count(); n != 1 {
				t.Fatalf("%d posts within the Retry-After, want still 1", n)
			}
			l, err := b.Deliveries("M2", 0)
			if err != nil || len(l.Pending) != 1 || !strings.Contains(l.Pending[0].LastError, "asked for no post before "+t0.Add(tc.held).Format(time.RFC3339)) {
				t.Fatalf("M2 within the hold: %+v %v; want it pending, held until %s", l, err, t0.Add(tc.held).Format(time.RFC3339))
			}
			// Past it: both merchants' notices go.
			clock.Set(t0.Add(tc.held))
			b.deliverMerchant(t.Context(), "M2")
			b.deliverMerchant(t.Context(), "M1")
			mu.Lock()
			defer mu.Unlock()
			if strings.Join(posts, " ") != "/M1 /M2 /M1" {
				t.Fatalf("posts %v, want /M1 (answered %d), then /M2 and /M1 once the hold ended", posts, tc.status)
			}
		})
	}
}
