package console

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// The one catalog of every label, in English and Chinese: catalog.json, key ->
// language -> text. TestCatalogComplete holds every key to both languages and
// every key a template uses to the catalog.
//
//go:embed catalog.json
var catalogJSON []byte

var catalog = func() map[string]map[string]string {
	m := map[string]map[string]string{}
	if err := json.Unmarshal(catalogJSON, &m); err != nil {
		panic(fmt.Sprintf("console: catalog.json: %v", err)) // embedded: caught by every test
	}
	return m
}()

// languages are the catalog's, the first the default.
var languages = []string{"en", "zh"}

// t returns key's text in lang (English when lang has none, the key itself when
// the catalog has none: a missing label shows, it does not break the page).
func (c *Console) t(lang, key string) string {
	e, ok := catalog[key]
	if !ok {
		return key
	}
	if s, ok := e[lang]; ok {
		return s
	}
	return e["en"]
}

// lang is the cookie's language, else the one chosen at login, else the browser's first
// known one, else English.
func (c *Console) lang(r *http.Request, s *session) string {
	if ck, err := r.Cookie(langCookie); err == nil && known(ck.Value) {
		return ck.Value
	}
	if s != nil && s.Lang != "" {
		return s.Lang
	}
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag := strings.ToLower(strings.TrimSpace(strings.SplitN(part, ";", 2)[0]))
		if l := strings.SplitN(tag, "-", 2)[0]; known(l) {
			return l
		}
	}
	return languages[0]
}

func known(l string) bool {
	for _, k := range languages {
		if k == l {
			return true
		}
	}
	return false
}

// setLang switches the language (a cookie) and
// goes back to where the user was. A GET is enough: the choice changes nothing
// but how pages read.
func (c *Console) setLang(w http.ResponseWriter, r *http.Request) {
	l := r.PathValue("lang")
	if !known(l) {
		http.Error(w, fmt.Sprintf("language %q: want en or zh", l), http.StatusBadRequest)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: langCookie, Value: l, Path: Prefix, MaxAge: 365 * 24 * 3600, SameSite: http.SameSiteStrictMode, Secure: c.o.TLS})
	back := r.URL.Query().Get("back")
	if !strings.HasPrefix(back, Prefix) || strings.HasPrefix(back, "//") || strings.Contains(back, "\\") {
		back = Prefix
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
