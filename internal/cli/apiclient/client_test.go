package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/switchyard/switchyard/switch/admin"
)

// TestUnauthorizedWithoutTokenSaysWhere: a 401 to a call made without a token says
// where the token goes (--token or $SWITCHYARD_TOKEN); with a token (a wrong one)
// the answer is passed on as it is. Before, a command run in a new shell without
// $SWITCHYARD_TOKEN printed "admin API: 401 missing bearer token" alone. The switch
// is a loopback HTTP server that refuses every call as the admin API does.
func TestUnauthorizedWithoutTokenSaysWhere(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		msg := "missing bearer token"
		if r.Header.Get("Authorization") != "" {
			msg = "unknown bearer token"
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(admin.ErrorBody{Error: msg})
	}))
	t.Cleanup(srv.Close)
	for _, c := range []struct{ token, want string }{
		{"", "admin API: 401 missing bearer token (no token given: --token T or export SWITCHYARD_TOKEN=T)"},
		{"wrong", "admin API: 401 unknown bearer token"},
	} {
		err := (&Client{BaseURL: srv.URL, Token: c.token}).Do(context.Background(), http.MethodGet, "/api/v1/journal", nil, nil)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || err.Error() != c.want {
			t.Errorf("token %q: %v, want %q", c.token, err, c.want)
		}
	}
}
