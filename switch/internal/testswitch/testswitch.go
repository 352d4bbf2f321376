// Package testswitch holds what the switch's own test packages share: a demo
// configuration on ephemeral loopback ports in a given data directory, and a log sink
// that many goroutines may write to.
package testswitch

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/syncbuf"
	"github.com/switchyard/switchyard/switch/config"
)

// LoadTerminals is how many load terminals (LT000001 to LT000200) the demo fleet of
// DemoConfig has. The full fleet's 2,000 made up some 45% of the time of a test that
// starts a demo switch under the race detector (docs/performance.md Part 51); no
// test of these packages uses more than a few.
const LoadTerminals = 200

// DemoConfig is the demo configuration with its data in dir, every listener and the
// admin server on a free loopback port, the repository's rules (rulesDir, relative to
// the test's package), a short drain and LoadTerminals load terminals.
func DemoConfig(t testing.TB, dir, rulesDir string) *config.Config {
	t.Helper()
	c := config.Demo()
	c.DataDir = dir
	c.DemoLoadTerminals = LoadTerminals
	c.Admin.Addr = "127.0.0.1:0"
	for i := range c.Listeners {
		c.Listeners[i].Addr = "127.0.0.1:0"
	}
	c.Shutdown.DrainTimeout = config.Duration(5 * time.Second)
	c.RulesDir = rulesDir
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// SyncBuffer collects log output from many goroutines (syncbuf.Buffer).
type SyncBuffer = syncbuf.Buffer
