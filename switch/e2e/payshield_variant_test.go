package e2e

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/payshield"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/termclient"
)

// TestPayShieldBackendVariant runs the demo switch with hsm.backend payshield and
// lmk_scheme variant against hsm serve holding the Thales test variant LMK: the
// demo keys are formed through it as U tokens, a TPK PIN purchase is approved (a
// wrong PIN declined) and a MAC'd SoftPOS purchase with a DUKPT PIN is approved.
func TestPayShieldBackendVariant(t *testing.T) {
	pairs, err := payshield.ParseVariantLMK(payshield.TestLMK)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := payshield.NewVariantServer(pairs, payshield.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })

	f := startDemo(t, func(c *config.Config) {
		c.HSM = config.HSM{Backend: "payshield", LMKScheme: "variant", Addrs: []string{ln.Addr().String()}, Timeout: config.Duration(2 * time.Second)}
	})
	if rec, err := f.s.Keys.Key(context.Background(), hsm.KeyRef{ID: "T0000001.TPK"}); err != nil || len(rec.Block) != 33 || rec.Block[0] != 'U' {
		t.Fatalf("the demo TPK in the key store: %q, %v; want a U token", rec.Block, err)
	}
	tx := pos(1000)
	tx.PINBlock, _ = termclient.PINBlockTPK(demoTPK, "1234", tx.PAN)
	if r := f.send(tx); r.RC != "00" {
		t.Fatalf("TPK PIN 1234 through payShield (variant LMK): %+v", r)
	}
	tx = pos(1000)
	tx.PINBlock, _ = termclient.PINBlockTPK(demoTPK, "9999", tx.PAN)
	if r := f.send(tx); r.RC != "55" {
		t.Fatalf("TPK wrong PIN through payShield (variant LMK): %+v", r)
	}
	mac, _ := termclient.RetailMAC(demoTAK)
	if r := sendOn(t, f.c, withDUKPTPIN(t, softpos(2000), "1234"), mac); r.RC != "00" || r.MAC == "" {
		t.Fatalf("SoftPOS DUKPT PIN with MAC through payShield (variant LMK): %+v", r)
	}
}
