package server

import (
	"net"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

// TestLateAnswerToClosedTerminalIsReversed: a terminal sends a purchase to a slow
// issuer and closes its connection; the approval comes later. Writing it would succeed
// (the first write after the peer's FIN does), but nobody reads it: the record must say
// undelivered and the approval be reversed through the store-and-forward queue.
func TestLateAnswerToClosedTerminalIsReversed(t *testing.T) {
	slow, err := issuersim.Start(issuersim.Config{Addr: "127.0.0.1:0", BIN: "411111", Latency: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	c := demoConfig(t, t.TempDir())
	c.Issuers = []config.Issuer{{ID: "slow", Addrs: []string{slow.Addr()}, Timeout: config.Duration(10 * time.Second)}}
	c.Routes = append(c.Routes, config.Route{Prefix: "411111", Issuer: "slow"})
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	s := start(t, c, nil)
	deadline := time.Now().Add(5 * time.Second)
	for !s.links["slow"].Up() {
		if time.Now().After(deadline) {
			t.Fatal("the slow issuer did not sign on")
		}
		time.Sleep(20 * time.Millisecond)
	}

	tx := purchase("4111111111111111", 1000)
	tx.STAN, tx.Time = "424242", time.Now()
	m, err := termclient.Build(tx, message.DialectASCII)
	if err != nil {
		t.Fatal(err)
	}
	body, err := message.Pack(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	rc := rawDial(t, s.ListenerAddr("ascii"))
	rc.writeFrame(body)
	_ = rc.nc.(*net.TCPConn).CloseWrite() // the terminal gives up before the issuer answers
	de7 := message.FormatDE7(tx.Time)

	rec := &journal.Record{}
	deadline = time.Now().Add(15 * time.Second)
	for {
		if rrn, ok, _ := s.Journal.LookupDuplicate(tx.TID, tx.STAN, de7); ok {
			if rec, err = s.Journal.Get(rrn); err == nil && hasState(rec, journal.StateReversed) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("approval answered to a closed terminal not reversed: rc %q, events %+v", rec.RC, rec.Events)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if rec.RC != "00" || !hasState(rec, journal.StateUndeliver) || hasState(rec, journal.StateResponded) {
		t.Fatalf("record: rc %s, events %+v; want an approval undelivered, not responded", rec.RC, rec.Events)
	}
	// The reversal is owed to the issuer: queued, or already acknowledged.
	items, err := s.Queue.Pending("slow")
	if err != nil {
		t.Fatal(err)
	}
	queued := s.Queue.IssuerStats()["slow"].Acked.Load() > 0
	for _, it := range items {
		queued = queued || it.MTI == "0420" && it.RRN == rec.RRN
	}
	if !queued {
		t.Fatalf("no reversal queued for %s: %+v", rec.RRN, items)
	}
	// The drain is measurable: the reversal's acknowledgement is counted by issuer.
	deadline = time.Now().Add(15 * time.Second)
	for safMetric(t, s, "switchyard_saf_acked_total", "slow") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("switchyard_saf_acked_total{issuer=\"slow\"} never reached 1")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// safMetric reads one issuer's value of a store-and-forward metric (-1 if absent).
func safMetric(t *testing.T, s *Server, name, issuer string) float64 {
	t.Helper()
	mfs, err := s.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == issuer {
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

// TestConnectionLostWithRequestSentIsReversed: the issuer takes the request (and, as
// far as anyone knows, approves it) and then the connection closes before its answer.
// The request is in doubt like a timeout: the terminal gets 91 and a reversal is owed,
// instead of the approval standing at the issuer while the terminal was declined.
func TestConnectionLostWithRequestSentIsReversed(t *testing.T) {
	lost, err := issuersim.Start(issuersim.Config{Addr: "127.0.0.1:0", BIN: "411111",
		Faults: issuersim.Faults{Disconnect: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer lost.Close()
	c := demoConfig(t, t.TempDir())
	c.Issuers = []config.Issuer{{ID: "lost", Addrs: []string{lost.Addr()}, Timeout: config.Duration(10 * time.Second)}}
	c.Routes = append(c.Routes, config.Route{Prefix: "411111", Issuer: "lost"})
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	s := start(t, c, nil)
	deadline := time.Now().Add(5 * time.Second)
	for !s.links["lost"].Up() {
		if time.Now().After(deadline) {
			t.Fatal("issuer link not up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	tc := dial(t, s, "ascii", message.DialectASCII)
	r := send(t, tc, message.DialectASCII, purchase("4111111111111111", 1000))
	if r.RC != "91" || r.Reason != "issuer-error" {
		t.Fatalf("answer: %+v; want 91 issuer-error", r)
	}
	rec, err := s.Journal.Get(r.RRN)
	if err != nil {
		t.Fatal(err)
	}
	if !hasState(rec, journal.StateTimedOut) {
		t.Fatalf("record events %+v; want the request in doubt (timed_out)", rec.Events)
	}
	items, err := s.Queue.Pending("lost")
	if err != nil {
		t.Fatal(err)
	}
	queued := s.Queue.IssuerStats()["lost"].Acked.Load() > 0
	for _, it := range items {
		queued = queued || it.MTI == "0420" && it.RRN == rec.RRN
	}
	if !queued {
		t.Fatalf("no reversal owed for %s after the connection was lost with it sent: %+v", rec.RRN, items)
	}
}
