package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/switch/cases"
	"github.com/switchyard/switchyard/switch/cluster"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/sched"
	"github.com/switchyard/switchyard/switch/server"
)

// The journal shows times in the acquirer's zone with the offset, and its dates,
// settle's and the backtest's are that zone's days: a date read off the journal is the
// date to settle (issue 12, item 6). A purchase at 17:30 UTC on 1 December is 01:30 on
// 2 December in Asia/Shanghai, and belongs to the settlement of 2 December.
func TestJournalAndSettleUseTheAcquirersDay(t *testing.T) {
	dir, rrn := journalLateUTCPurchase(t)

	run := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		code := Main(&Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}, args)
		if code != 0 {
			t.Fatalf("%q: exit %d: %s%s", args, code, out.String(), errb.String())
		}
		return out.String() + errb.String()
	}
	out := run("journal", "--data", dir)
	for _, want := range []string{"TIME (Asia/Shanghai)", "2026-12-02 01:30:00.000 +08:00", "times in Asia/Shanghai"} {
		if !strings.Contains(out, want) {
			t.Errorf("journal does not show %q:\n%s", want, out)
		}
	}
	if out := run("journal", "--data", dir, "--json"); !strings.Contains(out, `"received":"2026-12-02T01:30:00+08:00"`) {
		t.Errorf("journal --json times not in the acquirer's zone:\n%s", out)
	}
	// --from/--to dates are the acquirer's days, as settle's.
	if out := run("journal", "--data", dir, "--from", "2026-12-02", "--to", "2026-12-03"); !strings.Contains(out, rrn) {
		t.Errorf("journal of the acquirer's 2 December misses %s:\n%s", rrn, out)
	}
	if out := run("journal", "--data", dir, "--from", "2026-12-01", "--to", "2026-12-02"); strings.Contains(out, rrn) {
		t.Errorf("journal of the acquirer's 1 December shows %s:\n%s", rrn, out)
	}
	out = run("settle", "--data", dir, "--date", "2026-12-02")
	if !strings.Contains(out, "Settlement of 2026-12-02, the acquirer's day in Asia/Shanghai: 2026-12-02 00:00 +08:00 to 2026-12-03 00:00 +08:00") ||
		!strings.Contains(out, "1000") {
		t.Errorf("settle of the journal's date:\n%s", out)
	}
}

