package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/cluster/cjournal"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/registry"
)

// TestImportJournalAPI: POST /api/v1/cluster/import/journal on a cluster node takes a
// single switch's records and batch closes (an admin's), and the node's own journal
// then holds them (by RRN, by duplicate key, its settlement's batch boundary); GET
// says how far the import stands. A record that is not final or comes again is
// refused with 400 and says why; an operator is refused (403); a switch that runs
// alone answers 404.
func TestImportJournalAPI(t *testing.T) {
	base := t.TempDir()
	s := start(t, oneNodeCluster(t, filepath.Join(base, "a"), filepath.Join(base, "jetstream")), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	at := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Second) // within the rules' windows
	rec := func(rrn, stan string, final bool) *journal.Record {
		r := &journal.Record{RRN: rrn, Received: at, MTI: "0200", Type: "purchase", ProcCode: "000000", TID: "T0000001",
			MID: "000000000000001", STAN: stan, DE7: "1130090000", PANMasked: "622202******1234", Amount: 1000, Currency: "156"}
		r.AddEvent(journal.StateReceived, at, "")
		if final {
			r.RC, r.AuthCode, r.DecidedBy = "00", "123456", "issuer"
			r.AddEvent(journal.StateResponded, at.Add(time.Second), "")
		}
		return r
	}
	// facts are what the rules saw of r (the velocity counters fold them).
	facts := func(r *journal.Record) *journal.Record {
		var in risk.Input
		in.Txn = risk.Txn{MTI: "0200", ProcCode: "000000", Type: risk.TxnPurchase, Amount: int(r.Amount), Currency: "156",
			BIN: "622202", CardHash: "c" + r.STAN, Time: r.Received}
		in.Terminal.ID, in.Merchant.ID = r.TID, r.MID
		r.Facts = in.AppendBinary(nil)
		return r
	}
	after := ""
	body := func(recs ...*journal.Record) api.JournalImport {
		b := api.JournalImport{Source: "single-test", After: after}
		for _, r := range recs {
			enc, err := r.AppendBinary(nil)
			if err != nil {
				t.Fatal(err)
			}
			b.Records = append(b.Records, enc)
		}
		return b
	}
	call := func(method, token string, in any, out any) (int, string) {
		t.Helper()
		var rd io.Reader
		if in != nil {
			raw, err := json.Marshal(in)
			if err != nil {
				t.Fatal(err)
			}
			rd = bytes.NewReader(raw)
		}
		req, err := http.NewRequestWithContext(ctx, method, "http://"+s.AdminAddr()+"/api/v1/cluster/import/journal", rd)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK && out != nil {
			if err := json.Unmarshal(raw, out); err != nil {
				t.Fatalf("%s: %v: %s", method, err, raw)
			}
		}
		return resp.StatusCode, string(raw)
	}

	series := func() int64 {
		t.Helper()
		if err := s.cl.journal.CaughtUp(ctx); err != nil {
			t.Fatal(err)
		}
		return s.Risk.Stats().Series
	}
	s0 := series()
	b := body(facts(rec("000000000001", "000001", true)), facts(rec("000000000002", "000002", true)))
	b.Closes = []api.ImportClose{{TID: "T0000001", At: at.Add(time.Hour)}}
	if code, msg := call("POST", registry.DemoOperatorToken, b, nil); code != http.StatusForbidden {
		t.Fatalf("an operator's import: %d %s", code, msg)
	}
	var res cjournal.ImportResult
	if code, msg := call("POST", registry.DemoAdminToken, b, &res); code != http.StatusOK || res.Records != 2 || res.Closes != 1 || res.LastRRN != "000000000002" {
		t.Fatalf("import: %d %s %+v", code, msg, res)
	}
	after = res.LastRRN
	var st cjournal.ImportState
	if code, msg := call("GET", registry.DemoAdminToken, nil, &st); code != http.StatusOK || st.LastRRN != "000000000002" || st.Messages != 1 {
		t.Fatalf("state: %d %s %+v", code, msg, st)
	}
	if r, err := s.cl.report(ctx); err != nil || r.ImportedUpTo != "000000000002" || r.ImportMessages != 1 {
		t.Fatalf("cluster status: %+v %v; want the import up to 000000000002 in 1 message", r, err)
	}
	for _, c := range []struct {
		what string
		b    api.JournalImport
		want string
	}{
		{"a record imported already", body(rec("000000000002", "000002", true)), "holds the import up to RRN 000000000002"},
		{"a record not final", body(rec("000000000003", "000003", false)), "is not final"},
		{"a record that does not decode", api.JournalImport{Source: "single-test", After: after, Records: [][]byte{{1, 2, 3}}}, "record 1 of 1"},
	} {
		if code, msg := call("POST", registry.DemoAdminToken, c.b, nil); code != http.StatusBadRequest || !strings.Contains(msg, c.want) {
			t.Errorf("%s: %d %s; want 400 saying %q", c.what, code, msg, c.want)
		}
	}
	stale := body(rec("000000000003", "000003", true))
	stale.After = ""
	if code, msg := call("POST", registry.DemoAdminToken, stale, nil); code != http.StatusConflict || !strings.Contains(msg, "run it again") {
		t.Errorf("an import that read the state before another's: %d %s; want 409", code, msg)
	}

	// The velocity counters: the records of a day ago count (the demo rules'
	// longest window is 30 days); one of a terminal and merchant of their own from
	// two months before counts in no window, and takes no room.
	s1 := series()
	if s1 <= s0 {
		t.Fatalf("velocity series %d after the import, %d before: the imported records were not observed", s1, s0)
	}
	older := rec("000000000003", "000003", true)
	older.Received, older.TID, older.MID = at.AddDate(0, -2, 0), "T0000009", "000000000000009"
	facts(older)
	if code, msg := call("POST", registry.DemoAdminToken, body(older), nil); code != http.StatusOK {
		t.Fatalf("an older record: %d %s", code, msg)
	}
	if s2 := series(); s2 != s1 {
		t.Fatalf("velocity series %d after a record older than every window, %d before", s2, s1)
	}
	got, err := s.Journal.Get("000000000002")
	if err != nil || got.RC != "00" || got.State != journal.StateResponded {
		t.Fatalf("the node's journal: %+v %v", got, err)
	}
	if rrn, ok, err := s.Journal.LookupDuplicate("T0000001", "000001", "1130090000"); err != nil || !ok || rrn != "000000000001" {
		t.Fatalf("duplicate lookup of an imported request: %q %v %v", rrn, ok, err)
	}
	if lb, err := s.Journal.LastBatch("T0000001"); err != nil || !lb.Equal(at.Add(time.Hour)) {
		t.Fatalf("the imported batch close: %v %v", lb, err)
	}

	alone := start(t, demoConfig(t, filepath.Join(base, "b")), nil)
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s/api/v1/cluster/import/journal", alone.AdminAddr()), nil)
	req.Header.Set("Authorization", "Bearer "+registry.DemoAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("a switch that runs alone: %d, want 404", resp.StatusCode)
	}
}
