package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/registry"
)

// The session cookie's name. The __Host- prefix (browsers refuse such a cookie
// unless it is Secure, host-only and for path /) is used under TLS only: plain
// HTTP on a loopback admin port could not set it.
const (
	cookieName    = "sy_session"
	cookieNameTLS = "__Host-sy_session"
	langCookie    = "sy_lang"
)

// session is a logged-in user. Its ID is the cookie's value; CSRF is the token
// every POST must carry in its csrf form field (or X-CSRF-Token header).
type session struct {
	ID   string
	CSRF string
	User string
	Role admin.Role
	Lang string
	last time.Time
	// created is the login's time: the session ends sessions.lifetime after it
	// however busy it is.
	created time.Time
	// version is the user record's Version at the login: a new password (an
	// admin's reset of a stolen one), a disable or an enable since ends the session.
	version int64
}

// actor is the registry's view of the session's user.
func (s *session) actor() registry.Actor {
	return registry.Actor{Name: s.User, Role: string(s.Role)}
}

// sessions are the live sessions and the failed-login counts, in memory.
type sessions struct {
	now  func() time.Time
	idle time.Duration
	// lifetime ends a session this long after its login, whatever its activity.
	lifetime time.Duration

	mu       sync.Mutex
	byID     map[string]*session
	failures map[string]*failure // by user name
	// checking counts the password checks of each name in progress (reserve):
	// at most as many as the failures the name has left before its lockout.
	checking map[string]int
	// sweepAt is the size of failures at which failed next forgets the stale
	// counts: anyone may try names, each leaving a count.
	sweepAt int
}

type failure struct {
	n           int
	last        time.Time // of the latest failure
	lockedUntil time.Time
}

// minFailureSweep is the smallest sweepAt.
const minFailureSweep = 1024

func newSessions(now func() time.Time, idle, lifetime time.Duration) *sessions {
	return &sessions{now: now, idle: idle, lifetime: lifetime, byID: map[string]*session{}, failures: map[string]*failure{},
		checking: map[string]int{}, sweepAt: minFailureSweep}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (ss *sessions) create(u *registry.User, lang string) *session {
	now := ss.now()
	s := &session{ID: randomToken(), CSRF: randomToken(), User: u.Name, Role: admin.Role(u.Role), Lang: lang, last: now, created: now, version: u.Version}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.byID[s.ID] = s
	// Forget the expired ones while here: the map stays as small as the logged-in users.
	for id, o := range ss.byID {
		if ss.expired(o, now) {
			delete(ss.byID, id)
		}
	}
	return s
}

// expired reports whether s has ended at now: idle too long, or past its lifetime.
func (ss *sessions) expired(s *session, now time.Time) bool {
	return now.Sub(s.last) > ss.idle || now.Sub(s.created) >= ss.lifetime
}

// get returns the live session id and marks it used, or nil when it does not
// exist, was idle too long or is past its lifetime (then it is forgotten).
func (ss *sessions) get(id string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.byID[id]
	if !ok {
		return nil
	}
	now := ss.now()
	if ss.expired(s, now) {
		delete(ss.byID, id)
		return nil
	}
	s.last = now
	return s
}

// live reports whether session id still is, without renewing it: for the
// event stream, one request that lasts, whose ticks are not the user's requests.
func (ss *sessions) live(id string) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.byID[id]
	return ok && !ss.expired(s, ss.now())
}

// userValid reports whether s's user may still act in it: the user exists, is
// not disabled, has its role and its record (password) as at the login.
func (c *Console) userValid(s *session) bool {
	u, err := c.o.Registry.User(s.User)
	return err == nil && !u.Disabled && admin.Role(u.Role) == s.Role && u.Version == s.version
}

func (ss *sessions) end(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.byID, id)
}

// take ends session id and returns it, nil when it was not live.
func (ss *sessions) take(id string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.byID[id]
	delete(ss.byID, id)
	if !ok || ss.expired(s, ss.now()) {
		return nil
	}
	return s
}

