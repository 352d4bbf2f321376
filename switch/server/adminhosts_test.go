package server

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/internal/testswitch"
)

// TestAdminAllowedHosts: with admin.allowed_hosts set, the admin address refuses
// a request naming another Host (a DNS rebinding page's console login) with 421
// before any handler, logs it and counts it in
// switchyard_admin_refused_total{status="421"}; the listed name and the IP
// address are served (the login works), and no start-up warning is given.
func TestAdminAllowedHosts(t *testing.T) {
	c := demoConfig(t, t.TempDir())
	c.Admin.AllowedHosts = []string{"console.example"}
	var logs testswitch.SyncBuffer
	s := start(t, c, &logs)
	_, port, _ := net.SplitHostPort(s.AdminAddr())
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	login := func(host string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("POST", "http://"+s.AdminAddr()+"/console/login",
			strings.NewReader(url.Values{"user": {"operator"}, "password": {"operator-demo-pw"}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "http://"+host)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	if code, body := login("evil.example:" + port); code != http.StatusMisdirectedRequest || !strings.Contains(body, "admin.allowed_hosts") {
		t.Fatalf("login with Host evil.example: %d %s, want 421 naming admin.allowed_hosts", code, body)
	}
	for _, host := range []string{"console.example:" + port, s.AdminAddr()} {
		if code, body := login(host); code != http.StatusSeeOther {
			t.Fatalf("login with Host %s: %d %s, want 303", host, code, body)
		}
	}
	fams := testswitch.Metrics(t, s.AdminAddr())
	var refused float64
	for _, m := range fams["switchyard_admin_refused_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "status" && l.GetValue() == "421" {
				refused = m.GetCounter().GetValue()
			}
		}
	}
	if refused != 1 {
		t.Errorf(`switchyard_admin_refused_total{status="421"} = %v, want 1`, refused)
	}
	out := logs.String()
	if !strings.Contains(out, `"host":"evil.example:`+port+`"`) || !strings.Contains(out, "not in admin.allowed_hosts") {
		t.Errorf("the refusal is not logged with its Host:\n%s", out)
	}
	if strings.Contains(out, "admin.allowed_hosts is empty") {
		t.Errorf("warned of an empty allowed_hosts that is set:\n%s", out)
	}
}

// warnOpenHosts warns of an empty admin.allowed_hosts on an admin address
// beyond loopback only: not on 127.0.0.1 or ::1 (the demo), not when the list
// is set.
func TestAdminOpenHostsWarning(t *testing.T) {
	set, err := admin.ParseAllowedHosts([]string{"console.example"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ip    string
		hosts admin.AllowedHosts
		warn  bool
	}{
		{"127.0.0.1", admin.AllowedHosts{}, false},
		{"::1", admin.AllowedHosts{}, false},
		{"0.0.0.0", admin.AllowedHosts{}, true},
		{"10.0.0.5", admin.AllowedHosts{}, true},
		{"0.0.0.0", set, false},
	} {
		var logs strings.Builder
		s := &Server{log: zerolog.New(&logs), hosts: c.hosts}
		s.warnOpenHosts(&net.TCPAddr{IP: net.ParseIP(c.ip), Port: 8080})
		if got := strings.Contains(logs.String(), "admin.allowed_hosts is empty"); got != c.warn {
			t.Errorf("%s, list empty %v: warned %v, want %v: %s", c.ip, c.hosts.Empty(), got, c.warn, logs.String())
		}
	}
}
