package server

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/testfault"
	"github.com/switchyard/switchyard/switch/internal/testswitch"
	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/message"
)

// TestBrokenJournalLog: once the journal's log breaks under a running switch (here
// its active segment becomes unwritable: the file descriptor the log writes through
// is replaced, with dup3, by a read-only one of the same file, so the next write
// fails and cutting it back fails too, as with a disk that turns read-only), the
// server says so: /readyz answers 503 "journal log broken, restart the switch", the
// gauge switchyard_journal_broken is 1 (switchyard_ready 0, 1 before), and one error line asks for a restart; every
// new purchase is answered without approval and never reaches the issuer (nothing is
// approved that the journal could not keep); JournalBroken's channel, open
// before, is closed (`serve` exits 75 on it); and what the journal acknowledged
// before, an approval, still reads back, through the admin API too.
func TestBrokenJournalLog(t *testing.T) {
	if _, err := os.ReadDir("/proc/self/fd"); err != nil {
		t.Skipf("no /proc/self/fd to find the journal's segment by: %v", err)
	}
	dir := t.TempDir()
	cfg := demoConfig(t, dir)
	cfg.Journal.MinFreeMB = -1 // the test machine's free space is not the question here
	logs := &testswitch.SyncBuffer{}
	s, err := New(cfg, zerolog.New(logs), testDemoIssuer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	c := dial(t, s, "ascii", message.DialectASCII)
	before := send(t, c, message.DialectASCII, loadPurchase(1, testCard(1), 1200))
	if before.RC != "00" {
		t.Fatalf("purchase before the break: %+v", before)
	}
	client := http.Client{Timeout: 5 * time.Second}
	get := func(path, token string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("GET", "http://"+s.AdminAddr()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	gauge := func(name string) string {
		_, m := get("/metrics", "")
		for _, l := range strings.Split(m, "\n") {
			if v, ok := strings.CutPrefix(l, name+" "); ok {
				return v
			}
		}
		return "absent"
	}
	broken := func() string { return gauge("switchyard_journal_broken") }
	deadline := time.Now().Add(10 * time.Second)
	for code, _ := get("/readyz", ""); code != http.StatusOK; code, _ = get("/readyz", "") {
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never 200 before the break: %d", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if v := broken(); v != "0" {
		t.Fatalf("switchyard_journal_broken is %s before the break", v)
	}
	if v := gauge("switchyard_ready"); v != "1" {
		t.Fatalf("switchyard_ready is %s while /readyz answers 200", v)
	}

	select {
	case <-s.JournalBroken():
		t.Fatal("JournalBroken's channel is closed before the break")
	default:
	}

	testfault.MakeSegmentsReadOnly(t, JournalDir(dir))
	sim := s.DemoIssuer().(*issuersim.Demo).Sim
	for i := range 3 {
		r := send(t, c, message.DialectASCII, loadPurchase(1, testCard(2+i), 1300+int64(i)*100))
		if message.Approved(r.RC) {
			t.Fatalf("purchase %d after the break approved: %+v", i, r)
		}
		t.Logf("purchase %d after the break: RRN %q answered %s", i, r.RRN, r.RC)
		if _, ok := sim.Ledger()[r.RRN]; r.RRN != "" && ok {
			t.Errorf("purchase %d after the break (RRN %s, answered %s) reached the issuer", i, r.RRN, r.RC)
		}
		if rec, err := s.Journal.Get(r.RRN); err == nil && rec.Approved() {
			t.Errorf("purchase %d after the break is approved in the journal: %+v", i, rec)
		}
	}
	if s.Journal.Broken() == nil {
		t.Fatal("the journal's log is not broken after its segment turned read-only")
	}
	select { // closed by OnBroken, before the writes it failed were answered
	case <-s.JournalBroken():
	default:
		t.Error("JournalBroken's channel (what `serve` exits 75 on) is not closed with a broken log")
	}
	if code, body := get("/readyz", ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "journal log broken, restart the switch") {
		t.Errorf("/readyz with a broken log: %d %q", code, body)
	}
	if v := broken(); v != "1" {
		t.Errorf("switchyard_journal_broken is %s with a broken log", v)
	}
	if v := gauge("switchyard_ready"); v != "0" {
		t.Errorf("switchyard_ready is %s with a broken log", v)
	}
	rec, err := s.Journal.Get(before.RRN)
	if err != nil || rec.RC != "00" || rec.AuthCode != before.AuthCode {
		t.Errorf("the approval from before the break: %+v %v", rec, err)
	}
	var read struct{ RRN, RC string }
	if code, body := get("/api/v1/journal/"+before.RRN, "demo-analyst-8Rt5"); code != http.StatusOK || json.Unmarshal([]byte(body), &read) != nil || read.RRN != before.RRN || read.RC != "00" {
		t.Errorf("the approval from before the break through the admin API: %d %.300s", code, body)
	}
	if n := strings.Count(logs.String(), "journal log refuses every write until a restart"); n != 1 {
		t.Errorf("%d log lines ask for a restart, want 1:\n%s", n, logs.String())
	}
}
