package admin

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// ClientAddr believes X-Forwarded-For only from a trusted peer, and then only
// its right-most untrusted address: what the client itself wrote (the left of
// the header) never counts while a trusted proxy appended after it; garbage
// stops the walk at the last trusted address.
func TestClientAddr(t *testing.T) {
	trusted, err := ParseTrustedProxies([]string{"127.0.0.1", "10.0.0.0/8", "fd00::/8", " 192.0.2.10 "})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		remote  string
		xff     []string // header lines; nil: none
		trusted bool     // with the trusted list (else none)
		want    string
	}{
		{name: "no header, untrusted peer", remote: "198.51.100.1:4000", trusted: true, want: "198.51.100.1"},
		{name: "no header, trusted peer", remote: "10.1.2.3:4000", trusted: true, want: "10.1.2.3"},
		{name: "untrusted peer: header ignored", remote: "198.51.100.1:4000", xff: []string{"203.0.113.7"}, trusted: true, want: "198.51.100.1"},
		{name: "nothing trusted: header ignored", remote: "127.0.0.1:4000", xff: []string{"203.0.113.7"}, want: "127.0.0.1"},
		{name: "one trusted proxy", remote: "127.0.0.1:4000", xff: []string{"203.0.113.7"}, trusted: true, want: "203.0.113.7"},
		{name: "the single-address entry", remote: "192.0.2.10:4000", xff: []string{"203.0.113.7"}, trusted: true, want: "203.0.113.7"},
		{name: "next to the single address: untrusted", remote: "192.0.2.11:4000", xff: []string{"203.0.113.7"}, trusted: true, want: "192.0.2.11"},
		{name: "chain of trusted proxies", remote: "10.0.0.1:4000", xff: []string{"203.0.113.7, 10.9.9.9, 10.0.0.2"}, trusted: true, want: "203.0.113.7"},
		{name: "spoofed left-most", remote: "10.0.0.1:4000", xff: []string{"1.2.3.4, 203.0.113.7"}, trusted: true, want: "203.0.113.7"},
		{name: "spoofed trusted left-most", remote: "10.0.0.1:4000", xff: []string{"10.5.5.5, 203.0.113.7"}, trusted: true, want: "203.0.113.7"},
		{name: "spoofed left-most, chain", remote: "10.0.0.1:4000", xff: []string{"127.0.0.1,203.0.113.9,203.0.113.7,10.0.0.2"}, trusted: true, want: "203.0.113.7"},
		{name: "several header lines are one list", remote: "10.0.0.1:4000", xff: []string{"1.2.3.4", "203.0.113.7, 10.0.0.2"}, trusted: true, want: "203.0.113.7"},
		{name: "several header lines, the last one counts", remote: "10.0.0.1:4000", xff: []string{"203.0.113.7", "1.2.3.4"}, trusted: true, want: "1.2.3.4"},
		{name: "all trusted: the furthest", remote: "10.0.0.1:4000", xff: []string{"10.0.0.3, 10.0.0.2"}, trusted: true, want: "10.0.0.3"},
		{name: "ip:port entry", remote: "10.0.0.1:4000", xff: []string{"203.0.113.7:51234"}, trusted: true, want: "203.0.113.7"},
		{name: "IPv6 peer and client", remote: "[fd00::1]:4000", xff: []string{"2001:db8::7"}, trusted: true, want: "2001:db8::7"},
		{name: "IPv6 [v6]:port entry", remote: "[fd00::1]:4000", xff: []string{"[2001:db8::7]:443, fd12::2"}, trusted: true, want: "2001:db8::7"},
		{name: "IPv6 untrusted peer: header ignored", remote: "[2001:db8::99]:4000", xff: []string{"2001:db8::7"}, trusted: true, want: "2001:db8::99"},
		{name: "IPv6 peer with a zone", remote: "[fd00::1%eth0]:4000", xff: []string{"2001:db8::7"}, trusted: true, want: "2001:db8::7"},
		{name: "IPv4-mapped peer matches the IPv4 entry", remote: "[::ffff:10.0.0.1]:4000", xff: []string{"203.0.113.7"}, trusted: true, want: "203.0.113.7"},
		{name: "IPv4-mapped entry returned as IPv4", remote: "10.0.0.1:4000", xff: []string{"::ffff:203.0.113.7"}, trusted: true, want: "203.0.113.7"},
		{name: "IPv4-mapped trusted entry skipped", remote: "10.0.0.1:4000", xff: []string{"203.0.113.7, ::ffff:10.0.0.2"}, trusted: true, want: "203.0.113.7"},
		{name: "garbage: the trusted peer", remote: "10.0.0.1:4000", xff: []string{"not-an-address"}, trusted: true, want: "10.0.0.1"},
		{name: "garbage after a trusted hop: that hop", remote: "10.0.0.1:4000", xff: []string{"203.0.113.7, garbage, 10.0.0.2"}, trusted: true, want: "10.0.0.2"},
		{name: "garbage left of the client: not reached", remote: "10.0.0.1:4000", xff: []string{"garbage, 203.0.113.7"}, trusted: true, want: "203.0.113.7"},
		{name: "empty entry", remote: "10.0.0.1:4000", xff: []string{"203.0.113.7,,"}, trusted: true, want: "10.0.0.1"},
		{name: "empty header", remote: "10.0.0.1:4000", xff: []string{""}, trusted: true, want: "10.0.0.1"},
		{name: "a CIDR in the header", remote: "10.0.0.1:4000", xff: []string{"203.0.113.0/24"}, trusted: true, want: "10.0.0.1"},
		{name: "a host name in the header", remote: "10.0.0.1:4000", xff: []string{"client.example"}, trusted: true, want: "10.0.0.1"},
		{name: "RFC 7239 unknown", remote: "10.0.0.1:4000", xff: []string{"unknown"}, trusted: true, want: "10.0.0.1"},
		{name: "a long header of garbage", remote: "10.0.0.1:4000", xff: []string{strings.Repeat("x,", 5000) + "203.0.113.7"}, trusted: true, want: "203.0.113.7"},
		{name: "peer without a port", remote: "10.0.0.1", xff: []string{"203.0.113.7"}, trusted: true, want: "203.0.113.7"},
		{name: "peer that is no IP: as it is", remote: "@", xff: []string{"203.0.113.7"}, trusted: true, want: "@"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		tr := trusted
		if !c.trusted {
			tr = nil
		}
		if got := ClientAddr(r, Proxies{Nets: tr}); got != c.want {
			t.Errorf("%s: remote %s, X-Forwarded-For %q: %q, want %q", c.name, c.remote, c.xff, got, c.want)
		}
	}
}

