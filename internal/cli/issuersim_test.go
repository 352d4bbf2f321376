package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/switchyard/switchyard/switch/issuersim"
)

// TestSimControl drives the issuer simulator's control API: an outage started and
// ended once each (a second start or end is a conflict), a bad mode refused, the status
// and the ledger readable.
func TestSimControl(t *testing.T) {
	sim, err := issuersim.Start(issuersim.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	srv := httptest.NewServer(simControl(sim))
	defer srv.Close()
	call := func(method, path string, want int) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != want {
			t.Errorf("%s %s: %s, want %d", method, path, resp.Status, want)
		}
		return resp
	}
	call("POST", "/outage?mode=flaky", http.StatusBadRequest).Body.Close()
	call("POST", "/outage?mode=silent", http.StatusNoContent).Body.Close()
	call("POST", "/outage?mode=down", http.StatusConflict).Body.Close()
	resp := call("GET", "/status", http.StatusOK)
	var st struct{ Outage string }
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.Outage != "silent" {
		t.Errorf("status: outage %q, err %v", st.Outage, err)
	}
	resp.Body.Close()
	call("DELETE", "/outage", http.StatusNoContent).Body.Close()
	call("DELETE", "/outage", http.StatusConflict).Body.Close()
	if sim.Outage() != issuersim.OutageNone {
		t.Errorf("outage %v after DELETE", sim.Outage())
	}
	resp = call("GET", "/ledger", http.StatusOK)
	var led []issuersim.Entry
	if err := json.NewDecoder(resp.Body).Decode(&led); err != nil || led == nil {
		t.Errorf("ledger: %v, err %v (want an empty array)", led, err)
	}
	resp.Body.Close()
}
