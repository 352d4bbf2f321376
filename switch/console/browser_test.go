package console_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/internal/testswitch"
	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/server"
	"github.com/switchyard/switchyard/switch/termclient"
)

// The browser tests drive Debian's chromium (headless, no sandbox, a temporary
// profile) against a demo switch on loopback ports, through the console's real
// pages. Without chromium they skip on a developer's machine and fail in CI
// (CI set), where .ci/run installs it.

// browserPath finds chromium.
func browserPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed: .ci/run installs it with apt-get (apt-get install -y chromium); the browser tests never skip in CI")
	}
	t.Skip("chromium is not installed (apt-get install -y chromium): browser test skipped outside CI")
	return ""
}

// demoSwitch starts a demo switch with its console. Its candidates directory
// (risk.candidates_dir) is a temporary one holding next, a copy of the
// repository's rule files, as an analyst makes one for a backtest.
func demoSwitch(t *testing.T) *server.Server {
	t.Helper()
	cfg := testswitch.DemoConfig(t, t.TempDir(), "../../rules")
	cfg.Risk.CandidatesDir = t.TempDir()
	files, err := filepath.Glob("../../rules/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("the repository's rule files: %v %v", files, err)
	}
	next := filepath.Join(cfg.Risk.CandidatesDir, "next")
	if err := os.Mkdir(next, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(next, filepath.Base(f)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := server.New(cfg, zerolog.New(io.Discard), server.WithDemoIssuer(func(addr string, log zerolog.Logger) (server.DemoIssuer, error) {
		return issuersim.StartDemo(issuersim.Config{Addr: addr, Logger: log})
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// browser is one chromium process; each user gets its own browser context
// (cookies apart) from it.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
}

func newBrowser(t *testing.T, s *server.Server) *browser {
	t.Helper()
	path := browserPath(t)
	// Chromium puts its singleton socket in a directory of its own under $TMPDIR
	// (org.chromium.Chromium.*), which it leaves behind when it is killed, as
	// the allocator's cancel does: a directory of the test's keeps it. Not
	// t.TempDir(): its path, the test's name in it, can pass the 108 bytes of
	// a socket's path.
	tmp, err := os.MkdirTemp("", "chromium")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) }) // after the browser's cancel below
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
		chromedp.Env("TMPDIR="+tmp))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelB := chromedp.NewContext(actx)
	if err := chromedp.Do(bctx); err != nil { // starts the browser, with no timeout
		cancelB()
		cancelA()
		t.Fatalf("start chromium %s: %v", path, err)
	}
	t.Cleanup(func() { cancelB(); cancelA() })
	return &browser{t: t, ctx: bctx, base: "http://" + s.AdminAddr()}
}

// tab is one user's browser context, its actions bounded by a deadline; a
// failed test saves its screenshot (saveScreenshot).
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string
	name string
}

func (b *browser) user(name string) *tab {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	ctx, cancelT := context.WithTimeout(ctx, 4*time.Minute)
	tb := &tab{t: b.t, ctx: ctx, base: b.base, name: name}
	b.t.Cleanup(func() {
		if b.t.Failed() {
			if p, err := saveScreenshot(ctx, b.t.Name()+"-"+name); err == nil {
				b.t.Logf("screenshot of %s's page at the failure: %s", name, p)
			} else {
				b.t.Logf("no screenshot of %s's page: %v", name, err)
			}
		}
		cancelT()
		cancel()
	})
	return tb
}

// screenshotDir is where failed tests leave their screenshots.
func screenshotDir() string {
	if d := os.Getenv("CONSOLE_FAILURE_DIR"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "switchyard-console-failures")
}

// saveScreenshot writes the page of ctx as a PNG named after name and returns its path.
func saveScreenshot(ctx context.Context, name string) (string, error) {
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(screenshotDir(), 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(screenshotDir(), strings.NewReplacer("/", "_", " ", "_").Replace(name)+".png")
	return p, os.WriteFile(p, png, 0o644)
}

func (tb *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, steps...); err != nil {
		tb.t.Fatalf("%s: %s: %v", tb.name, what, err)
	}
}

