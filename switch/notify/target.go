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
// name resolution and for every redirect, so a name that resolves to an internal
// address (or is made to later) is refused too; SetEndpoint refuses an internal IP
// literal or localhost at once, with the key that would allow it.

// internal reports whether ip is not a public unicast address: loopback, private
// (RFC 1918, IPv6 unique local), link-local, shared address space (RFC 6598),
// unspecified, multicast or an IPv4-mapped form of one of them.
func internal(ip netip.Addr) bool {
	ip = ip.Unmap()
	return !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsMulticast() ||
		ip.IsUnspecified() || sharedSpace.Contains(ip) || ip == netip.IPv4Unspecified() ||
		ip.Is4() && ip.As4()[0] == 0
}

// sharedSpace is RFC 6598's carrier-grade NAT range.
var sharedSpace = netip.MustParsePrefix("100.64.0.0/10")

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

// newClient is the default client of the posts: Go's default transport (proxy from
// the environment included), whose connections are refused unless allowed.
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
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
	return &http.Client{Timeout: o.Timeout, Transport: tr}
}
