package e2e

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/cup"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/registry"
)

// lbProxy is a TCP load balancer in front of the switch for tests: each connection
// it accepts it opens to target from the local address from, writes header (the
// PROXY protocol header naming the terminal; none when nil) and relays both ways
// until either side closes. It returns the address terminals dial; the test's
// cleanup closes it and waits for its goroutines.
func lbProxy(t *testing.T, target, from string, header []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	track := func(cs ...net.Conn) {
		mu.Lock()
		open = append(open, cs...)
		mu.Unlock()
	}
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(from), 0))}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := d.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			track(in, out)
			if _, err := out.Write(header); err != nil {
				in.Close()
				out.Close()
				continue
			}
			relay := func(dst, src net.Conn) {
				defer wg.Done()
				_, _ = io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			wg.Add(2)
			go relay(out, in)
			go relay(in, out)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// proxyV2 is a PROXY protocol version 2 header naming the terminal src.
func proxyV2(t *testing.T, src string) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(2, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)),
		net.TCPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.1:8583")))
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCUPBehindProxy: a cup listener behind a load balancer (proxy_protocol, the
// proxy 127.0.0.2 trusted, a header required). T0000001, its allowed networks
// 203.0.113.0/24, signs in through the proxy and buys with a version 1 and with a
// version 2 header naming an address inside: approved, and the journal's record and
// the terminal's last-seen carry the address the header names, not the proxy's.
// With a header naming an address outside, the sale is declined network-denied
// (58), though the proxy's is the same. A header from 127.0.0.1 (not trusted) and
// the trusted proxy's connection without one are refused: closed unanswered,
// counted.
func TestCUPBehindProxy(t *testing.T) {
	f := startDemo(t, func(c *config.Config) {
		c.RulesDir = middayRules(t, time.Now())
		// SingleLengthMACKeys, as the demo's listener: the terminal signs in with 003.
		c.Listeners = append(c.Listeners, config.Listener{Name: "cup-lb", Addr: "127.0.0.1:0", Dialect: "cup",
			CUP:           &config.CUPListener{SingleLengthMACKeys: true},
			ProxyProtocol: &config.ProxyProtocol{Trusted: []string{"127.0.0.2"}, Required: true}})
	})
	const tid = "T0000001"
	nets := []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
	ch, err := f.s.Registry.RequestChange(registry.Actor{Name: "demo-operator", Role: registry.RoleOperator},
		registry.Change{Op: registry.OpTerminalChange, Target: tid, Reason: "behind the LB", TerminalPatch: &registry.TerminalPatch{AllowedNetworks: &nets}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Registry.Approve(registry.Actor{Name: "demo-reviewer", Role: registry.RoleReviewer}, ch.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	target := f.s.ListenerAddr("cup-lb")
	tmk, _ := hex.DecodeString(cupTMK)
	dial := func(addr string) *cup.Terminal {
		term, err := cup.DialTerminal(addr, tid, "000000000000001", tmk)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { term.Close() })
		term.Device = cupHome
		return term
	}
	for i, tc := range []struct {
		name, terminal string
		header         []byte
	}{
		{"v1", "203.0.113.7:40001", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 40001 8583\r\n")},
		{"v2", "203.0.113.8:40002", proxyV2(t, "203.0.113.8:40002")},
	} {
		// A new terminal object signs in again and counts its STANs from 1: these
		// are set, so that no sale is taken for a duplicate of the one before.
		term := dial(lbProxy(t, target, "127.0.0.2", tc.header))
		if ans, err := term.SignIn("003"); err != nil || ans.Str(39) != "00" {
			t.Fatalf("%s: sign-in through the proxy: %v %s", tc.name, err, answerSummary(ans))
		}
		sale := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1300 + int64(i), PIN: "1234", STAN: fmt.Sprintf("4%05d", 2*i+1)})
		if sale.Str(39) != "00" {
			t.Fatalf("%s: sale from inside the allowed networks: %s", tc.name, cup.Summary(sale))
		}
		rec := f.record(sale.Str(37))
		if rec.Remote != tc.terminal || rec.Listener != "cup-lb" {
			t.Errorf("%s: journal record from %q on %q, want %s on cup-lb", tc.name, rec.Remote, rec.Listener, tc.terminal)
		}
		if seen := f.lastSeenAddress(tid); seen != netip.MustParseAddrPort(tc.terminal).Addr().String() {
			t.Errorf("%s: last seen at %q, want the terminal's %s", tc.name, seen, tc.terminal)
		}

		// The same terminal (its keys) through the proxy from an address outside.
		outside := "198.51.100.9:40003"
		if err := term.Redial(lbProxy(t, target, "127.0.0.2", proxyV2(t, outside))); err != nil {
			t.Fatal(err)
		}
		denied := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1400 + int64(i), PIN: "1234", STAN: fmt.Sprintf("4%05d", 2*i+2)})
		if denied.Str(39) != "58" {
			t.Fatalf("%s: sale from outside the allowed networks: %s, want 58 (network-denied)", tc.name, cup.Summary(denied))
		}
		if rec := f.record(denied.Str(37)); rec.Remote != outside || rec.Reason != string(registry.ReasonNetworkDenied) {
			t.Errorf("%s: journal record of the denied sale from %q, reason %q; want %s, %s", tc.name, rec.Remote, rec.Reason, outside, registry.ReasonNetworkDenied)
		}
	}

	refused := func(reason string) float64 {
		return testutil.ToFloat64(f.s.Metrics.ConnsRefused.WithLabelValues("cup-lb", reason))
	}
	for _, tc := range []struct {
		name, from, reason string
		header             []byte
	}{
		{"a header from an untrusted address", "127.0.0.1", frontend.ReasonProxyUntrusted, proxyV2(t, "203.0.113.7:40004")},
		{"the trusted proxy without a header", "127.0.0.2", frontend.ReasonProxyMissing, nil},
	} {
		before := refused(tc.reason)
		term := dial(lbProxy(t, target, tc.from, tc.header))
		ans, err := term.SignIn("003")
		if err == nil {
			t.Fatalf("%s: sign-in answered %s, want the connection closed", tc.name, cup.Summary(ans))
		}
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			var ne net.Error
			if !errors.As(err, &ne) || ne.Timeout() {
				t.Fatalf("%s: sign-in: %v, want the connection closed", tc.name, err)
			}
		}
		if n := refused(tc.reason); n != before+1 {
			t.Errorf("%s: refused %s = %v, want %v", tc.name, tc.reason, n, before+1)
		}
	}
}

// lastSeenAddress is the address terminal id was last seen at ("" never).
func (f *fixture) lastSeenAddress(id string) string {
	f.t.Helper()
	if s := f.lastSeen(id); s != nil {
		return s.Address
	}
	return ""
}
