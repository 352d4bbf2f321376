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
