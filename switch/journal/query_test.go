package journal

import (
	"testing"
	"time"
)

// TestParseTime: every form a query time takes; a duration before now with or
// without the minus `rules backtest` wants (once "-24h" silently meant tomorrow).
func TestParseTime(t *testing.T) {
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	sh := time.FixedZone("CST", 8*3600)
	for in, want := range map[string]time.Time{
		"":                     {},
		"2026-12-01T08:00:00Z": time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC),
		"2026-12-01":           time.Date(2026, 12, 1, 0, 0, 0, 0, sh),
		"1764921600":           time.Unix(1764921600, 0),
		"24h":                  now.Add(-24 * time.Hour),
		"-24h":                 now.Add(-24 * time.Hour),
		"90m":                  now.Add(-90 * time.Minute),
		"7d":                   now.Add(-7 * 24 * time.Hour),
		"-7d":                  now.Add(-7 * 24 * time.Hour),
	} {
		got, err := ParseTime(in, now, sh)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"--24h", "+24h", "yesterday", "7x", "-d", "1.5d"} {
		if got, err := ParseTime(in, now, sh); err == nil {
			t.Errorf("ParseTime(%q) = %v, want an error", in, got)
		}
	}
}
