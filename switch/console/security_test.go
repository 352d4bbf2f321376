package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/registry"
)

// postForm logs c's page in (for its CSRF token) and posts v with the token to
// path, answering the response, its body closed.
func (f *fixture) postForm(t *testing.T, c *http.Client, page, path string, v url.Values) *http.Response {
	t.Helper()
	_, body := get(t, c, f.srv.URL+page)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("%s has no CSRF token", page)
	}
	v.Set("csrf", m[1])
	resp, err := c.PostForm(f.srv.URL+path, v)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	resp.Body.Close()
	return resp
}

// TestActionOnOddIDRedirects: an operator's lifecycle action on an ID that
// holds a control character or a '?' (%09, %3F in the path) is refused by the
// registry and redirected back to the ID's page, escaped. Before, the redirect
// parsed the unescaped path, url.Parse failed on the control character, and
// the handler panicked on the nil URL (the connection dropped, a stack trace
// in the log): bad input must get an answer.
func TestActionOnOddIDRedirects(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	f.login(t, c, "operator", "operator-demo-pw")
	for _, id := range []string{"%09x", "a%3Fb%23c", "%0D%0ASet-Cookie:%20x=y"} {
		resp := f.postForm(t, c, "/console/merchants", "/console/merchants/"+id+"/freeze", url.Values{"reason": {"test"}})
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("freeze of merchant %s: %d, want 303 back to its page", id, resp.StatusCode)
		}
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || !strings.HasPrefix(loc.Path, "/console/merchants/") || loc.Query().Get("err") == "" || loc.Host != "" {
			t.Fatalf("freeze of merchant %s: Location %q (%v), want its page with the refusal", id, resp.Header.Get("Location"), err)
		}
		if want, _ := url.PathUnescape(id); loc.Path != "/console/merchants/"+want {
			t.Errorf("freeze of merchant %s: back to %q", id, loc.Path)
		}
	}
}

// TestErrorNoticeNeedsItsMAC: the error banner shows the refusal an action
// redirected with (the registry's message), and nothing for an err parameter
// that a link from elsewhere made up, nor one made for another session; the
// notice banner shows the catalog's notices only (before, msg=TEXT showed
// "msg.TEXT", the missing key as it is). Before,
// any link (the login page's too) put text of its choosing into the console's
// error banner: "/console/login?err=The+switch+moved:+log+in+at+https://evil/".
func TestErrorNoticeNeedsItsMAC(t *testing.T) {
	f := newFixture(t)
	const forged = "Session expired: log in at evil.example"
	banner := func(body string) bool { return strings.Contains(body, `id="err"`) } // the link back (language switch) holds the query

	if _, body := get(t, f.client(), f.srv.URL+"/console/login?err="+url.QueryEscape(forged)); banner(body) {
		t.Fatal("the login page shows a forged error notice")
	}
	op := f.client()
	f.login(t, op, "operator", "operator-demo-pw")
	resp := f.postForm(t, op, "/console/merchants", "/console/merchants/NOSUCH/freeze", url.Values{"reason": {"test"}})
	loc := resp.Header.Get("Location")
	if _, body := get(t, op, f.srv.URL+loc); !banner(body) || !strings.Contains(body, "NOSUCH") {
		t.Fatalf("%s: the refusal is not shown", loc)
	}
	u, _ := url.Parse(loc)
	q := u.Query()
	q.Set("err", forged) // its MAC is the real refusal's
	for _, forgedURL := range []string{"/console/merchants?err=" + url.QueryEscape(forged), u.Path + "?" + q.Encode()} {
		if _, body := get(t, op, f.srv.URL+forgedURL); banner(body) {
			t.Errorf("%s: a forged error notice is shown", forgedURL)
		}
	}
	if _, body := get(t, op, f.srv.URL+"/console/merchants?msg="+url.QueryEscape(forged)); strings.Contains(body, `id="msg"`) {
		t.Errorf("a notice outside the catalog is shown")
	}
	if _, body := get(t, op, f.srv.URL+"/console/merchants?msg=saved"); !strings.Contains(body, `id="msg"`) {
		t.Errorf("the catalog's notice msg=saved is not shown")
	}
	other := f.client()
	f.login(t, other, "operator2", "operator2-demo-pw")
	if _, body := get(t, other, f.srv.URL+loc); banner(body) {
		t.Errorf("another session shows a notice made for the first")
	}
}

