package admin

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ParseTrustedProxies parses the admin.trusted_proxies setting, each entry by
// ParseTrustedProxy; its error names the entry refused.
func ParseTrustedProxies(entries []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(entries))
	for i, e := range entries {
		p, err := ParseTrustedProxy(e)
		if err != nil {
			return nil, fmt.Errorf("entry %d %q: %w", i, e, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// ParseTrustedProxy parses one entry of admin.trusted_proxies: a CIDR
// (10.0.0.0/8, fd00::/8) or one IP address (192.0.2.10, taken as /32 or /128).
// It refuses anything else, a CIDR with host bits set (10.0.0.1/8: a typo for
// /32, or for 10.0.0.0/8?), a zone, an IPv4-mapped IPv6 form (write it as IPv4:
// peers are matched unmapped) and a /0, which would trust the X-Forwarded-For of
// every client, that is let anyone choose his address. Its error does not
// repeat the entry.
func ParseTrustedProxy(e string) (netip.Prefix, error) {
	e = strings.TrimSpace(e)
	var p netip.Prefix
	if strings.Contains(e, "/") {
		var err error
		if p, err = netip.ParsePrefix(e); err != nil {
			return netip.Prefix{}, fmt.Errorf("not a CIDR (10.0.0.0/8, fd00::/8) or an IP address")
		}
		if m := p.Masked(); m != p {
			return netip.Prefix{}, fmt.Errorf("host bits set: want %s for the network, or %s for the one address", m, netip.PrefixFrom(p.Addr(), p.Addr().BitLen()))
		}
	} else {
		a, err := netip.ParseAddr(e)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("not a CIDR (10.0.0.0/8, fd00::/8) or an IP address")
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("an address with a zone: give the address alone")
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("an IPv4-mapped IPv6 address: write it as IPv4")
	}
	if p.Bits() == 0 {
		return netip.Prefix{}, fmt.Errorf("a /0 trusts every client's X-Forwarded-For, so any client could choose its address: list the proxies")
	}
	return p, nil
}

// ClientAddr returns the IP address of the client that made r, for limits and
// logs. It is the connection's peer (r.RemoteAddr without the port) unless
// that peer is in trusted (ParseTrustedProxies: the reverse proxies in front
// of the admin address) and r has an X-Forwarded-For header. Then the header's
// addresses (several header lines are one list, in order) are walked from the
// right, each one the peer of the hop after it, skipping those in trusted; the
// first one not in trusted is the client. The right-most untrusted address,
// never the left-most: a client writes whatever it likes into the header it
// sends, and the trusted proxies only append to it.
//
// An entry that is not an IP address (an ip:port is accepted, its port
// dropped) stops the walk: the answer is then the last trusted address reached,
// the hop that passed the garbage on, and nothing left of it is believed. So is
// a header of trusted addresses only. Addresses are returned without zone and
// IPv4-mapped IPv6 ones as IPv4, so that one client has one key. A peer that
// is not an IP address (a test's or a unix socket's) is returned as it is.
func ClientAddr(r *http.Request, trusted []netip.Prefix) string {
	peer, ok := peerAddr(r.RemoteAddr)
	if !ok {
		return r.RemoteAddr
	}
	if !isTrusted(peer, trusted) {
		return peer.String()
	}
	xff := r.Header.Values("X-Forwarded-For")
	if len(xff) == 0 {
		return peer.String()
	}
	hops := strings.Split(strings.Join(xff, ","), ",")
	last := peer // the last trusted address reached
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := forwardedAddr(hops[i])
		if !ok {
			return last.String()
		}
		if !isTrusted(a, trusted) {
			return a.String()
		}
		last = a
	}
	return last.String()
}

// peerAddr is the IP address of a request's RemoteAddr (ip:port, or an IP
// alone), normalized.
func peerAddr(remote string) (netip.Addr, bool) {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.WithZone("").Unmap(), true
}

// forwardedAddr parses one X-Forwarded-For entry: an IP address, or an
// ip:port ([v6]:port) as some proxies write it; normalized.
func forwardedAddr(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err2 := netip.ParseAddrPort(s)
		if err2 != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.WithZone("").Unmap(), true
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
