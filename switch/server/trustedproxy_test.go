package server

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/syncbuf"
	"github.com/switchyard/switchyard/switch/registry"
)

// proxyClient talks to a server's admin address over loopback (127.0.0.1), as a
// reverse proxy would, each request with the X-Forwarded-For it is given.
type proxyClient struct {
	t    *testing.T
	s    *Server
	http http.Client
}

func newProxyClient(t *testing.T, s *Server) *proxyClient {
	jar, _ := cookiejar.New(nil)
	p := &proxyClient{t: t, s: s, http: http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	t.Cleanup(p.http.CloseIdleConnections)
	return p
}

// do sends method path with body (a form when form is set) and X-Forwarded-For
// xff ("" for none), and returns the status.
func (p *proxyClient) do(method, path, xff, body string, form bool, header ...string) int {
	p.t.Helper()
	req, err := http.NewRequest(method, "http://"+p.s.AdminAddr()+path, strings.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	if form {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := p.http.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func (p *proxyClient) login(xff, user, pw string) int {
	p.t.Helper()
	return p.do("POST", "/console/login", xff, url.Values{"user": {user}, "password": {pw}}.Encode(), true)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// consoleOplog is the reasons of the server's console oplog entries, by action.
func consoleOplog(t *testing.T, s *Server) map[string][]string {
	t.Helper()
	es, err := s.Registry.Oplog(registry.OplogFilter{Action: "console."})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, e := range es {
		out[e.Action] = append(out[e.Action], e.Reason)
	}
	return out
}

// Behind a reverse proxy listed in admin.trusted_proxies (here the test's own
// 127.0.0.1), the console's per-address login limit, its oplog and the refused
// admin requests' log see the client X-Forwarded-For names: 20 failed logins
// from 203.0.113.7 block that client only (a forged left-most address does not
// get it out), while 203.0.113.8 and the proxy's own address log in. Without
// the setting the header is ignored: the 20 failures block 127.0.0.1, that is
// every client behind the proxy.
func TestTrustedProxyClientAddress(t *testing.T) {
	t.Run("trusted", func(t *testing.T) {
		var logs syncbuf.Buffer
		cfg := demoConfig(t, t.TempDir())
		cfg.Admin.TrustedProxies = []string{"127.0.0.1"}
		s := start(t, cfg, &logs)
		p := newProxyClient(t, s)
		for i := range 20 {
			if st := p.login("203.0.113.7", fmt.Sprintf("nobody%d", i), "wrong password"); st != http.StatusUnauthorized {
				t.Fatalf("failure %d from 203.0.113.7: %d, want 401", i+1, st)
			}
		}
		if st := p.login("203.0.113.7", "operator", "operator-demo-pw"); st != http.StatusTooManyRequests {
			t.Fatalf("login from the blocked 203.0.113.7: %d, want 429", st)
		}
		if st := p.login("203.0.113.8, 203.0.113.7", "operator", "operator-demo-pw"); st != http.StatusTooManyRequests {
			t.Fatalf("login from the blocked 203.0.113.7 forging 203.0.113.8 on the left: %d, want 429", st)
		}
		if st := p.login("203.0.113.8", "operator", "operator-demo-pw"); st != http.StatusSeeOther {
			t.Fatalf("login from 203.0.113.8 while 203.0.113.7 is blocked: %d, want 303", st)
		}
		if st := p.login("", "analyst", "analyst-demo-pw"); st != http.StatusSeeOther {
			t.Fatalf("login from the proxy's own address (no header) while 203.0.113.7 is blocked: %d, want 303", st)
		}
		op := consoleOplog(t, s)
		if b := op["console.login-blocked"]; len(b) != 1 || !strings.Contains(b[0], "from 203.0.113.7 ") {
			t.Errorf("login-blocked entries %q, want one naming 203.0.113.7", b)
		}
		if f := op["console.login-failed"]; len(f) != 20 || f[0] != "from 203.0.113.7" {
			t.Errorf("%d login-failed entries (first %q), want 20 from 203.0.113.7", len(f), f)
		}
		if l := op["console.login"]; fmt.Sprint(sorted(l)) != "[from 127.0.0.1 from 203.0.113.8]" {
			t.Errorf("logins %q, want one from 203.0.113.8 and one from 127.0.0.1", l)
		}
		if st := p.do("GET", "/api/v1/merchants", "198.51.100.9, 203.0.113.9", "", false, "Authorization", "Bearer guessed-token-0000000000000000"); st != http.StatusUnauthorized {
			t.Fatalf("unknown token: %d, want 401", st)
		}
		out := logs.String()
		for _, w := range []string{`"remote":"203.0.113.9","peer":"127.0.0.1:`, `"from":"203.0.113.7"`} {
			if !strings.Contains(out, w) {
				t.Errorf("the log lacks %s:\n%s", w, out)
			}
		}
		if strings.Contains(out, "198.51.100.9") {
			t.Errorf("the forged left-most address is in the log:\n%s", out)
		}
	})
	t.Run("forwarded", func(t *testing.T) {
		// admin.trusted_proxy_header: forwarded reads RFC 7239 Forwarded and
		// nothing else: X-Forwarded-For beside it is what the client wrote.
		var logs syncbuf.Buffer
		cfg := demoConfig(t, t.TempDir())
		cfg.Admin.TrustedProxies = []string{"127.0.0.1"}
		cfg.Admin.TrustedProxyHeader = "forwarded"
		s := start(t, cfg, &logs)
		p := newProxyClient(t, s)
		if st := p.do("GET", "/api/v1/merchants", "198.51.100.9", "", false, "Forwarded", `for="[2001:db8::7]:4711";proto=https`,
			"Authorization", "Bearer guessed-token-0000000000000000"); st != http.StatusUnauthorized {
			t.Fatalf("unknown token: %d, want 401", st)
		}
		out := logs.String()
		if !strings.Contains(out, `"remote":"2001:db8::7","peer":"127.0.0.1:`) || strings.Contains(out, "198.51.100.9") {
			t.Errorf("the log lacks remote 2001:db8::7 from Forwarded, or names the X-Forwarded-For address:\n%s", out)
		}
	})
	t.Run("not trusted", func(t *testing.T) {
		var logs syncbuf.Buffer
		s := start(t, demoConfig(t, t.TempDir()), &logs)
		p := newProxyClient(t, s)
		for i := range 20 {
			if st := p.login("203.0.113.7", fmt.Sprintf("nobody%d", i), "wrong password"); st != http.StatusUnauthorized {
				t.Fatalf("failure %d: %d, want 401", i+1, st)
			}
		}
		if st := p.login("203.0.113.8", "operator", "operator-demo-pw"); st != http.StatusTooManyRequests {
			t.Fatalf("login with X-Forwarded-For 203.0.113.8, no proxy trusted: %d, want 429 (127.0.0.1 is blocked)", st)
		}
		op := consoleOplog(t, s)
		if b := op["console.login-blocked"]; len(b) != 1 || !strings.Contains(b[0], "from 127.0.0.1 ") {
			t.Errorf("login-blocked entries %q, want one naming 127.0.0.1", b)
		}
		p.do("GET", "/api/v1/merchants", "203.0.113.9", "", false)
		if out := logs.String(); !strings.Contains(out, `"remote":"127.0.0.1","peer":"127.0.0.1:`) || strings.Contains(out, "203.0.113") {
			t.Errorf("the log names an X-Forwarded-For address, or lacks remote 127.0.0.1:\n%s", out)
		}
	})
}

// admin.trusted_proxies (and trusted_proxy_header, allowed_hosts) are read at
// start: a reload that changes one names it among the settings that need a
// restart.
func TestTrustedProxiesNeedRestart(t *testing.T) {
	old := demoConfig(t, t.TempDir())
	cur := *old
	if k := restartKeys(old, &cur); slices.Contains(k, "admin.trusted_proxies") {
		t.Fatalf("unchanged: %v", k)
	}
	cur.Admin.TrustedProxies = []string{"10.0.0.0/8"}
	if k := restartKeys(old, &cur); !slices.Contains(k, "admin.trusted_proxies") {
		t.Fatalf("changed: restart keys %v, want admin.trusted_proxies", k)
	}
	cur.Admin.TrustedProxyHeader = "forwarded"
	if k := restartKeys(old, &cur); !slices.Contains(k, "admin.trusted_proxy_header") {
		t.Fatalf("header changed: restart keys %v, want admin.trusted_proxy_header", k)
	}
	cur.Admin.AllowedHosts = []string{"console.example"}
	if k := restartKeys(old, &cur); !slices.Contains(k, "admin.allowed_hosts") {
		t.Fatalf("allowed_hosts changed: restart keys %v, want admin.allowed_hosts", k)
	}
}
