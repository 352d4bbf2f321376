package notify

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Merchants' webhooks are typed in by operators, and the switch posts from inside the
// acquirer's network: a webhook must not reach the switch's own admin API, the issuer
// links or anything else internal (server-side request forgery). So a post may only
// connect to a public address, or to one in Options.AllowPrivate (the configuration's
// notices.allow_private). The check is made on the address actually dialled, after
// name resolution, so a name that resolves to an internal address (or is made to
// later) is refused too; SetEndpoint refuses an internal IP literal or localhost at
// once, with the key that would allow it. Redirects are not followed at all.

// internal reports whether ip is not a public unicast address: loopback, private
// (RFC 1918, IPv6 unique local), link-local, shared address space (RFC 6598),
// unspecified, multicast, one of IANA's special-purpose ranges, or an IPv6 form that
// embeds an IPv4 address (mapped, compatible, NAT64, 6to4) whose IPv4 address is one.
func internal(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || !ip.IsGlobalUnicast() || ip.IsPrivate() {
		return true
	}
	for _, p := range specialPurpose {
		if p.Contains(ip) {
			return true
		}
	}
	if v4, ok := embeddedIPv4(ip); ok {
		return internal(v4)
	}
	return false
}

// specialPurpose are IANA's special-purpose ranges (RFC 6890 and its updates) that
// IsGlobalUnicast and IsPrivate leave out, and the carrier-grade NAT range.
var specialPurpose = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15",
		"198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4",
		"::/96", "100::/64", "2001::/23", "2001:db8::/32", "fec0::/10",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// embeddedIPv4 returns the IPv4 address an IPv6 NAT64 (64:ff9b::/96, 64:ff9b:1::/48)
// or 6to4 (2002::/16) address carries.
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	if !ip.Is6() {
		return netip.Addr{}, false
	}
	b := ip.As16()
	switch {
	case nat64.Contains(ip) || nat64Local.Contains(ip):
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
	}
	return netip.Addr{}, false
}

var (
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour  = netip.MustParsePrefix("2002::/16")
)

// allowed reports whether a post may connect to ip.
func (o *Options) allowed(ip netip.Addr) bool {
	if !internal(ip) {
		return true
	}
	for _, p := range o.AllowPrivate {
		if p.Contains(ip.Unmap()) {
			return true
		}
	}
	return false
}

// checkTarget refuses a webhook URL whose host is an internal IP literal or
// localhost, unless allowed (names are checked again when dialled).
func (o *Options) checkTarget(u *url.URL) error {
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	ip, err := netip.ParseAddr(host)
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		ip, err = netip.MustParseAddr("127.0.0.1"), nil
	}
	if err != nil || o.allowed(ip) {
		return nil
	}
	return fmt.Errorf("host %s is an internal address (%s): list its network in notices.allow_private to allow it", u.Hostname(), ip)
}

// newClient is the default client of the posts: Go's default transport without a
// proxy (through a proxy only the proxy's address would be checked, never the
// webhook's), whose connections are refused unless allowed, and that follows no
// redirect.
func (o *Options) newClient() *http.Client {
	d := &net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("webhook: dial %s: %w", address, err)
		}
		if !o.allowed(ap.Addr()) {
			return fmt.Errorf("webhook: %s is an internal address, not allowed (notices.allow_private)", ap.Addr())
		}
		return nil
	}}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
	// A redirect is not followed: a 301, 302 or 303 would turn the POST into a GET
	// without the notice, and another host's 200 would mark it delivered; a 307 or
	// 308 would post it to a URL no reviewer approved. The 3xx is a failed post.
	return &http.Client{Timeout: o.Timeout, Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
