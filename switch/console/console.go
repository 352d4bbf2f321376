// Package console is the switch's web console for operators, reviewers and risk
// analysts, served on the admin address under /console/. It is server-rendered
// html/template pages over the very libraries the admin API serves (registry,
// risk, keys, journal): a console action is the same Go call as the API route of
// the same name, made as the logged-in user's registry.Actor, so the registry's
// own checks (two-person review, roles) hold for both. Nothing here keeps a second
// copy of a record.
//
// # Assets and the browser
//
// Every template, style sheet and script is embedded (go:embed) and served from
// /console/static/; nothing is loaded from elsewhere, and the Content-Security-
// Policy says so (script-src 'self', no inline script or style). The pages are
// plain HTML forms that work without JavaScript; one small hand-written script
// (static/console.js) adds the live dashboard over server-sent events. No Node
// toolchain, no vendored framework: see docs/console.md for why.
//
// # Users and sessions
//
// Users are the registry's (registry.AddUser; `switchyard user add`), with the
// API's roles. A login makes a session: a random ID in an HttpOnly,
// SameSite=Strict cookie (Secure when the console is served over TLS), ending
// after Options.IdleTimeout without a request and Options.SessionLifetime after
// the login. Every state-changing request (POST) must carry the session's CSRF
// token; repeated failed logins lock the name for Options.LockoutFor, and many
// from one client address block the address for Options.AddrWindow. Logins,
// failed logins, lockouts and logouts are written to the registry's operation
// log. Sessions and lockouts are this
// process's memory: a restart logs everybody out, and in a cluster each node has
// its own (docs/console.md, "Gaps").
//
// # Pages
//
// A page is a Page value (path, catalog key of its title, roles that see it, the
// handler) in the table returned by pages(); adding a page is adding a row and a
// template (docs/console.md, "Adding a page").
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/carddata"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/registry"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the console is mounted on the admin server.
const Prefix = "/console/"

