package cli

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
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

// TestSettleWithoutDateLetsTheSwitchChoose: `switchyard settle` without --date
// asks the switch for its yesterday (no date in the request: the switch takes the
// day before in its own timezone) and prints the day the switch answered; with
// --date it asks for that day. Before, the CLI chose the day itself in
// $SWITCHYARD_TIMEZONE (default Asia/Shanghai), whatever the switch's zone.
func TestSettleWithoutDateLetsTheSwitchChoose(t *testing.T) {
	queries := make(chan string, 2)
	api := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request) {
		queries <- r.URL.RawQuery
		date := r.URL.Query().Get("date")
		if date == "" {
			date = "2026-12-04" // the switch's yesterday in UTC
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(server.Settlement{Date: date, Timezone: "UTC"})
	})
	vars := map[string]string{"SWITCHYARD_ADMIN": api.URL, "SWITCHYARD_TOKEN": "t"}
	code, out, errs := runCLI(t, vars, "settle")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	if q := <-queries; q != "" {
		t.Errorf("settle without --date asked for %q, want no date (the switch's yesterday)", q)
	}
	if !strings.Contains(out, "Settlement of 2026-12-04, the acquirer's day in UTC") {
		t.Errorf("settle without --date printed\n%s\nwant the day the switch answered", out)
	}
	if code, out, errs = runCLI(t, vars, "settle", "--date", "2026-12-01"); code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	if q := <-queries; q != "date=2026-12-01" {
		t.Errorf("settle --date 2026-12-01 asked for %q", q)
	}
}

// TestSettleOutFileMode: settle --out writes its file mode 600 whatever the
// umask, as the switch's own settlement files (it followed the umask: 644).
func TestSettleOutFileMode(t *testing.T) {
	api := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(server.Settlement{Date: "2026-12-04", Timezone: "UTC"})
	})
	out := filepath.Join(t.TempDir(), "settlement.csv")
	vars := map[string]string{"SWITCHYARD_ADMIN": api.URL, "SWITCHYARD_TOKEN": "t"}
	if code, stdout, errs := runCLI(t, vars, "settle", "--csv", "--out", out); code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, errs)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Fatalf("settle --out wrote mode %o, want 600", m)
	}
}
