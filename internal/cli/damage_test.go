package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/server"
)

// TestDamagedJournalRecordNamed: a stopped switch's data directory whose journal
// log has a byte flipped in one record's frame. `journal --data` prints every other
// record, names the damaged one (RRN, segment file) on standard error and exits 1;
// `settle --data` prints the day's report of the other records, says it is
// INCOMPLETE naming the record, and exits 1 (--json: "incomplete": true with the
// record under "unreadable"). Until the fifteenth release both stopped at the
// damaged record and printed no record and no report.
func TestDamagedJournalRecordNamed(t *testing.T) {
	dir := t.TempDir()
	db, j := openSingleJournal(t, dir)
	at := time.Date(2026, 12, 2, 2, 0, 0, 0, time.UTC) // 10:00 in Asia/Shanghai
	var rrns []string
	for i := range 5 {
		rrn, err := j.NextRRN()
		if err != nil {
			t.Fatal(err)
		}
		rrns = append(rrns, rrn)
		r := &journal.Record{RRN: rrn, Received: at.Add(time.Duration(i) * time.Minute), MTI: "0200", Type: "purchase", ProcCode: "000000", TID: "T0000001",
			MID: "000000000000001", STAN: fmt.Sprintf("%06d", i+1), DE7: "1202020000", Amount: 1000, Currency: "156", Issuer: "demo", RC: "00", DecidedBy: "issuer"}
		r.AddEvent(journal.StateReceived, r.Received, "")
		r.AddEvent(journal.StateResponded, r.Received.Add(time.Millisecond), "")
		if err := j.Write(context.Background(), r, true, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	seg := filepath.Join(server.JournalDir(dir), "00000001.seg")
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	bad := rrns[2]
	off := bytes.Index(b, []byte(bad))
	if off < 0 {
		t.Fatalf("record %s not in %s", bad, seg)
	}
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{b[off+len(bad)-1] ^ 0x02}, int64(off+len(bad)-1)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main(&Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}, args)
		return code, out.String(), errb.String()
	}
	code, out, errs := run("journal", "--data", dir, "--limit", "0")
	if code != 1 || !strings.Contains(errs, "RRN "+bad+": "+seg+" at offset") {
		t.Fatalf("journal over a damaged record: exit %d, want 1 naming %s in %s\nstdout: %s\nstderr: %s", code, bad, seg, out, errs)
	}
	for i, rrn := range rrns {
		if strings.Contains(out, rrn) != (i != 2) {
			t.Errorf("journal over a damaged record: record %s shown %v\n%s", rrn, i != 2, out)
		}
	}
	code, out, errs = run("settle", "--data", dir, "--date", "2026-12-02")
	if code != 1 || !strings.Contains(errs, "INCOMPLETE") || !strings.Contains(errs, "RRN "+bad+": "+seg+" at offset") {
		t.Fatalf("settle over a damaged record: exit %d, want 1 naming %s\nstdout: %s\nstderr: %s", code, bad, out, errs)
	}
	if !strings.Contains(out, "4000") { // the four intact purchases
		t.Errorf("settle over a damaged record does not count the others:\n%s", out)
	}
	code, out, _ = run("settle", "--data", dir, "--date", "2026-12-02", "--json")
	if code != 1 || !strings.Contains(out, `"incomplete": true`) || !strings.Contains(out, `"rrn": "`+bad+`"`) {
		t.Errorf("settle --json over a damaged record: exit %d\n%s", code, out)
	}
}