// reserve admits a password check of name: false with the lockout's end when
// the name is locked, false with a zero time when the checks of name in
// progress already number the failures it has left before its lockout (each
// could be one), true otherwise; the caller then calls done once the check's
// outcome is counted (failed, succeeded). Without the reservation, logins sent
// at once all passed the lockout's check before any failed: maxLoginChecks +
// maxLoginWaiting guesses of a name per lockout, not maxFailures.
func (ss *sessions) reserve(name string, maxFailures int) (lockedUntil time.Time, ok bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	n := 0
	if f, found := ss.failures[name]; found {
		if ss.now().Before(f.lockedUntil) {
			return f.lockedUntil, false
		}
		n = f.n
	}
	if n+ss.checking[name] >= maxFailures {
		return time.Time{}, false
	}
	ss.checking[name]++
	return time.Time{}, true
}

// done ends a password check of name that reserve admitted.
func (ss *sessions) done(name string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.checking[name]--; ss.checking[name] <= 0 {
		delete(ss.checking, name)
	}
}

// failed counts a failed login of name and returns true when it locks the name.
func (ss *sessions) failed(name string, maxFailures int, lockFor time.Duration) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := ss.now()
	if len(ss.failures) >= ss.sweepAt {
		// A count older than a lockout, of a name not locked, is forgotten: its
		// failures are no longer "in a row" worth keeping. Sweeping when the map
		// has doubled keeps the cost per failure constant.
		for k, f := range ss.failures {
			if now.Sub(f.last) > lockFor && !now.Before(f.lockedUntil) {
				delete(ss.failures, k)
			}
		}
		ss.sweepAt = max(minFailureSweep, 2*len(ss.failures))
	}
	f := ss.failures[name]
	if f == nil {
		f = &failure{}
		ss.failures[name] = f
	}
	f.last = now
	f.n++
	if f.n >= maxFailures {
		f.n = 0
		f.lockedUntil = now.Add(lockFor)
		return true
	}
	return false
}

func (ss *sessions) succeeded(name string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.failures, name)
}

func (c *Console) cookieName() string {
	if c.o.TLS {
		return cookieNameTLS
	}
	return cookieName
}

func (c *Console) setCookie(w http.ResponseWriter, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: c.cookieName(), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: c.o.TLS, SameSite: http.SameSiteStrictMode})
}

// withSession serves fn to a logged-in user whose role is in roles (see allowed):
// without a live session a page redirects to the login and anything else answers
// 401; another role gets 403; a POST without the session's CSRF token gets 403;
// a user disabled, or given a new password, since the login is logged out.
func (c *Console) withSession(roles []admin.Role, fn func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var s *session
		if ck, err := r.Cookie(c.cookieName()); err == nil {
			s = c.sessions.get(ck.Value)
		}
		if s == nil {
			if r.Method == http.MethodGet && r.Header.Get("Accept") != "text/event-stream" {
				http.Redirect(w, r, Prefix+"login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "not logged in (or the session expired): log in again at "+Prefix+"login", http.StatusUnauthorized)
			return
		}
		if !c.userValid(s) {
			c.sessions.end(s.ID)
			http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
			return
		}
		// A logged-in user: the admin server's bound on the bodies of callers not
		// yet known (switch/server) no longer applies.
		_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if !parseForm(w, r) {
				return
			}
			tok := r.Header.Get("X-CSRF-Token")
			if tok == "" {
				tok = r.PostFormValue("csrf")
			}
			if subtle.ConstantTimeCompare([]byte(tok), []byte(s.CSRF)) != 1 {
				c.o.Logger.Warn().Str("user", s.User).Str("path", r.URL.Path).Msg("console request without a valid CSRF token refused")
				c.renderError(w, r, s, http.StatusForbidden, c.t(s.Lang, "err.csrf"))
				return
			}
		}
		if !allowed(s.Role, roles) {
			c.renderError(w, r, s, http.StatusForbidden, fmt.Sprintf(c.t(s.Lang, "err.role"), s.Role))
			return
		}
		fn(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s)), s)
	}
}

// sessionKey is the request context's key of the session withSession found, for
// done (an action's redirect).
type sessionKey struct{}

