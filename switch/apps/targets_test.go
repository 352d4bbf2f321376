package apps

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/switch/registry"
)

// TestPublishRefusesUnknownTargets: a publication whose target names a merchant
// or terminal ID the registry does not know (a typo) is refused when requested,
// 400 listing those IDs and only those; one naming a terminal closed between the
// request and the approval is refused at the approval. With AllowUnknownTargets
// (terminals to be registered later) it goes through, recorded in the change and
// on the release, and the group listing says how many registered terminals the
// target matches now. Before, such IDs were taken as given and the release reached
// no terminal, silently.
func TestPublishRefusesUnknownTargets(t *testing.T) {
	f := newFixture(t, 3)
	f.upload("2.0", blob("2.0", 100))
	typo := PublishRequest{Group: "north", App: "demo-pay", Version: "2.0",
		Target: Target{Merchants: []string{mid, "M0000000000009X"}, Terminals: []string{f.tids[0], "T000000l", "T000000l"}}}
	_, err := f.m.RequestPublish(alice, typo)
	if !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "merchant M0000000000009X (not registered), terminal T000000l (not registered);") ||
		strings.Contains(err.Error(), mid+" (") || strings.Contains(err.Error(), f.tids[0]+" (") || !strings.Contains(err.Error(), "--allow-unknown-targets") {
		t.Fatalf("publication to unknown IDs: %v, want ErrInvalid listing the two unknown IDs once each", err)
	}
	if gs := f.m.Groups(); len(gs) != 0 {
		t.Fatalf("groups after a refused publication: %+v", gs)
	}

	// Known when requested, closed before the approval: refused at the approval.
	c, err := f.m.RequestPublish(alice, PublishRequest{Group: "south", App: "demo-pay", Version: "2.0", Target: Target{Terminals: []string{f.tids[2]}}})
	if err != nil {
		t.Fatalf("publication to a registered terminal: %v", err)
	}
	f.approve(f.reg.RequestChange(alice, registry.Change{Op: registry.OpTerminalClose, Target: f.tids[2], Reason: "returned"}))
	if _, err := f.reg.Approve(bob, c.ID, "ok"); !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "terminal "+f.tids[2]+" (closed)") {
		t.Fatalf("approval of a publication whose terminal was closed since: %v, want ErrInvalid naming it", err)
	}

	// Allowed: requested and approved. The target now names tids[0], tids[1] and
	// an ID to be registered: two registered terminals match.
	typo.AllowUnknownTargets = true
	typo.Target.Terminals = append(typo.Target.Terminals, f.tids[1])
	ch := f.approve(f.m.RequestPublish(alice, typo))
	if !strings.Contains(string(ch.Ext), `"allow_unknown_targets":true`) {
		t.Fatalf("the change does not record allow_unknown_targets: %s", ch.Ext)
	}
	gs := f.m.Groups()
	if len(gs) != 1 || gs[0].Current == nil || !gs[0].Current.AllowUnknownTargets || gs[0].Matches != 2 {
		t.Fatalf("groups: %+v, want north with allow_unknown_targets and 2 matching terminals", gs)
	}
	if ro := rollout(t, f.m, "north"); ro.Terminals != 2 {
		t.Fatalf("rollout: %+v, want 2 terminals", ro)
	}
}

// TestInstalledReportBoundToTokenVersion: an installation report whose version is
// not of the package its download token is for is recorded as the terminal says,
// but counted as another version (Rollout.OtherVersion), not on the release; a
// build number of the release (2.0.0.345 of 2.0.0) and the same version written
// otherwise (2.0 of 2.0.0) are of it. The terminal's next AV of another version
// is its own word again. Before, whatever version a report claimed was counted.
func TestInstalledReportBoundToTokenVersion(t *testing.T) {
	f := newFixture(t, 4)
	f.upload("2.0.0", blob("2.0.0", 100))
	f.publish("north", "2.0.0", 100, "")
	srv := httptest.NewTLSServer(f.m.Handler())
	defer srv.Close()
	report := func(tid, version string) {
		t.Helper()
		_, sum, tok := offerOf(t, f.m.Offer(tid, "", "1.0", f.clock.Now()))
		req, _ := http.NewRequest("POST", srv.URL+"/apps/v1/report/"+tid,
			strings.NewReader(fmt.Sprintf(`{"sha256":%q,"version":%q,"status":"installed"}`, sum, version)))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("report of %s installing %s: %s", tid, version, resp.Status)
		}
	}
	report(f.tids[0], "2.0.0.345") // a build of 2.0.0
	report(f.tids[1], "2.0")       // 2.0.0 written otherwise
	report(f.tids[2], "9.9.9")     // not what its token is for
	report(f.tids[3], "2.0.1")     // nor this: another release
	ro := rollout(t, f.m, "north")
	if ro.OnRelease != 2 || ro.OtherVersion != 2 || ro.Versions["9.9.9"] != 1 || ro.Versions["2.0.1"] != 1 || len(ro.OtherVersions) != 2 {
		t.Fatalf("rollout: %+v, want 2 on the release and 2 other versions (9.9.9, 2.0.1) still counted by version", ro)
	}
	if r, _ := f.m.ReportOf(f.tids[2]); r.Version != "9.9.9" || r.TokenVersion != "2.0.0" || r.App != "demo-pay" {
		t.Fatalf("report of %s: %+v, want version 9.9.9 recorded with token_version 2.0.0", f.tids[2], r)
	}
	// Kept over a restart; the same AV at sign-on keeps it, another clears it.
	f.close()
	f.open()
	f.m.Offer(f.tids[2], "", "9.9.9", f.clock.Now())
	f.m.Offer(f.tids[3], "", "2.0.0", f.clock.Now())
	if ro = rollout(t, f.m, "north"); ro.OtherVersion != 1 || ro.OnRelease != 3 || ro.OtherVersions[0].Terminal != f.tids[2] {
		t.Fatalf("after a restart and sign-ons: %+v, want %s still another version, %s on the release", ro, f.tids[2], f.tids[3])
	}
}

// TestOfRelease: a reported version is of a release when equal as versions
// compare, or the release followed by a build number.
func TestOfRelease(t *testing.T) {
	for _, c := range []struct {
		v, rel string
		want   bool
	}{
		{"2.1.0", "2.1.0", true}, {"2.1", "2.1.0", true}, {"2.01.0", "2.1.0", true}, {"2.1.0.345", "2.1.0", true},
		{"2.1.1", "2.1.0", false}, {"2.1.0.345", "2.1.1", false}, {"3", "2.1.0", false}, {"2.1.5", "2.1", true},
		{"x", "2.1.0", false}, {"", "2.1.0", false},
	} {
		if got := OfRelease(c.v, c.rel); got != c.want {
			t.Errorf("OfRelease(%q, %q) = %v, want %v", c.v, c.rel, got, c.want)
		}
	}
}