// Options says what the console serves; a nil store leaves its pages empty.
type Options struct {
	// Registry serves the users, merchants, terminals, changes, oplog, incidents
	// and alerts; required.
	Registry *registry.Registry
	// Risk serves the rules page (nil: not running in this process).
	Risk *risk.Engine
	// Keys serves the key inventory and its audit log.
	Keys *keys.Store
	// Journal serves the transactions page and the rule hit counts.
	Journal *journal.Store
	// History is the journal as the risk tools read it (the server's
	// server.History): rule explanations and backtests (nil: neither).
	History risk.History
	// CandidatesDir is the directory (risk.candidates_dir) under which the
	// rules page's backtest looks for the candidate rule directory an analyst
	// names; nothing outside it is read (empty: backtests refused).
	CandidatesDir string
	// Metrics gathers the counters the dashboard reads, the same /metrics
	// exports: switchyard_transactions_total, switchyard_transaction_duration_seconds,
	// switchyard_issuer_breaker_state and switchyard_risk_rule_hits_total. Give it
	// a registry of just those (the server does): the whole one has gauges that
	// ask the cluster's JetStream, too slow to gather every second. The binding
	// declines come from Registry.DeclineCounts.
	Metrics prometheus.Gatherer
	// Apps serves the applications page, the rollout of terminal applications
	// (nil: not shown).
	Apps Rollouts
	// SAFBacklog returns the store-and-forward queue's length (nil: not shown);
	// it is read every 15 s.
	SAFBacklog func() int
	// Logger receives what goes wrong (tag it component=console).
	Logger zerolog.Logger
	// TokenName reports whether an admin token of the configuration is held by
	// name (the server's admin.Authenticator.HasName; nil: none): the Users page
	// refuses to give a console user such a name, which the oplog could not tell
	// from the token's holder.
	TokenName func(name string) bool
	// TLS makes the session cookie Secure (the admin server is served over TLS
	// or behind a TLS proxy).
	TLS bool
	// IdleTimeout ends a session after this long without a request (0: 15 min).
	IdleTimeout time.Duration
	// SessionLifetime ends a session this long after its login, however busy
	// (0: 12 h; negative: an error).
	SessionLifetime time.Duration
	// MaxFailures failed logins in a row lock a name for LockoutFor (0: 5 and 15 min).
	MaxFailures int
	LockoutFor  time.Duration
	// AddrMaxFailures failed logins from one client address within AddrWindow
	// block the address's logins for AddrWindow, whatever the names (0: 20 and
	// 10 min; negative: an error). The address is admin.ClientAddr's with
	// TrustedProxies: the connection's, or behind a trusted reverse proxy the
	// client's from X-Forwarded-For (or Forwarded).
	AddrMaxFailures int
	AddrWindow      time.Duration
	// TrustedProxies are the reverse proxies (admin.ParseTrustedProxies) whose
	// X-Forwarded-For, or Forwarded (TrustedProxies.Header), names the client of
	// a login, for the per-address limit and the oplog (zero: none, the
	// connection's peer is the client).
	TrustedProxies admin.Proxies
	// SampleEvery is how often the dashboard samples the counters (0: 1 s).
	SampleEvery time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Console is the web console. Run samples the dashboard's counters; ServeHTTP
// serves the pages.
type Console struct {
	o        Options
	mux      *http.ServeMux
	pages    []Page
	tmpl     map[string]*template.Template
	sessions *sessions
	// addrs limits the failed logins per client address (addrlimit.go).
	addrs    *addrLimiter
	stats    *sampler
	backtest backtestJob
	stop     chan struct{} // closed by Stop: the event streams end
	stopOnce sync.Once
	// logins bounds the password checks in progress (session.go);
	// checkPassword is the registry's, a seam for the tests.
	logins        *loginGate
	checkPassword func(name, password string) (*registry.User, error)
	// loginReadTimeout bounds the reading of a login's body (session.go).
	loginReadTimeout time.Duration
}

// Page is one page of the console: its path under /console/, the catalog key of
// its title (the navigation label), the roles that may open it (admin always may;
// empty: every logged-in user) and its handler. Nav false leaves it out of the
// navigation (detail pages).
type Page struct {
	Path  string
	Title string
	Roles []admin.Role
	Nav   bool
	Serve func(c *Console, w http.ResponseWriter, r *http.Request, s *session)
}

// New builds the console. It starts nothing: Run samples the dashboard.
func New(o Options) (*Console, error) {
	if o.Registry == nil {
		return nil, fmt.Errorf("console: a registry is required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.IdleTimeout < 0 || o.SessionLifetime < 0 || o.MaxFailures < 0 || o.LockoutFor < 0 || o.AddrMaxFailures < 0 || o.AddrWindow < 0 {
		return nil, fmt.Errorf("console: negative option (idle timeout %v, session lifetime %v, max failures %d, lockout %v, address max failures %d, address window %v)",
			o.IdleTimeout, o.SessionLifetime, o.MaxFailures, o.LockoutFor, o.AddrMaxFailures, o.AddrWindow)
	}
	if o.SessionLifetime == 0 {
		o.SessionLifetime = 12 * time.Hour
	}
	if o.AddrMaxFailures == 0 {
		o.AddrMaxFailures = defaultAddrMaxFailures
	}
	if o.AddrWindow == 0 {
		o.AddrWindow = defaultAddrWindow
	}
	o.TrustedProxies.Nets = append([]netip.Prefix(nil), o.TrustedProxies.Nets...)
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 15 * time.Minute
	}
	if o.MaxFailures <= 0 {
		o.MaxFailures = 5
	}
	if o.LockoutFor <= 0 {
		o.LockoutFor = 15 * time.Minute
	}
	if o.SampleEvery <= 0 {
		o.SampleEvery = time.Second
	}
	c := &Console{o: o, mux: http.NewServeMux(), sessions: newSessions(o.Now, o.IdleTimeout, o.SessionLifetime),
		addrs: newAddrLimiter(o.Now, o.AddrMaxFailures, o.AddrWindow), stats: newSampler(o), stop: make(chan struct{}),
		logins: newLoginGate(), checkPassword: o.Registry.CheckPassword, loginReadTimeout: loginReadTimeout}
	c.pages = pages()
	if err := c.parseTemplates(); err != nil {
		return nil, err
	}
	c.routes()
	return c, nil
}

// Run samples the dashboard's counters every Options.SampleEvery until ctx ends.
func (c *Console) Run(ctx context.Context) error {
	t := time.NewTicker(c.o.SampleEvery)
	defer t.Stop()
	c.stats.sample(c.o.Now())
	for {
		select {
		case <-ctx.Done():
			c.Stop()
			c.backtest.wg.Wait()
			return nil
		case <-t.C:
			c.stats.sample(c.o.Now())
			c.watchTrends()
		}
	}
}

// Stop ends the live event streams, so that the admin server's shutdown does
// not wait for open dashboards (the server calls it from RegisterOnShutdown).
func (c *Console) Stop() { c.stopOnce.Do(func() { close(c.stop) }) }

// Register mounts the console on mux under Prefix.
func (c *Console) Register(mux *http.ServeMux) {
	mux.Handle(Prefix, c)
	mux.Handle("GET /console", http.RedirectHandler(Prefix, http.StatusFound))
}

// ServeHTTP serves the console with its security headers.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "+
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	if err := crossOrigin.Check(r); err != nil {
		// Before the login's password check, its lockout count and its oplog entry.
		http.Error(w, "console: "+err.Error()+": a console form is posted from the console's own pages only", http.StatusForbidden)
		return
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		if to, ok := maskedURL(r.URL, c.knownID); ok {
			// Before the session check: the login's redirect (next=) would
			// carry the card number on.
			http.Redirect(w, r, to, http.StatusSeeOther)
			return
		}
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	}
	c.mux.ServeHTTP(w, r)
}

