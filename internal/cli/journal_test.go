package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/journal"
)

// TestJournalEscapesTheQuery: a time with a zone offset reaches the switch as the
// same instant. The hand-written client sent "from=...+08:00" unescaped, which the
// server reads as a space (the --from 24h of a UTC+8 machine).
func TestJournalEscapesTheQuery(t *testing.T) {
	var got []string
	api := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.URL.Query().Get("from"), r.URL.Query().Get("to"), r.URL.Query().Get("tid"))
		w.Header().Set("Content-Type", "application/x-ndjson")
	})
	code, out, errs := runCLI(t, map[string]string{"SWITCHYARD_ADMIN": api.URL},
		"journal", "--from", "2026-01-02T08:00:00+08:00", "--to", "2026-01-02T09:30:00+08:00", "--tid", "T 1&x=y")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	if len(got) != 3 {
		t.Fatalf("calls %q", api.Calls())
	}
	for i, want := range []time.Time{time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 2, 1, 30, 0, 0, time.UTC)} {
		at, err := time.Parse(time.RFC3339Nano, got[i])
		if err != nil || !at.Equal(want) {
			t.Errorf("the switch read %q as %v (%v), want %v", got[i], at, err, want)
		}
	}
	if got[2] != "T 1&x=y" {
		t.Errorf("tid arrived as %q", got[2])
	}
}

// TestJournalReportsErrorLines: the journal API reports a failure after the 200
// status as an {"error": ...} line; the command says so and exits 1 instead of
// printing a short answer as if it were whole.
func TestJournalReportsErrorLines(t *testing.T) {
	api := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		_ = enc.Encode(journal.Record{RRN: "000000000001", TID: "T0000001", Received: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)})
		_ = enc.Encode(map[string]string{"error": "journal segment 7: checksum mismatch"})
	})
	code, out, errs := runCLI(t, map[string]string{"SWITCHYARD_ADMIN": api.URL}, "journal")
	if code != 1 || !strings.Contains(errs, "journal segment 7: checksum mismatch") {
		t.Fatalf("exit %d, want 1 with the error line\nstdout: %s\nstderr: %s", code, out, errs)
	}
}

// TestJournalSaysWhenLimited: an answer as long as --limit says more may follow (the
// limit gives the oldest records, so a busy terminal's newest were silently missing).
func TestJournalSaysWhenLimited(t *testing.T) {
	api := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		for _, rrn := range []string{"000000000001", "000000000002"} {
			enc.Encode(&journal.Record{RRN: rrn, MTI: "0200", TID: "T0000001", Received: time.Now()})
		}
	})
	env := map[string]string{"SWITCHYARD_ADMIN": api.URL}
	if _, _, errs := runCLI(t, env, "journal", "--limit", "2"); !strings.Contains(errs, "more may follow") {
		t.Errorf("2 of --limit 2 without a word:\n%s", errs)
	}
	if _, _, errs := runCLI(t, env, "journal", "--limit", "3"); strings.Contains(errs, "more may follow") {
		t.Errorf("2 of --limit 3 said more may follow:\n%s", errs)
	}
}

// TestJournalTableEscapesControls: a record whose TID and authorization code
// carry an escape sequence (the bytes a rogue terminal's or issuer's message
// held) prints it as visible escapes on its one row. Before, the table wrote
// the bytes, and the operator's terminal acted on them.
func TestJournalTableEscapesControls(t *testing.T) {
	api := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		_ = json.NewEncoder(w).Encode(journal.Record{RRN: "000000000001", MTI: "0200", TID: "T\x1b]52;c;eA==\a", AuthCode: "1\x1b[2K\n2",
			Received: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)})
	})
	code, out, errs := runCLI(t, map[string]string{"SWITCHYARD_ADMIN": api.URL, "SWITCHYARD_TOKEN": "t"}, "journal")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	if strings.ContainsAny(out, "\x1b\a") || !strings.Contains(out, `T\x1b]52;c;eA==\x07`) || !strings.Contains(out, `1\x1b[2K 2`) || strings.Count(out, "\n") != 2 {
		t.Fatalf("journal table:\n%q", out)
	}
}

// TestFailEscapesControls: an error answer whose text carries an escape sequence
// (a proxy's page before the admin API, whatever it says) reaches stderr with it
// as visible escapes and its lines kept. Before, the error was written as it
// came, and the operator's terminal acted on it.
func TestFailEscapesControls(t *testing.T) {
	api := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("bad gateway\x1b]52;c;eA==\a\nupstream\x1b[2J"))
	})
	code, _, errs := runCLI(t, map[string]string{"SWITCHYARD_ADMIN": api.URL, "SWITCHYARD_TOKEN": "t"}, "task", "list")
	if code != 1 || strings.ContainsAny(errs, "\x1b\a") || !strings.Contains(errs, `bad gateway\x1b]52;c;eA==\x07`+"\n"+`upstream\x1b[2J`) {
		t.Fatalf("exit %d, stderr:\n%q", code, errs)
	}
}

