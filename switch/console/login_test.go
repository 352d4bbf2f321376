package console

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/registry"
)

// A login with a name no user can have (too long, or with characters AddUser
// refuses) is refused like a wrong password, and what was typed is neither
// kept in the oplog nor counted for a lockout: the login form is open to
// anyone, and a form value may be megabytes.
func TestLoginMalformedName(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	long := strings.Repeat("a", 200000)
	for _, name := range []string{long, "<script>alert(1)</script>", "4111 1111 1111 1111"} {
		resp, err := c.PostForm(f.srv.URL+"/console/login", url.Values{"user": {name}, "password": {"whatever-it-is"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("login as a %d-byte malformed name: %d, want 401", len(name), resp.StatusCode)
		}
	}
	es, err := f.reg.Oplog(registry.OplogFilter{Action: "console."})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 {
		t.Fatalf("oplog: %d console entries, want one failed login per attempt", len(es))
	}
	for _, e := range es {
		if e.Action != "console.login-failed" || len(e.Target)+len(e.Reason)+len(e.Actor) > 200 || strings.Contains(e.Reason, "script") || strings.Contains(e.Reason, "4111") {
			t.Fatalf("oplog keeps what was typed: %s target %d bytes, reason %.80q", e.Action, len(e.Target), e.Reason)
		}
	}
	f.con.sessions.mu.Lock()
	n := len(f.con.sessions.failures)
	f.con.sessions.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d malformed names counted for lockouts, want none", n)
	}
	if resp := f.login(t, c, "operator", "operator-demo-pw"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("a well-formed login after them: %d", resp.StatusCode)
	}
}

// countingReader is an endless body that counts what the server read of it.
type countingReader struct {
	n     atomic.Int64
	limit int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	if left := r.limit - r.n.Load(); left <= 0 {
		return 0, io.EOF
	} else if int64(len(p)) > left {
		p = p[:left]
	}
	for i := range p {
		p[i] = 'x'
	}
	r.n.Add(int64(len(p)))
	return len(p), nil
}

// The login form is open to anyone: a body of 64 MB (a multipart file part,
// which Go would spool to disk) is refused after 1 MB is read, and nothing
// reaches the oplog.
func TestLoginBodyBounded(t *testing.T) {
	f := newFixture(t)
	const size = 64 << 20
	body := &countingReader{limit: size}
	head := "--B\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\noperator\r\n" +
		"--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"f\"\r\n\r\n"
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+"/console/login", io.MultiReader(strings.NewReader(head), body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "multipart/form-data; boundary=B")
	resp, err := f.client().Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("a %d MB login: %d, want 413", size>>20, resp.StatusCode)
		}
	} // else the server closed the connection while the client was still sending
	// What the client wrote includes what the loopback's socket buffers took.
	if n := body.n.Load(); n > 16<<20 {
		t.Fatalf("the client sent %d MB of a login body before the server stopped reading, want at most 16 MB", n>>20)
	}
	// A URL-encoded form over the bound too (ParseMultipartForm alone would
	// drop the error and go on with what it read).
	resp, err = f.client().PostForm(f.srv.URL+"/console/login", url.Values{"user": {strings.Repeat("a", 2<<20)}, "password": {"x"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("a 2 MB URL-encoded login: %d, want 413", resp.StatusCode)
	}
	if es, _ := f.reg.Oplog(registry.OplogFilter{Action: "console."}); len(es) != 0 {
		t.Fatalf("an oversized login body made %d oplog entries", len(es))
	}
}

// Password checks cost argon2id's 19 MiB each and the login form is open to
// anyone: at most maxLoginChecks run at once, maxLoginWaiting more logins wait,
// and the ones past them are answered 503 at once, without a failed login
// counted or written to the oplog.
func TestLoginChecksBounded(t *testing.T) {
	f := newFixture(t)
	// The gate bounds the logins of many addresses; from one, the address's
	// limit admits no more at once than its failures left
	// (TestLoginLimitsHoldForConcurrentLogins): raised here past the gate's.
	f.con.addrs = newAddrLimiter(f.clock.Now, 1000, time.Hour)
	release := make(chan struct{})
	var mu sync.Mutex
	in, most := 0, 0
	f.con.checkPassword = func(name, pw string) (*registry.User, error) {
		mu.Lock()
		in++
		most = max(most, in)
		mu.Unlock()
		<-release
		mu.Lock()
		in--
		mu.Unlock()
		return nil, registry.ErrBadLogin
	}
	const extra = 5
	n := maxLoginChecks + maxLoginWaiting + extra
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.PostForm(f.srv.URL+"/console/login", url.Values{"user": {fmt.Sprintf("user%d", i)}, "password": {"wrong password"}})
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	timeout := time.After(10 * time.Second)
	for busy := 0; busy < extra; {
		select {
		case c := <-codes:
			if c != http.StatusServiceUnavailable {
				close(release)
				t.Fatalf("a login answered %d while %d checks were held, want 503 for the ones past the queue", c, maxLoginChecks)
			}
			busy++
		case <-timeout:
			close(release)
			wg.Wait()
			t.Fatalf("after 10 s, %d of %d logins past the bound answered 503 (at most %d password checks ran at once)", busy, extra, most)
		}
	}
	close(release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusUnauthorized {
			t.Fatalf("a login that waited its turn: %d, want 401", c)
		}
	}
	if most > maxLoginChecks {
		t.Fatalf("%d password checks at once, want at most %d", most, maxLoginChecks)
	}
	es, _ := f.reg.Oplog(registry.OplogFilter{Action: "console.login-failed"})
	if len(es) != n-extra {
		t.Fatalf("%d failed logins in the oplog, want %d (the 503s are not failed logins)", len(es), n-extra)
	}
}

// Anyone may try names, each leaving a failure count: once the counts pass
// sweepAt, the stale ones (older than a lockout, of names not locked) are
// forgotten, and a recent count or a lockout is kept.
func TestLoginFailuresForgotten(t *testing.T) {
	f := newFixture(t)
	f.con.sessions.sweepAt = 4
	c := f.client()
	for _, name := range []string{"nobody1", "nobody2", "nobody3"} {
		if resp := f.login(t, c, name, "wrong password"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("login as %s: %d", name, resp.StatusCode)
		}
	}
	f.clock.Advance(5*time.Minute + time.Second) // LockoutFor is 5 min
	for range 3 {
		f.login(t, c, "reviewer", "wrong password")
	}
	f.con.sessions.mu.Lock()
	var names []string
	for k := range f.con.sessions.failures {
		names = append(names, k)
	}
	f.con.sessions.mu.Unlock()
	if len(names) != 1 || names[0] != "reviewer" {
		t.Fatalf("failure counts kept: %v, want only reviewer's (the others are stale)", names)
	}
	if resp := f.login(t, c, "reviewer", "reviewer-demo-pw"); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("reviewer after 3 failures and a sweep: %d, want 429 (locked)", resp.StatusCode)
	}
}

