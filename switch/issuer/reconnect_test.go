package issuer

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/message"
)

// purchase sends an approvable 0200 on l and returns its DE 39, or the error.
func purchase(l *Link, rrn int) (string, error) {
	m := iso8583.NewMessage(message.SpecASCII)
	m.MTI("0200")
	for id, v := range map[int]string{2: "4761739001010119", 3: "000000", 4: "000000001000",
		7: message.FormatDE7(time.Now()), 11: l.NextSTAN(), 14: "2912", 37: fmt.Sprintf("%012d", rrn),
		41: "T0000001", 42: "000000000000001"} {
		if err := m.Field(id, v); err != nil {
			return "", err
		}
	}
	resp, err := l.Send(context.Background(), m, time.Second)
	if err != nil {
		return "", err
	}
	return resp.GetString(39)
}

// startSim starts the issuer simulator on addr, retrying briefly while the port is
// still being released by the simulator that listened there before.
func startSim(t *testing.T, addr string) *issuersim.Sim {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		sim, err := issuersim.Start(issuersim.Config{Addr: addr})
		if err == nil {
			return sim
		}
		if time.Now().After(deadline) {
			t.Fatalf("start the issuer on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReconnectAfterOutageWithinCap takes the issuer away for longer than the
// backoff needs to reach its cap, brings it back on the same address, and checks
// that the link signs on and approves again within the default cap plus its jitter:
// with the old 30 s cap an outage of 7.5 s kept approvals away for another 7.5 s.
func TestReconnectAfterOutageWithinCap(t *testing.T) {
	sim := startSim(t, "127.0.0.1:0")
	addr := sim.Addr()
	l, err := Dial(Config{ID: "test", Addrs: []string{addr}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	waitUp := func(what string, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for !l.Up() {
			if time.Since(start) > within {
				t.Fatalf("%s: the link is not signed on after %v", what, within)
			}
			time.Sleep(5 * time.Millisecond)
		}
		return time.Since(start)
	}
	waitUp("first dial", 5*time.Second)
	if rc, err := purchase(l, 1); err != nil || rc != "00" {
		t.Fatalf("before the outage: rc %q, err %v", rc, err)
	}

	// The outage: nothing listens on the address, every connection try is refused.
	if err := sim.Close(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); l.Up(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the link still reports a connection 5 s after the issuer closed them all")
		}
	}
	if _, err := purchase(l, 2); err == nil {
		t.Fatal("a purchase during the outage got an answer")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("something else listens on %s: the test cannot take the issuer down", addr)
	}
	// Long enough for the backoff to pass its cap many times over (the old one was
	// then at 8 s between tries).
	outage := time.NewTimer(7500 * time.Millisecond)
	<-outage.C

	sim = startSim(t, addr)
	defer sim.Close()
	limit := DefaultMaxReconnectWait + DefaultMaxReconnectWait/4 + time.Second // cap, jitter, sign-on on a busy machine
	took := waitUp("after the issuer came back", 4*limit)
	if took > limit {
		t.Fatalf("the link came back %v after the issuer, want at most %v (cap %v plus jitter)", took, limit, DefaultMaxReconnectWait)
	}
	if rc, err := purchase(l, 3); err != nil || rc != "00" {
		t.Fatalf("after the outage: rc %q, err %v", rc, err)
	}
	t.Logf("signed on again %v after the issuer came back", took.Round(time.Millisecond))
}

// TestCloseStopsReconnecting closes a link whose issuer is down while a reconnect
// try waits its jitter (here up to 10 s): Close must end the wait and return at once.
func TestCloseStopsReconnecting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: every try is refused
	l, err := Dial(Config{ID: "down", Addrs: []string{addr}, Connections: 1, ReconnectWait: time.Millisecond, MaxReconnectWait: 40 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// The second try since the last sign-on is the first to wait its jitter.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if v, ok := l.retries.Load(addr); ok && v.(*atomic.Int32).Load() >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no second reconnect try within 5 s")
		}
	}
	done := make(chan error, 1)
	go func() { done <- l.Close() }()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Close did not return within 1 s: it waits for the reconnect jitter")
	}
}