// maskedURL is u with the card numbers in its path and query values masked
// (carddata.MaskText) and the notice msg=card_masked added, and true, when u
// holds one; "" and false otherwise. A card number pasted into a search field
// (the transactions' RRN, a merchant search) or typed into the address bar
// (/console/transactions/PAN) would otherwise be echoed into the page, its
// links (the language switch, the login's next=) and the journal's and the
// registry's searches. The request's own URL has reached the browser's history
// and any proxy's log already: the console cannot take it back from there.
//
// A path segment or value that is an ID the registry knows (known: a 15-digit
// merchant ID may pass the Luhn check) is left as it is.
func maskedURL(u *url.URL, known func(id string) bool) (string, bool) {
	mask := func(v string) (string, int) {
		m, n := carddata.MaskText(v)
		if n > 0 && known(strings.TrimSpace(v)) {
			return v, 0
		}
		return m, n
	}
	segs := strings.Split(u.Path, "/")
	n := 0
	for i, seg := range segs {
		m, k := mask(seg)
		segs[i] = m
		n += k
	}
	q := u.Query()
	for key, vs := range q {
		for i, v := range vs {
			m, k := mask(v)
			vs[i] = m
			n += k
		}
		if mk, k := carddata.MaskText(key); k > 0 {
			delete(q, key)
			q[mk] = vs
			n += k
		}
	}
	if n == 0 {
		return "", false
	}
	q.Set("msg", "card_masked")
	return (&url.URL{Path: strings.Join(segs, "/"), RawQuery: q.Encode()}).String(), true
}

// knownID reports whether id is a merchant's or a terminal's ID.
func (c *Console) knownID(id string) bool {
	if _, ok := c.o.Registry.Merchant(id); ok {
		return true
	}
	_, ok := c.o.Registry.Terminal(id)
	return ok
}

