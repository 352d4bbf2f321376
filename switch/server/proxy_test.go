package server

import (
	"bufio"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/moov-io/iso8583"
	"github.com/pires/go-proxyproto"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/termclient"
)

// TestProxyProtocolAllowedNetworks: a listener behind a load balancer
// (listeners[].proxy_protocol, trusting loopback) gives the registry's
// allowed-networks check the terminal's address from the PROXY header, version 1
// or 2: the terminal inside its allowed network is approved, outside it declined
// 58 network-denied, though every connection comes from the proxy's 127.0.0.1,
// which is in neither. Before, the check saw 127.0.0.1 for every terminal.
func TestProxyProtocolAllowedNetworks(t *testing.T) {
	cfg := demoConfig(t, t.TempDir())
	cfg.Listeners[0].ProxyProtocol = &config.ProxyProtocol{Trusted: []string{"127.0.0.0/8"}, Required: true}
	s := start(t, cfg, nil)
	s.Start()
	const tid = "LT000001"
	nets := []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
	ch, err := s.Registry.RequestChange(registry.Actor{Name: "demo-operator", Role: registry.RoleOperator},
		registry.Change{Op: registry.OpTerminalChange, Target: tid, Reason: "behind the LB", TerminalPatch: &registry.TerminalPatch{AllowedNetworks: &nets}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Registry.Approve(registry.Actor{Name: "demo-reviewer", Role: registry.RoleReviewer}, ch.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	v2 := func(src string) []byte {
		h := proxyproto.HeaderProxyFromAddrs(2, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)), net.TCPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.1:8583")))
		b, err := h.Format()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for i, tc := range []struct {
		name, rc, reason string
		header           []byte
	}{
		{"v1 inside", "00", "", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 40001 8583\r\n")},
		{"v1 outside", "58", string(registry.ReasonNetworkDenied), []byte("PROXY TCP4 198.51.100.9 192.0.2.1 40002 8583\r\n")},
		{"v2 inside", "00", "", v2("203.0.113.8:40003")},
		{"v2 outside", "58", string(registry.ReasonNetworkDenied), v2("198.51.100.10:40004")},
	} {
		tx := loadPurchase(1, "4761739001010119", int64(1000+i))
		tx.STAN = termclient.NextSTAN()
		m, err := termclient.Build(tx, message.DialectASCII)
		if err != nil {
			t.Fatal(err)
		}
		body, err := message.Pack(m, nil)
		if err != nil {
			t.Fatal(err)
		}
		nc, err := net.Dial("tcp", s.ListenerAddr(cfg.Listeners[0].Name))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if _, err := nc.Write(append(tc.header, frontend.AppendFrame(nil, body)...)); err != nil {
			t.Fatal(err)
		}
		_ = nc.SetReadDeadline(time.Now().Add(20 * time.Second))
		raw, err := frontend.ReadFrame(bufio.NewReader(nc), nil, message.MaxBody)
		if err != nil {
			t.Fatalf("%s: no answer: %v", tc.name, err)
		}
		am := iso8583.NewMessage(message.SpecASCII)
		if err := am.Unpack(raw); err != nil {
			t.Fatal(err)
		}
		r, err := termclient.Decode(am)
		if err != nil {
			t.Fatal(err)
		}
		if r.RC != tc.rc || r.Reason != tc.reason {
			t.Fatalf("%s: %s %q, want %s %q", tc.name, r.RC, r.Reason, tc.rc, tc.reason)
		}
	}
}