// noticeMAC authenticates an error notice an action carries to the page it
// redirects to (done, render): HMAC-SHA256 of the text keyed by the session's
// CSRF token, which only the session's own pages know. Without it any link
// could put text of its choosing into the console's error banner.
func (s *session) noticeMAC(text string) string {
	m := hmac.New(sha256.New, []byte(s.CSRF))
	m.Write([]byte(text))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, nil, "login", map[string]any{"Next": r.URL.Query().Get("next")})
}

// login checks a name and password. A blocked client address is refused before
// its body is read, with no oplog entry (addrLimiter); a locked name is refused
// before its password is checked; the fifth failure in a row locks it. Every
// other outcome is in the oplog.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	from := c.clientAddr(r)
	if until, ok := c.addrs.reserve(from); !ok {
		// Neither the password check nor the oplog sees it: the address has
		// failed AddrMaxFailures times already, and is logged once (addrFailed),
		// or its logins in progress could fail that often.
		lang := c.lang(r, nil)
		msg := c.t(lang, "login.busy")
		if until.IsZero() {
			until = c.o.Now().Add(time.Second)
		} else {
			msg = fmt.Sprintf(c.t(lang, "login.locked"), until.Sub(c.o.Now()).Round(time.Second))
		}
		setRetryAfter(w, until.Sub(c.o.Now()))
		w.WriteHeader(http.StatusTooManyRequests)
		c.render(w, r, nil, "login", map[string]any{"Error": msg})
		return
	}
	defer c.addrs.done(from)
	// The one body the admin port reads before any credential: a client that
	// sends it a byte at a time is cut off, not waited for. The admin server
	// has no ReadTimeout (switch/server: it would cut the event streams).
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(c.loginReadTimeout))
	if !parseForm(w, r) {
		return
	}
	_ = rc.SetReadDeadline(time.Time{})
	name := strings.TrimSpace(r.PostFormValue("user"))
	pw := r.PostFormValue("password")
	lang := c.lang(r, nil)
	fail := func(status int, msg string) {
		w.WriteHeader(status)
		c.render(w, r, nil, "login", map[string]any{"Error": msg, "User": name, "Next": r.PostFormValue("next")})
	}
	if !registry.ValidUserName(name) {
		// No user has such a name (AddUser refuses it): refused before the
		// lockout's counts, the password hash and the oplog entry see it, since
		// the login form is open to anyone and a form value may be megabytes. The
		// oplog says a malformed name was tried, not what it was.
		c.event(registry.Actor{}, "console.login-failed", "", fmt.Sprintf("not a user name (%d bytes); from %s", len(name), from))
		name = "" // nor is it shown back
		c.addrFailed(from, name)
		fail(http.StatusUnauthorized, c.t(lang, "login.bad"))
		return
	}
	until, ok := c.sessions.reserve(name, c.o.MaxFailures)
	if !ok && !until.IsZero() {
		c.event(registry.Actor{Name: name}, "console.login-refused", name, "locked out; from "+from)
		c.addrFailed(from, name)
		setRetryAfter(w, until.Sub(c.o.Now()))
		fail(http.StatusTooManyRequests, fmt.Sprintf(c.t(lang, "login.locked"), until.Sub(c.o.Now()).Round(time.Second)))
		return
	}
	if !ok {
		// As many logins of the name are being checked as it may fail: this
		// one waits for their outcome (not a failed login: nothing is counted).
		setRetryAfter(w, time.Second)
		fail(http.StatusTooManyRequests, c.t(lang, "login.busy"))
		return
	}
	defer c.sessions.done(name)
	release, ok := c.logins.enter(r.Context())
	if !ok {
		// Not a failed login: the password was not checked, and nothing is counted.
		fail(http.StatusServiceUnavailable, c.t(lang, "login.busy"))
		return
	}
	u, err := c.checkPassword(name, pw)
	release()
	if err != nil {
		if !errors.Is(err, registry.ErrBadLogin) {
			c.o.Logger.Error().Err(err).Str("user", name).Msg("console login")
		}
		c.event(registry.Actor{Name: name}, "console.login-failed", name, "from "+from)
		if c.sessions.failed(name, c.o.MaxFailures, c.o.LockoutFor) {
			c.event(registry.Actor{Name: "system"}, "console.lockout", name, fmt.Sprintf("%d failed logins in a row; locked for %v", c.o.MaxFailures, c.o.LockoutFor))
		}
		c.addrFailed(from, name)
		fail(http.StatusUnauthorized, c.t(lang, "login.bad"))
		return
	}
	c.sessions.succeeded(name)
	// The browser's session before this login, of this user or another's (a
	// shared workstation), ends with it: its cookie is replaced, and a copy
	// of its ID taken before (a proxy's log, the screen of a colleague) would
	// otherwise stay good until its idle timeout.
	if ck, err := r.Cookie(c.cookieName()); err == nil {
		if old := c.sessions.take(ck.Value); old != nil {
			c.event(old.actor(), "console.logout", old.User, "replaced by a login of "+u.Name+"; from "+from)
		}
	}
	s := c.sessions.create(u, lang)
	c.event(s.actor(), "console.login", u.Name, "from "+from)
	c.setCookie(w, s.ID, 0)
	next := r.PostFormValue("next")
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		next = Prefix
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// addrFailed counts a failed login from the client address from as name (""
// for a malformed one) and, when that blocks the address, says so once in the
// oplog and the log, with how many names it tried.
func (c *Console) addrFailed(from, name string) {
	names, blocked := c.addrs.failed(from, name)
	if !blocked {
		return
	}
	c.o.Logger.Warn().Str("from", from).Int("failures", c.o.AddrMaxFailures).Int("names", names).Dur("blocked_for", c.o.AddrWindow).
		Msg("console logins from an address blocked: too many failed logins")
	c.event(registry.Actor{Name: "system"}, "console.login-blocked", "",
		fmt.Sprintf("%d failed logins from %s within %v, %d names tried; its logins refused for %v", c.o.AddrMaxFailures, from, c.o.AddrWindow, names, c.o.AddrWindow))
}

