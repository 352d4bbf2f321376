package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/server"
)

// fakeReloader records the configurations it is given and answers nothing refused.
type fakeReloader struct{ got []*config.Config }

func (f *fakeReloader) Reload(next *config.Config) server.ReloadResult {
	f.got = append(f.got, next)
	return server.ReloadResult{}
}

// reloadConfigFile writes a configuration file of demo mode with the given extra
// lines and returns its path.
func reloadConfigFile(t *testing.T, extra string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "switchyard.yaml")
	in := "demo: true\nsecurity: {card_hash_key_hex: " + config.DemoCardHashKey + "}\n" +
		"listeners: [{name: ascii, addr: 127.0.0.1:8583}]\n" + extra
	if err := os.WriteFile(p, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// lastLine decodes the last JSON line of the log.
func lastLine(t *testing.T, log *bytes.Buffer) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatalf("last log line %q: %v", lines[len(lines)-1], err)
	}
	return m
}

// TestReloadRefusedConfigIsInTheSummary: a SIGHUP whose configuration file does not
// load (a misspelt log level) keeps the running configuration, and its summary line
// says so at error level, naming the error under refused: it said info and refused
// [] after the error line, and alerting keys on the summary.
func TestReloadRefusedConfigIsInTheSummary(t *testing.T) {
	var buf bytes.Buffer
	log := zerolog.New(&buf)
	f := &fakeReloader{}
	reload(f, log, reloadConfigFile(t, "log: {level: debgu}\n"), overrides{})
	if len(f.got) != 1 || f.got[0] != nil {
		t.Fatalf("reloaded with %v, want the running configuration (nil)", f.got)
	}
	m := lastLine(t, &buf)
	refused, _ := m["refused"].([]any)
	if m["level"] != "error" || !strings.HasPrefix(m["message"].(string), "SIGHUP: reload done") ||
		len(refused) != 1 || !strings.Contains(refused[0].(string), "log.level") {
		t.Errorf("summary %v, want error level and the configuration's error under refused", m)
	}

	buf.Reset()
	reload(f, log, reloadConfigFile(t, ""), overrides{})
	if m := lastLine(t, &buf); m["level"] != "info" || len(f.got) != 2 || f.got[1] == nil {
		t.Errorf("a good file: summary %v, configuration %v; want info and the new configuration", m, f.got[1])
	}
}

// TestReloadKeepsCommandLineOverrides: serve's --data, --admin-addr and --listen
// replace settings of the file; a SIGHUP reads the file again with them put in as at
// start. Without them every reload compared the file's data_dir, admin.addr and
// listeners with the overridden ones and named all three restart_needed.
func TestReloadKeepsCommandLineOverrides(t *testing.T) {
	var buf bytes.Buffer
	f := &fakeReloader{}
	over := overrides{dataDir: "/var/lib/sy", adminAddr: "127.0.0.1:18080", listen: []string{"ascii=127.0.0.1:18583"}}
	reload(f, zerolog.New(&buf), reloadConfigFile(t, ""), over)
	if len(f.got) != 1 || f.got[0] == nil {
		t.Fatalf("reloaded with %v, want the new configuration\n%s", f.got, buf.String())
	}
	c := f.got[0]
	if c.DataDir != over.dataDir || c.Admin.Addr != over.adminAddr || c.Listeners[0].Addr != "127.0.0.1:18583" {
		t.Errorf("reloaded data_dir %q, admin.addr %q, listeners[0].addr %q; want the command line's %q, %q, 127.0.0.1:18583",
			c.DataDir, c.Admin.Addr, c.Listeners[0].Addr, over.dataDir, over.adminAddr)
	}

	// An override the new file no longer fits (its listener renamed) refuses the
	// reload, as it would refuse the start.
	buf.Reset()
	reload(f, zerolog.New(&buf), renamedListenerFile(t), over)
	if m := lastLine(t, &buf); m["level"] != "error" || f.got[1] != nil {
		t.Errorf("--listen ascii=... with no listener ascii: summary %v, configuration %v; want error and the running one", m, f.got[1])
	}
}

// renamedListenerFile is reloadConfigFile's file with its listener named pos.
func renamedListenerFile(t *testing.T) string {
	p := reloadConfigFile(t, "")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, bytes.Replace(b, []byte("name: ascii"), []byte("name: pos"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