// zoneAdmin is a fake admin API that answers each path (without its query) with the
// JSON of answers[path], as the switch would: its times in UTC.
func zoneAdmin(t *testing.T, answers map[string]any) *fakeAdmin {
	t.Helper()
	return newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request) {
		v, ok := answers[r.URL.Path]
		if !ok {
			http.Error(w, `{"error":"no such path in the test"}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	})
}

// indented is what --json prints of v: the API's answer re-encoded, indented, with its
// times as the API gave them (RFC 3339, here UTC).
func indented(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

// The list and status commands show their times as journal does, in the acquirer's
// zone with the offset: before, case list and show and task list and history printed
// UTC ("2026-12-01 17:30:00Z", a day earlier than the acquirer's), task's NEXT and
// cluster status RFC 3339 in whatever zone the API gave. --json keeps the API's times.
func TestListsShowTimesInTheAcquirersZone(t *testing.T) {
	at := time.Date(2026, 12, 1, 17, 30, 0, 0, time.UTC) // 2 December 01:30 in Asia/Shanghai
	assigned, decided := at.Add(time.Hour), at.Add(2*time.Hour)
	k := cases.Case{ID: "CASE-7", Seq: 7, Status: cases.StatusDecided, Action: "review", Rule: "big-round", OpenedAt: at.Add(time.Second),
		RRN: "000000000042", Time: at, MTI: "0200", Type: "purchase", TID: "T0000001", MID: "000000000000001", PANMasked: "476173******0119",
		CardHash: "abcd", Amount: 600000, Currency: "156", AssignedTo: "ana", AssignedBy: "ana", AssignedAt: &assigned,
		Decision: &cases.Decision{Verdict: cases.VerdictCleared, By: "ana", At: decided}}
	run := sched.Run{Task: "settlement-file", Slot: at.Add(45 * time.Minute), Start: at.Add(45*time.Minute + 250*time.Millisecond),
		End: at.Add(45*time.Minute + 750*time.Millisecond), Outcome: sched.OutcomeOK, Output: "settlement-2026-12-01.csv"}
	views := []sched.View{{Task: sched.Task{Name: "settlement-file", Kind: "settlement.file", Schedule: "15 0 * * *", TimeZone: "Asia/Shanghai"},
		Next: at.Add(24*time.Hour + 45*time.Minute), LastRun: &run}}
	rep := cluster.Report{Node: 1,
		Leases: []cluster.LeaseHolder{{Node: 1, Server: "n1", Incarnation: 4, Started: at, Refreshed: at.Add(1500 * time.Millisecond), Alive: true}},
		State:  []cluster.StoreState{{Store: "registry", Revision: 120, Commits: 14, Snapshot: &cluster.SnapshotInfo{Revision: 110, Keys: 2050, Taken: at}, Following: true}}}
	api := zoneAdmin(t, map[string]any{
		"/api/v1/cases": []cases.Case{k}, "/api/v1/cases/CASE-7": k,
		"/api/v1/tasks": views, "/api/v1/tasks/all/history": []sched.Run{run},
		"/api/v1/cluster/status": rep,
	})
	vars := map[string]string{"SWITCHYARD_ADMIN": api.URL, "SWITCHYARD_TOKEN": "tok", "SWITCHYARD_TIMEZONE": "Asia/Shanghai"}
	for _, c := range []struct {
		args []string
		want []string
		json any // what --json prints, unchanged
	}{
		{[]string{"case", "list", "--status", "all"}, []string{
			"TIME                            TERMINAL",
			"000000000042  2026-12-02 01:30:00.000 +08:00  T0000001"}, []cases.Case{k}},
		{[]string{"case", "show", "CASE-7"}, []string{
			"CASE-7 decided (opened 2026-12-02 01:30:01.000 +08:00 by review big-round",
			"RRN 000000000042 at 2026-12-02 01:30:00.000 +08:00: purchase 0200",
			"Assigned to ana by ana at 2026-12-02 02:30:00.000 +08:00",
			"Decided cleared by ana at 2026-12-02 03:30:00.000 +08:00"}, k},
		{[]string{"task", "list"}, []string{
			"NEXT                            LAST",
			"Asia/Shanghai  2026-12-03 02:15:00.000 +08:00  2026-12-02 02:15:00.250 +08:00 ok  ok"}, views},
		{[]string{"task", "history"}, []string{
			"SLOT                            START                           TOOK",
			"settlement-file  2026-12-02 02:15:00.000 +08:00  2026-12-02 02:15:00.250 +08:00  500ms  ok"}, []sched.Run{run}},
		{[]string{"cluster", "status"}, []string{
			"registry  120       14            110          2050  2026-12-02 01:30:00.000 +08:00  following",
			"1      n1      4            held   2026-12-02 01:30:00.000 +08:00  2026-12-02 01:30:01.500 +08:00  -"}, rep},
	} {
		code, out, errs := runCLI(t, vars, c.args...)
		if code != 0 {
			t.Fatalf("%q: exit %d: %s", c.args, code, errs)
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%q lacks %q:\n%s", c.args, w, out)
			}
		}
		if strings.Contains(out, "Z ") || strings.Contains(out, "T17:30") || strings.Contains(out, "2026-12-01 17:30") {
			t.Errorf("%q shows a time in UTC:\n%s", c.args, out)
		}
		code, out, errs = runCLI(t, vars, append(c.args, "--json")...)
		if want := indented(t, c.json); code != 0 || out != want {
			t.Errorf("%q --json: exit %d %s\n%s\nwant the API's answer:\n%s", c.args, code, errs, out, want)
		}
	}

	// The zone is $SWITCHYARD_TIMEZONE's, not a fixed one.
	vars["SWITCHYARD_TIMEZONE"] = "America/New_York"
	if _, out, _ := runCLI(t, vars, "case", "list"); !strings.Contains(out, "2026-12-01 12:30:00.000 -05:00") {
		t.Errorf("case list in America/New_York:\n%s", out)
	}
	vars["SWITCHYARD_TIMEZONE"] = "Mars/Olympus"
	if code, _, errs := runCLI(t, vars, "task", "list"); code != 1 || !strings.Contains(errs, "not an IANA time zone") {
		t.Errorf("task list with a bad zone: exit %d, %s", code, errs)
	}
}

// zone-key-change says until when the previous key stays valid in the acquirer's zone
// (before: "2026-12-01 17:30:00 UTC", and "UTC" even for a time the API gave in another zone).
func TestZoneKeyChangeGraceInTheAcquirersZone(t *testing.T) {
	until := time.Date(2026, 12, 1, 17, 30, 0, 0, time.UTC)
	api := zoneAdmin(t, map[string]any{"/api/v1/issuers/demo/key-change": server.ZoneKeyChange{Issuer: "demo",
		ZPK: hsm.KeyRef{ID: "demo.ZPK", Version: 2}, KCV: "ABCDEF", GraceTo: until}})
	vars := map[string]string{"SWITCHYARD_ADMIN": api.URL, "SWITCHYARD_TOKEN": "tok", "SWITCHYARD_TIMEZONE": "Asia/Shanghai"}
	code, out, errs := runCLI(t, vars, "zone-key-change", "demo")
	if code != 0 || !strings.Contains(out, "KCV ABCDEF; the previous key stays valid until 2026-12-02 01:30:00.000 +08:00\n") {
		t.Fatalf("exit %d: %s%s", code, out, errs)
	}
	vars["SWITCHYARD_TIMEZONE"] = "Mars/Olympus"
	if code, _, _ := runCLI(t, vars, "zone-key-change", "demo"); code != 1 || len(api.Calls()) != 1 {
		t.Fatalf("a bad zone: exit %d, calls %q (want the key not changed)", code, api.Calls())
	}
}

// journalLateUTCPurchase journals, in a stopped single switch's new data directory, one
// approved purchase at 17:30 UTC on 1 December 2026 (01:30 on 2 December in
// Asia/Shanghai), and returns the directory and the purchase's RRN.
func journalLateUTCPurchase(t *testing.T) (dir, rrn string) {
	t.Helper()
	dir = t.TempDir()
	db, j := openSingleJournal(t, dir)
	at := time.Date(2026, 12, 1, 17, 30, 0, 0, time.UTC)
	rrn, err := j.NextRRN()
	if err != nil {
		t.Fatal(err)
	}
	r := &journal.Record{RRN: rrn, Received: at, MTI: "0200", Type: "purchase", ProcCode: "000000", TID: "T0000001", MID: "000000000000001",
		STAN: "000123", DE7: "1201173000", PANMasked: "476173******0119", CardHash: "abcd", Amount: 1000, Currency: "156",
		EntryMode: "071", Issuer: "demo", RC: "00", AuthCode: "000001", DecidedBy: "issuer"}
	r.AddEvent(journal.StateReceived, at, "")
	r.AddEvent(journal.StateResponded, at.Add(time.Millisecond), "")
	if err := j.Write(context.Background(), r, true, true); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	return dir, rrn
}