// TestCrossSiteLoginRefused: a login posted from another site (what a page the
// operator opens elsewhere can make the browser do, Sec-Fetch-Site cross-site,
// or an older browser's foreign Origin) is refused before the password is
// checked: the name is not locked out and nothing enters the oplog. Before, such
// pages could lock out every operator of an internal console (max_failures) and
// log the browser in as an account of their choosing. The console's own form
// (same-origin) and clients that send neither header (scripts, the tests) log in.
func TestCrossSiteLoginRefused(t *testing.T) {
	f := newFixture(t)
	login := func(user, pw string, hdr map[string]string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", f.srv.URL+"/console/login", strings.NewReader(url.Values{"user": {user}, "password": {pw}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := f.client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, hdr := range []map[string]string{{"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}, {"Origin": "https://evil.example"}} {
		for i := 0; i < 4; i++ { // past max_failures (3)
			if st := login("admin", "wrong password", hdr); st != http.StatusForbidden {
				t.Fatalf("login with %v: %d, want 403", hdr, st)
			}
		}
	}
	es, err := f.reg.Oplog(registry.OplogFilter{Target: "admin", Action: "console."})
	if err != nil || len(es) != 0 {
		t.Fatalf("oplog of the refused logins: %d entries (%v), want none", len(es), err)
	}
	if st := login("admin", "admin-demo-pw", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": f.srv.URL}); st != http.StatusSeeOther {
		t.Fatalf("the console's own login form: %d, want 303 (not locked out)", st)
	}
	if st := login("admin", "admin-demo-pw", nil); st != http.StatusSeeOther {
		t.Fatalf("a login without browser headers: %d, want 303", st)
	}
}

// TestLoginNameWithCardNumberNotKept: a card number typed or pasted into the
// login's name field (a PAN from a ticket) is refused as a name no user can have:
// the oplog, whose hash chain keeps an entry for ever, says how long it was, not
// what it was, and the lockout does not keep it. Before, a name of 16 digits
// passed as a well-formed user name and went into the oplog in clear.
func TestLoginNameWithCardNumberNotKept(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	for _, name := range []string{"4111111111111111", "ops.4111111111111111", "5500-0000-0000-0004"} {
		if resp := f.login(t, c, name, "whatever-it-is"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("login as %q: %d, want 401", name, resp.StatusCode)
		}
	}
	es, err := f.reg.Oplog(registry.OplogFilter{Action: "console."})
	if err != nil || len(es) != 3 {
		t.Fatalf("oplog: %d console entries (%v), want 3", len(es), err)
	}
	for _, e := range es {
		if strings.Contains(e.Target+e.Reason+e.Actor, "1111111111") || strings.Contains(e.Target+e.Reason+e.Actor, "0000-0000") {
			t.Errorf("the oplog keeps the card number: %+v", e)
		}
	}
	f.con.sessions.mu.Lock()
	n := len(f.con.sessions.failures)
	f.con.sessions.mu.Unlock()
	if n != 0 {
		t.Errorf("%d card numbers kept for lockouts", n)
	}
	if _, err := f.reg.AddUser(registry.Actor{Name: "system"}, "4111111111111111", registry.RoleOperator, "a-long-password"); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("a user named with a card number: %v, want refused as invalid", err)
	}
}

// TestUsersPageRefusesATokenName: the Users page does not add a console user
// under an admin token's name (the oplog could not tell the two people apart);
// another name is added.
func TestUsersPageRefusesATokenName(t *testing.T) {
	f := newFixture(t)
	f.con.o.TokenName = func(name string) bool { return name == "bob" }
	ad := f.client()
	f.login(t, ad, "admin", "admin-demo-pw")
	resp := f.postForm(t, ad, "/console/users", "/console/users", url.Values{"name": {"bob"}, "role": {"operator"}, "password": {"bob's long password"}})
	if loc := resp.Header.Get("Location"); !strings.Contains(loc, "err=") || !strings.Contains(loc, "admin+token") {
		t.Fatalf("a user named as a token: redirected to %q, want the refusal", loc)
	}
	if _, err := f.reg.User("bob"); err == nil {
		t.Fatal("the user bob was added")
	}
	f.postForm(t, ad, "/console/users", "/console/users", url.Values{"name": {"bobby"}, "role": {"operator"}, "password": {"bobby's long password"}})
	if _, err := f.reg.User("bobby"); err != nil {
		t.Fatalf("another name: %v", err)
	}
}

// TestRefusalWithCardNumberMasked: a refusal whose message quotes what was typed
// (a card number pasted into the merchant ID field of the registration form, or
// into an alert rule's webhook URL) travels to the page it redirects to in the
// URL, which reverse proxies log and browsers keep in their history: the card
// number in it is masked, and the banner shows it masked. Before, the clear PAN
// of a POST body went into the Location header and the next GET's request line.
func TestRefusalWithCardNumberMasked(t *testing.T) {
	f := newFixture(t)
	op := f.client()
	f.login(t, op, "operator", "operator-demo-pw")
	const pan = "4111111111111111"
	for _, post := range []struct {
		path string
		v    url.Values
	}{
		{"/console/merchants", url.Values{"id": {pan}, "name": {"Shop"}, "mcc": {"5411"}, "region": {"north"}, "tier": {"standard"}, "rating": {"low"}, "reason": {"new"}}},
		{"/console/alert-rules", url.Values{"id": {"offline"}, "webhook": {"card " + pan}, "reason": {"x"}}},
	} {
		resp := f.postForm(t, op, "/console/incidents", post.path, post.v)
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusSeeOther || !strings.Contains(loc, "err=") {
			t.Fatalf("POST %s: %d %q, want a redirect with the refusal", post.path, resp.StatusCode, loc)
		}
		if strings.Contains(loc, pan) {
			t.Errorf("POST %s: the redirect holds the clear card number: %s", post.path, loc)
		}
		if _, body := get(t, op, f.srv.URL+loc); !strings.Contains(body, `id="err"`) || !strings.Contains(body, "411111******1111") || strings.Contains(body, pan) {
			t.Errorf("POST %s: the banner does not show the refusal with the card number masked", post.path)
		}
	}
}

