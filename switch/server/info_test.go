package server

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/internal/testswitch"
)

// TestInfoReportsTheConfiguredZone: GET /api/v1/info answers, to any reading role,
// the switch's release (WithVersion) and its configured timezone, which the CLI reads
// dates in; without a token it is refused like every route.
func TestInfoReportsTheConfiguredZone(t *testing.T) {
	c := testswitch.DemoConfig(t, t.TempDir(), "../../rules")
	c.Timezone = "America/New_York"
	s, err := New(c, zerolog.Nop(), testDemoIssuer, WithVersion("v9.8.7"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	get := func(token string) (*http.Response, api.Info) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+s.AdminAddr()+"/api/v1/info", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var in api.Info
		if resp.StatusCode == 200 {
			if err := json.NewDecoder(resp.Body).Decode(&in); err != nil {
				t.Fatal(err)
			}
		}
		return resp, in
	}
	for _, tok := range api.DemoTokens() {
		resp, in := get(tok.Token)
		if resp.StatusCode != 200 || in.Timezone != "America/New_York" || in.Version != "v9.8.7" {
			t.Errorf("%s (%s): %d %+v", tok.Name, tok.Role, resp.StatusCode, in)
		}
	}
	if resp, _ := get(""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without a token: %d", resp.StatusCode)
	}
}
