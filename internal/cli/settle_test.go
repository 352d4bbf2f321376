package cli

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/switch/server"
)

// TestSettleTableEscapesControls: a settlement line whose MID and TID carry
// escape sequences (what a rogue terminal's messages held) prints them as
// visible escapes on its one row of the table; --csv keeps the bytes as they
// were. Before, the table wrote the bytes, and the operator's terminal acted on
// them.
func TestSettleTableEscapesControls(t *testing.T) {
	line := server.SettlementLine{MID: "M1\x1b[2J", TID: "T1\x1b]52;c;eA==\a", Currency: "156", PurchaseCount: 1, PurchaseAmount: 100, Net: 100}
	api := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(server.Settlement{Date: "2026-01-02", Timezone: "Asia/Shanghai", Lines: []server.SettlementLine{line}})
	})
	vars := map[string]string{"SWITCHYARD_ADMIN": api.URL, "SWITCHYARD_TOKEN": "t"}
	code, out, errs := runCLI(t, vars, "settle", "--date", "2026-01-02")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	if strings.ContainsAny(out, "\x1b\a") || !strings.Contains(out, `M1\x1b[2J  T1\x1b]52;c;eA==\x07  156`) || strings.Count(out, "\n") != 3 {
		t.Fatalf("settle table:\n%q", out)
	}
	code, out, errs = runCLI(t, vars, "settle", "--date", "2026-01-02", "--csv")
	if code != 0 || !strings.Contains(out, line.MID) || !strings.Contains(out, line.TID) {
		t.Fatalf("settle --csv: exit %d\n%q%s", code, out, errs)
	}
}
