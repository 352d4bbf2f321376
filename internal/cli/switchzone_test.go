package cli

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/switch/server"
)

// TestDatesInTheSwitchsZone: against a switch (--admin) whose timezone is UTC, with
// $SWITCHYARD_TIMEZONE unset, journal and rules backtest read --from/--to dates as
// the switch's days (GET /api/v1/info) and say so, not Asia/Shanghai's (the CLI's
// default until 6 December 2026, which put a purchase at 17:30 UTC on 1 December in
// 2 December). $SWITCHYARD_TIMEZONE set to another zone wins, with a warning on stderr.
func TestDatesInTheSwitchsZone(t *testing.T) {
	dir, rrn := journalLateUTCPurchase(t)
	// The switch's admin API over loopback TCP, its timezone UTC.
	off, err := server.OpenOffline(dir, "test", "UTC", keys.LMKSource{})
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	srv := httptest.NewServer(off.Handler)
	defer srv.Close()
	conn := []string{"--admin", srv.URL, "--token", server.OfflineToken}

	code, out, errs := runCLI(t, nil, append([]string{"journal", "--from", "2026-12-01", "--to", "2026-12-02"}, conn...)...)
	if code != 0 || !strings.Contains(out, rrn) || !strings.Contains(out, "2026-12-01 17:30:00.000 +00:00") ||
		!strings.Contains(errs, "times in UTC (the switch's timezone)") {
		t.Errorf("journal of the switch's 1 December: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, nil, append([]string{"rules", "backtest", "--rules", "../../rules", "--from", "2026-12-01", "--to", "2026-12-02", "--no-progress"}, conn...)...)
	if code != 0 || !strings.Contains(out, "from 2026-12-01 00:00:00.000 +00:00 to 2026-12-02 00:00:00.000 +00:00 (times in UTC, the switch's timezone)") {
		t.Errorf("backtest of the switch's 1 December: exit %d\n%s%s", code, out, errs)
	}

	// $SWITCHYARD_TIMEZONE set explicitly wins, with a warning.
	sh := map[string]string{"SWITCHYARD_TIMEZONE": "Asia/Shanghai"}
	code, out, errs = runCLI(t, sh, append([]string{"journal", "--from", "2026-12-01", "--to", "2026-12-02"}, conn...)...)
	if code != 0 || strings.Contains(out, rrn) || !strings.Contains(errs, "$SWITCHYARD_TIMEZONE Asia/Shanghai is not the switch's timezone UTC") ||
		!strings.Contains(errs, "times in Asia/Shanghai ($SWITCHYARD_TIMEZONE)") {
		t.Errorf("journal in $SWITCHYARD_TIMEZONE's 1 December: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, sh, append([]string{"rules", "backtest", "--rules", "../../rules", "--from", "2026-12-01", "--to", "2026-12-02", "--no-progress"}, conn...)...)
	if code != 0 || !strings.Contains(out, "from 2026-12-01 00:00:00.000 +08:00 to 2026-12-02 00:00:00.000 +08:00 (times in Asia/Shanghai, $SWITCHYARD_TIMEZONE)") ||
		!strings.Contains(errs, "is not the switch's timezone UTC") {
		t.Errorf("backtest in $SWITCHYARD_TIMEZONE: exit %d\n%s%s", code, out, errs)
	}
	// The same zone set explicitly: no warning.
	if _, _, errs = runCLI(t, map[string]string{"SWITCHYARD_TIMEZONE": "UTC"}, append([]string{"journal"}, conn...)...); strings.Contains(errs, "warning") {
		t.Errorf("SWITCHYARD_TIMEZONE the switch's: %s", errs)
	}
	// A token the switch refuses is said as the command's refusal, not as the zone's.
	code, _, errs = runCLI(t, nil, "journal", "--admin", srv.URL, "--token", "not-a-token")
	if code == 0 || !strings.Contains(errs, "switchyard: journal: admin API: 401") || strings.Contains(errs, "timezone") {
		t.Errorf("journal with a refused token: exit %d\n%s", code, errs)
	}
	// -h asks the switch nothing (a dead address).
	if code, _, _ := runCLI(t, nil, "rules", "backtest", "-h", "--admin", "http://127.0.0.1:1"); code != 0 {
		t.Errorf("backtest -h: exit %d", code)
	}
}

// TestZoneKeyChangeCommandLine: an unknown flag is a bad command line (exit 2, the
// usage, no call), where it was taken for the issuer ID and sent to the switch as
// POST /api/v1/issuers/--bogusflag/key-change; and the issuer ID is escaped in the
// call's path.
func TestZoneKeyChangeCommandLine(t *testing.T) {
	api := newFakeAdmin(t, nil)
	vars := map[string]string{"SWITCHYARD_ADMIN": api.URL, "SWITCHYARD_TOKEN": "tok"}
	code, _, errs := runCLI(t, vars, "zone-key-change", "--bogusflag")
	if code != 2 || !strings.Contains(errs, "unknown flag --bogusflag") || !strings.Contains(errs, "Usage: switchyard zone-key-change") || len(api.Calls()) != 0 {
		t.Errorf("--bogusflag: exit %d, calls %v\n%s", code, api.Calls(), errs)
	}
	runCLI(t, vars, "zone-key-change", "bank a/b")
	if calls := api.Calls(); len(calls) != 1 || !strings.HasPrefix(calls[0], "POST /api/v1/issuers/bank%20a%2Fb/key-change ") {
		t.Errorf("issuer \"bank a/b\": calls %v, want one POST /api/v1/issuers/bank%%20a%%2Fb/key-change", calls)
	}
}
