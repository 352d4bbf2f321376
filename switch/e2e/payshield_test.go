package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/switchyard/switchyard/hsm/payshield"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/termclient"
)

// startHSMServe runs hsm serve's server under the demo LMK on a loopback port; stop
// ends it and waits.
func startHSMServe(t *testing.T) (addr string, stop func()) {
	t.Helper()
	return startHSMServeOn(t, "127.0.0.1:0")
}

// startHSMServeOn is startHSMServe on addr (an HSM back on its address).
func startHSMServeOn(t *testing.T, addr string) (string, func()) {
	t.Helper()
	srv, err := payshield.NewServer(keys.DemoLMK(), payshield.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

// TestPayShieldBackend runs the demo switch with hsm.backend payshield against two
// hsm serve processes' servers: the demo keys are formed through them, a TPK PIN
// purchase and a MAC'd SoftPOS purchase with a DUKPT PIN are approved (a wrong PIN
// declined); with the first HSM gone the second takes over; with both gone a PIN
// purchase is answered 96 at once, not left hanging, and journaled, while /readyz
// stays 200 (every node shares the HSMs: none would do better); with the second
// back on its address, without a restart, PIN purchases are approved again.
func TestPayShieldBackend(t *testing.T) {
	first, stopFirst := startHSMServe(t)
	addr, stop := startHSMServe(t)
	f := startDemo(t, func(c *config.Config) {
		c.HSM = config.HSM{Backend: "payshield", Addrs: []string{first, addr}, Timeout: config.Duration(2 * time.Second)}
	})
	mac, _ := termclient.RetailMAC(demoTAK)
	tx := pos(1000)
	tx.PINBlock, _ = termclient.PINBlockTPK(demoTPK, "1234", tx.PAN)
	if r := f.send(tx); r.RC != "00" {
		t.Fatalf("TPK PIN 1234 through payShield: %+v", r)
	}
	tx = pos(1000)
	tx.PINBlock, _ = termclient.PINBlockTPK(demoTPK, "9999", tx.PAN)
	if r := f.send(tx); r.RC != "55" {
		t.Fatalf("TPK wrong PIN through payShield: %+v", r)
	}
	if r := sendOn(t, f.c, withDUKPTPIN(t, softpos(2000), "1234"), mac); r.RC != "00" || r.MAC == "" {
		t.Fatalf("SoftPOS DUKPT PIN with MAC through payShield: %+v", r)
	}
	stopFirst()
	tx = pos(1000)
	tx.PINBlock, _ = termclient.PINBlockTPK(demoTPK, "1234", tx.PAN)
	if r := f.send(tx); r.RC != "00" {
		t.Fatalf("TPK PIN with the first HSM down (failover): %+v", r)
	}
	if r := sendOn(t, f.c, withDUKPTPIN(t, softpos(2000), "1234"), mac); r.RC != "00" || r.MAC == "" {
		t.Fatalf("SoftPOS with the first HSM down (failover): %+v", r)
	}
	stop()
	tx = pos(1000)
	tx.PINBlock, _ = termclient.PINBlockTPK(demoTPK, "1234", tx.PAN)
	start := time.Now()
	r := f.send(tx)
	if r.RC != "96" || r.Reason != "hsm-unavailable" {
		t.Fatalf("PIN purchase with every HSM down: %+v, want 96 hsm-unavailable", r)
	}
	if rec, err := f.s.Journal.Get(r.RRN); err != nil || rec.RC != "96" || rec.Reason != "hsm-unavailable" || rec.DecidedBy != "hsm" {
		t.Fatalf("journal of the 96: %+v %v", rec, err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the 96 took %s", d)
	}
	if code, body := readyz(t, f); code != http.StatusOK {
		t.Fatalf("/readyz with every HSM down: %d %q, want 200 (an outage every node shares takes no node out)", code, body)
	}
	startHSMServeOn(t, addr)
	tx = pos(1000)
	tx.PINBlock, _ = termclient.PINBlockTPK(demoTPK, "1234", tx.PAN)
	if r := f.send(tx); r.RC != "00" {
		t.Fatalf("TPK PIN with the second HSM back: %+v", r)
	}
	if code, body := readyz(t, f); code != http.StatusOK {
		t.Fatalf("/readyz with the second HSM back: %d %q, want 200", code, body)
	}
}

// readyz returns the demo switch's /readyz status and body.
func readyz(t *testing.T, f *fixture) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + f.s.AdminAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
