package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSignalDuringStart: a SIGTERM that arrives while the switch is starting (here
// held by an issuer that takes the connection and never answers its sign-on) is
// handled once the start is done, by a drain and exit 0, not by the default action
// that killed the process with no log line (until 7 December 2026).
func TestSignalDuringStart(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess test")
	}
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "switch.yaml")
	cfg := fmt.Sprintf(`demo: true
demo_load_terminals: 10
data_dir: %s
rules_dir: ../../rules
listeners: [{name: ascii, addr: "127.0.0.1:0"}]
admin: {addr: "127.0.0.1:0"}
demo_issuer: {external: "%s", timeout: 2s}
security: {card_hash_key_hex: "5357495443485941524444454d4f2d4b45592d464f522d504154482d48415348"}
`, filepath.Join(dir, "data"), silent.Addr())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "switch.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(switchyardBinary(t), "serve", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// The issuer link dials during the start, after the handlers are installed.
	select {
	case c := <-accepted:
		defer c.Close()
	case err := <-done:
		t.Fatalf("the switch exited before dialing its issuer: %v; see %s", err, logPath)
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("the switch did not dial its issuer within 60 s; see %s", logPath)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		out, _ := os.ReadFile(logPath)
		if err != nil {
			t.Fatalf("a SIGTERM during the start: exit %v, want 0 after a drain; log:\n%s", err, out)
		}
		if !strings.Contains(string(out), "draining") {
			t.Fatalf("a SIGTERM during the start: no drain logged; log:\n%s", out)
		}
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("the switch did not exit within 90 s of a SIGTERM during its start; see %s", logPath)
	}
}
