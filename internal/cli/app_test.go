package cli

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/apps"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/server"
)

// TestAppDataMode: with --data the application commands read a stopped switch's
// packages and rollout, and refuse changes; with nothing to show, status and key
// list say so.
func TestAppDataMode(t *testing.T) {
	dir := t.TempDir()
	db, err := server.OpenDB(dir, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(db, nil, registry.Options{SeenFlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	reg.Close()
	db.Close()
	code, out, errs := runCLI(t, nil, "app", "list", "--data", dir)
	if code != 0 || !strings.HasPrefix(out, "NAME") {
		t.Fatalf("app list --data: %d %s %s", code, out, errs)
	}
	// With nothing to show, status and key list say so (they printed nothing).
	if code, out, errs := runCLI(t, nil, "app", "status", "--data", dir); code != 0 || !strings.HasPrefix(out, "no rollout groups") {
		t.Fatalf("app status --data: %d %s %s", code, out, errs)
	}
	if code, out, errs := runCLI(t, nil, "app", "key", "list", "--data", dir); code != 0 || !strings.HasPrefix(out, "no app-signing keys") {
		t.Fatalf("app key list --data: %d %s %s", code, out, errs)
	}
	if code, _, errs := runCLI(t, nil, "app", "withdraw", "--group", "g", "--data", dir); code == 0 || !strings.Contains(errs, "read-only") {
		t.Fatalf("app withdraw --data: %d %s", code, errs)
	}
}

// TestAppGroupsForPeople: app groups prints a table for people, times in the
// acquirer's zone; --json the groups as they always were printed (it printed JSON
// whatever was asked, and took --json without reading it).
func TestAppGroupsForPeople(t *testing.T) {
	published := time.Date(2026, 12, 1, 17, 30, 0, 0, time.UTC)
	groups := []apps.Group{
		{Name: "pilot", Current: &apps.Release{Group: "pilot", App: "demo-pay", Version: "1.1.0", Target: apps.Target{Terminals: []string{"T0000001"}, Percent: 20},
			MinVersion: "1.0.0", Change: "CHG-2", PublishedAt: published, RequestedBy: "op", ApprovedBy: "rev"}},
		{Name: "gone", Withdrawn: []*apps.Release{{Group: "gone", App: "demo-pay", Version: "1.0.9"}}},
	}
	api := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(groups)
	})
	vars := map[string]string{"SWITCHYARD_ADMIN": api.URL, "SWITCHYARD_TOKEN": "t"}
	code, out, errs := runCLI(t, vars, "app", "groups")
	if code != 0 || !strings.HasPrefix(out, "GROUP") || strings.Contains(out, "{") {
		t.Fatalf("app groups: exit %d, not a table:\n%s%s", code, out, errs)
	}
	for _, want := range []string{"demo-pay@1.1.0", "20% of terminals=T0000001", "2026-12-02 01:30:00.000 +08:00", "CHG-2", "none (withdrawn)"} {
		if !strings.Contains(out, want) {
			t.Errorf("app groups lacks %q:\n%s", want, out)
		}
	}
	code, out, errs = runCLI(t, vars, "app", "groups", "--json")
	var got []apps.Group
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil || len(got) != 2 || got[0].Current.Change != "CHG-2" {
		t.Errorf("app groups --json: exit %d, %v:\n%s%s", code, err, out, errs)
	}
}

// app list, app status and app key list show their times as app groups does, in the
// acquirer's zone with the offset (before: "2026-12-01 17:30Z", and a bare UTC date
// for a key); --json keeps the API's.
func TestAppTimesInTheAcquirersZone(t *testing.T) {
	at := time.Date(2026, 12, 1, 17, 30, 0, 0, time.UTC)
	pkgs := []apps.Package{{Name: "demo-pay", Version: "2.1.0", Size: 1024, SHA256: strings.Repeat("ab", 32), KeyID: "k1", UploadedAt: at, UploadedBy: "op"}}
	ros := []apps.Rollout{{Group: "north", Terminals: 1, Failures: 1, Versions: map[string]int{"2.0.0": 1},
		Failed: []apps.Report{{Terminal: "T0000107", Version: "2.0.0", ReportedAt: at, Failed: &apps.Failure{Version: "2.1.0", Detail: "E42 flash write", At: at}}}}}
	keys := []apps.SigningKey{{ID: "k1", Algorithm: "ed25519", AddedAt: at, AddedBy: "admin"}}
	api := zoneAdmin(t, map[string]any{"/api/v1/apps/packages": pkgs, "/api/v1/apps/rollout": ros, "/api/v1/apps/keys": keys})
	vars := map[string]string{"SWITCHYARD_ADMIN": api.URL, "SWITCHYARD_TOKEN": "t", "SWITCHYARD_TIMEZONE": "Asia/Shanghai"}
	for _, c := range []struct {
		args []string
		want string
		json any
	}{
		{[]string{"app", "list"}, "  k1   2026-12-02 01:30:00.000 +08:00 by op\n", pkgs},
		{[]string{"app", "status"}, "  failed: T0000107 2.1.0 at 2026-12-02 01:30:00.000 +08:00: E42 flash write\n", ros},
		{[]string{"app", "key", "list"}, "k1\ted25519\tadded 2026-12-02 01:30:00.000 +08:00 by admin\trevoked=false\n", keys},
	} {
		if code, out, errs := runCLI(t, vars, c.args...); code != 0 || !strings.Contains(out, c.want) {
			t.Errorf("%q: exit %d, lacks %q:\n%s%s", c.args, code, c.want, out, errs)
		}
		if code, out, _ := runCLI(t, vars, append(c.args, "--json")...); code != 0 || out != indented(t, c.json) {
			t.Errorf("%q --json:\n%s", c.args, out)
		}
	}
}

// TestAppKeyRevoke: app key revoke requests the revocation of an approved key as
// the API takes it (the key as it stands, revoked), for review; an unknown key ID
// is an error naming it, and nothing is requested.
func TestAppKeyRevoke(t *testing.T) {
	keys := []apps.SigningKey{{ID: "acq-2026", PublicKey: "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n", Algorithm: "ed25519"}}
	var posted apps.KeyRequest
	api := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == "POST" {
			if err := json.NewDecoder(r.Body).Decode(&posted); err != nil {
				t.Errorf("POST body: %v", err)
			}
			w.WriteHeader(http.StatusAccepted)
			_ = json.NewEncoder(w).Encode(registry.Change{ID: "CHG-9", Op: apps.OpKeyPut, Target: "acq-2026", Status: registry.ChangePending})
			return
		}
		_ = json.NewEncoder(w).Encode(keys)
	})
	vars := map[string]string{"SWITCHYARD_ADMIN": api.URL, "SWITCHYARD_TOKEN": "t"}
	code, out, errs := runCLI(t, vars, "app", "key", "revoke", "acq-2026", "--reason", "leaked")
	if code != 0 || !strings.Contains(out, "CHG-9") {
		t.Fatalf("app key revoke: exit %d:\n%s%s", code, out, errs)
	}
	if posted.ID != "acq-2026" || !posted.Revoked || posted.PublicKey != keys[0].PublicKey || posted.Reason != "leaked" {
		t.Fatalf("app key revoke posted %+v", posted)
	}
	posted = apps.KeyRequest{}
	if code, _, errs := runCLI(t, vars, "app", "key", "revoke", "nobody"); code == 0 || !strings.Contains(errs, `"nobody"`) || posted.ID != "" {
		t.Fatalf("revoke of an unknown key: exit %d, %s, posted %+v", code, errs, posted)
	}
}

