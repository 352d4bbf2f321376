package admin

import (
	"net/http"
	"net/http/httptest"
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
		if got := ClientAddr(r, tr); got != c.want {
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
	a.TrustProxies(trusted)
	req()
	if len(got) != 2 || got[0].Remote != "127.0.0.1" || got[1].Remote != "203.0.113.7" || got[1].Peer != "127.0.0.1:5555" {
		t.Fatalf("refusals %+v: want remote 127.0.0.1 untrusted, then 203.0.113.7 with peer 127.0.0.1:5555", got)
	}
}
