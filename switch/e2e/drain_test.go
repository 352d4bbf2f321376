package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

func subprocessSwitch(t *testing.T, sim *issuersim.Sim, extra string) *switchProc {
	t.Helper()
	dir := t.TempDir()
	p := &switchProc{t: t, bin: switchyardBinary(t), dir: dir}
	p.cfg = filepath.Join(dir, "switch.yaml")
	cfg := fmt.Sprintf(`demo: true
demo_load_terminals: 200
data_dir: %s
rules_dir: ../../rules
listeners: [{name: ascii, addr: "%s"}]
admin:
  addr: "%s"
  tokens_file: %s
demo_issuer: {external: "%s", timeout: 5s}
shutdown: {drain_timeout: 10s}
security: {card_hash_key_hex: "5357495443485941524444454d4f2d4b45592d464f522d504154482d48415348"}
%s`, filepath.Join(dir, "data"), "127.0.0.1:0", "127.0.0.1:0", filepath.Join(dir, "tokens.yaml"), sim.Addr(), extra)
	if err := os.WriteFile(filepath.Join(dir, "tokens.yaml"), []byte("- {name: ops, role: operator, token: ops-token-1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p.start()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.kill()
		}
	})
	return p
}

func adminGet(addr, path, token string) int {
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestGracefulDrain: SIGTERM turns /readyz to 503, refuses new connections, answers the
// transactions in flight, and exits 0.
func TestGracefulDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess test")
	}
	sim, err := issuersim.Start(issuersim.Config{Addr: "127.0.0.1:0", Latency: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	p := subprocessSwitch(t, sim, "")
	c, err := termclient.Dial(p.termAddr, message.DialectASCII, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	rcs := make([]string, 4)
	for i := range rcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tx := termclient.Txn{PAN: testPAN(900 + i), Amount: 1000, Expiry: "2912", TID: fmt.Sprintf("LT%06d", 10+i), MID: "000000000000003"}
			m, _ := termclient.Build(tx, message.DialectASCII)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			resp, err := c.Send(ctx, m, nil)
			if err != nil {
				rcs[i] = "error: " + err.Error()
				return
			}
			r, _ := termclient.Decode(resp)
			rcs[i] = r.RC
		}()
	}
	waitFor(t, "the four requests to reach the issuer", func() bool { return sim.Stats.Requests.Load() == 4 })
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "/readyz to turn 503", func() bool { return adminGet(p.adminAddr, "/readyz", "") == http.StatusServiceUnavailable })
	if nc, err := net.DialTimeout("tcp", p.termAddr, time.Second); err == nil {
		nc.Close()
		t.Fatal("a new connection was accepted while draining")
	}
	wg.Wait()
	for i, rc := range rcs {
		if rc != "00" {
			t.Fatalf("in-flight transaction %d: %s", i, rc)
		}
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("exit after drain: %v", err)
	}
}

// TestSIGHUPReloadsWithoutDroppingConnections: new admin tokens apply, the terminal's
// connection stays up.
func TestSIGHUPReloadsWithoutDroppingConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess test")
	}
	sim, err := issuersim.Start(issuersim.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	p := subprocessSwitch(t, sim, "")
	c, err := termclient.Dial(p.termAddr, message.DialectASCII, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buy := func(i int) string {
		tx := termclient.Txn{PAN: testPAN(950 + i), Amount: 1000, Expiry: "2912", TID: "LT000020", MID: "000000000000003"}
		m, _ := termclient.Build(tx, message.DialectASCII)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := c.Send(ctx, m, nil)
		if err != nil {
			return err.Error()
		}
		r, _ := termclient.Decode(resp)
		return r.RC
	}
	if rc := buy(1); rc != "00" {
		t.Fatal(rc)
	}
	if code := adminGet(p.adminAddr, "/api/v1/merchants", "new-token-2"); code != http.StatusUnauthorized {
		t.Fatalf("unknown token: %d", code)
	}
	if err := os.WriteFile(filepath.Join(p.dir, "tokens.yaml"), []byte("- {name: ops, role: operator, token: ops-token-1}\n- {name: ana, role: analyst, token: new-token-2}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new token", func() bool { return adminGet(p.adminAddr, "/api/v1/merchants", "new-token-2") == http.StatusOK })
	if rc := buy(2); rc != "00" {
		t.Fatalf("the connection did not survive the reload: %s", rc)
	}
	waitFor(t, "the reload to be logged", func() bool {
		b, _ := os.ReadFile(filepath.Join(p.dir, "switch-1.log"))
		return strings.Contains(string(b), "admin tokens applied")
	})
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
}