// TestAppOutputEscapesControls: a package whose manifest's name carries an escape
// sequence, a terminal's reported version and failure detail carrying others,
// and a signing key's ID print as visible escapes in app list, app status and
// app key list; --json keeps the bytes (JSON escapes them). Before, all three
// wrote the bytes, and the operator's terminal acted on them.
func TestAppOutputEscapesControls(t *testing.T) {
	at := time.Date(2026, 12, 1, 17, 30, 0, 0, time.UTC)
	osc := "\x1b]52;c;eA==\a"
	pkgs := []apps.Package{{Name: "pay" + osc, Version: "2.1.0", Size: 1024, SHA256: strings.Repeat("ab", 32), KeyID: "k1", UploadedAt: at, UploadedBy: "op"}}
	ros := []apps.Rollout{{Group: "north", Terminals: 1, Failures: 1, Versions: map[string]int{"2.0\x1b[2J": 1},
		Failed: []apps.Report{{Terminal: "T0000107", Version: "2.0.0", ReportedAt: at, Failed: &apps.Failure{Version: "2.1.0", Detail: "E42" + osc, At: at}}}}}
	keys := []apps.SigningKey{{ID: "k1" + osc, Algorithm: "ed25519", AddedAt: at, AddedBy: "admin"}}
	api := zoneAdmin(t, map[string]any{"/api/v1/apps/packages": pkgs, "/api/v1/apps/rollout": ros, "/api/v1/apps/keys": keys})
	vars := map[string]string{"SWITCHYARD_ADMIN": api.URL, "SWITCHYARD_TOKEN": "t", "SWITCHYARD_TIMEZONE": "Asia/Shanghai"}
	for _, c := range []struct {
		args []string
		want []string
		json any
	}{
		{[]string{"app", "list"}, []string{`pay\x1b]52;c;eA==\x07  2.1.0`}, pkgs},
		{[]string{"app", "status"}, []string{`  2.0\x1b[2J   1`, `: E42\x1b]52;c;eA==\x07` + "\n"}, ros},
		{[]string{"app", "key", "list"}, []string{`k1\x1b]52;c;eA==\x07` + "\ted25519"}, keys},
	} {
		code, out, errs := runCLI(t, vars, c.args...)
		if code != 0 || strings.ContainsAny(out, "\x1b\a") {
			t.Errorf("%q: exit %d, raw control bytes:\n%q%s", c.args, code, out, errs)
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%q lacks %q:\n%q", c.args, w, out)
			}
		}
		if code, out, _ := runCLI(t, vars, append(c.args, "--json")...); code != 0 || out != indented(t, c.json) {
			t.Errorf("%q --json:\n%s", c.args, out)
		}
	}
}

