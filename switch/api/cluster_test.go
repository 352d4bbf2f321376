package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/registry"
)

// TestClusterStatus: GET /api/v1/cluster/status answers what the server's
// ClusterStatus returns to every reading role; a switch that runs alone
// answers 404 "not a cluster node"; a failing status is a 500.
func TestClusterStatus(t *testing.T) {
	auth, err := admin.NewAuthenticator(api.DemoTokens())
	if err != nil {
		t.Fatal(err)
	}
	get := func(o api.Options, token string) (int, map[string]any) {
		t.Helper()
		o.Auth = auth
		srv := httptest.NewServer(api.New(o))
		defer srv.Close()
		req, _ := http.NewRequest("GET", srv.URL+"/api/v1/cluster/status", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("%s: not JSON: %v", resp.Status, err)
		}
		return resp.StatusCode, body
	}
	type fakeReport struct {
		Node   int      `json:"node"`
		Leases []string `json:"leases"`
	}
	cluster := api.Options{ClusterStatus: func(context.Context) (any, error) {
		return fakeReport{Node: 2, Leases: []string{"node.1", "node.2"}}, nil
	}}
	for _, tok := range []string{registry.DemoOperatorToken, registry.DemoReviewerToken, registry.DemoAnalystToken, registry.DemoAdminToken} {
		if st, body := get(cluster, tok); st != http.StatusOK || body["node"] != 2.0 || len(body["leases"].([]any)) != 2 {
			t.Errorf("as %s: %d %v", tok, st, body)
		}
	}
	if st, body := get(cluster, ""); st != http.StatusUnauthorized {
		t.Errorf("without a token: %d %v", st, body)
	}
	if st, body := get(api.Options{}, registry.DemoOperatorToken); st != http.StatusNotFound || !strings.Contains(body["error"].(string), "not a cluster node") {
		t.Errorf("alone: %d %v; want 404 not a cluster node", st, body)
	}
	failing := api.Options{ClusterStatus: func(context.Context) (any, error) { return nil, errors.New("boom") }}
	if st, body := get(failing, registry.DemoOperatorToken); st != http.StatusInternalServerError || body["error"] != "boom" {
		t.Errorf("failing: %d %v", st, body)
	}
}

// TestSettlementStatus: a settlement the server cannot make yet (a cluster node whose
// journal has not caught up) answers the status the server gave, 503; a bad date
// stays a 400.
func TestSettlementStatus(t *testing.T) {
	auth, err := admin.NewAuthenticator(api.DemoTokens())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		settle func(context.Context, string) (any, error)
		status int
	}{
		{"not caught up", func(context.Context, string) (any, error) {
			return nil, api.WithStatus(http.StatusServiceUnavailable, errors.New("the local journal has not caught up"))
		}, http.StatusServiceUnavailable},
		{"bad date", func(context.Context, string) (any, error) { return nil, errors.New(`date "x": want YYYY-MM-DD`) }, http.StatusBadRequest},
		{"a report", func(context.Context, string) (any, error) { return map[string]int{"lines": 0}, nil }, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(api.New(api.Options{Auth: auth, Settle: tc.settle}))
			defer srv.Close()
			req, _ := http.NewRequest("GET", srv.URL+"/api/v1/settlement?date=2026-12-02", nil)
			req.Header.Set("Authorization", "Bearer "+registry.DemoOperatorToken)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("%s; want %d", resp.Status, tc.status)
			}
		})
	}
}

// TestClusterImportBody: POST /api/v1/cluster/import/journal hands its body to
// ClusterImport decoded (records as bytes from base64); a body over 8 MB is refused
// whole with 413, never cut short into a decoding error; a switch that runs alone
// answers 404.
func TestClusterImportBody(t *testing.T) {
	auth, err := admin.NewAuthenticator(api.DemoTokens())
	if err != nil {
		t.Fatal(err)
	}
	var got api.JournalImport
	o := api.Options{Auth: auth, ClusterImport: func(_ context.Context, b api.JournalImport) (any, error) { got = b; return "ok", nil },
		ClusterImportState: func(context.Context) (any, error) { return "state", nil }}
	post := func(o api.Options, body []byte) int {
		t.Helper()
		srv := httptest.NewServer(api.New(o))
		defer srv.Close()
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/cluster/import/journal", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+registry.DemoAdminToken)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	b, _ := json.Marshal(api.JournalImport{After: "000000000007", Records: [][]byte{{1, 2, 3}},
		Closes: []api.ImportClose{{TID: "T0000001"}}})
	if code := post(o, b); code != http.StatusOK || got.After != "000000000007" || string(got.Records[0]) != "\x01\x02\x03" || got.Closes[0].TID != "T0000001" {
		t.Fatalf("import: %d %+v", code, got)
	}
	big, _ := json.Marshal(api.JournalImport{Records: [][]byte{make([]byte, 7<<20)}}) // 9.3 MB in base64
	if code := post(o, big); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("a body over 8 MB: %d, want 413", code)
	}
	if code := post(api.Options{Auth: auth}, b); code != http.StatusNotFound {
		t.Fatalf("a switch that runs alone: %d, want 404", code)
	}
}