// crossOrigin refuses a POST that a browser says came from another site
// (Sec-Fetch-Site, else an Origin other than the Host). The CSRF token covers
// the logged-in forms; this covers the login, which has none: without it any
// web page an operator opens could post logins to a console it cannot reach
// itself (an internal admin address), locking the operators' names out
// (max_failures), filling the oplog, spending argon2id's memory, or logging
// the operator's browser in as the attacker's own account.
var crossOrigin = http.NewCrossOriginProtection()

// loginReadTimeout is how long a login's body may take to arrive.
const loginReadTimeout = 10 * time.Second

// maxFormBytes bounds a console request's body. The console's forms are a few
// fields; without a bound, the login form (open to anyone) would read a
// multipart body of any size, its file parts spooled to disk.
const maxFormBytes = 1 << 20

// parseForm parses r's form, URL-encoded or multipart, within maxFormBytes (all
// in memory, nothing spooled to disk), and answers the error itself: 413 for a
// body over the bound, 400 for one that is not a form.
func parseForm(w http.ResponseWriter, r *http.Request) bool {
	// ParseForm first: ParseMultipartForm drops its error for a body that is
	// not multipart.
	err := r.ParseForm()
	if err == nil {
		err = r.ParseMultipartForm(maxFormBytes)
	}
	if err == nil || errors.Is(err, http.ErrNotMultipart) {
		return true
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) || errors.Is(err, multipart.ErrMessageTooLarge) {
		http.Error(w, fmt.Sprintf("console: request body over %d bytes", maxFormBytes), http.StatusRequestEntityTooLarge)
		return false
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		http.Error(w, "console: request body too slow", http.StatusRequestTimeout)
		return false
	}
	http.Error(w, "console: request body is not a form: "+err.Error(), http.StatusBadRequest)
	return false
}

func (c *Console) routes() {
	static, _ := fs.Sub(staticFS, "static")
	c.mux.Handle("GET "+Prefix+"static/", http.StripPrefix(Prefix+"static/", http.FileServerFS(static)))
	c.mux.HandleFunc("GET "+Prefix+"login", c.loginPage)
	c.mux.HandleFunc("POST "+Prefix+"login", c.login)
	c.mux.HandleFunc("POST "+Prefix+"logout", c.withSession(nil, c.logout))
	c.mux.HandleFunc("GET "+Prefix+"lang/{lang}", c.setLang)
	c.mux.HandleFunc("GET "+Prefix+"events", c.withSession(nil, c.events))
	for _, p := range c.pages {
		pattern := "GET " + Prefix + strings.TrimPrefix(p.Path, "/")
		if p.Path == "/" {
			pattern = "GET " + Prefix + "{$}"
		}
		serve := p.Serve
		c.mux.HandleFunc(pattern, c.withSession(p.Roles, func(w http.ResponseWriter, r *http.Request, s *session) { serve(c, w, r, s) }))
	}
	for _, a := range actions() {
		a := a
		c.mux.HandleFunc("POST "+Prefix+strings.TrimPrefix(a.Path, "/"), c.withSession(a.Roles, func(w http.ResponseWriter, r *http.Request, s *session) {
			a.Do(c, w, r, s)
		}))
	}
}

// Action is a state-changing request (a POST): its path, the roles that may make
// it, and what it does. withSession has checked the CSRF token before Do runs.
type Action struct {
	Path  string
	Roles []admin.Role
	Do    func(c *Console, w http.ResponseWriter, r *http.Request, s *session)
}

// allowed reports whether role may use something open to roles (admin always;
// empty roles: everybody).
func allowed(role admin.Role, roles []admin.Role) bool {
	if role == admin.RoleAdmin || len(roles) == 0 {
		return true
	}
	for _, r := range roles {
		if r == role {
			return true
		}
	}
	return false
}

// nav returns the navigation for a user of role, in page order.
func (c *Console) nav(role admin.Role) []Page {
	var out []Page
	for _, p := range c.pages {
		if p.Nav && allowed(role, p.Roles) {
			out = append(out, p)
		}
	}
	return out
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