func (tb *tab) open(path string) {
	tb.t.Helper()
	tb.do("open "+path, chromedp.Navigate(tb.base+path), chromedp.WaitReady(chromedp.CSS("body")))
}

func (tb *tab) text(sel string) string {
	tb.t.Helper()
	s, err := chromedp.Run(tb.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		tb.t.Fatalf("%s: text of %s: %v", tb.name, sel, err)
	}
	return s
}

// has reports whether sel matches an element now.
func (tb *tab) has(sel string) bool {
	tb.t.Helper()
	n, err := chromedp.Run(tb.ctx, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector(%q) !== null`, sel)))
	if err != nil {
		tb.t.Fatalf("%s: query %s: %v", tb.name, sel, err)
	}
	return n
}

// login logs in through the login form and waits for the dashboard.
func (tb *tab) login(user, password string) {
	tb.t.Helper()
	tb.open("/console/login")
	tb.do("log in as "+user, chromedp.SendKeys(chromedp.CSS("#user"), user), chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS("#login")), chromedp.WaitVisible(chromedp.CSS("#whoami")))
}

// submit clicks a form's button and waits for the page it leads to.
func (tb *tab) submit(button, waitFor string) {
	tb.t.Helper()
	tb.do("click "+button, chromedp.Click(chromedp.CSS(button)), chromedp.WaitVisible(chromedp.CSS(waitFor)))
}

// waitText polls the page until sel's text contains want or the deadline passes.
// It asks again after a navigation (a page that refreshes itself) instead of
// failing.
func (tb *tab) waitText(sel, want string, within time.Duration) {
	tb.t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e !== null && e.textContent.includes(%q); })()`, sel, want)
	deadline := time.Now().Add(within)
	var lastErr error
	for {
		ctx, cancel := context.WithTimeout(tb.ctx, time.Until(deadline)+time.Millisecond)
		ok, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(time.Until(deadline)+time.Millisecond)))
		cancel()
		if err == nil && ok {
			return
		}
		lastErr = err
		if time.Now().After(deadline) {
			break
		}
		select { // a navigation interrupted the poll: ask the new page
		case <-tb.ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	got, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || "(none)"`, sel)))
	if len(got) > 300 {
		got = got[:300] + "..."
	}
	tb.t.Fatalf("%s: %s does not show %q within %v: %v (it shows %q)", tb.name, sel, want, within, lastErr, got)
}

func demoPassword(user string) string { return user + "-demo-pw" }

func registryFilter(target string) registry.OplogFilter {
	return registry.OplogFilter{Target: target, Action: "console."}
}

func changeFilterAll() registry.ChangeFilter { return registry.ChangeFilter{Limit: 10000} }

func TestBrowserLoginLogout(t *testing.T) {
	s := demoSwitch(t)
	b := newBrowser(t, s)
	op := b.user("operator")
	op.open("/console/")
	if !op.has("#login-form") {
		t.Fatal("the dashboard without a session does not lead to the login")
	}
	op.do("wrong password", chromedp.SendKeys(chromedp.CSS("#user"), "operator"), chromedp.SendKeys(chromedp.CSS("#password"), "not the password"),
		chromedp.Click(chromedp.CSS("#login")), chromedp.WaitVisible(chromedp.CSS("#login-error")))
	op.login("operator", demoPassword("operator"))
	if got := op.text("#whoami"); !strings.Contains(got, "operator") {
		t.Fatalf("logged in as %q", got)
	}
	op.submit("#logout", "#login-form")
	op.open("/console/merchants")
	if !op.has("#login-form") {
		t.Fatal("after the logout the merchants page is still served")
	}
	// Every outcome is in the operation log.
	es, err := s.Registry.Oplog(registryFilter("operator"))
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range es {
		actions = append(actions, e.Action)
	}
	if got := strings.Join(actions, " "); got != "console.login-failed console.login console.logout" {
		t.Fatalf("oplog of operator: %s", got)
	}
}

// Each role sees its own pages and buttons, and the switch refuses the rest even
// when the request is forged past the page: an analyst cannot approve, an admin
// (who may request and review) cannot approve his own request.
func TestBrowserRoles(t *testing.T) {
	s := demoSwitch(t)
	b := newBrowser(t, s)
	op := b.user("operator")
	op.login("operator", demoPassword("operator"))
	op.open("/console/terminals/T0000002")
	op.do("request a suspension", chromedp.SendKeys(chromedp.CSS("#lc-reason"), "lost"))
	op.submit("#lc-suspend", "#change-id")
	changeID := op.text("#change-id")
	if op.has("#approve") {
		t.Fatal("an operator is offered the approve button")
	}
	if op.has(`#nav a[href="/console/keys"]`) {
		t.Fatal("an operator sees the keys page in the navigation")
	}
	op.open("/console/keys")
	if !strings.Contains(op.text("#error-message"), "operator") {
		t.Fatal("an operator opened the keys page")
	}

	an := b.user("analyst")
	an.login("analyst", demoPassword("analyst"))
	an.open("/console/changes/" + changeID)
	if an.has("#approve") {
		t.Fatal("an analyst is offered the approve button")
	}
	// Forged: a POST with the analyst's valid CSRF token, straight to the action.
	if status := an.post("/console/changes/"+changeID+"/approve", true); status != 403 {
		t.Fatalf("an analyst's approval: status %d, want 403", status)
	}

	ad := b.user("admin")
	ad.login("admin", demoPassword("admin"))
	ad.open("/console/merchants/000000000000002")
	ad.submit("#lc-freeze", "#change-id")
	own := ad.text("#change-id")
	if !ad.has("#own-change") || ad.has("#approve") {
		t.Fatal("the admin is offered the approval of his own request")
	}
	ad.post("/console/changes/"+own+"/approve", true)
	ad.open("/console/changes/" + own)
	if got := ad.text("#change-status"); got != "pending" {
		t.Fatalf("the admin's own request is %s after his approval, want pending (refused)", got)
	}
	if m, _ := s.Registry.Merchant("000000000000002"); m.Status != "active" {
		t.Fatalf("merchant 000000000000002 is %s", m.Status)
	}
}