// app status shows apart the group's terminals of an unknown application (no AN,
// groups of several applications) and of another application, and says how many
// of its versions were reported before the application was recorded.
func TestAppStatusPerApplication(t *testing.T) {
	ros := []apps.Rollout{{Group: "pay", Terminals: 6, Current: &apps.Release{App: "demo-pay", Version: "2.1", Target: apps.Target{Percent: 100}, Change: "CHG-1"},
		Versions: map[string]int{"2.1": 2, "1.9": 1}, Unrecorded: 1, UnknownApp: map[string]int{"5.0": 2}, OtherApp: 1}}
	api := zoneAdmin(t, map[string]any{"/api/v1/apps/rollout": ros})
	vars := map[string]string{"SWITCHYARD_ADMIN": api.URL, "SWITCHYARD_TOKEN": "t", "SWITCHYARD_TIMEZONE": "Asia/Shanghai"}
	code, out, errs := runCLI(t, vars, "app", "status")
	if code != 0 {
		t.Fatalf("app status: exit %d:\n%s%s", code, out, errs)
	}
	for _, want := range []string{"  2.1          2\n", "  (1 of these reported before the application was recorded",
		"  unknown application (no AN, groups of several applications):\n    5.0        2\n", "  running another application: 1\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("app status lacks %q:\n%s", want, out)
		}
	}
}