// firstWrite is a writer that closes its channel at its first write.
type firstWrite struct {
	bytes.Buffer
	once  sync.Once
	wrote chan struct{}
}

func (w *firstWrite) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.wrote) })
	return w.Buffer.Write(p)
}

// TestJournalJSONStreams: journal --json writes each record as it arrives, so an
// export of a whole day (--limit 0) never holds the day in memory. The fake switch
// sends one record and then waits for it to reach the command's output before it
// sends the rest. Before, the command gathered every record before it wrote any:
// the fake waited its 5 s out and the first record came out after the last.
func TestJournalJSONStreams(t *testing.T) {
	out := &firstWrite{wrote: make(chan struct{})}
	streamed := make(chan bool, 1)
	api := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		_ = enc.Encode(journal.Record{RRN: "000000000001", TID: "T0000001", Received: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)})
		w.(http.Flusher).Flush()
		select {
		case <-out.wrote:
			streamed <- true
		case <-time.After(5 * time.Second):
			streamed <- false
		}
		_ = enc.Encode(journal.Record{RRN: "000000000002", TID: "T0000001", Received: time.Date(2026, 1, 2, 0, 0, 1, 0, time.UTC)})
	})
	var errb bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: out, Stderr: &errb, Ctx: context.Background(),
		Getenv: func(k string) string { return map[string]string{"SWITCHYARD_ADMIN": api.URL}[k] }}
	if code := Main(env, []string{"journal", "--json", "--limit", "0"}); code != 0 {
		t.Fatalf("exit %d\nstderr: %s", code, errb.String())
	}
	if !<-streamed {
		t.Error("the first record was written only once the whole answer had arrived")
	}
	dec := json.NewDecoder(&out.Buffer)
	for _, want := range []string{"000000000001", "000000000002"} {
		var r journal.Record
		if err := dec.Decode(&r); err != nil || r.RRN != want {
			t.Fatalf("record %s: got %+v, %v", want, r, err)
		}
		if _, off := r.Received.Zone(); off != 8*3600 {
			t.Errorf("record %s: time %v, want the acquirer's zone (+08:00)", want, r.Received)
		}
	}
}

// TestJournalBadFlagsExitUsage: a --from, --to or --limit the command cannot read is
// a bad command line (exit 2, as the README says), asked of no switch. Until 7
// December 2026 --from bogus exited 1 and --limit -1 went to the switch.
func TestJournalBadFlagsExitUsage(t *testing.T) {
	api := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/journal" {
			t.Errorf("the switch was asked: %s", r.URL)
		}
	})
	for _, args := range [][]string{{"--from", "bogus"}, {"--to", "2026-13-45"}, {"--limit", "-1"}} {
		code, _, errs := runCLI(t, map[string]string{"SWITCHYARD_ADMIN": api.URL, "SWITCHYARD_TIMEZONE": "Asia/Shanghai"}, append([]string{"journal"}, args...)...)
		if code != 2 || !strings.Contains(errs, args[1]) {
			t.Errorf("journal %v: exit %d %s; want 2 naming the value", args, code, errs)
		}
	}
}

// TestJournalPrintsPastUnreadable: an answer whose last line names records the
// switch could not read (api.UnreadableLine: their frames in its log damaged, every
// other record sent) prints the records it has, then names the unreadable ones, and
// exits 1. Before, any error line dropped the whole table.
func TestJournalPrintsPastUnreadable(t *testing.T) {
	api := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		_ = enc.Encode(journal.Record{RRN: "000000000001", TID: "T0000001", Received: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)})
		_ = enc.Encode(journal.Record{RRN: "000000000003", TID: "T0000001", Received: time.Date(2026, 1, 2, 0, 1, 0, 0, time.UTC)})
		_ = enc.Encode(map[string]any{"error": "journal: 1 record(s) unreadable", "unreadable": []journal.Unreadable{
			{RRN: "000000000002", File: "/data/journal/00000001.seg", Offset: 4096, Reason: "checksum 1, frame says 2"}}})
	})
	code, out, errs := runCLI(t, map[string]string{"SWITCHYARD_ADMIN": api.URL}, "journal")
	if code != 1 || !strings.Contains(out, "000000000001") || !strings.Contains(out, "000000000003") ||
		!strings.Contains(errs, "RRN 000000000002: /data/journal/00000001.seg at offset 4096: checksum 1, frame says 2") {
		t.Fatalf("exit %d, want 1 with both records and the unreadable one named\nstdout: %s\nstderr: %s", code, out, errs)
	}
}