// post sends a form POST from the page's context (so with the session cookie)
// with or without the page's CSRF token, and returns the status.
func (tb *tab) post(path string, withToken bool) int {
	tb.t.Helper()
	js := fmt.Sprintf(`(async () => {
		const f = new FormData();
		const tok = document.querySelector('input[name=csrf]');
		if (%v && tok) f.append("csrf", tok.value);
		const r = await fetch(%q, {method: "POST", body: new URLSearchParams(f), redirect: "manual"});
		return r.type === "opaqueredirect" ? 303 : r.status;
	})()`, withToken, path)
	n, err := chromedp.Run(tb.ctx, chromedp.Evaluate[int](js, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("%s: POST %s: %v", tb.name, path, err)
	}
	return n
}

// The two-person review with two users in two browser contexts: the operator
// requests, the reviewer sees the before/after diff and approves, the operator
// sees it applied. The terminal page shows the PIN mode and DUKPT device with the
// keys, and the diff of a change of keys shows the device it moves, field by field.
func TestBrowserReviewFlow(t *testing.T) {
	s := demoSwitch(t)
	b := newBrowser(t, s)
	op, rev := b.user("operator"), b.user("reviewer")
	op.login("operator", demoPassword("operator"))
	rev.login("reviewer", demoPassword("reviewer"))

	op.open("/console/terminals/T0000002")
	if mode, dev := op.text("#terminal-pin-mode"), op.text("#terminal-dukpt-device"); mode != "dukpt" || dev != registry.DemoDUKPTDevice {
		t.Fatalf("T0000002's page: PIN mode %q, DUKPT device %q; want dukpt, %s", mode, dev, registry.DemoDUKPTDevice)
	}
	op.do("reason", chromedp.SendKeys(chromedp.CSS("#lc-reason"), "device sent for repair"))
	op.submit("#lc-suspend", "#change-id")
	id := op.text("#change-id")

	rev.open("/console/changes")
	rev.waitText("#changes", id, 2*time.Second)
	rev.open("/console/changes/" + id)
	if diff := rev.text("table.diff tr.changed"); !strings.Contains(diff, "status") || !strings.Contains(diff, "suspended") {
		t.Fatalf("the review shows no status diff: %q", diff)
	}
	rev.do("note", chromedp.SendKeys(chromedp.CSS("#note"), "checked with the merchant"))
	rev.submit("#approve", "#msg")
	if got := rev.text("#change-status"); got != "approved" {
		t.Fatalf("after the approval the change is %s", got)
	}
	op.open("/console/terminals/T0000002")
	if got := op.text("#terminal-status"); !strings.HasPrefix(got, "suspended") {
		t.Fatalf("the operator sees the terminal %q", got)
	}
	if tm, _ := s.Registry.Terminal("T0000002"); tm.Status != "suspended" {
		t.Fatalf("registry: terminal is %s", tm.Status)
	}

	// A change of keys unbinding the DUKPT device: the reviewer sees that field.
	tm, _ := s.Registry.Terminal("T0000002")
	k := tm.Keys
	k.DUKPTDevice = ""
	ch, err := s.Registry.RequestChange(registry.Actor{Name: "operator", Role: registry.RoleOperator},
		registry.Change{Op: registry.OpTerminalChange, Target: "T0000002", TerminalPatch: &registry.TerminalPatch{Keys: &k}, Reason: "device replaced"})
	if err != nil {
		t.Fatal(err)
	}
	rev.open("/console/changes/" + ch.ID)
	if diff := rev.text("table.diff tr.changed"); !strings.Contains(diff, "keys.dukpt_device") || !strings.Contains(diff, registry.DemoDUKPTDevice) {
		t.Fatalf("the review of the unbinding shows no DUKPT device diff: %q", diff)
	}
	rev.submit("#approve", "#msg")
	op.open("/console/terminals/T0000002")
	if got := op.text("#terminal-dukpt-device"); !strings.Contains(got, "not bound") {
		t.Fatalf("T0000002's page once unbound shows the DUKPT device %q", got)
	}
}

// A terminal carried off to Shanghai: its declined transaction shows on the open
// dashboard (live, server-sent events) and in the incident list within 2 s.
func TestBrowserRelocationLive(t *testing.T) {
	s := demoSwitch(t)
	b := newBrowser(t, s)
	op := b.user("operator")
	op.login("operator", demoPassword("operator"))
	op.open("/console/")
	op.waitText("#live", "", 2*time.Second)
	if _, err := chromedp.Run(op.ctx, chromedp.Poll[bool](`document.getElementById("live").dataset.live === "1"`, chromedp.WithPollingTimeout(5*time.Second))); err != nil {
		t.Fatalf("the dashboard's event stream did not start: %v", err)
	}

	c, err := termclient.Dial(s.ListenerAddr("ascii"), message.DialectASCII, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tx := termclient.Txn{PAN: "4761739001010119", Amount: 1000, Expiry: "2912", TID: "T0000001", MID: "000000000000001",
		TLV: [][2]string{{"DI", "SN-T0000001"}, {"SI", "89860000000000000001"}, {"IM", "860000000000001"}, {"GL", "31.230400,121.473700"}, {"AV", "1.0.0"}}}
	m, err := termclient.Build(tx, message.DialectASCII)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := c.Send(ctx, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	if r, err := termclient.Decode(resp); err != nil || r.RC != "59" {
		t.Fatalf("relocated purchase: %+v, %v (want 59 location-out-of-range)", r, err)
	}
	op.waitText("#dash-incidents", "location-out-of-range", 2*time.Second)
	op.waitText("#dash-incidents", "T0000001", time.Until(sent.Add(2*time.Second))+time.Millisecond)
	op.open("/console/incidents?reason=location-out-of-range")
	op.waitText("#incidents", "T0000001", time.Until(sent.Add(2*time.Second))+time.Millisecond)
	if d := time.Since(sent); d > 2*time.Second {
		t.Fatalf("the incident took %v to reach the incident list", d)
	}
	op.open("/console/map")
	if !op.has(`#map g.moved[data-terminal="T0000001"]`) {
		t.Fatal("the map does not highlight the relocated T0000001")
	}
}

// A state change without the session's CSRF token is refused (403) and changes
// nothing; the same request with it goes through.
func TestBrowserCSRF(t *testing.T) {
	s := demoSwitch(t)
	b := newBrowser(t, s)
	op := b.user("operator")
	op.login("operator", demoPassword("operator"))
	op.open("/console/terminals/T0000002")
	before, _ := s.Registry.Changes(changeFilterAll())
	if status := op.post("/console/terminals/T0000002/suspend", false); status != 403 {
		t.Fatalf("POST without the CSRF token: %d, want 403", status)
	}
	after, _ := s.Registry.Changes(changeFilterAll())
	if len(after) != len(before) {
		t.Fatalf("a request without the CSRF token made a change: %d -> %d", len(before), len(after))
	}
	if status := op.post("/console/terminals/T0000002/suspend", true); status != 303 {
		t.Fatalf("POST with the CSRF token: %d, want 303 to the change", status)
	}
	// The logout is a state change too.
	if status := op.post("/console/logout", false); status != 403 {
		t.Fatalf("logout without the CSRF token: %d, want 403", status)
	}
}

// A merchant named <script>alert(1)</script> is text on every page that shows
// it, never markup (and no dialog opens).
func TestBrowserXSS(t *testing.T) {
	s := demoSwitch(t)
	b := newBrowser(t, s)
	op := b.user("operator")
	op.login("operator", demoPassword("operator"))
	op.open("/console/merchants")
	name := "<script>alert(1)</script>"
	op.do("register", chromedp.Click(chromedp.CSS("#register summary")),
		chromedp.SendKeys(chromedp.CSS("#m-id"), "XSS000000000001"), chromedp.SendKeys(chromedp.CSS("#m-name"), name))
	op.submit("#m-submit", "#change-id")
	id := op.text("#change-id")
	rev := b.user("reviewer")
	rev.login("reviewer", demoPassword("reviewer"))
	rev.open("/console/changes/" + id)
	rev.submit("#approve", "#msg")
	for _, path := range []string{"/console/merchants", "/console/merchants/XSS000000000001", "/console/changes?status=", "/console/oplog"} {
		op.open(path)
		if op.has("main script") {
			t.Fatalf("%s: the merchant's name became a script element", path)
		}
	}
	op.open("/console/merchants/XSS000000000001")
	if got := op.text("#merchant-name"); got != name {
		t.Fatalf("the merchant's name reads %q, want the text %q", got, name)
	}
}

// A failed test leaves a screenshot: saveScreenshot, which the tab's cleanup
// calls when the test failed, writes a PNG.
func TestBrowserFailureScreenshot(t *testing.T) {
	s := demoSwitch(t)
	b := newBrowser(t, s)
	op := b.user("operator")
	op.open("/console/login")
	t.Setenv("CONSOLE_FAILURE_DIR", t.TempDir())
	p, err := saveScreenshot(op.ctx, t.Name())
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Size() < 1000 {
		t.Fatalf("screenshot %s: %v, %v", p, st, err)
	}
	head := make([]byte, 8)
	f, _ := os.Open(p)
	defer f.Close()
	_, _ = io.ReadFull(f, head)
	if string(head[1:4]) != "PNG" {
		t.Fatalf("%s is not a PNG: % x", p, head)
	}
}
