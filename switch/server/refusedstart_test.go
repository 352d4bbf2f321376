package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/config"
)

// TestRefusedStartLeavesNewDirectory: a start refused for its LMK, its card hash
// key or a listener's certificate, on a data directory that does not exist yet,
// leaves it so: nothing is created. Before, those were read after the data
// directory was opened, so Badger's files and the journal's directory stayed in a
// directory the switch never used (a typo in data_dir left a tree behind).
func TestRefusedStartLeavesNewDirectory(t *testing.T) {
	files := t.TempDir()
	missing := filepath.Join(files, "absent")
	for _, tc := range []struct {
		name   string
		change func(c *config.Config)
		want   string
	}{
		{"LMK file missing", func(c *config.Config) { c.Security.LMKFile = missing }, "security.lmk_file"},
		{"card hash key block not a block", func(c *config.Config) { c.Security.CardHashKeyBlock = "not-a-block" }, "card"},
		{"listener certificate missing", func(c *config.Config) {
			c.Listeners[0].TLS = &config.TLS{CertFile: missing, KeyFile: missing}
		}, "listener "},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "new-data")
			c := demoConfig(t, dataDir)
			tc.change(c)
			s, err := New(c, zerolog.Nop(), testDemoIssuer)
			if err == nil {
				s.Close()
				t.Fatalf("start with %s: no error", tc.name)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("start with %s: %v, want it to name %q", tc.name, err, tc.want)
			}
			if _, serr := os.Stat(dataDir); !os.IsNotExist(serr) {
				entries, _ := os.ReadDir(dataDir)
				t.Fatalf("start refused (%v), but the new data directory %s exists (%d entries; stat: %v)", err, dataDir, len(entries), serr)
			}
		})
	}
}
