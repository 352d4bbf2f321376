package issuersim

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// exchange sends a purchase with this RRN on a new connection and returns the response
// code, or an error when the connection fails or nothing comes within wait.
func exchange(t *testing.T, addr, rrn, mti string, wait time.Duration) (string, error) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer nc.Close()
	body, err := message.NewBuilder(message.DialectASCII, mti).Set(2, "4761739001010119").Set(3, "000000").
		Set(4, "000000001000").Set(7, "1201101010").Set(11, "000001").Set(14, "2912").Set(37, rrn).
		Set(41, "LT000001").Set(42, "000000000000003").Set(49, "156").Bytes(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(frontend.AppendFrame(nil, body)); err != nil {
		return "", err
	}
	_ = nc.SetReadDeadline(time.Now().Add(wait))
	resp, err := frontend.ReadFrame(bufio.NewReader(nc), nil, 0xFFFF)
	if err != nil {
		return "", err
	}
	var rc string
	if _, err := message.Scan(resp, message.DialectASCII, func(id int, v []byte) {
		if id == 39 {
			rc = string(v)
		}
	}); err != nil {
		t.Fatal(err)
	}
	return rc, nil
}

// TestOutageDown checks an outage of mode down: open connections are closed, new ones
// refused, and after the outage the simulator answers again on the same address.
func TestOutageDown(t *testing.T) {
	s, err := Start(Config{Addr: "127.0.0.1:0", Cards: DemoCards})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addr := s.Addr()
	if rc, err := exchange(t, addr, "000000000001", "0200", 5*time.Second); err != nil || rc != "00" {
		t.Fatalf("before the outage: rc %q, err %v", rc, err)
	}
	open, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	deadline := time.Now().Add(5 * time.Second)
	for len(s.connsOpen()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the simulator did not register the open connection")
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.StartOutage(OutageDown); err != nil {
		t.Fatal(err)
	}
	if err := s.StartOutage(OutageSilent); err == nil {
		t.Error("a second outage started while one was in progress")
	}
	_ = open.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := open.Read(make([]byte, 1)); err == nil {
		t.Error("a connection open at the outage was not closed")
	}
	if _, err := exchange(t, addr, "000000000002", "0200", 5*time.Second); err == nil {
		t.Error("the simulator answered during an outage of mode down")
	}
	if got := s.Addr(); got != addr {
		t.Errorf("address during the outage %s, want %s", got, addr)
	}
	if err := s.EndOutage(); err != nil {
		t.Fatal(err)
	}
	if rc, err := exchange(t, addr, "000000000003", "0200", 5*time.Second); err != nil || rc != "00" {
		t.Fatalf("after the outage: rc %q, err %v", rc, err)
	}
	if err := s.EndOutage(); err == nil {
		t.Error("EndOutage without an outage succeeded")
	}
}

// TestOutageSilent checks an outage of mode silent: connections are accepted but nothing
// is answered nor booked; a reversal afterwards is booked with its time.
func TestOutageSilent(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	s, err := Start(Config{Addr: "127.0.0.1:0", Cards: DemoCards, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.StartOutage(OutageSilent); err != nil {
		t.Fatal(err)
	}
	if _, err := exchange(t, s.Addr(), "000000000001", "0200", 300*time.Millisecond); err == nil {
		t.Fatal("answered during a silent outage")
	}
	if _, ok := s.Ledger()["000000000001"]; ok {
		t.Error("a request the silent issuer never processed is in its ledger")
	}
	if err := s.EndOutage(); err != nil {
		t.Fatal(err)
	}
	if rc, err := exchange(t, s.Addr(), "000000000002", "0200", 5*time.Second); err != nil || rc != "00" {
		t.Fatalf("after the outage: rc %q, err %v", rc, err)
	}
	if _, err := exchange(t, s.Addr(), "000000000002", "0420", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	e := s.Ledger()["000000000002"]
	if !e.Approved || !e.Reversed || !e.ReversedAt.Equal(now) {
		t.Errorf("ledger entry %+v: want approved, reversed at %v", e, now)
	}
}

func TestParseOutageMode(t *testing.T) {
	for s, want := range map[string]OutageMode{"down": OutageDown, "silent": OutageSilent} {
		if got, err := ParseOutageMode(s); err != nil || got != want {
			t.Errorf("ParseOutageMode(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseOutageMode("flaky"); err == nil {
		t.Error("ParseOutageMode accepted flaky")
	}
}
