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

// The headers a trusted proxy may name the client in (admin.trusted_proxy_header).
const (
	// HeaderXForwardedFor: X-Forwarded-For, a list of addresses (the default).
	HeaderXForwardedFor = "x-forwarded-for"
	// HeaderForwarded: RFC 7239 Forwarded, a list of elements whose for=
	// parameters are the addresses.
	HeaderForwarded = "forwarded"
)

// Proxies are the reverse proxies in front of the admin address and the header
// they name the client in. The zero value trusts none.
type Proxies struct {
	// Nets are the proxies' addresses (ParseTrustedProxies).
	Nets []netip.Prefix
	// Header is HeaderXForwardedFor ("" too) or HeaderForwarded: the one header
	// read; the other is ignored, whatever it says, for a proxy that manages one
	// header passes the other on as the client wrote it.
	Header string
}

// ParseProxyHeader checks the admin.trusted_proxy_header setting: "" (taken as
// HeaderXForwardedFor), HeaderXForwardedFor or HeaderForwarded, in any case.
func ParseProxyHeader(h string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(h)) {
	case "", HeaderXForwardedFor:
		return HeaderXForwardedFor, nil
	case HeaderForwarded:
		return HeaderForwarded, nil
	}
	return "", fmt.Errorf("%q is not %s or %s", h, HeaderXForwardedFor, HeaderForwarded)
}

// ClientAddr returns the IP address of the client that made r, for limits and
// logs. It is the connection's peer (r.RemoteAddr without the port) unless
// that peer is in p.Nets (the reverse proxies in front of the admin address)
// and r has the header p.Header names: X-Forwarded-For (the default) or RFC 7239
// Forwarded (its for= parameters; forwardedHops). Only that header is read. Then
// the header's addresses (several header lines are one list, in order) are
// walked from the right, each one the peer of the hop after it, skipping those
// in p.Nets; the first one not in p.Nets is the client. The right-most
// untrusted address, never the left-most: a client writes whatever it likes
// into the header it sends, and the trusted proxies only append to it.
//
// An entry that is not an IP address (an ip:port is accepted, its port
// dropped), and a Forwarded hop that is "unknown", obfuscated ("_hidden") or
// without for=, stops the walk: the answer is then the last trusted address
// reached, the hop that passed it on, and nothing left of it is believed. So is
// a header of trusted addresses only. Addresses are returned without zone and
// IPv4-mapped IPv6 ones as IPv4, so that one client has one key. A peer that
// is not an IP address (a test's or a unix socket's) is returned as it is.
func ClientAddr(r *http.Request, p Proxies) string {
	peer, ok := peerAddr(r.RemoteAddr)
	if !ok {
		return r.RemoteAddr
	}
	if !isTrusted(peer, p.Nets) {
		return peer.String()
	}
	var hops []string
	parse := forwardedAddr
	if p.Header == HeaderForwarded {
		vals := r.Header.Values("Forwarded")
		if len(vals) == 0 {
			return peer.String()
		}
		hops, parse = forwardedHops(strings.Join(vals, ",")), forwardedNode
	} else {
		xff := r.Header.Values("X-Forwarded-For")
		if len(xff) == 0 {
			return peer.String()
		}
		hops = strings.Split(strings.Join(xff, ","), ",")
	}
	last := peer // the last trusted address reached
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parse(hops[i])
		if !ok {
			return last.String()
		}
		if !isTrusted(a, p.Nets) {
			return a.String()
		}
		last = a
	}
	return last.String()
}

// forwardedHops splits an RFC 7239 Forwarded value (header lines joined by ",")
// into its elements, one per hop, and returns each element's for= value,
// unquoted: "" for an element without one, or one that breaks the grammar (an
// unterminated quoted string, a pair without "=", a second for=), which
// forwardedNode refuses. Commas and semicolons inside quoted strings do not
// split.
func forwardedHops(v string) []string {
	var hops []string
	for _, el := range splitQuoted(v, ',') {
		if strings.TrimSpace(el) == "" {
			hops = append(hops, "") // an empty element: a hop not described
			continue
		}
		node, seen, bad := "", false, false
		for _, pair := range splitQuoted(el, ';') {
			pair = strings.TrimSpace(pair)
			if pair == "" {
				continue
			}
			k, val, ok := strings.Cut(pair, "=")
			if !ok || strings.TrimSpace(k) != k || k == "" {
				bad = true
				break
			}
			if !strings.EqualFold(k, "for") {
				continue
			}
			uq, ok := unquote(val)
			if !ok || seen {
				bad = true
				break
			}
			node, seen = uq, true
		}
		if bad {
			node = ""
		}
		hops = append(hops, node)
	}
	return hops
}

// splitQuoted splits s at sep outside double-quoted strings (a backslash quotes
// the next character inside them).
func splitQuoted(s string, sep byte) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// unquote returns an RFC 7239 value: a token as it is, or a quoted string's
// content with its quoted pairs resolved; false for an unterminated or empty
// value, or text after the closing quote.
func unquote(v string) (string, bool) {
	if v == "" {
		return "", false
	}
	if v[0] != '"' {
		if strings.ContainsAny(v, "\" \t") {
			return "", false
		}
		return v, true
	}
	var b strings.Builder
	for i := 1; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			if i+1 >= len(v) {
				return "", false
			}
			i++
			b.WriteByte(v[i])
		case '"':
			if i != len(v)-1 {
				return "", false
			}
			return b.String(), true
		default:
			b.WriteByte(c)
		}
	}
	return "", false // no closing quote
}

// forwardedNode parses a Forwarded for= value (RFC 7239 section 6): an IPv4
// address or a bracketed IPv6 one, each with an optional port (digits, or
// obfuscated "_x"), dropped; normalized. An "unknown" or obfuscated ("_x")
// node, a bare IPv6 address, a host name or anything else is refused: a hop
// that is not trusted and whose address is not known.
func forwardedNode(v string) (netip.Addr, bool) {
	host, port := v, ""
	if strings.HasPrefix(v, "[") {
		end := strings.IndexByte(v, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		host, port = v[1:end], v[end+1:]
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return netip.Addr{}, false
		}
	} else if i := strings.IndexByte(v, ':'); i >= 0 {
		host, port = v[:i], v[i:]
	}
	if port != "" && !validNodePort(port) {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" || (!strings.HasPrefix(v, "[") && !a.Is4()) {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// validNodePort reports whether p is ":" and a port of RFC 7239: 1 to 5 digits,
// or "_" and letters, digits, ".", "_" or "-" (obfuscated).
func validNodePort(p string) bool {
	p, ok := strings.CutPrefix(p, ":")
	if !ok || p == "" {
		return false
	}
	if p[0] == '_' {
		for _, c := range p[1:] {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return false
			}
		}
		return len(p) > 1
	}
	if len(p) > 5 {
		return false
	}
	for _, c := range p {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
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
