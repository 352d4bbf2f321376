package admin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// ParseAllowedHost takes host names and host:port, normalised, and refuses IP
// addresses (always allowed), wildcards, bad ports and what is not a host name,
// naming the entry.
func TestParseAllowedHost(t *testing.T) {
	for in, want := range map[string]string{
		"Switch-Admin.Bank.Example": "switch-admin.bank.example",
		" localhost:8080 ":          "localhost:8080",
		"console.example.":          "console.example",
		"console.example.:443":      "console.example:443",
	} {
		if got, err := ParseAllowedHost(in); err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	for in, why := range map[string]string{
		"":                 "empty",
		"10.0.0.5":         "IP address",
		"10.0.0.5:8080":    "IP address",
		"[::1]:8080":       "IP address",
		"::1":              "IP address",
		"*.bank.example":   "wildcards",
		"host:0":           "port",
		"host:65536":       "port",
		"host:08080":       "port",
		"host:":            "port",
		"-bad.example":     "hyphen",
		"a..b":             "between dots",
		"under_score.test": "not a letter",
		"http://host":      "not a host name",
	} {
		_, err := ParseAllowedHost(in)
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("%q: %v, want an error saying %q", in, err, why)
		}
	}
	if _, err := ParseAllowedHosts([]string{"ok.example", "bad host"}); err == nil || !strings.Contains(err.Error(), "entry 1") {
		t.Errorf("list with a bad entry: %v", err)
	}
}

// Allows: listed names on any port, name:port on that port only, IP literals
// always, case and a trailing dot ignored; everything else, and an empty Host,
// refused. No entries allows all.
func TestAllowedHostsAllows(t *testing.T) {
	a, err := ParseAllowedHosts([]string{"console.example", "localhost:8080"})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{
		"console.example":       true,
		"CONSOLE.example:9443":  true,
		"console.example.:8080": true,
		"localhost:8080":        true,
		"localhost":             false,
		"localhost:8081":        false,
		"127.0.0.1:8080":        true,
		"10.1.2.3":              true,
		"[::1]:8080":            true,
		"[fe80::1]":             true,
		"evil.example":          false,
		"evil.example:8080":     false,
		"console.example.evil":  false,
		"":                      false,
	} {
		if got := a.Allows(host); got != want {
			t.Errorf("Allows(%q) = %v, want %v", host, got, want)
		}
	}
	if !(AllowedHosts{}).Allows("evil.example") || !(AllowedHosts{}).Allows("") {
		t.Error("no entries: a Host refused")
	}
}

// CheckHost over loopback HTTP: a request naming an unlisted Host gets 421 with a
// JSON error naming it and reaches no handler (the refusal is reported); a listed
// one and the IP address are served; with no entries the handler is unwrapped.
func TestCheckHost(t *testing.T) {
	a, err := ParseAllowedHosts([]string{"console.example"})
	if err != nil {
		t.Fatal(err)
	}
	served := 0
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served++ })
	var refusals []HostRefusal
	srv := httptest.NewServer(CheckHost(h, a, func(r HostRefusal) { refusals = append(refusals, r) }))
	defer srv.Close()
	do := func(host string) *http.Response {
		t.Helper()
		req, err := http.NewRequest("POST", srv.URL+"/console/login", strings.NewReader("user=a&password=b"))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := do("evil.example")
	var body ErrorBody
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := json.Unmarshal(b, &body); err != nil || resp.StatusCode != http.StatusMisdirectedRequest ||
		!strings.Contains(body.Error, `"evil.example"`) || !strings.Contains(body.Error, "console.example") {
		t.Fatalf("evil.example: %d %s", resp.StatusCode, b)
	}
	if served != 0 || len(refusals) != 1 || refusals[0].Host != "evil.example" || refusals[0].Path != "/console/login" {
		t.Fatalf("evil.example reached the handler %d times; refusals %+v", served, refusals)
	}
	for _, host := range []string{"console.example", strings.TrimPrefix(srv.URL, "http://")} {
		if resp := do(host); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", host, resp.StatusCode)
		} else {
			resp.Body.Close()
		}
	}
	if served != 2 {
		t.Errorf("served %d, want 2", served)
	}
	if got := CheckHost(h, AllowedHosts{}, nil); got == nil {
		t.Error("no entries: nil handler")
	}
}
