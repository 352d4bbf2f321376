package server

import (
	"io"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

// simSwitch starts an issuer simulator with faults for BIN 411111, and a demo
// switch routing that BIN to it as issuer "sim" with the given timeout, logging to
// logs (nil: discarded); it returns once the switch has signed on to the simulator.
func simSwitch(t *testing.T, faults issuersim.Faults, timeout time.Duration, logs io.Writer) (*issuersim.Sim, *Server) {
	t.Helper()
	return simSwitchWith(t, faults, timeout, logs, nil)
}

// simSwitchWith is simSwitch with change applied to the switch's configuration
// before it is validated (nil: none).
func simSwitchWith(t *testing.T, faults issuersim.Faults, timeout time.Duration, logs io.Writer, change func(*config.Config)) (*issuersim.Sim, *Server) {
	t.Helper()
	sim, err := issuersim.Start(issuersim.Config{Addr: "127.0.0.1:0", BIN: "411111", Faults: faults})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	c := demoConfig(t, t.TempDir())
	c.Issuers = []config.Issuer{{ID: "sim", Addrs: []string{sim.Addr()}, Timeout: config.Duration(timeout)}}
	c.Routes = append(c.Routes, config.Route{Prefix: "411111", Issuer: "sim"})
	if change != nil {
		change(c)
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	s := start(t, c, logs)
	for deadline := time.Now().Add(5 * time.Second); !s.links["sim"].Up(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the issuer did not sign on")
		}
	}
	return sim, s
}

// voidedSale buys 10.00 with the simulator's card over tc, sets the simulator's
// faults, then voids the purchase (both answered 00); it returns the purchase's
// answer.
func voidedSale(t *testing.T, tc *termclient.Client, sim *issuersim.Sim, faults issuersim.Faults) termclient.Result {
	t.Helper()
	const card = "4111111111111111"
	sale := send(t, tc, message.DialectASCII, purchase(card, 1000))
	if sale.RC != "00" {
		t.Fatalf("purchase: %+v", sale)
	}
	sim.SetFaults(faults)
	void := purchase(card, 1000)
	void.ProcCode, void.RRN, void.AuthCode = message.PCVoid, sale.RRN, sale.AuthCode
	if r := send(t, tc, message.DialectASCII, void); r.RC != "00" {
		t.Fatalf("void: %+v", r)
	}
	return sale
}