// The trusted proxies setting takes CIDRs and single addresses and names the
// entry it refuses.
func TestParseTrustedProxies(t *testing.T) {
	ps, err := ParseTrustedProxies([]string{"10.0.0.0/8", "192.0.2.10", "fd00::/8", "2001:db8::1"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.String())
	}
	if s := strings.Join(got, " "); s != "10.0.0.0/8 192.0.2.10/32 fd00::/8 2001:db8::1/128" {
		t.Fatalf("parsed %s", s)
	}
	if ps, err := ParseTrustedProxies(nil); err != nil || len(ps) != 0 {
		t.Fatalf("none: %v, %v", ps, err)
	}
	for _, c := range []struct{ entry, want string }{
		{"10.0.0.0/33", "not a CIDR"},
		{"proxy.example", "not a CIDR"},
		{"", "not a CIDR"},
		{"10.0.0.1/8", "want 10.0.0.0/8 for the network, or 10.0.0.1/32"},
		{"0.0.0.0/0", "every client"},
		{"::/0", "every client"},
		{"fe80::1%eth0", "zone"},
		{"::ffff:10.0.0.1", "IPv4-mapped"},
		{"::ffff:10.0.0.0/104", "IPv4-mapped"},
	} {
		_, err := ParseTrustedProxies([]string{"10.0.0.0/8", c.entry})
		if err == nil || !strings.Contains(err.Error(), `entry 1 "`+c.entry+`"`) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error naming entry 1 and %q", c.entry, err, c.want)
		}
	}
}

