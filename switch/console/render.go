package console

import (
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchyard/switchyard/internal/carddata"
	"github.com/switchyard/switchyard/internal/currency"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/registry"
)

// view is what every template gets: the page's data in D, the rest for the
// layout (navigation, user, language, CSRF token for the forms).
type view struct {
	Title string
	Path  string
	User  string
	Role  admin.Role
	Lang  string
	CSRF  string
	Nav   []Page
	Msg   string // a notice after an action (already translated)
	Err   string // an error after an action (the library's message)
	Back  string // this page's URI, for the language switch
	D     any
}

// baseFuncs are the template functions; t is replaced per request with the
// request's language.
func baseFuncs() template.FuncMap {
	return template.FuncMap{
		"t":    func(key string) string { return key },
		"time": fmtTime,
		"ago": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return time.Since(t).Round(time.Second).String()
		},
		// money writes minor units in major ones with the decimals of the currency
		// given (ISO 4217 numeric: 1000 of "392" is 1000 yen), two without one; a
		// negative amount keeps its sign. (Until the third release of 6 December
		// 2026 every currency had two, and an amount between -1 and 0 lost its sign.)
		"money": func(minor int64, cur ...string) string { return currency.Format(minor, strings.Join(cur, "")) },
		"json": func(v any) string {
			b, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				return err.Error()
			}
			return string(b)
		},
		"can": func(role admin.Role, want string) bool {
			var roles []admin.Role
			for _, r := range strings.Split(want, ",") {
				roles = append(roles, admin.Role(r))
			}
			return allowed(role, roles)
		},
		"list": func(xs ...string) []string { return xs },
		"dict": func(kv ...any) map[string]any {
			m := map[string]any{}
			for i := 0; i+1 < len(kv); i += 2 {
				m[fmt.Sprint(kv[i])] = kv[i+1]
			}
			return m
		},
		"join": func(xs []string) string { return strings.Join(xs, ",") },
		"hasAction": func(ar *registry.AlertRule, typ string) bool {
			for _, a := range ar.Actions {
				if a.Type == typ {
					return true
				}
			}
			return false
		},
		"webhook": func(ar *registry.AlertRule) string {
			for _, a := range ar.Actions {
				if a.Type == registry.ActionWebhook {
					return a.URL
				}
			}
			return ""
		},
		"dur":   func(d registry.Duration) string { return time.Duration(d).String() },
		"int64": func(i int) int64 { return int64(i) },
		"pct":   func(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) },
		"f1":    func(f float64) string { return fmt.Sprintf("%.1f", f) },
		"ms":    func(sec float64) string { return fmt.Sprintf("%.1f ms", 1000*sec) },
		"svg":   func(s string) template.HTML { return template.HTML(s) }, // only for the charts this package draws from numbers
	}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// parseTemplates parses layout.html with each page template.
func (c *Console) parseTemplates() error {
	c.tmpl = map[string]*template.Template{}
	base, err := template.New("layout.html").Funcs(baseFuncs()).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return fmt.Errorf("console: templates/layout.html: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return err
	}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return fmt.Errorf("console: %s: %w", n, err)
		}
		c.tmpl[name] = t
	}
	return nil
}

// render writes page name with data d for session s (nil: not logged in).
func (c *Console) render(w http.ResponseWriter, r *http.Request, s *session, name string, d any) {
	t, ok := c.tmpl[name]
	if !ok {
		http.Error(w, "console: no template "+name, http.StatusInternalServerError)
		return
	}
	lang := c.lang(r, s)
	v := view{Lang: lang, D: d, Path: r.URL.Path, Back: r.URL.RequestURI()}
	if s != nil {
		v.User, v.Role, v.CSRF, v.Nav = s.User, s.Role, s.CSRF, c.nav(s.Role)
	}
	for _, p := range c.pages {
		// r.Pattern is the mux pattern that matched: a detail page gets its page's title.
		if r.Pattern == "GET "+Prefix+strings.TrimPrefix(p.Path, "/") || (p.Path == "/" && r.Pattern == "GET "+Prefix+"{$}") {
			v.Title = c.t(lang, p.Title)
		}
	}
	if k := r.URL.Query().Get("msg"); catalog["msg."+k] != nil {
		v.Msg = c.t(lang, "msg."+k) // a notice of the catalog only: t would show an unknown key as it is
	}
	// An error notice shows only with its MAC for this session (done): a link
	// from anywhere else, ?err=your+password+expired..., shows nothing.
	if e := r.URL.Query().Get("err"); e != "" && s != nil && hmac.Equal([]byte(r.URL.Query().Get("sig")), []byte(s.noticeMAC(e))) {
		v.Err = e
	}
	tc, err := t.Clone()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	tc.Funcs(template.FuncMap{"t": func(key string) string { return c.t(lang, key) }})
	var buf bytes.Buffer
	if err := tc.ExecuteTemplate(&buf, "layout", v); err != nil {
		c.o.Logger.Error().Err(err).Str("page", name).Msg("console page not rendered")
		http.Error(w, "console: page "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = buf.WriteTo(w)
}

// shownID is an ID from a request's URL (a detail page's path) as an error
// page may name it: itself when it is a plain identifier (1 to 64 letters,
// digits, '-', '_', '.', ':': the registry's IDs, RRNs, change IDs), else only
// its length. A link may put any text in a path, and the error page would show
// it in the console's own error banner ("merchant Session expired: log in at
// https://evil.example does not exist"), the text injection that the error
// notice's MAC (done, render) closes for ?err=.
func shownID(id string) string {
	if plainID(id) {
		return id
	}
	return fmt.Sprintf("(%d characters, not an ID)", utf8.RuneCountInString(id))
}

// plainID reports whether id is 1 to 64 letters, digits, '-', '_', '.' or ':'.
func plainID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// notFound is the message of a detail page whose ID (from the request's URL)
// the library refused with err: err's message when the ID is plain (shownID),
// else one that does not quote it.
func notFound(what, id string, err error) string {
	if plainID(id) {
		return err.Error()
	}
	return what + " " + shownID(id) + " does not exist"
}

// renderError answers status with msg on the error page.
func (c *Console) renderError(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	w.WriteHeader(status)
	c.render(w, r, s, "error", map[string]any{"Status": status, "Message": msg})
}

// done redirects after an action back to back (a console path, without a query)
// with a notice key, or with the error's message when err is not nil (with its
// MAC for the session, session.noticeMAC: render shows no other). back is
// taken as a path, escaped here: it may end in an ID from the request's own path
// (the merchant of a refused freeze), which may hold any character, '?' or a
// control character too. A card number in the error's message is masked
// (carddata.MaskText): the message travels in the URL.
func done(w http.ResponseWriter, r *http.Request, back, msgKey string, err error) {
	if !strings.HasPrefix(back, Prefix) || strings.HasPrefix(back, "//") {
		back = Prefix
	}
	u := &url.URL{Path: back}
	q := url.Values{}
	if err != nil {
		// The refusal may quote what was typed (a card number pasted into an ID
		// or URL field of a POST's body); the URL goes to proxies' access logs
		// and the browser's history, so a card number in it is masked.
		text, _ := carddata.MaskText(err.Error())
		q.Set("err", text)
		if s, ok := r.Context().Value(sessionKey{}).(*session); ok {
			q.Set("sig", s.noticeMAC(text))
		}
	} else if msgKey != "" {
		q.Set("msg", msgKey)
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}