// TestNotFoundPagesEchoNoText: a link (mailed, posted in a chat) to a detail
// page of an ID that does not exist, or with a malformed query, shows no text
// of the link's choosing on the console's own error page: an ID that is no
// identifier is not echoed, only its length. Before, the error banner read
// whatever the link put in the path ("merchant Your session expired: log in
// at https://evil.example does not exist"), the text injection that the error
// notice's MAC closed for ?err=. A plain ID that does not exist is still named.
func TestNotFoundPagesEchoNoText(t *testing.T) {
	f := newFixture(t)
	f.con.o.Journal = openJournal(t)
	c := f.client()
	f.login(t, c, "operator", "operator-demo-pw")
	const spoof = "Session expired, log in at https://evil.example/console"
	esc := url.PathEscape(spoof)
	for _, path := range []string{
		"/console/merchants/" + esc,
		"/console/terminals/" + esc,
		"/console/changes/" + esc,
		"/console/transactions/" + esc,
		"/console/transactions?from=" + url.QueryEscape(spoof),
		"/console/transactions?to=" + url.QueryEscape(spoof),
	} {
		_, body := get(t, c, f.srv.URL+path)
		// The header's language links carry the page's own URI back; the page
		// itself is <main>.
		if _, main, _ := strings.Cut(body, "<main>"); strings.Contains(main, "evil.example") {
			t.Errorf("GET %s: the page shows the link's text:\n%s", path, main)
		}
	}
	// The applications page's group, refused as the apps manager does.
	f.con.o.Apps = fakeRollouts{err: fmt.Errorf("rollout group %q does not exist", spoof)}
	if _, body := get(t, c, f.srv.URL+"/console/apps?group="+url.QueryEscape(spoof)); strings.Contains(strings.SplitN(body, "<main>", 2)[1], "evil.example") {
		t.Errorf("GET /console/apps?group=: the page shows the link's text")
	}
	if _, body := get(t, c, f.srv.URL+"/console/merchants/NOSUCH123"); !strings.Contains(body, "NOSUCH123") {
		t.Errorf("a plain ID that does not exist is not named")
	}
}

// openJournal is an empty journal in a temporary directory.
func openJournal(t *testing.T) *journal.Store {
	t.Helper()
	dir := t.TempDir()
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "db")).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(db, journal.Options{Dir: filepath.Join(dir, "log"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close(); _ = db.Close() })
	return j
}

// TestAmountsInTheirCurrencyDecimals: the console writes an amount with its
// currency's decimals (ISO 4217) on the transaction page and in the list: 1000
// yen as "1000 392", 1500 fils as "1.500 414", 1234 fen as "12.34 156". Before,
// every amount had two decimals: the yen payment read "10.00 392", a
// hundredth of what was paid, and the dinar one "15.00 414".
func TestAmountsInTheirCurrencyDecimals(t *testing.T) {
	f := newFixture(t)
	j := openJournal(t)
	f.con.o.Journal = j
	at := f.clock.Now().Add(-time.Hour)
	want := map[string]string{}
	for i, c := range []struct {
		cur    string
		amount int64
		shown  string
	}{{"392", 1000, "1000 392"}, {"414", 1500, "1.500 414"}, {"156", 1234, "12.34 156"}} {
		rrn := fmt.Sprintf("00000000000%d", i+1)
		rec := &journal.Record{RRN: rrn, Received: at.Add(time.Duration(i) * time.Second), MTI: "0200", Type: "purchase", TID: "T0000001",
			MID: "000000000000001", STAN: fmt.Sprintf("00000%d", i+1), Amount: c.amount, Currency: c.cur, State: journal.StateAnswered, RC: "00"}
		if err := j.Write(context.Background(), rec, true, true); err != nil {
			t.Fatal(err)
		}
		want[rrn] = c.shown
	}
	c := f.client()
	f.login(t, c, "operator", "operator-demo-pw")
	_, list := get(t, c, f.srv.URL+"/console/transactions?from="+url.QueryEscape(at.Add(-time.Minute).Local().Format("2006-01-02T15:04")))
	for rrn, shown := range want {
		if _, page := get(t, c, f.srv.URL+"/console/transactions/"+rrn); !strings.Contains(page, "<dd>"+shown+"</dd>") {
			t.Errorf("transaction %s: amount not shown as %q", rrn, shown)
		}
		if !strings.Contains(list, "<td>"+shown+"</td>") {
			t.Errorf("transactions list: %s not shown as %q", rrn, shown)
		}
	}
}