// TestAppPublishPercentZeroRefused: app publish --percent 0 (or below 0, above
// 100, NaN) is a usage error and requests nothing: the API takes a percent of 0
// as 100, so an operator holding a rollout back with --percent 0 would have
// offered the release to every terminal of the group. Without --percent the
// release goes to the whole group, as before; --percent 10 is sent as given.
func TestAppPublishPercentZeroRefused(t *testing.T) {
	var posted []apps.PublishRequest
	api := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request) {
		var req apps.PublishRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Errorf("POST body: %v", err)
		}
		posted = append(posted, req)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(registry.Change{ID: "CHG-7", Op: apps.OpPublish, Target: "north", Status: registry.ChangePending})
	})
	vars := map[string]string{"SWITCHYARD_ADMIN": api.URL, "SWITCHYARD_TOKEN": "t"}
	publish := []string{"app", "publish", "--group", "north", "--app", "demo-pay", "--version", "2.1", "--reason", "pilot"}
	for _, p := range []string{"0", "-5", "150", "NaN"} {
		code, _, errs := runCLI(t, vars, append(publish, "--percent", p)...)
		if code == 0 || !strings.Contains(errs, "--percent") || len(posted) != 0 {
			t.Fatalf("app publish --percent %s: exit %d, %s; requested %+v (want a usage error and nothing requested)", p, code, errs, posted)
		}
	}
	if code, out, errs := runCLI(t, vars, publish...); code != 0 || !strings.Contains(out, "CHG-7") || len(posted) != 1 || posted[0].Target.Percent != 0 {
		t.Fatalf("app publish without --percent: exit %d %s%s, requested %+v", code, out, errs, posted)
	}
	if code, _, errs := runCLI(t, vars, append(publish, "--percent", "10")...); code != 0 || len(posted) != 2 || posted[1].Target.Percent != 10 {
		t.Fatalf("app publish --percent 10: exit %d %s, requested %+v", code, errs, posted)
	}
}

// TestAppUnknownTargetsAndOtherVersions: app publish --allow-unknown-targets
// sends allow_unknown_targets (without it, none); app groups shows how many
// registered terminals a release's target matches, and that unknown IDs were
// allowed; app status shows the terminals that reported installing another
// version than their token's package, which are not counted on the release.
func TestAppUnknownTargetsAndOtherVersions(t *testing.T) {
	var posted []apps.PublishRequest
	groups := []apps.Group{{Name: "later", Matches: 0, Current: &apps.Release{Group: "later", App: "demo-pay", Version: "2.1",
		Target: apps.Target{Terminals: []string{"T0009999"}}, AllowUnknownTargets: true, Change: "CHG-3"}}}
	ros := []apps.Rollout{{Group: "pay", Terminals: 2, Current: &apps.Release{App: "demo-pay", Version: "2.1", Change: "CHG-1"},
		Versions: map[string]int{"2.1": 1, "9.9": 1}, OnRelease: 1, OtherVersion: 1,
		OtherVersions: []apps.Report{{Terminal: "T0000002", App: "demo-pay", Version: "9.9", TokenVersion: "2.1"}}}}
	api := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == "POST":
			var req apps.PublishRequest
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				t.Errorf("POST body: %v", err)
			}
			posted = append(posted, req)
			w.WriteHeader(http.StatusAccepted)
			_ = json.NewEncoder(w).Encode(registry.Change{ID: "CHG-8", Op: apps.OpPublish, Target: "later", Status: registry.ChangePending})
		case r.URL.Path == "/api/v1/apps/groups":
			_ = json.NewEncoder(w).Encode(groups)
		default:
			_ = json.NewEncoder(w).Encode(ros)
		}
	})
	vars := map[string]string{"SWITCHYARD_ADMIN": api.URL, "SWITCHYARD_TOKEN": "t"}
	publish := []string{"app", "publish", "--group", "later", "--app", "demo-pay", "--version", "2.1", "--terminals", "T0009999"}
	if code, _, errs := runCLI(t, vars, publish...); code != 0 || len(posted) != 1 || posted[0].AllowUnknownTargets {
		t.Fatalf("app publish: exit %d %s, requested %+v", code, errs, posted)
	}
	if code, _, errs := runCLI(t, vars, append(publish, "--allow-unknown-targets")...); code != 0 || len(posted) != 2 || !posted[1].AllowUnknownTargets {
		t.Fatalf("app publish --allow-unknown-targets: exit %d %s, requested %+v", code, errs, posted)
	}
	code, out, errs := runCLI(t, vars, "app", "groups")
	if code != 0 || !strings.Contains(out, "TERMINALS") || !strings.Contains(out, "0 (unknown IDs allowed)") {
		t.Fatalf("app groups: exit %d, lacks the matching terminals:\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, vars, "app", "status")
	for _, want := range []string{"on the release 1,", "reported installing another version than their token's package: 1",
		"other version: T0000002 reported 9.9, its token was for 2.1\n"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("app status: exit %d, lacks %q:\n%s%s", code, want, out, errs)
		}
	}
}
