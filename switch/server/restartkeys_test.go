package server

import (
	"slices"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/config"
)

// TestRestartKeysNamesEveryStartOnlyChange: a reload names every changed setting
// that it does not apply, by its path; it named only those of a hand-kept list
// (data_dir, listeners...), and said nothing of timezone, shutdown.drain_timeout,
// security.key_grace and the others. The settings a reload applies (log.level,
// admin.tokens, attestation.apps) are not named, nor is anything when nothing
// changed.
func TestRestartKeysNamesEveryStartOnlyChange(t *testing.T) {
	if got := restartKeys(config.Demo(), config.Demo()); len(got) != 0 {
		t.Fatalf("unchanged: %v, want none", got)
	}
	cases := []struct {
		key    string
		change func(c *config.Config)
	}{
		{"timezone", func(c *config.Config) { c.Timezone = "Europe/Paris" }},
		{"shutdown.drain_timeout", func(c *config.Config) { c.Shutdown.DrainTimeout = config.Duration(time.Minute) }},
		{"journal.segment_mb", func(c *config.Config) { c.Journal.SegmentMB++ }},
		{"risk.counter_flush", func(c *config.Config) { c.Risk.CounterFlush = config.Duration(time.Second) }},
		{"refunds.window", func(c *config.Config) { c.Refunds.Window = config.Duration(time.Hour) }},
		{"breaker.window", func(c *config.Config) { c.Breaker.Window = config.Duration(time.Minute) }},
		{"security.key_grace", func(c *config.Config) { c.Security.KeyGrace = config.Duration(time.Hour) }},
		{"data_dir", func(c *config.Config) { c.DataDir = "/elsewhere" }},
		{"listeners", func(c *config.Config) { c.Listeners[0].Addr = "127.0.0.1:9999" }},
		{"journal.exit_on_broken_log", func(c *config.Config) { c.Journal.ExitOnBrokenLog = new(false) }},
	}
	for _, tc := range cases {
		next := config.Demo()
		tc.change(next)
		if got := restartKeys(config.Demo(), next); !slices.Equal(got, []string{tc.key}) {
			t.Errorf("%s changed: restart keys %v, want [%s]", tc.key, got, tc.key)
		}
	}
	live := config.Demo()
	live.Log.Level = "debug"
	live.Admin.Tokens = []admin.Token{{Token: "x"}}
	live.Attestation.Apps = append(live.Attestation.Apps, "com.example.pos")
	if got := restartKeys(config.Demo(), live); len(got) != 0 {
		t.Errorf("only settings a reload applies changed: restart keys %v, want none", got)
	}
}
