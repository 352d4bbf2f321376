package api_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/apps"
	"github.com/switchyard/switchyard/switch/internal/testswitch"
	"github.com/switchyard/switchyard/switch/registry"
)

// newAppsFixture serves the API with an apps.Manager over the demo registry.
func newAppsFixture(t *testing.T) *apiFixture {
	t.Helper()
	f := &fixture{clock: &fakeClock{t: t0}}
	dir := t.TempDir()
	db := openDB(t, dir+"/db")
	reg, err := registry.New(db, f.clock.Now, registry.Options{SeenFlushInterval: -1})
	if err != nil {
		t.Fatalf("registry.New: %v", err)
	}
	t.Cleanup(func() { reg.Close() })
	if _, err := registry.LoadDemoFleet(reg, testswitch.LoadTerminals); err != nil {
		t.Fatalf("LoadDemo: %v", err)
	}
	f.reg = reg
	m, err := apps.New(db, reg, apps.Options{Dir: dir + "/apps", Now: f.clock.Now, CardHashKey: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatalf("apps.New: %v", err)
	}
	auth, err := admin.NewAuthenticator(api.DemoTokens())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Options{Auth: auth, Registry: reg, Apps: m}))
	t.Cleanup(srv.Close)
	return &apiFixture{fixture: f, srv: srv}
}

// TestAPIPublishPercentZeroAndUnknownTargets: POST /api/v1/apps/publish refuses
// an explicit "percent": 0 (400 naming it; it was read as 100, every terminal of
// the group), while a target without percent, or with null, is all the terminals
// it selects as before (here answered 404: no package uploaded, past the target's
// checks). A target naming terminal or merchant IDs the registry does not know is
// refused 400 listing them, unless allow_unknown_targets.
func TestAPIPublishPercentZeroAndUnknownTargets(t *testing.T) {
	a := newAppsFixture(t)
	post := func(body string) (int, string) {
		return a.raw(t, "POST", "/api/v1/apps/publish", registry.DemoOperatorToken, "application/json", body)
	}
	const head = `{"group":"pilot","app":"demo-pay","version":"1.1.0",`
	if st, body := post(head + `"target":{"terminals":["T0000001"],"percent":0}}`); st != http.StatusBadRequest || !strings.Contains(body, "target.percent 0") {
		t.Fatalf(`"percent": 0: %d %s, want 400 naming target.percent 0`, st, body)
	}
	for _, target := range []string{`{"terminals":["T0000001"]}`, `{"terminals":["T0000001"],"percent":null}`, `{"terminals":["T0000001"],"percent":50}`} {
		if st, body := post(head + `"target":` + target + `}`); st != http.StatusNotFound || !strings.Contains(body, "not uploaded") {
			t.Fatalf("target %s: %d %s, want 404 (no package), past the percent check", target, st, body)
		}
	}
	if st, body := post(head + `"target":{"terminals":["T0000001","T000000I"],"merchants":["M-TYPO"]}}`); st != http.StatusBadRequest ||
		!strings.Contains(body, "merchant M-TYPO (not registered), terminal T000000I (not registered)") || strings.Contains(body, "T0000001 (") {
		t.Fatalf("unknown target IDs: %d %s, want 400 listing M-TYPO and T000000I only", st, body)
	}
	if st, body := post(head + `"target":{"terminals":["T000000I"]},"allow_unknown_targets":true}`); st != http.StatusNotFound {
		t.Fatalf("unknown target IDs allowed: %d %s, want 404 (no package), past the target check", st, body)
	}
	if st, body := post(head + `"target":{"percent":0},"bogus":1}`); st != http.StatusBadRequest || !strings.Contains(body, "bogus") {
		t.Fatalf("unknown field: %d %s, want 400 naming it", st, body)
	}
}
