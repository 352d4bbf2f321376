package server

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/syncbuf"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/registry"
)

// A connection to the admin port kept alive after a request is closed once it
// has been idle adminIdleTimeout: idle sockets, one request each, would
// otherwise use up the file descriptors the terminal listeners share.
func TestAdminIdleConnectionClosed(t *testing.T) {
	was := adminIdleTimeout
	adminIdleTimeout = 200 * time.Millisecond
	t.Cleanup(func() { adminIdleTimeout = was })
	s := start(t, demoConfig(t, t.TempDir()), nil)
	conn, err := net.Dial("tcp", s.AdminAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /livez HTTP/1.1\r\nHost: admin\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("/livez: %d, close %v: want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the server sent something on an idle connection")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("an idle admin connection still open after 10 s (idle timeout %v)", adminIdleTimeout)
	}
}

// A request whose headers come without the body they announce is answered and
// its connection closed once adminBodyTimeout has passed, whichever route it
// asks and whether or not the route reads bodies; before, Go waited for the body
// for ever (the admin server has no ReadTimeout), before even answering 401, so
// anyone could hold admin connections open without limit. A caller with a valid
// token is not bound: its slow body still arrives.
func TestAdminUnsentBodyCut(t *testing.T) {
	was := adminBodyTimeout
	adminBodyTimeout = 200 * time.Millisecond
	t.Cleanup(func() { adminBodyTimeout = was })
	s := start(t, demoConfig(t, t.TempDir()), nil)
	for _, req := range []string{
		"POST /api/v1/merchants HTTP/1.1\r\nHost: admin\r\nContent-Length: 100\r\n\r\n",
		"POST /api/v1/merchants HTTP/1.1\r\nHost: admin\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET /livez HTTP/1.1\r\nHost: admin\r\nContent-Length: 100\r\n\r\n",
	} {
		conn, err := net.Dial("tcp", s.AdminAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		// The answer, then the end of the connection.
		all, err := io.ReadAll(conn)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("%q: the connection still open after 10 s (answer so far %q)", req, all)
		} else if !bytes.HasPrefix(all, []byte("HTTP/1.1 ")) {
			t.Errorf("%q: no answer before the end: %q (%v)", req, all, err)
		}
	}
	// An operator's registration whose body comes after the bound: requested.
	body := `{"id":"000000000000777","name":"Slow Link","mcc":"5411","region":"CN-SH","tier":"standard","rating":"low","reason":"slow"}`
	conn, err := net.Dial("tcp", s.AdminAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/v1/merchants HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer demo-operator-7Kq2\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	<-time.After(3 * adminBodyTimeout) // the bound passes while the body is owed
	if _, err := conn.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("an operator's slow registration: %d %s, want 202", resp.StatusCode, b)
	}
}

// A logged-in console user's form is not bound either (the console lifts the
// bound once the session is known): a freeze request whose body comes after it
// is requested.
func TestAdminConsoleSlowBody(t *testing.T) {
	was := adminBodyTimeout
	adminBodyTimeout = 200 * time.Millisecond
	t.Cleanup(func() { adminBodyTimeout = was })
	s := start(t, demoConfig(t, t.TempDir()), nil)
	base := "http://" + s.AdminAddr()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(base+"/console/login", url.Values{"user": {"operator"}, "password": {"operator-demo-pw"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = c.Get(base + "/console/merchants")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the merchants page (%d)", resp.StatusCode)
	}
	u, _ := url.Parse(base)
	var cookies []string
	for _, ck := range jar.Cookies(u) {
		cookies = append(cookies, ck.Name+"="+ck.Value)
	}
	body := url.Values{"csrf": {string(m[1])}, "reason": {"slow link"}}.Encode()
	conn, err := net.Dial("tcp", s.AdminAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /console/merchants/000000000000001/freeze HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n",
		s.AdminAddr(), strings.Join(cookies, "; "), len(body))
	<-time.After(3 * adminBodyTimeout) // the bound passes while the body is owed
	if _, err := conn.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/console/changes/CHG-") {
		t.Fatalf("a logged-in operator's slow freeze: %d to %q, want 303 to its change", resp.StatusCode, loc)
	}
}

// An admin token that has a console user's name (made before the API and the
// Users page refused such names, or a token added since) is named in a warning
// at the start and at a reload: the oplog cannot tell the two apart.
func TestTokenNamedAsAUserWarned(t *testing.T) {
	var logs syncbuf.Buffer
	cfg := demoConfig(t, t.TempDir())
	cfg.Admin.Tokens = append(cfg.Admin.Tokens, admin.Token{Token: "a-token-named-as-the-demo-operator", Principal: admin.Principal{Name: "operator", Role: admin.RoleOperator}})
	start(t, cfg, &logs)
	if !strings.Contains(logs.String(), `"token":"operator"`) || !strings.Contains(logs.String(), "same name") {
		t.Fatalf("no warning for the token named as the demo user operator:\n%s", logs.String())
	}
}

// TestAdminRefusalsLoggedAndCounted: requests the admin API refuses (an unknown
// bearer token, none, a role that may not) are logged, with the client's address
// (no proxy trusted: the connection's) and the connection's ip:port,
// the path and the principal of a 403, never the token, and counted by status in
// switchyard_admin_refused_total.
func TestAdminRefusalsLoggedAndCounted(t *testing.T) {
	var logs syncbuf.Buffer
	s := start(t, demoConfig(t, t.TempDir()), &logs)
	client := http.Client{Timeout: 5 * time.Second}
	do := func(method, path, token string) int {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+s.AdminAddr()+path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	const guess = "guessed-token-6212345678901234"
	if st := do("GET", "/api/v1/merchants", guess); st != 401 {
		t.Fatalf("unknown token: %d", st)
	}
	if st := do("GET", "/api/v1/merchants", ""); st != 401 {
		t.Fatalf("no token: %d", st)
	}
	if st := do("POST", "/api/v1/merchants", registry.DemoAnalystToken); st != 403 {
		t.Fatalf("an analyst registering a merchant: %d", st)
	}
	out := logs.String()
	if n := strings.Count(out, "admin request refused"); n != 3 {
		t.Errorf("%d refusals logged, want 3:\n%s", n, out)
	}
	for _, w := range []string{`"status":401`, `"reason":"unknown bearer token"`, `"status":403`, `"principal":"demo-analyst"`, `"path":"/api/v1/merchants"`, `"remote":"127.0.0.1"`, `"peer":"127.0.0.1:`} {
		if !strings.Contains(out, w) {
			t.Errorf("the refusals' log lacks %s:\n%s", w, out)
		}
	}
	if strings.Contains(out, guess) || strings.Contains(out, "6212345678901234") || strings.Contains(out, registry.DemoAnalystToken) {
		t.Errorf("a token is in the log:\n%s", out)
	}
	req, _ := http.NewRequest("GET", "http://"+s.AdminAddr()+"/metrics", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, w := range []string{`switchyard_admin_refused_total{status="401"} 2`, `switchyard_admin_refused_total{status="403"} 1`} {
		if !strings.Contains(string(m), w) {
			t.Errorf("/metrics lacks %s", w)
		}
	}
}
