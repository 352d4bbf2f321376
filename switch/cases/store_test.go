package cases

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/syncbuf"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/registry"
)

// reviewRules send a card's second purchase of 1,000.00 or more within 10 minutes to review.
const reviewRules = `counters:
  - name: card_attempts_10m
    dimension: card
    window: 10m
rules:
  - id: big-again
    condition: txn.amount >= 100000 && velocity.card_attempts_10m >= 1
    action: review
    reason: big-again
`

const cardHash = "c2FtcGxlLWNhcmQtaGFzaC0wMDAx"

var (
	analyst  = Actor{Name: "ana", Role: RoleAnalyst}
	analyst2 = Actor{Name: "bob", Role: RoleAnalyst}
	operator = Actor{Name: "ops", Role: "operator"}
)

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

type env struct {
	db    *badger.DB
	reg   *registry.Registry
	lists *risk.Lists
	eng   *risk.Engine
	opts  Options
	logs  *syncbuf.Buffer
	now   time.Time
}

func newEnv(t testing.TB) *env {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	e := &env{db: db, logs: &syncbuf.Buffer{}, now: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)}
	clock := func() time.Time { return e.now }
	if e.reg, err = registry.New(db, clock, registry.Options{SeenFlushInterval: -1}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.reg.Close() })
	if e.lists, err = risk.NewLists(db); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "review.yaml"), []byte(reviewRules), 0o600); err != nil {
		t.Fatal(err)
	}
	if e.eng, err = risk.New(dir, risk.Options{Lists: e.lists}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.eng.Close() })
	e.opts = Options{Rules: e.eng, Lists: e.lists, Registry: e.reg, Metrics: prometheus.NewRegistry(),
		Logger: zerolog.New(e.logs), Clock: clock}
	return e
}