// An admin's new password for a user (a stolen one reset) ends the user's
// sessions at their next request, and ends an open event stream too, as do
// a logout and a disable: the stream is one request that lasts.
func TestSessionEndsWithNewPassword(t *testing.T) {
	f := newFixture(t)
	adm := registry.Actor{Name: "admin", Role: "admin"}
	c := f.client()
	f.login(t, c, "analyst", "analyst-demo-pw")
	if resp, _ := get(t, c, f.srv.URL+"/console/rules"); resp.StatusCode != http.StatusOK {
		t.Fatalf("rules before the reset: %d", resp.StatusCode)
	}
	if err := f.reg.SetPassword(adm, "analyst", "a-new-analyst-pw"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, c, f.srv.URL+"/console/rules"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/login") {
		t.Fatalf("the session after an admin reset the password: %d %s, want the login", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp := f.login(t, c, "analyst", "a-new-analyst-pw"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login with the new password: %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, f.srv.URL+"/console/rules"); resp.StatusCode != http.StatusOK {
		t.Fatalf("rules in the new session: %d", resp.StatusCode)
	}

	for _, end := range []struct {
		what string
		do   func(f *fixture, c *http.Client)
	}{
		{"a new password", func(f *fixture, _ *http.Client) {
			if err := f.reg.SetPassword(adm, "operator", "another-operator-pw"); err != nil {
				t.Fatal(err)
			}
		}},
		{"a disable", func(f *fixture, _ *http.Client) {
			if err := f.reg.DisableUser(adm, "operator", true); err != nil {
				t.Fatal(err)
			}
		}},
		{"a logout", func(f *fixture, c *http.Client) {
			_, page := get(t, c, f.srv.URL+"/console/")
			resp, err := c.PostForm(f.srv.URL+"/console/logout", url.Values{"csrf": {csrfField.FindStringSubmatch(page)[1]}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}},
	} {
		f := newFixture(t)
		c := f.client()
		f.login(t, c, "operator", "operator-demo-pw")
		resp, err := c.Get(f.srv.URL + "/console/events")
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		if _, err := io.ReadAtLeast(resp.Body, buf, len("event: summary")); err != nil {
			t.Fatal(err)
		}
		ended := make(chan error, 1)
		go func() { _, err := io.Copy(io.Discard, resp.Body); ended <- err }()
		end.do(f, c)
		select {
		case <-ended:
		case <-time.After(5 * time.Second):
			t.Fatalf("the event stream went on for 5 s after %s", end.what)
		}
		resp.Body.Close()
	}
}

// A login body sent slowly (here: never finished) is cut off after
// loginReadTimeout: it is the one body the admin port reads before any
// credential, and the admin server has no ReadTimeout.
func TestLoginSlowBodyCut(t *testing.T) {
	f := newFixture(t)
	f.con.loginReadTimeout = 200 * time.Millisecond
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = conn.Write([]byte("POST /console/login HTTP/1.1\r\nHost: admin\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nuser=opera"))
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a login body that never ends still read after 10 s")
	}
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("a slow login: %d, want 408", resp.StatusCode)
		}
	} // else the server closed the connection
	if es, _ := f.reg.Oplog(registry.OplogFilter{Action: "console."}); len(es) != 0 {
		t.Fatalf("a cut login made %d oplog entries", len(es))
	}
}

// clientFrom is f.client dialing from the loopback address local (127.0.0.2:
// another client address on the same machine).
func (f *fixture) clientFrom(t *testing.T, local string) *http.Client {
	t.Helper()
	c := f.client()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c.Transport = &http.Transport{DialContext: d.DialContext}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// Password spraying: 20 failed logins with 20 names from one address (no name
// locked) block the address for 10 minutes: its next login is refused with 429
// and Retry-After, even with the right password, without a password check or an
// oplog entry; one oplog entry says the address was blocked and how many names
// it tried. Another address logs in meanwhile; after the window the first does
// too, and failures spread over more than a window block nothing.
func TestLoginBlockedPerAddress(t *testing.T) {
	f := newFixture(t) // AddrMaxFailures and AddrWindow at their defaults: 20, 10 min
	a := f.client()
	for i := range 20 {
		if resp := f.login(t, a, fmt.Sprintf("nobody%d", i), "wrong password"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d, want 401", i+1, resp.StatusCode)
		}
	}
	checked := 0
	check := f.con.checkPassword
	f.con.checkPassword = func(name, pw string) (*registry.User, error) { checked++; return check(name, pw) }
	for i := range 2 {
		resp := f.login(t, a, "operator", "operator-demo-pw")
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "600" {
			t.Fatalf("login %d from the blocked address with the right password: %d, Retry-After %q; want 429, 600", 21+i, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	if checked != 0 {
		t.Fatalf("%d password checks for a blocked address, want none", checked)
	}
	es, err := f.reg.Oplog(registry.OplogFilter{Action: "console."})
	if err != nil {
		t.Fatal(err)
	}
	var blocked []string
	for _, e := range es {
		if e.Action == "console.login-blocked" {
			blocked = append(blocked, e.Reason)
		}
	}
	if len(es) != 21 || len(blocked) != 1 || !strings.Contains(blocked[0], "127.0.0.1") || !strings.Contains(blocked[0], "20 names") {
		t.Fatalf("oplog: %d console entries, blocked %q; want 20 failures and one block naming 127.0.0.1 and 20 names", len(es), blocked)
	}
	b := f.clientFrom(t, "127.0.0.2")
	if resp := f.login(t, b, "operator", "operator-demo-pw"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login from another address while 127.0.0.1 is blocked: %d, want 303", resp.StatusCode)
	}
	f.clock.Advance(10 * time.Minute)
	if resp := f.login(t, a, "operator", "operator-demo-pw"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login after the block's 10 min: %d, want 303", resp.StatusCode)
	}
	for i := range 19 {
		f.login(t, a, fmt.Sprintf("nobody%d", i), "wrong password")
	}
	f.clock.Advance(10 * time.Minute)
	if resp := f.login(t, a, "nobody19", "wrong password"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a 20th failure 10 min after 19: %d, want 401 (the 19 are out of the window)", resp.StatusCode)
	}
	if resp := f.login(t, a, "operator", "operator-demo-pw"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login after failures spread over more than the window: %d, want 303", resp.StatusCode)
	}
}

// The per-address table is bounded: past maxAddrs addresses the one whose
// latest failure is the oldest is forgotten.
func TestAddrLimiterBounded(t *testing.T) {
	ck := &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	l := newAddrLimiter(ck.Now, 2, time.Minute)
	l.maxAddrs = 3
	for i := range 10 {
		ck.Advance(time.Second)
		l.failed(fmt.Sprintf("192.0.2.%d", i), "x")
	}
	if len(l.byAddr) != 3 || l.lru.Len() != 3 {
		t.Fatalf("%d addresses kept (list %d), want 3", len(l.byAddr), l.lru.Len())
	}
	for _, a := range []string{"192.0.2.7", "192.0.2.8", "192.0.2.9"} {
		if _, ok := l.byAddr[a]; !ok {
			t.Fatalf("%s forgotten, want the 3 latest kept", a)
		}
	}
	if n, blocked := l.failed("192.0.2.9", "y"); !blocked || n != 2 || l.blocked("192.0.2.9").IsZero() {
		t.Fatalf("second failure of 192.0.2.9: blocked %v with %d names, want blocked with 2", blocked, n)
	}
}

// A session ends SessionLifetime (12 h by default) after its login, however
// busy: a request every 9 minutes (IdleTimeout is 10) keeps it until then only.
func TestSessionLifetime(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	if resp := f.login(t, c, "operator", "operator-demo-pw"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	var elapsed time.Duration
	for elapsed+9*time.Minute < 12*time.Hour {
		f.clock.Advance(9 * time.Minute)
		elapsed += 9 * time.Minute
		if resp, _ := get(t, c, f.srv.URL+"/console/merchants"); resp.StatusCode != http.StatusOK {
			t.Fatalf("a busy session after %v: %d, want 200", elapsed, resp.StatusCode)
		}
	}
	f.clock.Advance(12*time.Hour - elapsed)
	if resp, _ := get(t, c, f.srv.URL+"/console/merchants"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/login") {
		t.Fatalf("a busy session 12 h after its login: %d %s, want the login", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, err := New(Options{Registry: f.reg, SessionLifetime: -time.Hour}); err == nil {
		t.Fatal("a negative session lifetime accepted")
	}
}

// A login ends the session the browser held before it, of another user or of
// the same one, each with a console.logout entry: before, the old session stayed
// live until its idle timeout, though its cookie had been replaced.
func TestLoginEndsThePreviousSession(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	u, _ := url.Parse(f.srv.URL)
	for _, next := range []string{"analyst", "operator"} {
		f.login(t, c, "operator", "operator-demo-pw")
		before := c.Jar.Cookies(u)
		f.login(t, c, next, next+"-demo-pw")
		old := f.client()
		old.Jar.SetCookies(u, before)
		if resp, _ := get(t, old, f.srv.URL+"/console/merchants"); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("operator's session after a login of %s in the same browser: %d, want the login's redirect", next, resp.StatusCode)
		}
		if resp, _ := get(t, c, f.srv.URL+"/console/merchants"); resp.StatusCode != http.StatusOK {
			t.Fatalf("the new session of %s: %d", next, resp.StatusCode)
		}
	}
	es, err := f.reg.Oplog(registry.OplogFilter{Action: "console.logout"})
	if err != nil || len(es) != 3 || es[0].Actor != "operator" || !strings.Contains(es[0].Reason, "replaced by a login of analyst") {
		t.Fatalf("console.logout entries: %+v, %v", es, err)
	}
}

// Logins sent at once are held to the lockout's counts: no more password checks
// of a name run than the failures it has left (MaxFailures 3 here), nor more
// logins from an address than its failures left; the others are answered 429 at
// once, unchecked and uncounted. Before, every login passed the lockout's and
// the address's checks before any of them failed: maxLoginChecks +
// maxLoginWaiting guesses of a name per lockout instead of MaxFailures.
func TestLoginLimitsHoldForConcurrentLogins(t *testing.T) {
	for _, tc := range []struct {
		name  string
		users func(i int) string
	}{
		{"one name", func(int) string { return "operator" }},
		{"one address", func(i int) string { return fmt.Sprintf("user%d", i) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.name == "one address" {
				f.con.addrs = newAddrLimiter(f.clock.Now, 3, time.Hour)
			}
			entered, release := make(chan struct{}, maxLoginChecks), make(chan struct{})
			f.con.checkPassword = func(name, pw string) (*registry.User, error) {
				entered <- struct{}{}
				<-release
				return nil, registry.ErrBadLogin
			}
			codes := make(chan int, maxLoginChecks)
			var wg sync.WaitGroup
			for i := range maxLoginChecks { // all of them fit the password checks' gate
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, err := http.PostForm(f.srv.URL+"/console/login", url.Values{"user": {tc.users(i)}, "password": {"wrong password"}})
					if err != nil {
						codes <- 0
						return
					}
					resp.Body.Close()
					codes <- resp.StatusCode
				}()
			}
			checks, early := 0, []int{}
			timeout := time.After(10 * time.Second)
			for checks+len(early) < maxLoginChecks {
				select {
				case <-entered:
					checks++
				case c := <-codes:
					early = append(early, c)
				case <-timeout:
					close(release)
					t.Fatalf("after 10 s: %d checks running, %d answers", checks, len(early))
				}
			}
			close(release)
			wg.Wait()
			if checks != 3 {
				t.Fatalf("%d password checks of %d logins sent at once, want 3 (the limit)", checks, maxLoginChecks)
			}
			for _, c := range early {
				if c != http.StatusTooManyRequests {
					t.Fatalf("a login past the limit answered %d, want 429", c)
				}
			}
			if es, _ := f.reg.Oplog(registry.OplogFilter{Action: "console.login-failed"}); len(es) != 3 {
				t.Fatalf("%d failed logins in the oplog, want 3", len(es))
			}
		})
	}
}
