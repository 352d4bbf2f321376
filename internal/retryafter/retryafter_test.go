package retryafter

import (
	"net/http"
	"testing"
	"time"
)

// TestParse: delay-seconds and HTTP dates (RFC 9110's three forms) are read; a
// date past is no wait; a value too large for a Duration is the largest (capped
// by the caller); anything else is ignored.
func TestParse(t *testing.T) {
	now := time.Date(2026, 12, 6, 14, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"0":                              0,
		" 120 ":                          2 * time.Minute,
		"Sun, 06 Dec 2026 14:05:00 GMT":  5 * time.Minute,
		"Sunday, 06-Dec-26 14:00:30 GMT": 30 * time.Second,
		"Sun Dec  6 14:01:00 2026":       time.Minute,
		"Sun, 06 Dec 2026 13:00:00 GMT":  0,
		"99999999999999999999999":        time.Duration(1<<63 - 1),
		"9223372036854775807":            time.Duration(1<<63 - 1),
	} {
		if got, ok := Parse(v, now); !ok || got != want {
			t.Errorf("Retry-After %q: %v %v, want %v", v, got, ok, want)
		}
	}
	for _, v := range []string{"", "-5", "1.5", "soon", "120s", "Sun, 06 Dec 2026"} {
		if got, ok := Parse(v, now); ok {
			t.Errorf("Retry-After %q: %v, want it ignored", v, got)
		}
	}
}

// TestOf: only 429 and 503 answers' Retry-After counts.
func TestOf(t *testing.T) {
	now := time.Now()
	for status, want := range map[int]bool{429: true, 503: true, 500: false, 200: false, 301: false} {
		resp := &http.Response{StatusCode: status, Header: http.Header{"Retry-After": {"7"}}}
		if d, ok := Of(resp, now); ok != want || (ok && d != 7*time.Second) {
			t.Errorf("status %d with Retry-After 7: %v %v, want ok %v", status, d, ok, want)
		}
	}
	if _, ok := Of(&http.Response{StatusCode: 429, Header: http.Header{}}, now); ok {
		t.Error("429 without Retry-After: ok")
	}
}
