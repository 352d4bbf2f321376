package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/journal"
)

// The journal shows times in the acquirer's zone with the offset, and its dates,
// settle's and the backtest's are that zone's days: a date read off the journal is the
// date to settle (issue 12, item 6). A purchase at 17:30 UTC on 1 December is 01:30 on
// 2 December in Asia/Shanghai, and belongs to the settlement of 2 December.
func TestJournalAndSettleUseTheAcquirersDay(t *testing.T) {
	dir := t.TempDir()
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