// A refusal names the client by ClientAddr with the proxies TrustProxies set,
// and the connection's peer apart.
func TestRefusalClientAddr(t *testing.T) {
	a, err := NewAuthenticator(nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []Refusal
	a.OnRefused(func(r Refusal) { got = append(got, r) })
	h := a.Require(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), RoleAnalyst)
	req := func() {
		r := httptest.NewRequest("GET", "/api/v1/merchants", nil)
		r.RemoteAddr = "127.0.0.1:5555"
		r.Header.Set("X-Forwarded-For", "203.0.113.7")
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	req()
	trusted, _ := ParseTrustedProxies([]string{"127.0.0.1"})
	a.TrustProxies(Proxies{Nets: trusted})
	req()
	if len(got) != 2 || got[0].Remote != "127.0.0.1" || got[1].Remote != "203.0.113.7" || got[1].Peer != "127.0.0.1:5555" {
		t.Fatalf("refusals %+v: want remote 127.0.0.1 untrusted, then 203.0.113.7 with peer 127.0.0.1:5555", got)
	}
}

// With Header "forwarded", ClientAddr reads the for= parameters of RFC 7239
// Forwarded by the same right-most-untrusted rule, and only that header: an
// X-Forwarded-For beside it (which a proxy managing Forwarded passes on as the
// client wrote it) is ignored, and the other way round. "unknown", obfuscated
// and malformed hops stop the walk at the last trusted address; nothing panics.
func TestClientAddrForwarded(t *testing.T) {
	nets, err := ParseTrustedProxies([]string{"127.0.0.1", "10.0.0.0/8", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	fwd := Proxies{Nets: nets, Header: HeaderForwarded}
	for _, c := range []struct {
		name   string
		remote string
		fwd    []string // Forwarded header lines
		xff    string   // X-Forwarded-For, "" none
		want   string
	}{
		{name: "one proxy", remote: "10.0.0.1:4000", fwd: []string{"for=203.0.113.7"}, want: "203.0.113.7"},
		{name: "with other parameters", remote: "10.0.0.1:4000", fwd: []string{"for=203.0.113.7;proto=https;by=10.0.0.1;host=admin.example"}, want: "203.0.113.7"},
		{name: "parameter name in any case, spaces around pairs", remote: "10.0.0.1:4000", fwd: []string{"proto=https ; For=203.0.113.7"}, want: "203.0.113.7"},
		{name: "quoted IPv4 with port", remote: "10.0.0.1:4000", fwd: []string{`for="203.0.113.7:51234"`}, want: "203.0.113.7"},
		{name: "quoted IPv6 in brackets", remote: "10.0.0.1:4000", fwd: []string{`for="[2001:db8:cafe::17]"`}, want: "2001:db8:cafe::17"},
		{name: "quoted IPv6 with port", remote: "[fd00::1]:4000", fwd: []string{`for="[2001:db8:cafe::17]:4711"`}, want: "2001:db8:cafe::17"},
		{name: "obfuscated port", remote: "10.0.0.1:4000", fwd: []string{`for="203.0.113.7:_p1"`}, want: "203.0.113.7"},
		{name: "IPv4-mapped in brackets as IPv4", remote: "10.0.0.1:4000", fwd: []string{`for="[::ffff:203.0.113.7]"`}, want: "203.0.113.7"},
		{name: "chain of trusted proxies", remote: "10.0.0.1:4000", fwd: []string{"for=203.0.113.7, for=10.9.9.9, for=10.0.0.2"}, want: "203.0.113.7"},
		{name: "spoofed left-most", remote: "10.0.0.1:4000", fwd: []string{"for=1.2.3.4, for=203.0.113.7"}, want: "203.0.113.7"},
		{name: "several header lines are one list", remote: "10.0.0.1:4000", fwd: []string{"for=1.2.3.4", "for=203.0.113.7, for=10.0.0.2"}, want: "203.0.113.7"},
		{name: "all trusted: the furthest", remote: "10.0.0.1:4000", fwd: []string{"for=10.0.0.3, for=10.0.0.2"}, want: "10.0.0.3"},
		{name: "comma inside a quoted value does not split", remote: "10.0.0.1:4000", fwd: []string{`for=203.0.113.7;ext="a,b;c", for=10.0.0.2`}, want: "203.0.113.7"},
		{name: "untrusted peer: header ignored", remote: "198.51.100.1:4000", fwd: []string{"for=203.0.113.7"}, want: "198.51.100.1"},
		{name: "no Forwarded: the peer, X-Forwarded-For ignored", remote: "10.0.0.1:4000", xff: "203.0.113.9", want: "10.0.0.1"},
		{name: "both: Forwarded only", remote: "10.0.0.1:4000", fwd: []string{"for=203.0.113.7"}, xff: "203.0.113.9", want: "203.0.113.7"},
		{name: "unknown: the trusted peer", remote: "10.0.0.1:4000", fwd: []string{"for=unknown"}, want: "10.0.0.1"},
		{name: "unknown after a trusted hop: that hop", remote: "10.0.0.1:4000", fwd: []string{"for=203.0.113.7, for=unknown, for=10.0.0.2"}, want: "10.0.0.2"},
		{name: "obfuscated node", remote: "10.0.0.1:4000", fwd: []string{"for=_hidden"}, want: "10.0.0.1"},
		{name: "quoted obfuscated node with port", remote: "10.0.0.1:4000", fwd: []string{`for="_gazonk:_p"`}, want: "10.0.0.1"},
		{name: "unknown left of the client: not reached", remote: "10.0.0.1:4000", fwd: []string{"for=unknown, for=203.0.113.7"}, want: "203.0.113.7"},
		{name: "element without for", remote: "10.0.0.1:4000", fwd: []string{"for=203.0.113.7, proto=https"}, want: "10.0.0.1"},
		{name: "empty element", remote: "10.0.0.1:4000", fwd: []string{"for=203.0.113.7,,"}, want: "10.0.0.1"},
		{name: "empty header", remote: "10.0.0.1:4000", fwd: []string{""}, want: "10.0.0.1"},
		{name: "bare IPv6 (must be quoted in brackets)", remote: "10.0.0.1:4000", fwd: []string{"for=2001:db8::7"}, want: "10.0.0.1"},
		{name: "quoted IPv6 without brackets", remote: "10.0.0.1:4000", fwd: []string{`for="2001:db8::7"`}, want: "10.0.0.1"},
		{name: "IPv4 in brackets", remote: "10.0.0.1:4000", fwd: []string{`for="[203.0.113.7]"`}, want: "10.0.0.1"},
		{name: "unterminated bracket", remote: "10.0.0.1:4000", fwd: []string{`for="[2001:db8::7"`}, want: "10.0.0.1"},
		{name: "IPv6 with a zone", remote: "10.0.0.1:4000", fwd: []string{`for="[fe80::1%eth0]"`}, want: "10.0.0.1"},
		{name: "bad port", remote: "10.0.0.1:4000", fwd: []string{`for="203.0.113.7:http"`}, want: "10.0.0.1"},
		{name: "port too long", remote: "10.0.0.1:4000", fwd: []string{`for="203.0.113.7:123456"`}, want: "10.0.0.1"},
		{name: "empty port", remote: "10.0.0.1:4000", fwd: []string{`for="203.0.113.7:"`}, want: "10.0.0.1"},
		{name: "unterminated quote", remote: "10.0.0.1:4000", fwd: []string{`for="203.0.113.7`}, want: "10.0.0.1"},
		{name: "text after the closing quote", remote: "10.0.0.1:4000", fwd: []string{`for="203.0.113.7"x`}, want: "10.0.0.1"},
		{name: "a lone backslash", remote: "10.0.0.1:4000", fwd: []string{`for="\`}, want: "10.0.0.1"},
		{name: "quoted pair resolved", remote: "10.0.0.1:4000", fwd: []string{`for="203.0.113.\7"`}, want: "203.0.113.7"},
		{name: "two for= in one element", remote: "10.0.0.1:4000", fwd: []string{"for=203.0.113.7;for=198.51.100.1"}, want: "10.0.0.1"},
		{name: "empty for=", remote: "10.0.0.1:4000", fwd: []string{"for="}, want: "10.0.0.1"},
		{name: "pair without =", remote: "10.0.0.1:4000", fwd: []string{"for"}, want: "10.0.0.1"},
		{name: "space inside the pair", remote: "10.0.0.1:4000", fwd: []string{"for = 203.0.113.7"}, want: "10.0.0.1"},
		{name: "a host name", remote: "10.0.0.1:4000", fwd: []string{"for=client.example"}, want: "10.0.0.1"},
		{name: "a CIDR", remote: "10.0.0.1:4000", fwd: []string{"for=203.0.113.0/24"}, want: "10.0.0.1"},
		{name: "only quotes", remote: "10.0.0.1:4000", fwd: []string{`"""""`}, want: "10.0.0.1"},
		{name: "a long header of garbage, quotes balanced", remote: "10.0.0.1:4000", fwd: []string{strings.Repeat(`x;";,`, 5000) + "for=203.0.113.7"}, want: "203.0.113.7"},
		{name: "a long header of garbage, the last quote open", remote: "10.0.0.1:4000", fwd: []string{strings.Repeat(`x;";,`, 5001) + "for=203.0.113.7"}, want: "10.0.0.1"},
		{name: "a long list", remote: "10.0.0.1:4000", fwd: []string{strings.Repeat("for=unknown,", 5000) + "for=203.0.113.7"}, want: "203.0.113.7"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		for _, v := range c.fwd {
			r.Header.Add("Forwarded", v)
		}
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := ClientAddr(r, fwd); got != c.want {
			t.Errorf("%s: remote %s: %q, want %q", c.name, c.remote, got, c.want)
		}
	}
	// The default header ignores Forwarded: a proxy appending X-Forwarded-For
	// passes a client's Forwarded on unchanged.
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.1:4000"
	r.Header.Set("Forwarded", "for=1.2.3.4")
	r.Header.Set("X-Forwarded-For", "203.0.113.7")
	if got := ClientAddr(r, Proxies{Nets: nets}); got != "203.0.113.7" {
		t.Errorf("X-Forwarded-For proxies, both headers: %q, want 203.0.113.7 (Forwarded ignored)", got)
	}
}

// FuzzForwarded: no Forwarded value makes ClientAddr panic, and what it returns
// is an IP address, the peer's at worst.
func FuzzForwarded(f *testing.F) {
	for _, s := range []string{"for=203.0.113.7", `for="[2001:db8::1]:80"`, `for="\`, `";,=\"`, "for=unknown,,", `for="[::ffff:1.2.3.4]:_x"`} {
		f.Add(s)
	}
	nets, _ := ParseTrustedProxies([]string{"10.0.0.0/8"})
	f.Fuzz(func(t *testing.T, v string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "10.0.0.1:4000"
		r.Header.Set("Forwarded", v)
		if _, err := netip.ParseAddr(ClientAddr(r, Proxies{Nets: nets, Header: HeaderForwarded})); err != nil {
			t.Fatalf("Forwarded %q: %v", v, err)
		}
	})
}

// The proxy header setting takes the two header names in any case, "" as the
// default, and refuses others.
func TestParseProxyHeader(t *testing.T) {
	for in, want := range map[string]string{"": HeaderXForwardedFor, "X-Forwarded-For": HeaderXForwardedFor, " Forwarded ": HeaderForwarded} {
		if got, err := ParseProxyHeader(in); err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	if _, err := ParseProxyHeader("X-Real-IP"); err == nil || !strings.Contains(err.Error(), `"X-Real-IP" is not x-forwarded-for or forwarded`) {
		t.Errorf("X-Real-IP: %v", err)
	}
}
