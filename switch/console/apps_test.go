package console

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/apps"
)

type fakeRollouts struct {
	ro      []apps.Rollout
	reports map[string]apps.Report
	err     error
}

func (f fakeRollouts) ReportOf(tid string) (apps.Report, bool) {
	r, ok := f.reports[tid]
	return r, ok
}

func (f fakeRollouts) Rollouts(group string) ([]apps.Rollout, error) {
	if f.err != nil {
		return nil, f.err
	}
	var out []apps.Rollout
	for _, r := range f.ro {
		if group == "" || r.Group == group {
			out = append(out, r)
		}
	}
	return out, nil
}

// The applications page shows each group's release, share, counts by version (of
// its application; terminals of an unknown or another application apart) and
// failed installations; a bad group is a clear error, and without a manager the
// page says so.
func TestAppsPage(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	if resp := f.login(t, c, "analyst", "analyst-demo-pw"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %s", resp.Status)
	}
	if _, body := get(t, c, f.srv.URL+"/console/apps"); !strings.Contains(body, "No application manager") {
		t.Fatalf("without a manager: %s", body)
	}
	f.con.o.Apps = fakeRollouts{ro: []apps.Rollout{{Group: "pilot", Terminals: 200, Offered: 20, OnRelease: 15, BelowMin: 1, Failures: 1,
		Current:  &apps.Release{App: "demo-pay", Version: "1.1.0", PublishedAt: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC), Target: apps.Target{Percent: 10}},
		Versions: map[string]int{"1.0.0": 184, "1.1.0": 15, "unknown": 1}, Unrecorded: 7, UnknownApp: map[string]int{"5.0": 3}, OtherApp: 2,
		Failed: []apps.Report{{Terminal: "T0000009", Failed: &apps.Failure{Version: "1.1.0", Detail: "<b>disk full</b>"}}}}},
		reports: map[string]apps.Report{"T0000001": {Terminal: "T0000001", App: "demo-pay", Version: "1.0.7", ReportedAt: time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)},
			"T0000002": {Terminal: "T0000002", App: "com.switchyard.softpos", AppAttested: true, Version: "1.0.0", ReportedAt: time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)}}}
	resp, body := get(t, c, f.srv.URL+"/console/apps")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("apps page: %s", resp.Status)
	}
	for _, want := range []string{"demo-pay 1.1.0", "10%", "<td>200</td>", "<td>20</td>", "1.0.0: 184", "1.1.0: 15", "T0000009", "&lt;b&gt;disk full&lt;/b&gt;",
		"reported before the application was recorded: 7", "Unknown application (no AN): 5.0: 3", "Running another application: 2"} {
		if !strings.Contains(body, want) {
			t.Errorf("apps page lacks %q", want)
		}
	}
	// The terminal's page shows the version it last reported.
	if _, body := get(t, c, f.srv.URL+"/console/terminals/T0000001"); !strings.Contains(body, "demo-pay 1.0.7") {
		t.Error("the terminal page lacks the reported application and version demo-pay 1.0.7")
	} else if strings.Contains(body, "terminal-app-attested") {
		t.Error("the terminal page of a self-reported application says it is attested")
	}
	// A SoftPOS whose application its verified attestation named says so.
	if _, body := get(t, c, f.srv.URL+"/console/terminals/T0000002"); !strings.Contains(body, "com.switchyard.softpos 1.0.0") || !strings.Contains(body, "(application attested)") {
		t.Error("the terminal page of T0000002 lacks its attested application")
	}
	f.con.o.Apps = fakeRollouts{err: errors.New("no rollout group \"nope\"")}
	if resp, body := get(t, c, f.srv.URL+"/console/apps?group=nope"); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "no rollout group") {
		t.Fatalf("unknown group: %s %s", resp.Status, body)
	}
}
