package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/server"
)

// TestSAFParked: saf parked list prints the parked advices (id, masked card, RRN,
// issuer, tries, when parked); requeue and resolve POST to the admin API, resolve
// with its note; resolve without --note and a bad id are refused before any call,
// and the API's conflict (409) is the command's error.
func TestSAFParked(t *testing.T) {
	var bodies []string
	api := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		w.Header().Set("Content-Type", "application/json")
		adv := server.ParkedAdvice{ID: 42, Issuer: "bank", MTI: "0420", RRN: "000000000007", PAN: "411111******1111", Amount: "000000001000",
			Tries: 20, Unacked: 20, Parked: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC), LastErr: "answered 0430 without DE 39"}
		switch r.URL.Path {
		case "/api/v1/saf/parked":
			_ = json.NewEncoder(w).Encode([]server.ParkedAdvice{adv})
		case "/api/v1/saf/parked/42/requeue":
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"error":"parked advice already acted on: parked advice 42 was resolved by olga at 2026-12-06T10:05:00Z"}`))
		case "/api/v1/saf/parked/42/resolve":
			_ = json.NewEncoder(w).Encode(server.ParkedActionResult{Action: "resolve", By: "olga", Advice: adv, OplogSeq: 9})
		default:
			http.NotFound(w, r)
		}
	})
	vars := map[string]string{"SWITCHYARD_ADMIN": api.URL, "SWITCHYARD_TOKEN": "t", "SWITCHYARD_TIMEZONE": "UTC"}
	code, out, errs := runCLI(t, vars, "saf", "parked", "list", "--issuer", "bank")
	if code != 0 || !strings.Contains(out, "411111******1111") || !strings.Contains(out, "000000000007") || !strings.Contains(out, "42") {
		t.Fatalf("list: exit %d\n%s%s", code, out, errs)
	}
	for _, args := range [][]string{{"saf", "parked", "resolve", "42"}, {"saf", "parked", "requeue", "x"}, {"saf", "parked", "requeue"}} {
		if code, _, errs := runCLI(t, vars, args...); code == 0 || errs == "" {
			t.Errorf("%v: exit %d, want an error", args, code)
		}
	}
	n := len(api.Calls())
	if code, out, errs := runCLI(t, vars, "saf", "parked", "resolve", "42", "--note", "booked by the issuer, confirmed by phone"); code != 0 ||
		!strings.Contains(out, "resolved by olga") || !strings.Contains(out, "oplog entry 9") {
		t.Errorf("resolve: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := runCLI(t, vars, "saf", "parked", "requeue", "42"); code == 0 || !strings.Contains(errs, "resolved by olga") {
		t.Errorf("requeue of a resolved advice: exit %d, %s", code, errs)
	}
	calls := api.Calls()
	if n != 1 || len(calls) != 3 || !strings.HasPrefix(calls[1], "POST /api/v1/saf/parked/42/resolve") || !strings.HasPrefix(calls[2], "POST /api/v1/saf/parked/42/requeue") {
		t.Errorf("calls %q", calls)
	}
	if !strings.Contains(bodies[1], `"note":"booked by the issuer, confirmed by phone"`) {
		t.Errorf("resolve body %q", bodies[1])
	}
}

// TestSAFParkedListResolved: saf parked list --resolved asks for the records of the
// resolved advices (state=resolved, with the issuer, after and limit given) and
// prints who resolved which, when, and the note, the card masked; a full page says
// how to ask for the next; --requeued asks for state=requeued and prints the
// repeat's id; --resolved with --requeued, and --after without either, are refused
// before any call.
func TestSAFParkedListResolved(t *testing.T) {
	api := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		adv := server.ParkedAdvice{ID: 42, Issuer: "bank", MTI: "0420", RRN: "000000000007", PAN: "411111******1111", Amount: "000000001000"}
		rec := server.ParkedActionRecord{ID: 42, Action: "resolve", By: "olga", At: time.Date(2026, 12, 6, 10, 5, 0, 0, time.UTC),
			Note: "booked by the issuer, ticket 4711", Advice: adv}
		if r.URL.Query().Get("state") == "requeued" {
			rec.Action, rec.Note, rec.Requeued = "requeue", "", 77
		}
		_ = json.NewEncoder(w).Encode([]server.ParkedActionRecord{rec})
	})
	vars := map[string]string{"SWITCHYARD_ADMIN": api.URL, "SWITCHYARD_TOKEN": "t", "SWITCHYARD_TIMEZONE": "UTC"}
	code, out, errs := runCLI(t, vars, "saf", "parked", "list", "--resolved", "--issuer", "bank", "--after", "41", "--limit", "1")
	if code != 0 || !strings.Contains(out, "olga") || !strings.Contains(out, "ticket 4711") || !strings.Contains(out, "411111******1111") ||
		!strings.Contains(out, "2026-12-06") || !strings.Contains(errs, "--after 42") {
		t.Fatalf("list --resolved: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, vars, "saf", "parked", "list", "--requeued")
	if code != 0 || !strings.Contains(out, "77") || strings.Contains(errs, "--after") {
		t.Errorf("list --requeued: exit %d\n%s%s", code, out, errs)
	}
	for _, args := range [][]string{{"saf", "parked", "list", "--resolved", "--requeued"}, {"saf", "parked", "list", "--after", "3"}} {
		if code, _, errs := runCLI(t, vars, args...); code == 0 || errs == "" {
			t.Errorf("%v: exit %d, want an error", args, code)
		}
	}
	calls := api.Calls()
	if len(calls) != 2 || !strings.Contains(calls[0], "state=resolved") || !strings.Contains(calls[0], "issuer=bank") || !strings.Contains(calls[0], "after=41") ||
		!strings.Contains(calls[0], "limit=1") || !strings.Contains(calls[1], "state=requeued") {
		t.Errorf("calls %q", calls)
	}
}
