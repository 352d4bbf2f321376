package console

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/currency"
	"github.com/switchyard/switchyard/switch/internal/testswitch"
	"github.com/switchyard/switchyard/switch/registry"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is a console over a registry with the demo fleet and users, served
// by httptest, with an injected clock.
type fixture struct {
	reg   *registry.Registry
	con   *Console
	srv   *httptest.Server
	clock *clock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureOpts(t, registry.Options{SeenFlushInterval: -1})
}

// newFixtureOpts is newFixture with the registry's options.
func newFixtureOpts(t *testing.T, opts registry.Options) *fixture {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ck := &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	reg, err := registry.New(db, ck.Now, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	if _, err := registry.LoadDemoFleet(reg, testswitch.LoadTerminals); err != nil {
		t.Fatal(err)
	}
	if _, err := registry.LoadDemoUsers(reg); err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{Registry: reg, Now: ck.Now, IdleTimeout: 10 * time.Minute, MaxFailures: 3, LockoutFor: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	c.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(c.Stop)
	return &fixture{reg: reg, con: c, srv: srv, clock: ck}
}

// client is a cookie-keeping client that does not follow redirects.
func (f *fixture) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (f *fixture) login(t *testing.T, c *http.Client, user, pw string) *http.Response {
	t.Helper()
	resp, err := c.PostForm(f.srv.URL+"/console/login", url.Values{"user": {user}, "password": {pw}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// Every answer carries the strict policy; no template has inline script, inline
// style or an event handler attribute, which the policy would block anyway.
func TestContentSecurityPolicy(t *testing.T) {
	f := newFixture(t)
	resp, body := get(t, f.client(), f.srv.URL+"/console/login")
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if !strings.Contains(body, `<script src="/console/static/console.js"`) {
		t.Fatal("the login page does not load the console script")
	}
	if resp, js := get(t, f.client(), f.srv.URL+"/console/static/console.js"); resp.StatusCode != 200 || !strings.Contains(js, "EventSource") {
		t.Fatalf("console.js: %d", resp.StatusCode)
	}
	inline := regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]|<style|\sstyle=|\son[a-z]+=|javascript:`)
	err := fs.WalkDir(templateFS, "templates", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(templateFS, p)
		if m := inline.FindString(string(b)); m != "" {
			t.Errorf("%s: inline script, style or handler: %q", p, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Every catalog key has both languages, and every key a template or the code
// asks for is in the catalog.
func TestCatalogComplete(t *testing.T) {
	for k, e := range catalog {
		for _, l := range languages {
			if strings.TrimSpace(e[l]) == "" {
				t.Errorf("catalog key %s has no %s text", k, l)
			}
		}
	}
	used := regexp.MustCompile(`\{\{t "([^"]+)"`)
	dyn := map[string][]string{"action.%s": {"activate", "freeze", "unfreeze", "close", "suspend", "resume"}, "by.%s": {"binding", "risk", "issuer"},
		"role.%s": {"operator", "reviewer", "analyst", "admin"}}
	_ = fs.WalkDir(templateFS, "templates", func(p string, d fs.DirEntry, err error) error {
		if d.IsDir() {
			return nil
		}
		b, _ := fs.ReadFile(templateFS, p)
		for _, m := range used.FindAllStringSubmatch(string(b), -1) {
			if _, ok := catalog[m[1]]; !ok {
				t.Errorf("%s uses %q, not in catalog.json", p, m[1])
			}
		}
		return nil
	})
	keys := []string{"login.bad", "login.locked", "err.csrf", "err.role"}
	for pat, vals := range dyn {
		for _, v := range vals {
			keys = append(keys, strings.Replace(pat, "%s", v, 1))
		}
	}
	for _, p := range pages() {
		keys = append(keys, p.Title)
	}
	for _, m := range []string{"requested", "approved", "rejected", "cancelled", "saved", "reloaded", "backtest", "card_masked"} {
		keys = append(keys, "msg."+m)
	}
	for _, k := range keys {
		if _, ok := catalog[k]; !ok {
			t.Errorf("key %q is not in catalog.json", k)
		}
	}
}

// The session cookie is HttpOnly and SameSite=Strict; a session unused for the
// idle timeout ends; the language switch changes the labels.
func TestSessionCookieAndIdleTimeout(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	resp := f.login(t, c, "operator", "operator-demo-pw")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/" {
		t.Fatalf("login: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	ck := resp.Cookies()[0]
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure || ck.Name != "sy_session" {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, not Secure without TLS", ck)
	}
	if resp, body := get(t, c, f.srv.URL+"/console/merchants"); resp.StatusCode != 200 || !strings.Contains(body, "Merchants") {
		t.Fatalf("merchants: %d", resp.StatusCode)
	}
	get(t, c, f.srv.URL+"/console/lang/zh?back=/console/merchants")
	if _, body := get(t, c, f.srv.URL+"/console/merchants"); !strings.Contains(body, "商户") {
		t.Fatal("no Chinese labels after switching to zh")
	}
	f.clock.Advance(9 * time.Minute)
	if resp, _ := get(t, c, f.srv.URL+"/console/merchants"); resp.StatusCode != 200 {
		t.Fatalf("after 9 min: %d (the session should be alive: each request renews it)", resp.StatusCode)
	}
	f.clock.Advance(11 * time.Minute)
	if resp, _ := get(t, c, f.srv.URL+"/console/merchants"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/login") {
		t.Fatalf("after 11 idle minutes: %d %s, want the login", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// Three failed logins lock the name, even for the right password, until the
// lockout ends; the failures and the lockout are in the oplog.
func TestLockout(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	for i := 0; i < 3; i++ {
		if resp := f.login(t, c, "reviewer", "wrong password"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i+1, resp.StatusCode)
		}
	}
	if resp := f.login(t, c, "reviewer", "reviewer-demo-pw"); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("right password while locked: %d, want 429", resp.StatusCode)
	}
	if resp := f.login(t, c, "operator", "operator-demo-pw"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("another user while reviewer is locked: %d", resp.StatusCode)
	}
	f.clock.Advance(5*time.Minute + time.Second)
	if resp := f.login(t, c, "reviewer", "reviewer-demo-pw"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after the lockout: %d", resp.StatusCode)
	}
	es, err := f.reg.Oplog(registry.OplogFilter{Target: "reviewer", Action: "console."})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Action)
	}
	want := "console.login-failed console.login-failed console.login-failed console.lockout console.login-refused console.login"
	if strings.Join(got, " ") != want {
		t.Fatalf("oplog: %s\nwant:  %s", strings.Join(got, " "), want)
	}
}

// A POST without the CSRF token, or with another session's, is refused and
// changes nothing; a login's next= cannot send the browser elsewhere.
func TestCSRFAndRedirects(t *testing.T) {
	f := newFixture(t)
	a, b := f.client(), f.client()
	f.login(t, a, "operator", "operator-demo-pw")
	f.login(t, b, "operator2", "operator2-demo-pw")
	_, page := get(t, b, f.srv.URL+"/console/terminals/T0000002")
	other := csrfField.FindStringSubmatch(page)[1]
	for _, tok := range []string{"", other} {
		resp, err := a.PostForm(f.srv.URL+"/console/terminals/T0000002/suspend", url.Values{"csrf": {tok}, "reason": {"x"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("POST with token %q: %d, want 403", tok, resp.StatusCode)
		}
	}
	if cs, _ := f.reg.Changes(registry.ChangeFilter{}); len(cs) != 0 {
		t.Fatalf("refused requests made %d changes", len(cs))
	}
	_, page = get(t, a, f.srv.URL+"/console/terminals/T0000002")
	resp, err := a.PostForm(f.srv.URL+"/console/terminals/T0000002/suspend", url.Values{"csrf": {csrfField.FindStringSubmatch(page)[1]}, "reason": {"x"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/changes/CHG-") {
		t.Fatalf("POST with the token: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, next := range []string{"//evil.example/", "https://evil.example/", "/console/\\evil"} {
		resp, err := f.client().PostForm(f.srv.URL+"/console/login", url.Values{"user": {"analyst"}, "password": {"analyst-demo-pw"}, "next": {next}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); loc != "/console/" {
			t.Fatalf("next=%s redirected to %s", next, loc)
		}
	}
}

// A disabled user's session ends at its next request.
func TestDisabledUserLoggedOut(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	f.login(t, c, "analyst", "analyst-demo-pw")
	if err := f.reg.DisableUser(registry.Actor{Name: "admin", Role: "admin"}, "analyst", true); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, c, f.srv.URL+"/console/rules"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("disabled user's request: %d, want a redirect to the login", resp.StatusCode)
	}
}

// The event stream sends a summary at once and ends when the console stops
// (the admin server's shutdown does not wait for open dashboards).
func TestEventStreamEndsAtStop(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	f.login(t, c, "operator", "operator-demo-pw")
	resp, err := c.Get(f.srv.URL + "/console/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	buf := make([]byte, 64)
	n, err := io.ReadAtLeast(resp.Body, buf, len("event: summary"))
	if err != nil || !strings.HasPrefix(string(buf[:n]), "event: summary\ndata: {") {
		t.Fatalf("first event: %q, %v", buf[:n], err)
	}
	ended := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, resp.Body); ended <- err }()
	f.con.Stop()
	select {
	case err := <-ended:
		if err != nil {
			t.Fatalf("stream ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the event stream did not end within 5 s of Stop")
	}
	// Without a session the stream is refused, not redirected.
	if resp, _ := get(t, f.client(), f.srv.URL+"/console/events"); resp.StatusCode == http.StatusOK {
		t.Fatal("events without a session")
	}
}

// In a cluster the incidents page says which node saw an incident (every node
// lists every node's incidents); on a single node it does not.
func TestIncidentNode(t *testing.T) {
	for _, node := range []int{0, 2} {
		f := newFixtureOpts(t, registry.Options{SeenFlushInterval: -1, Node: node})
		f.reg.Check(registry.CheckRequest{TerminalID: "T0000001", MerchantID: "000000000000002"}) // swapped to another merchant
		c := f.client()
		f.login(t, c, "operator", "operator-demo-pw")
		_, page := get(t, c, f.srv.URL+"/console/incidents")
		if !strings.Contains(page, `id="inc-INC-1"`) {
			t.Fatalf("node %d: the incident is not listed", node)
		}
		if got, want := strings.Contains(page, `<small class="node">node 2</small>`), node == 2; got != want {
			t.Errorf("node %d: node shown %v, want %v", node, got, want)
		}
	}
}

// An operator saves an alert rule from the form (the registry's PutAlertRule)
// and the edit link fills the form with it; a rule that suspends terminals
// becomes a change for review instead.
func TestAlertRuleForm(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	f.login(t, c, "operator", "operator-demo-pw")
	_, page := get(t, c, f.srv.URL+"/console/incidents")
	tok := csrfField.FindStringSubmatch(page)[1]
	post := func(v url.Values) *http.Response {
		v.Set("csrf", tok)
		resp, err := c.PostForm(f.srv.URL+"/console/alert-rules", v)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post(url.Values{"id": {"quiet-bj"}, "threshold": {"2h"}, "regions": {"CN-BJ"}, "kinds": {"pos, mpos"}, "log": {"on"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save: %d", resp.StatusCode)
	}
	var got *registry.AlertRule
	for _, ar := range f.reg.AlertRules() {
		if ar.ID == "quiet-bj" {
			got = &ar
		}
	}
	if got == nil || time.Duration(got.Threshold) != 2*time.Hour || strings.Join(got.Filter.Regions, ",") != "CN-BJ" || len(got.Filter.Kinds) != 2 || got.Actions[0].Type != "log" {
		t.Fatalf("saved rule: %+v", got)
	}
	_, page = get(t, c, f.srv.URL+"/console/incidents?edit=quiet-bj")
	for _, want := range []string{`value="quiet-bj"`, `value="2h0m0s"`, `value="CN-BJ"`, `value="pos,mpos"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the edit form lacks %s", want)
		}
	}
	resp := post(url.Values{"id": {"suspend-bj"}, "regions": {"CN-BJ"}, "suspend": {"on"}, "reason": {"stolen terminals"}})
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "/console/changes/CHG-") {
		t.Fatalf("a suspending rule went to %q, want its change for review", loc)
	}
	if resp := post(url.Values{"id": {"bad"}, "threshold": {"soon"}}); !strings.Contains(resp.Header.Get("Location"), "err=") {
		t.Fatalf("a bad threshold: %s", resp.Header.Get("Location"))
	}
}

// An admin who adds an operator and a reviewer on the Users page knows both first
// passwords: the reviewer's approval of the operator's request is refused, the
// change stays pending, and the change page shows the registry's reason (who held
// both accounts, and what to do); a demo reviewer (made by the switch) approves it.
func TestApprovalNeedsIndependentAccounts(t *testing.T) {
	f := newFixture(t)
	form := func(c *http.Client, page, path string, v url.Values) *http.Response {
		t.Helper()
		_, body := get(t, c, f.srv.URL+page)
		m := csrfField.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("%s has no CSRF token", page)
		}
		v.Set("csrf", m[1])
		resp, err := c.PostForm(f.srv.URL+path, v)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("POST %s: %d, want a redirect", path, resp.StatusCode)
		}
		return resp
	}
	ad := f.client()
	f.login(t, ad, "admin", "admin-demo-pw")
	for _, u := range [][2]string{{"oscar", "operator"}, {"ruth", "reviewer"}} {
		if loc := form(ad, "/console/users", "/console/users", url.Values{"name": {u[0]}, "role": {u[1]}, "password": {u[0] + "-long-password"}}).Header.Get("Location"); strings.Contains(loc, "err=") {
			t.Fatalf("add %s: %s", u[0], loc)
		}
	}
	op := f.client()
	f.login(t, op, "oscar", "oscar-long-password")
	loc := form(op, "/console/terminals/T0000002", "/console/terminals/T0000002/suspend", url.Values{"reason": {"lost"}}).Header.Get("Location")
	id := strings.TrimPrefix(strings.SplitN(loc, "?", 2)[0], "/console/changes/")
	if !strings.HasPrefix(id, "CHG-") {
		t.Fatalf("the request went to %s", loc)
	}
	rev := f.client()
	f.login(t, rev, "ruth", "ruth-long-password")
	loc = form(rev, "/console/changes/"+id, "/console/changes/"+id+"/approve", url.Values{}).Header.Get("Location")
	_, page := get(t, rev, f.srv.URL+loc)
	for _, want := range []string{"admin has held the account of both oscar and ruth (admin -&gt; oscar; admin -&gt; ruth", "create a new account for ruth"} {
		if !strings.Contains(page, want) {
			t.Fatalf("the change page after the refused approval lacks %q:\n%s", want, page)
		}
	}
	if c, err := f.reg.GetChange(id); err != nil || c.Change.Status != registry.ChangePending {
		t.Fatalf("after ruth's approval: %+v, %v, want pending", c, err)
	}
	demo := f.client()
	f.login(t, demo, "reviewer", "reviewer-demo-pw")
	if loc := form(demo, "/console/changes/"+id, "/console/changes/"+id+"/approve", url.Values{}).Header.Get("Location"); strings.Contains(loc, "err=") {
		t.Fatalf("the demo reviewer's approval: %s", loc)
	}
	if c, _ := f.reg.GetChange(id); c.Change.Status != registry.ChangeApproved {
		t.Fatalf("after the demo reviewer's approval: %s", c.Change.Status)
	}
}

// TestRegisterMerchantNameLatin: the console's merchant registration form takes
// the ASCII name and the name language into the change it requests, the
// merchant's page shows them once a reviewer approved it, and the merchants'
// search finds the merchant by its ASCII name.
func TestRegisterMerchantNameLatin(t *testing.T) {
	f := newFixture(t)
	op := f.client()
	f.login(t, op, "operator", "operator-demo-pw")
	resp := f.postForm(t, op, "/console/merchants", "/console/merchants", url.Values{"id": {"000000000000092"}, "name": {"すし処 銀座"},
		"name_latin": {"Sushi Ginza"}, "name_language": {"ja"}, "mcc": {"5814"}, "region": {"CN-SH"}, "tier": {"micro"}, "rating": {"low"}})
	loc := resp.Header.Get("Location")
	id := strings.TrimPrefix(strings.SplitN(loc, "?", 2)[0], "/console/changes/")
	c, err := f.reg.GetChange(id)
	if err != nil || c.Change.Merchant == nil || c.Change.Merchant.NameLatin != "Sushi Ginza" || c.Change.Merchant.NameLanguage != "ja" {
		t.Fatalf("the form's request (%s): %+v, %v", loc, c, err)
	}
	if _, err := f.reg.Approve(registry.Actor{Name: "bob", Role: registry.RoleReviewer}, id, "ok"); err != nil {
		t.Fatal(err)
	}
	_, page := get(t, op, f.srv.URL+"/console/merchants/000000000000092")
	if !strings.Contains(page, `id="merchant-name-latin">Sushi Ginza<`) || !strings.Contains(page, `id="merchant-name-language">ja<`) {
		t.Fatalf("the merchant's page does not show the ASCII name and language:\n%s", page)
	}
	if _, page := get(t, op, f.srv.URL+"/console/merchants?q=sushi"); !strings.Contains(page, "000000000000092") {
		t.Fatalf("searching the merchants for its ASCII name does not find it:\n%s", page)
	}
}

// An alert rule's webhook URL, whose path is a Slack-style secret, is shown by
// the incidents page, its edit form, a change and the oplog only as its host and
// a fingerprint; saving the edit form as it was filled keeps the URL. Before,
// every role read the whole URL there.
func TestAlertRuleWebhookRedacted(t *testing.T) {
	hookKey := []byte("the webhook URL fingerprint key of the test")
	f := newFixtureOpts(t, registry.Options{SeenFlushInterval: -1, WebhookAllow: []string{"https://hooks.example.com/services/"}, WebhookURLKey: hookKey})
	const url1 = "https://hooks.example.com/services/T000/B000/XXXXSECRET1"
	const url2 = "https://hooks.example.com/services/T000/B000/XXXXSECRET2"
	red1 := registry.RedactWebhookURL(hookKey, url1)
	op := registry.Actor{Name: "operator", Role: registry.RoleOperator}
	if _, err := f.reg.PutAlertRule(op, registry.AlertRule{ID: "hook", Threshold: registry.Duration(time.Hour),
		Actions: []registry.AlertAction{{Type: registry.ActionWebhook, URL: url1}}}); err != nil {
		t.Fatal(err)
	}
	noSecret := func(what, page string) {
		t.Helper()
		if strings.Contains(page, "XXXXSECRET") || strings.Contains(page, "/services/") {
			t.Errorf("%s shows the webhook URL's path", what)
		}
	}
	c := f.client()
	f.login(t, c, "operator", "operator-demo-pw")
	_, page := get(t, c, f.srv.URL+"/console/incidents?edit=hook")
	if !strings.Contains(page, `name="webhook" placeholder="https://…" value="`+template.HTMLEscapeString(red1)+`"`) {
		t.Errorf("the edit form lacks the redacted URL %q", red1)
	}
	noSecret("incidents page", page)
	tok := csrfField.FindStringSubmatch(page)[1]
	post := func(v url.Values) *http.Response {
		t.Helper()
		v.Set("csrf", tok)
		resp, err := c.PostForm(f.srv.URL+"/console/alert-rules", v)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// The form saved as filled, with a new description: the URL stays.
	if resp := post(url.Values{"id": {"hook"}, "threshold": {"1h"}, "description": {"ops channel"}, "webhook": {red1}}); resp.StatusCode != http.StatusSeeOther || strings.Contains(resp.Header.Get("Location"), "err=") {
		t.Fatalf("save as filled: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	rules := f.reg.AlertRules()
	if len(rules) == 0 || rules[0].ID != "hook" || rules[0].Description != "ops channel" || rules[0].Actions[0].URL != red1 {
		t.Fatalf("rules after saving the form as filled: %+v; want the webhook still %q", rules, red1)
	}
	resp := post(url.Values{"id": {"hook"}, "threshold": {"1h"}, "webhook": {url2}, "suspend": {"on"}, "reason": {"suspend too"}})
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "/console/changes/CHG-") {
		t.Fatalf("a suspending rule went to %q, want its change for review", loc)
	}
	rc := f.client()
	f.login(t, rc, "reviewer", "reviewer-demo-pw")
	_, page = get(t, rc, f.srv.URL+loc)
	if !strings.Contains(page, registry.WebhookFingerprint(hookKey, url1)) || !strings.Contains(page, registry.WebhookFingerprint(hookKey, url2)) {
		t.Errorf("change page lacks the fingerprints of the URL in force and the one requested")
	}
	noSecret("change page", page)
	_, page = get(t, rc, f.srv.URL+"/console/oplog")
	noSecret("oplog page", page)
}

// TestMerchantLimitsInTheAcquirersCurrency: the merchant's page shows its amount
// limits in the decimals of the acquirer's currency (currency.Acquirer: merchants
// have none) with its code beside each, as the transactions show theirs; before,
// they were written with two decimals and no currency.
func TestMerchantLimitsInTheAcquirersCurrency(t *testing.T) {
	f := newFixture(t)
	op := f.client()
	f.login(t, op, "operator", "operator-demo-pw")
	const mid = "000000000000001"
	m, ok := f.reg.Merchant(mid)
	if !ok || m.Limits.PerTransaction == 0 || m.Limits.Daily == 0 || m.Limits.Monthly == 0 {
		t.Fatalf("demo merchant %s has not the three amount limits: %+v", mid, m)
	}
	_, page := get(t, op, f.srv.URL+"/console/merchants/"+mid)
	cur := currency.Acquirer
	want := fmt.Sprintf(`id="merchant-limits">per transaction %s %s · daily %s %s · monthly %s %s</span>`,
		currency.Format(m.Limits.PerTransaction, cur), cur, currency.Format(m.Limits.Daily, cur), cur, currency.Format(m.Limits.Monthly, cur), cur)
	if !strings.Contains(page, want) {
		i := strings.Index(page, "merchant-limits")
		t.Fatalf("the merchant's page does not show %s\n%s", want, page[max(i, 0):min(max(i, 0)+300, len(page))])
	}
}

// TestChangeShowsLimitsInTheAcquirersCurrency: a change of a merchant's limits shows,
// beside the stored minor units of each amount limit, the change as people read it
// in the acquirer's currency ("500.00 → 1000.00 156"; "-" for none), on the diff's
// line and on the change's page; other fields, and the daily count, get none.
func TestChangeShowsLimitsInTheAcquirersCurrency(t *testing.T) {
	lines := diff(json.RawMessage(`{"name":"a","limits":{"per_transaction":50000,"daily":1000005,"daily_count":9}}`),
		json.RawMessage(`{"name":"a","limits":{"per_transaction":100000,"monthly":1500,"daily_count":9}}`))
	got := map[string]string{}
	for _, l := range lines {
		got[l.Field] = l.Amount
	}
	want := map[string]string{"name": "", "limits.daily_count": "", "limits.per_transaction": "500.00 → 1000.00 156",
		"limits.daily": "10000.05 → - 156", "limits.monthly": "- → 15.00 156"}
	if !maps.Equal(got, want) {
		t.Errorf("diff's amounts: %v, want %v", got, want)
	}

	f := newFixture(t)
	op := f.client()
	f.login(t, op, "operator", "operator-demo-pw")
	c, err := f.reg.RequestChange(registry.Actor{Name: "alice", Role: registry.RoleOperator}, registry.Change{Op: registry.OpMerchantChange,
		Target: "000000000000001", MerchantPatch: &registry.MerchantPatch{Limits: &registry.Limits{PerTransaction: 123_456}}, Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	_, page := get(t, op, f.srv.URL+"/console/changes/"+c.ID)
	if !strings.Contains(page, `<p class="limit-amount">`) || !strings.Contains(page, " → 1234.56 156</p>") {
		t.Fatalf("the change's page does not show the limit in 156:\n%s", page)
	}
}
