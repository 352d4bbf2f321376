// Package retryafter reads the Retry-After header of an HTTP answer (RFC 9110,
// 10.2.3: delay-seconds or an HTTP date), for the switch's webhook posters (the
// offline-alert webhooks of switch/registry, the merchant notices of
// switch/notify) to post to a receiver no sooner than it asked. Each caller caps
// the wait it honours, so that a receiver cannot silence it for days.
package retryafter

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Parse reads a Retry-After value at now: delay-seconds, or an HTTP date (a date
// in the past is no wait). A number too large for a Duration is the largest
// Duration (for the caller to cap). ok is false for an empty or malformed value.
func Parse(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		n, err := strconv.ParseUint(v, 10, 63)
		if err != nil {
			if ne, isNum := err.(*strconv.NumError); isNum && ne.Err == strconv.ErrRange {
				return time.Duration(1<<63 - 1), true // huge: capped by the caller
			}
			return 0, false
		}
		if n > uint64((1<<63-1)/int64(time.Second)) {
			return time.Duration(1<<63 - 1), true
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// Of returns the wait an answer of status 429 Too Many Requests or 503 Service
// Unavailable asks for with its Retry-After, read at now; ok is false for another
// status, or an answer without a valid header (the caller's own backoff applies).
func Of(resp *http.Response, now time.Time) (wait time.Duration, ok bool) {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return 0, false
	}
	return Parse(resp.Header.Get("Retry-After"), now)
}
