package frontend

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchyard/switchyard/internal/goroutines"
)

// frontendGoroutines returns the stacks of the goroutines running this package's
// code, other than the tests' own.
func frontendGoroutines() []string { return goroutines.Running("switch/frontend.") }

// connGoroutines returns the stacks of the goroutines of a listener's connections
// (their reading, writing and header reading), the accept loop and the request
// goroutines left out.
func connGoroutines() []string {
	var out []string
	for _, g := range frontendGoroutines() {
		if strings.Contains(g, "(*serverConn)") || strings.Contains(g, "(*proxiedConn)") || strings.Contains(g, "(*limitedConn)") {
			out = append(out, g)
		}
	}
	return out
}

// noConnGoroutine waits (up to 10 s: a goroutine that has signalled its end still
// takes a few instructions to exit) until no connection goroutine is left.
func noConnGoroutine(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g := connGoroutines()
		if len(g) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: connection goroutines left:\n%s", what, strings.Join(g, "\n\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestProxyProtocolRefusalsLeaveNoGoroutine: on a tcp and an https listener, a
// connection refused for its PROXY header (untrusted, missing where required,
// invalid, not complete by first_frame_timeout) leaves no goroutine behind once it
// is closed, while the listener goes on; and after Close nothing the listener
// started is left (goleak, as the server's and the journal's tests).
func TestProxyProtocolRefusalsLeaveNoGoroutine(t *testing.T) {
	noConnGoroutine(t, "before the test") // those of the tests before end
	proc := networkProc{allowed: netip.MustParsePrefix("203.0.113.0/24")}
	for _, kind := range []struct {
		name string
		http bool
	}{{"tcp", false}, {"https", true}} {
		for _, tc := range []struct {
			name, from, reason string
			sent               []byte
		}{
			{"untrusted", "127.0.0.2", ReasonProxyUntrusted, []byte("PROXY TCP4 203.0.113.7 192.0.2.1 40001 8583\r\n")},
			{"missing", "127.0.0.1", ReasonProxyMissing, []byte{0, 4, '0', '2', '0', '0'}},
			{"invalid", "127.0.0.1", ReasonProxyInvalid, []byte("PROXY TCP4 203.0.113.777 192.0.2.1 40001 8583\r\n")},
			{"timeout", "127.0.0.1", ReasonProxyTimeout, []byte("PROXY TCP4 203.0.113.7")},
		} {
			t.Run(kind.name+"/"+tc.name, func(t *testing.T) {
				noConnGoroutine(t, "before the test")
				before := goleak.IgnoreCurrent()
				m := newCountMetrics()
				l := listen(t, Config{HTTP: kind.http, FirstFrameTimeout: 300 * time.Millisecond,
					ProxyProtocol: &ProxyProtocol{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Required: true}}, proc, nil, m)
				for range 3 {
					c := dialFrom(t, l, tc.from)
					if _, err := c.nc.Write(tc.sent); err != nil {
						t.Fatal(err)
					}
					c.closedBySwitch()
				}
				waitFor(t, "the refusals to be counted", func() bool { return m.get(m.refused, tc.reason) == 3 })
				waitFor(t, "the connections to be let go", func() bool { return l.ConnCount() == 0 })
				noConnGoroutine(t, "after the refusals")
				l.Close()
				if err := goleak.Find(before); err != nil {
					t.Fatalf("after Close: %v", err)
				}
			})
		}
	}
}

// TestProxyProtocolCloseWhileHeaderPending: a listener closed (Close, or Drain on
// a tcp listener) while a trusted proxy's connection has sent half a header, or
// nothing, and first_frame_timeout is a minute away, returns at once and leaves no
// goroutine: the pending header read ends with the connection.
func TestProxyProtocolCloseWhileHeaderPending(t *testing.T) {
	proc := networkProc{allowed: netip.MustParsePrefix("203.0.113.0/24")}
	for _, tc := range []struct {
		name  string
		http  bool
		drain bool
		sent  []byte
	}{
		{"tcp, Close, half a header", false, false, []byte("PROXY TCP4 203.0.113.7")},
		{"tcp, Close, nothing", false, false, nil},
		{"tcp, Drain, half a header", false, true, []byte("PROXY TCP4 203.0.113.7")},
		{"tcp, Drain, nothing", false, true, nil},
		{"https, Close, half a header", true, false, []byte("PROXY TCP4 203.0.113.7")},
		{"https, Close, nothing", true, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noConnGoroutine(t, "before the test")
			before := goleak.IgnoreCurrent()
			m := newCountMetrics()
			l := listen(t, Config{HTTP: tc.http, FirstFrameTimeout: time.Minute,
				ProxyProtocol: &ProxyProtocol{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Required: true}}, proc, nil, m)
			c := dialFrom(t, l, "127.0.0.1")
			if _, err := c.nc.Write(tc.sent); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the header read to be pending", func() bool {
				for _, g := range frontendGoroutines() {
					if strings.Contains(g, "(*proxiedConn).readHeader") {
						return true
					}
				}
				return false
			})
			if len(connGoroutines()) == 0 {
				t.Fatal("connGoroutines does not see the pending connection's goroutine: the check below could not fail")
			}
			done := make(chan error, 1)
			go func() {
				if tc.drain {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					done <- l.Drain(ctx)
					return
				}
				l.Close()
				done <- nil
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("drain: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("the listener did not close within 10 s of a pending header; goroutines:\n%s", strings.Join(frontendGoroutines(), "\n\n"))
			}
			if took := c.closedBySwitch(); took > 5*time.Second {
				t.Fatalf("the proxy's connection closed %v after the listener", took)
			}
			noConnGoroutine(t, "after the listener closed")
			if err := goleak.Find(before); err != nil {
				t.Fatalf("after the listener closed: %v", err)
			}
			for _, r := range []string{ReasonProxyTimeout, ReasonProxyInvalid, ReasonProxyMissing} {
				if n := m.get(m.refused, r); n != 0 {
					t.Errorf("refused %s = %d while closing, want 0 (a drain is no refusal)", r, n)
				}
			}
		})
	}
}

// TestHTTPListenerLeavesNoGoroutine: an https listener closed by Close or by Drain
// leaves no goroutine behind. Before, the request goroutines' reaper, started by
// Listen for every listener though no request of an https listener runs on the
// pool, was stopped only by a tcp listener's Close: every https listener closed
// left it ticking.
func TestHTTPListenerLeavesNoGoroutine(t *testing.T) {
	for _, drain := range []bool{false, true} {
		before := goleak.IgnoreCurrent()
		l := listen(t, Config{HTTP: true}, echoProc{}, nil, nil)
		if drain {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := l.Drain(ctx)
			cancel()
			if err != nil {
				t.Fatalf("drain: %v", err)
			}
		} else {
			l.Close()
		}
		if err := goleak.Find(before); err != nil {
			t.Fatalf("after the https listener closed (drain %v): %v", drain, err)
		}
	}
}
