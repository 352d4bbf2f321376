package api_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
)

// TestPprofNeedsAdmin: outside demo mode the profiler answers only an admin token;
// in demo mode (public tokens) it stays open.
func TestPprofNeedsAdmin(t *testing.T) {
	auth, err := admin.NewAuthenticator([]admin.Token{
		{Token: "op-token", Principal: admin.Principal{Name: "op", Role: admin.RoleOperator}},
		{Token: "admin-token", Principal: admin.Principal{Name: "root", Role: admin.RoleAdmin}},
	})
	if err != nil {
		t.Fatal(err)
	}
	get := func(srv *httptest.Server, path, token string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	prod := api.New(api.Options{Auth: auth, Pprof: true})
	ps := httptest.NewServer(prod)
	defer ps.Close()
	for _, c := range []struct {
		path, token string
		want        int
	}{
		{"/debug/pprof/", "", http.StatusUnauthorized},
		{"/debug/pprof/goroutine?debug=1", "", http.StatusUnauthorized},
		{"/debug/pprof/heap", "op-token", http.StatusForbidden},
		{"/debug/pprof/profile?seconds=1", "", http.StatusUnauthorized},
		{"/debug/pprof/trace?seconds=1", "op-token", http.StatusForbidden},
		{"/debug/pprof/goroutine?debug=1", "admin-token", http.StatusOK},
	} {
		if got := get(ps, c.path, c.token); got != c.want {
			t.Errorf("GET %s with token %q: %d, want %d", c.path, c.token, got, c.want)
		}
	}
	demo := api.New(api.Options{Auth: auth, Pprof: true, PprofOpen: true})
	ds := httptest.NewServer(demo)
	defer ds.Close()
	if got := get(ds, "/debug/pprof/goroutine?debug=1", ""); got != http.StatusOK {
		t.Errorf("demo mode without a token: %d, want 200", got)
	}
}