func (e *env) store(t testing.TB) *Store {
	t.Helper()
	s, err := New(e.db, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// txn evaluates a purchase of amount by the test card and returns what the pipeline
// hands to Open. The card's earlier purchase is observed first, so the rule hits.
func (e *env) txn(t testing.TB, rrn string, amount int) (*risk.Input, risk.Decision, *journal.Record) {
	t.Helper()
	in := &risk.Input{}
	in.Txn = risk.Txn{MTI: "0200", ProcCode: "000000", Type: "purchase", Amount: amount, Currency: "156", CardHash: cardHash,
		RRN: rrn, Time: e.now}
	in.Terminal.ID, in.Merchant.ID = "T0000001", "000000000000001"
	e.eng.Observe(in, risk.Outcome{Approved: true, ResponseCode: "00"})
	d := e.eng.Evaluate(in)
	rec := &journal.Record{RRN: rrn, Received: e.now, MTI: "0200", Type: "purchase", TID: "T0000001", MID: "000000000000001",
		STAN: "000001", PANMasked: "476173******0119", CardHash: cardHash, Amount: int64(amount), Currency: "156"}
	return in, d, rec
}

func (e *env) open(t testing.TB, s *Store, rrn string) {
	t.Helper()
	in, d, rec := e.txn(t, rrn, 150000)
	if d.Action != risk.ActionReview {
		t.Fatalf("the test rule did not send RRN %s to review: %+v", rrn, d)
	}
	s.Open(context.Background(), in, &d, rec)
	// As the pipeline does after the answer: the counters move on, and the input is
	// reused. The case must show neither.
	e.eng.Observe(in, risk.Outcome{Approved: true, ResponseCode: "00"})
	in.Reset()
}

func TestOpenAssignDecideFraud(t *testing.T) {
	e := newEnv(t)
	s, err := newStore(e.db, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	e.open(t, s, "000000000001")
	e.open(t, s, "000000000001") // the same transaction again: one case
	s.start()                    // only now: the counters have moved on since the rules decided
	list, err := s.List(Filter{})
	if err != nil || len(list) != 1 {
		t.Fatalf("cases: %v %+v", err, list)
	}
	c := list[0]
	if c.ID != "CASE-1" || c.Status != StatusOpen || c.Action != "review" || c.Rule != "big-again" || c.RRN != "000000000001" ||
		c.TID != "T0000001" || c.MID != "000000000000001" || c.PANMasked != "476173******0119" || c.CardHash != cardHash || c.Amount != 150000 {
		t.Fatalf("case: %+v", c)
	}
	if len(c.Hits) != 1 || c.Hits[0].Rule != "big-again" {
		t.Fatalf("hits: %+v", c.Hits)
	}
	saw := map[string]any{}
	for _, v := range c.Hits[0].Values {
		saw[v.Name] = v.Value
	}
	// The counter as the rules saw it (1: the earlier purchase), not as it is after
	// this transaction; and the amount the rule read.
	if saw["velocity.card_attempts_10m"] != float64(1) || saw["txn.amount"] != float64(150000) {
		t.Fatalf("values the rule saw: %v", saw)
	}
	if got := counterValue(s.deduped); got != 1 {
		t.Fatalf("deduplicated: %v", got)
	}
	if s.open.Load() != 1 {
		t.Fatalf("open gauge: %d", s.open.Load())
	}

	if _, err := s.Assign(analyst, "CASE-1", "", "mine"); err != nil {
		t.Fatal(err)
	}
	c, err = s.Decide(analyst, "case-1", VerdictFraud, "cardholder denies it")
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != StatusDecided || c.Decision.By != "ana" || !c.Decision.DenyListed || c.Decision.Incident == "" {
		t.Fatalf("decided: %+v %+v", c, c.Decision)
	}
	if !e.lists.Contains(risk.ListDeny, risk.KindCard, cardHash, e.now) {
		t.Fatal("the card is not on the deny list")
	}
	inc, err := e.reg.GetIncident(c.Decision.Incident)
	if err != nil || inc.Reason != registry.ReasonConfirmedFraud || inc.MerchantID != "000000000000001" || inc.Case != "CASE-1" {
		t.Fatalf("incident: %v %+v", err, inc)
	}
	ops, err := e.reg.Oplog(registry.OplogFilter{Target: "CASE-1"})
	if err != nil || len(ops) != 2 || ops[0].Action != "case.assign" || ops[1].Action != "case.decide" ||
		ops[1].Actor != "ana" || ops[1].Reason != "cardholder denies it" || !strings.Contains(string(ops[1].After), "confirmed-fraud") {
		t.Fatalf("oplog: %v %+v", err, ops)
	}
	if _, err := e.reg.VerifyOplog(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Decide(analyst, "CASE-1", VerdictCleared, "changed my mind"); !errors.Is(err, ErrConflict) {
		t.Fatalf("deciding twice: %v", err)
	}
	if _, err := s.Assign(analyst2, "CASE-1", "", ""); !errors.Is(err, ErrConflict) {
		t.Fatalf("assigning a decided case: %v", err)
	}
	if s.open.Load() != 0 {
		t.Fatalf("open gauge after the decision: %d", s.open.Load())
	}

	// After a restart the sequence and the open count continue.
	e.open(t, s, "000000000002")
	s.Flush()
	_ = s.Close()
	e.opts.Metrics = prometheus.NewRegistry()
	s2 := e.store(t)
	if s2.open.Load() != 1 {
		t.Fatalf("open cases after a restart: %d", s2.open.Load())
	}
	e.open(t, s2, "000000000003")
	if c, err := s2.ByRRN("000000000003"); err != nil || c.ID != "CASE-3" {
		t.Fatalf("after a restart: %v %+v", err, c)
	}
}

func TestRefusals(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	e.open(t, s, "000000000001")
	for _, tc := range []struct {
		name string
		err  error
		do   func() error
	}{
		{"unknown case", ErrNotFound, func() error { _, err := s.Assign(analyst, "CASE-99", "", ""); return err }},
		{"malformed ID", ErrInvalid, func() error { _, err := s.Decide(analyst, "INC-1", VerdictCleared, ""); return err }},
		{"operator assigns", ErrForbidden, func() error { _, err := s.Assign(operator, "CASE-1", "", ""); return err }},
		{"operator decides", ErrForbidden, func() error { _, err := s.Decide(operator, "CASE-1", VerdictCleared, ""); return err }},
		{"bad verdict", ErrInvalid, func() error { _, err := s.Decide(analyst, "CASE-1", "maybe", ""); return err }},
		{"decide unassigned", ErrConflict, func() error { _, err := s.Decide(analyst, "CASE-1", VerdictCleared, ""); return err }},
		{"assign to bob", nil, func() error { _, err := s.Assign(analyst, "CASE-1", "bob", "yours"); return err }},
		{"ana decides bob's", ErrForbidden, func() error { _, err := s.Decide(analyst, "CASE-1", VerdictCleared, ""); return err }},
		{"bob clears", nil, func() error { _, err := s.Decide(analyst2, "CASE-1", VerdictCleared, "regular customer"); return err }},
	} {
		err := tc.do()
		if (tc.err == nil && err != nil) || (tc.err != nil && !errors.Is(err, tc.err)) {
			t.Fatalf("%s: got %v, want %v", tc.name, err, tc.err)
		}
	}
	c, err := s.Get("CASE-1")
	if err != nil {
		t.Fatal(err)
	}
	d := c.Decision
	if d == nil || d.Verdict != VerdictCleared || d.DenyListed || d.Incident != "" || len(d.Counters) != 1 ||
		d.Counters[0].Name != "velocity.card_attempts_10m" {
		t.Fatalf("cleared: %+v", d)
	}
	if e.lists.Contains(risk.ListDeny, risk.KindCard, cardHash, e.now) {
		t.Fatal("a cleared card is on the deny list")
	}
	ops, _ := e.reg.Oplog(registry.OplogFilter{Target: "CASE-1"})
	if len(ops) != 2 || !strings.Contains(string(ops[1].After), "card_attempts_10m") {
		t.Fatalf("oplog: %+v", ops)
	}
}

// TestQueueFull: with the writer behind, Open drops the case at once (it does not
// wait), counts it and logs once per overflow.
func TestQueueFull(t *testing.T) {
	e := newEnv(t)
	e.opts.Queue = 1
	s, err := newStore(e.db, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	for _, rrn := range []string{"000000000001", "000000000002", "000000000003"} {
		e.open(t, s, rrn) // the writer is not running: the first fills the queue
	}
	if got := counterValue(s.dropped); got != 2 {
		t.Fatalf("dropped: %v", got)
	}
	if n := strings.Count(e.logs.String(), "review case queue full"); n != 1 {
		t.Fatalf("logged %d times:\n%s", n, e.logs.String())
	}
	s.start()
	list, err := s.List(Filter{})
	if err != nil || len(list) != 1 || list[0].RRN != "000000000001" {
		t.Fatalf("cases: %v %+v", err, list)
	}
	// Drained: the next overflow is logged again.
	e.open(t, s, "000000000004")
	s.Flush()
	if s.dropping.Load() {
		t.Fatal("the overflow flag stays set after the queue drained")
	}
}

// BenchmarkOpen is what a transaction the rules send to review pays for its case:
// the snapshot of the counters, the copy and the queue. The writer is not running
// (its work is another goroutine's); the queue is emptied outside the timing.
func BenchmarkOpen(b *testing.B) {
	e := newEnv(b)
	e.opts.Queue = 1024
	s, err := newStore(e.db, e.opts)
	if err != nil {
		b.Fatal(err)
	}
	in, d, rec := e.txn(b, "000000000001", 150000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%1024 == 1023 {
			b.StopTimer()
			for len(s.q) > 0 {
				<-s.q
			}
			b.StartTimer()
		}
		s.Open(context.Background(), in, &d, rec)
	}
	b.StopTimer()
	if got := counterValue(s.dropped); got != 0 {
		b.Fatalf("%v cases dropped", got)
	}
	s.start()
	_ = s.Close()
}

// TestFraudVerdictKeepsLongerDenyEntry: a confirmed-fraud verdict on a card that
// is already on the deny list for good does not replace its entry with one that
// ends after Options.DenyTTL (a deny-list removal in disguise, which analysts
// may not make alone): the entry stays permanent, its note the case's.
func TestFraudVerdictKeepsLongerDenyEntry(t *testing.T) {
	e := newEnv(t)
	e.opts.DenyTTL = 24 * time.Hour
	s, err := newStore(e.db, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := e.lists.Add("ana", risk.ListEntry{List: risk.ListDeny, Kind: risk.KindCard, Value: cardHash, Note: "known mule"}); err != nil {
		t.Fatal(err)
	}
	e.open(t, s, "000000000001")
	s.start()
	if _, err := s.Assign(analyst, "CASE-1", "", "mine"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Decide(analyst, "CASE-1", VerdictFraud, "cardholder denies it"); err != nil {
		t.Fatal(err)
	}
	cur, ok := e.lists.Entry(risk.ListDeny, risk.KindCard, cardHash)
	if !ok || !cur.ExpiresAt.IsZero() || !strings.Contains(cur.Note, "CASE-1") {
		t.Fatalf("deny entry after the verdict: %+v (on: %v), want permanent with the case's note", cur, ok)
	}
}
