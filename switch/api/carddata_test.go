package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/syncbuf"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/cases"
	"github.com/switchyard/switchyard/switch/internal/testswitch"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/registry"
)

// The card numbers the notes of these tests carry, and what must be stored instead.
const (
	notePAN    = "4761739001010119"
	notePAN2   = "5413330089010004"
	maskedPAN  = "476173******0119"
	maskedPAN2 = "541333******0004"
)

// cardTextFixture is an API over a registry (with the demo fleet), the lists and
// the review cases, its log in logs.
type cardTextFixture struct {
	srv   *httptest.Server
	db    *badger.DB // the registry's, the lists' and the cases'
	cases *cases.Store
	logs  *syncbuf.Buffer
}

func newCardTextFixture(t *testing.T) *cardTextFixture {
	t.Helper()
	regDB := openDB(t, t.TempDir())
	clock := &fakeClock{t: t0}
	reg, err := registry.New(regDB, clock.Now, registry.Options{SeenFlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	if _, err := registry.LoadDemoFleet(reg, testswitch.LoadTerminals); err != nil {
		t.Fatal(err)
	}
	db := regDB // the cases store their changes with the registry's operation log
	lists, err := risk.NewLists(db)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := cases.New(db, cases.Options{Lists: lists, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	auth, err := admin.NewAuthenticator(api.DemoTokens())
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	srv := httptest.NewServer(api.New(api.Options{Auth: auth, Registry: reg, Cases: cs, Lists: lists, Logger: zerolog.New(logs)}))
	t.Cleanup(srv.Close)
	return &cardTextFixture{srv: srv, db: db, cases: cs, logs: logs}
}

// do sends body as JSON and returns the status, the MaskedHeader and the body.
func (f *cardTextFixture) do(t *testing.T, method, path, token string, body any) (int, string, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get(api.MaskedHeader), string(out)
}

// noClearPAN fails when what holds any of the test PANs, in one piece or not.
func noClearPAN(t *testing.T, where, what string) {
	t.Helper()
	flat := strings.NewReplacer(" ", "", "-", "").Replace(what)
	for _, p := range []string{notePAN, notePAN2} {
		if strings.Contains(flat, p) {
			t.Errorf("%s holds the clear PAN %s...: %.300s", where, p[:6], what)
		}
	}
}

// scanDB fails when any key or value of db holds a test PAN in clear.
func scanDB(t *testing.T, name string, db *badger.DB) {
	t.Helper()
	var all strings.Builder
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			all.Write(it.Item().Key())
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			all.Write(v)
			all.WriteByte('\n')
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	noClearPAN(t, name+" database", all.String())
}

// checkMasked fails unless the answer says n card numbers were masked, shows the
// masked forms and no clear PAN.
func checkMasked(t *testing.T, what string, status, want int, header, body string, n string, masked ...string) {
	t.Helper()
	if status != want {
		t.Fatalf("%s: %d %s", what, status, body)
	}
	if header != n {
		t.Errorf("%s: %s = %q, want %q", what, api.MaskedHeader, header, n)
	}
	for _, m := range masked {
		if !strings.Contains(body, m) {
			t.Errorf("%s: the answer lacks the masked PAN %s: %s", what, m, body)
		}
	}
	noClearPAN(t, what+" answer", body)
}

// TestListEntryNoteMasked: a PAN pasted in a list entry's note is stored masked:
// the answer, the lists, their audit and the database hold only first 6 / last 4,
// and the answer says how many were masked.
func TestListEntryNoteMasked(t *testing.T) {
	f := newCardTextFixture(t)
	an := registry.DemoAnalystToken
	st, h, body := f.do(t, "POST", "/api/v1/risk/lists", an, risk.AddListEntry{List: "deny", Kind: "terminal", Value: "T0000009",
		Note: "customer called: card 4761 7390 0101 0119 and " + notePAN2 + " used here"})
	checkMasked(t, "add list entry", st, 200, h, body, "2", maskedPAN, maskedPAN2)
	st, _, body = f.do(t, "GET", "/api/v1/risk/lists", an, nil)
	checkMasked(t, "list entries", st, 200, "", body, "", maskedPAN)
	st, _, body = f.do(t, "GET", "/api/v1/risk/lists/audit", an, nil)
	checkMasked(t, "list audit", st, 200, "", body, "", maskedPAN)
	scanDB(t, "lists", f.db)
	logs := f.logs.String()
	if !strings.Contains(logs, "card number masked") || !strings.Contains(logs, `"field":"note"`) {
		t.Errorf("no Info log of the masking: %s", logs)
	}
	noClearPAN(t, "log", logs)

	// Ordinary numbers stay, and say nothing.
	st, h, body = f.do(t, "POST", "/api/v1/risk/lists", an, risk.AddListEntry{List: "deny", Kind: "terminal", Value: "T0000008",
		Note: "RRN 612345678901, STAN 000123, 1500.00 on 2026-05-01, call 0049 170 1234567"})
	checkMasked(t, "add list entry without card data", st, 200, h, body, "")
	if !strings.Contains(body, "RRN 612345678901, STAN 000123, 1500.00 on 2026-05-01, call 0049 170 1234567") {
		t.Errorf("a note without card data changed: %s", body)
	}
}

// TestCaseNotesMasked: a PAN in the note of a case's assignment and in its
// decision is stored masked (the case, its operation log entries, the database).
func TestCaseNotesMasked(t *testing.T) {
	f := newCardTextFixture(t)
	now := time.Now().UTC()
	f.cases.Open(context.Background(), &risk.Input{}, &risk.Decision{Action: risk.ActionReview, Rule: "r1"},
		&journal.Record{RRN: "612345678901", Received: now, MTI: "0200", Type: "purchase", TID: "T0000001",
			MID: "000000000000001", STAN: "000001", PANMasked: maskedPAN, CardHash: "c0ffee00c0ffee00c0ffee00", Amount: 150000, Currency: "156"})
	f.cases.Flush()
	list, err := f.cases.List(cases.Filter{})
	if err != nil || len(list) != 1 {
		t.Fatalf("cases: %v, %v", list, err)
	}
	id := list[0].ID
	an := registry.DemoAnalystToken
	st, h, body := f.do(t, "POST", "/api/v1/cases/"+id+"/assign", an, cases.AssignRequest{Note: "cardholder gave " + notePAN})
	checkMasked(t, "assign", st, 200, h, body, "1")
	st, h, body = f.do(t, "POST", "/api/v1/cases/"+id+"/decide", an, cases.DecideRequest{Verdict: cases.VerdictCleared,
		Note: "cardholder confirmed; track " + notePAN2 + "=29121010000012345 was read"})
	checkMasked(t, "decide", st, 200, h, body, "1", maskedPAN2)
	if strings.Contains(body, "=2912") {
		t.Errorf("the track data after the PAN was kept: %s", body)
	}
	st, _, body = f.do(t, "GET", "/api/v1/cases/"+id, an, nil)
	checkMasked(t, "get case", st, 200, "", body, "", maskedPAN2)
	st, _, body = f.do(t, "GET", "/api/v1/oplog", an, nil)
	checkMasked(t, "oplog", st, 200, "", body, "", maskedPAN)
	scanDB(t, "registry, cases and lists", f.db)
	noClearPAN(t, "log", f.logs.String())
}

// TestChangeReasonMasked: a PAN in a change's reason (two-person review) and in
// the reviewer's note is stored masked: the change, the oplog, the database.
func TestChangeReasonMasked(t *testing.T) {
	f := newCardTextFixture(t)
	st, h, body := f.do(t, "POST", "/api/v1/terminals/T0000001/suspend", registry.DemoOperatorToken,
		registry.ReasonRequest{Reason: "fraud on card 4761-7390-0101-0119 per issuer"})
	checkMasked(t, "suspend", st, 202, h, body, "1", maskedPAN)
	var ch registry.Change
	if err := json.Unmarshal([]byte(body), &ch); err != nil {
		t.Fatal(err)
	}
	st, h, body = f.do(t, "POST", "/api/v1/changes/"+ch.ID+"/approve", registry.DemoReviewerToken,
		registry.ReasonRequest{Note: "ok, issuer confirmed " + notePAN2})
	checkMasked(t, "approve", st, 200, h, body, "1", maskedPAN2)
	st, _, body = f.do(t, "GET", "/api/v1/terminals/T0000001", registry.DemoOperatorToken, nil)
	checkMasked(t, "terminal", st, 200, "", body, "", maskedPAN)
	st, _, body = f.do(t, "GET", "/api/v1/oplog", registry.DemoOperatorToken, nil)
	checkMasked(t, "oplog", st, 200, "", body, "", maskedPAN)
	scanDB(t, "registry", f.db)
	noClearPAN(t, "log", f.logs.String())
}
