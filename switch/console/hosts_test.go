package console

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/switch/admin"
)

// TestRebindingLoginRefused: DNS rebinding, over loopback HTTP. A page at
// http://evil.example whose name the attacker has pointed at the admin address
// posts the console's login form: to the browser it is same-origin (Origin and Host
// both evil.example, Sec-Fetch-Site same-origin), so the cross-origin check lets it
// through and its wrong passwords lock the name out. With admin.allowed_hosts
// (admin.CheckHost in front of the console, as switch/server puts it) the post is
// refused 421 before the console counts anything; the listed name logs in.
func TestRebindingLoginRefused(t *testing.T) {
	f := newFixture(t)
	const port = ":8080" // the admin address's port, as the browser names it
	post := func(base, host, user, pw string) int {
		t.Helper()
		req, err := http.NewRequest("POST", base+"/console/login", strings.NewReader(url.Values{"user": {user}, "password": {pw}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "http://"+host)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		resp, err := f.client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	failures := func() int {
		f.con.sessions.mu.Lock()
		defer f.con.sessions.mu.Unlock()
		return len(f.con.sessions.failures)
	}

	// Without the list the rebinding page's post is a login attempt.
	if code := post(f.srv.URL, "evil.example"+port, "reviewer", "guessed"); code != http.StatusUnauthorized || failures() != 1 {
		t.Fatalf("no allowed_hosts: rebinding post %d, %d names counted; want 401 and one (the gap the list closes)", code, failures())
	}

	allowed, err := admin.ParseAllowedHosts([]string{"console.example"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	f.con.Register(mux)
	srv := httptest.NewServer(admin.CheckHost(mux, allowed, nil))
	t.Cleanup(srv.Close)
	for range 5 {
		if code := post(srv.URL, "evil.example"+port, "operator", "guessed"); code != http.StatusMisdirectedRequest {
			t.Fatalf("allowed_hosts [console.example]: rebinding post %d, want 421", code)
		}
	}
	if n := failures(); n != 1 {
		t.Fatalf("refused posts counted: %d names with failures, want only the earlier one", n)
	}
	if code := post(srv.URL, "console.example"+port, "operator", "operator-demo-pw"); code != http.StatusSeeOther {
		t.Fatalf("listed host: login %d, want 303", code)
	}
	if code := post(srv.URL, strings.TrimPrefix(srv.URL, "http://"), "operator", "operator-demo-pw"); code != http.StatusSeeOther {
		t.Fatalf("IP address host: login %d, want 303", code)
	}
}
