package cli

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/cases"
)

// TestCaseShowEscapesControls: a case whose terminal ID (what the terminal's
// message carried) and decision note carry escape sequences shows them as
// visible escapes; --json keeps the bytes (JSON escapes them). Before, case show
// wrote the bytes, and the operator's terminal acted on them.
func TestCaseShowEscapesControls(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	k := cases.Case{ID: "CASE-1", Status: "decided", Action: "review", Rule: "big-round", OpenedAt: at, RRN: "000000000001", Time: at,
		TID: "T1\x1b]52;c;eA==\a", PANMasked: "476173******0119", CardHash: "h", Amount: 100,
		Decision: &cases.Decision{Verdict: "cleared", By: "anna", At: at, Note: "ok\x1b[2J"}}
	api := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(k)
	})
	vars := map[string]string{"SWITCHYARD_ADMIN": api.URL, "SWITCHYARD_TOKEN": "t"}
	code, out, errs := runCLI(t, vars, "case", "show", "CASE-1")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	if strings.ContainsAny(out, "\x1b\a") || !strings.Contains(out, `terminal T1\x1b]52;c;eA==\x07,`) || !strings.Contains(out, `: ok\x1b[2J`+"\n") {
		t.Fatalf("case show:\n%q", out)
	}
	if _, out, _ := runCLI(t, vars, "case", "show", "CASE-1", "--json"); !strings.Contains(out, `"T1\u001b]52;c;eA==\u0007"`) {
		t.Fatalf("case show --json:\n%s", out)
	}
}