// setRetryAfter sets the Retry-After header to d in whole seconds, rounded up.
func setRetryAfter(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int((max(d, time.Second)+time.Second-1)/time.Second)))
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *session) {
	c.sessions.end(s.ID)
	c.event(s.actor(), "console.logout", s.User, "from "+c.clientAddr(r))
	c.setCookie(w, "", -1)
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// event writes to the oplog; a failure is logged, not shown (the login itself
// has happened or been refused already).
func (c *Console) event(a registry.Actor, action, target, reason string) {
	if err := c.o.Registry.RecordEvent(a, action, "user", target, reason); err != nil {
		c.o.Logger.Error().Err(err).Str("action", action).Str("user", target).Msg("console event not in the oplog")
	}
}

// clientAddr is the IP address of r's client: the connection's peer, or behind
// a trusted proxy (Options.TrustedProxies) the right-most untrusted address of
// X-Forwarded-For or Forwarded (admin.ClientAddr).
func (c *Console) clientAddr(r *http.Request) string {
	return admin.ClientAddr(r, c.o.TrustedProxies)
}

// The password checks in progress are bounded: each costs argon2id's 19 MiB
// (registry.passwordParams) and tens of milliseconds, and the login form is open
// to anyone, so unbounded concurrent logins would take the switch's memory.
const (
	maxLoginChecks  = 4  // password checks at once
	maxLoginWaiting = 32 // logins waiting for one; past them, 503 at once
)

// loginGate admits maxLoginChecks password checks at a time and lets at most
// maxLoginWaiting more logins wait for their turn.
type loginGate struct {
	slots chan struct{}
	mu    sync.Mutex
	queue int // logins in enter: checking or waiting
}

func newLoginGate() *loginGate { return &loginGate{slots: make(chan struct{}, maxLoginChecks)} }

// enter waits for a slot and returns its release; ok is false when too many
// logins are waiting already or ctx ends first.
func (g *loginGate) enter(ctx context.Context) (release func(), ok bool) {
	g.mu.Lock()
	if g.queue >= maxLoginChecks+maxLoginWaiting {
		g.mu.Unlock()
		return nil, false
	}
	g.queue++
	g.mu.Unlock()
	leave := func() {
		g.mu.Lock()
		g.queue--
		g.mu.Unlock()
	}
	select {
	case g.slots <- struct{}{}:
		return func() { <-g.slots; leave() }, true
	case <-ctx.Done():
		leave()
		return nil, false
	}
}
