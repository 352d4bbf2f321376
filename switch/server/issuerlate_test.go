package server

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/internal/testswitch"
	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/message"
)

// TestIssuerAnswerOfWrongMTI: an issuer that answers a purchase (0200) with a 0410
// carrying the purchase's DE 11 and DE 37 has not answered it. The switch took any
// x1x or x3x answer with the right STAN and RRN: the 0410/00 approved the purchase.
// Now the answer is counted (switchyard_issuer_errors_total{kind="wrong-mti"}) and
// logged with both MTIs, the purchase waits for its answer and, without one, times
// out: 91 and reversed, as after an answer that cannot be read.
func TestIssuerAnswerOfWrongMTI(t *testing.T) {
	sim, err := issuersim.Start(issuersim.Config{Addr: "127.0.0.1:0", BIN: "411111", Faults: issuersim.Faults{WrongMTI: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	c := demoConfig(t, t.TempDir())
	c.Issuers = []config.Issuer{{ID: "sim", Addrs: []string{sim.Addr()}, Timeout: config.Duration(500 * time.Millisecond)}}
	c.Routes = append(c.Routes, config.Route{Prefix: "411111", Issuer: "sim"})
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &testswitch.SyncBuffer{}
	s := start(t, c, logs)
	for deadline := time.Now().Add(5 * time.Second); !s.links["sim"].Up(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the issuer did not sign on")
		}
	}
	tc := dial(t, s, "ascii", message.DialectASCII)
	r := send(t, tc, message.DialectASCII, purchase("4111111111111111", 1000))
	if r.RC != message.RCIssuerUnavailable {
		t.Fatalf("a purchase the issuer answered only with a 0410: %+v; want 91 (no answer in time)", r)
	}
	if e := sim.Ledger()[r.RRN]; e.Fault != "wrong-mti" {
		t.Fatalf("the simulator's ledger: %+v; the test did not send a wrong answer", e)
	}
	if n := testutil.ToFloat64(s.Metrics.IssuerErrors.WithLabelValues("sim", "wrong-mti")); n < 1 {
		t.Errorf("wrong-mti answers counted %v, want at least 1", n)
	}
	if n := testutil.ToFloat64(s.Metrics.IssuerErrors.WithLabelValues("sim", "timeout")); n != 1 {
		t.Errorf("timeouts counted %v, want 1", n)
	}
	if !strings.Contains(logs.String(), `"mti":"0410","request_mti":"0200"`) {
		t.Errorf("no log line names the answer's MTI and the request's:\n%s", logs.String())
	}
	rec, err := s.Journal.Get(r.RRN)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Approved() || rec.Reason != "issuer-timeout" {
		t.Errorf("the purchase's record: rc %s reason %s; want the timeout's 91", rec.RC, rec.Reason)
	}
}
