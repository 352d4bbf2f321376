package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moov-io/iso8583"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

// errNoQuorum is what a cluster journal without a JetStream quorum returns.
var errNoQuorum = fmt.Errorf("journal.1: publish not acknowledged: %w", journal.ErrUnavailable)

// failFinal makes the journal refuse, for want of a quorum, the final versions of the
// records of type typ ("" any type): the write ahead goes through, the answer's does not.
func failFinal(typ string) option {
	return func(h *harness, _ *Config) {
		h.j.writeHook = func(r *journal.Record, _ bool) error {
			if r.Final() && (typ == "" || r.Type == typ) {
				return errNoQuorum
			}
			return nil
		}
	}
}

// withStandIn lets the switch stand in for "bank".
func withStandIn(_ *harness, c *Config) {
	c.StandIn = map[string]StandInLimits{"bank": {Enabled: true, MaxAmount: 5000, PerCardCount: 5, PerCardSum: 50000}}
}

// counterValue reads a counter.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// queued lists the queued items as "MTI reason".
func queued(h *harness) []string {
	var out []string
	for _, it := range h.q.all() {
		out = append(out, it.MTI+" "+it.Reason)
	}
	return out
}

// TestStandInAcrossNodes: another node's stand-in approvals of a card count in this
// node's stand-in limits of the card (SeenRemoteStandIn), once a record; not those of
// an earlier day, nor its declines or issuer approvals.
func TestStandInAcrossNodes(t *testing.T) {
	h := newHarness(t, func(_ *harness, c *Config) {
		c.StandIn = map[string]StandInLimits{"bank": {Enabled: true, MaxAmount: 5000, PerCardCount: 3, PerCardSum: 50000}}
	})
	h.bank.setUp(false)
	first := h.do(h.purchase(100))
	if first.RC != "00" {
		t.Fatalf("first stand-in: %+v", first.Result)
	}
	local := h.record(first.RRN)
	remote := func(mut func(r *journal.Record)) *journal.Record {
		r := copyRecord(local)
		r.RRN = "2" + r.RRN[1:]
		mut(r)
		return r
	}
	// Not counted: yesterday's, a decline, an issuer's approval.
	h.p.SeenRemoteStandIn(remote(func(r *journal.Record) { r.Received = r.Received.Add(-24 * time.Hour) }))
	h.p.SeenRemoteStandIn(remote(func(r *journal.Record) { r.RC, r.StandIn = "91", false }))
	h.p.SeenRemoteStandIn(remote(func(r *journal.Record) { r.StandIn = false }))
	if a := h.do(h.purchase(100)); a.RC != "00" {
		t.Fatalf("second stand-in, after records that do not count: %+v", a.Result)
	}
	// One stand-in approval on node 2: the card's third here is its fourth.
	h.p.SeenRemoteStandIn(remote(func(*journal.Record) {}))
	if a := h.do(h.purchase(100)); a.RC != "91" || a.Reason != "issuer-unavailable" {
		t.Fatalf("a stand-in over the card's count with node 2's: %+v; want 91 issuer-unavailable", a.Result)
	}
}

// memStandIns is a StandInStore in memory, shared by the pipelines of a test as a
// disk is by a switch's runs.
type memStandIns struct {
	mu sync.Mutex
	m  map[string]map[string]StandInCount // day -> card -> counts
}

func (s *memStandIns) LoadStandIns(day string) (map[string]StandInCount, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]StandInCount{}
	for card, c := range s.m[day] {
		out[card] = c
	}
	return out, nil
}

func (s *memStandIns) SaveStandIn(day, card string, c StandInCount) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[day] == nil {
		s.m[day] = map[string]StandInCount{}
	}
	s.m[day][card] = c
	return nil
}

// TestStandInAcrossRestarts: a switch restarted during an issuer's outage counts the
// card's stand-in approvals it gave before (and another node's it counted), from its
// store, instead of giving the card its limits again; a new day starts afresh.
func TestStandInAcrossRestarts(t *testing.T) {
	store := &memStandIns{m: map[string]map[string]StandInCount{}}
	limits := func(_ *harness, c *Config) {
		c.StandIn = map[string]StandInLimits{"bank": {Enabled: true, MaxAmount: 5000, PerCardCount: 3, PerCardSum: 50000}}
		c.StandIns = store
	}
	h := newHarness(t, limits)
	h.bank.setUp(false)
	first := h.do(h.purchase(100))
	if first.RC != "00" {
		t.Fatalf("first stand-in: %+v", first.Result)
	}
	remote := copyRecord(h.record(first.RRN))
	remote.RRN = "2" + remote.RRN[1:]
	h.p.SeenRemoteStandIn(remote) // node 2's, for the same card
	// The restart: a new pipeline on the same store (its clock at the same time).
	h2 := newHarness(t, limits)
	h2.bank.setUp(false)
	if a := h2.do(h2.purchase(100)); a.RC != "00" {
		t.Fatalf("third stand-in of the day, after the restart: %+v", a.Result)
	}
	if a := h2.do(h2.purchase(100)); a.RC != "91" || a.Reason != "issuer-unavailable" {
		t.Fatalf("fourth stand-in of the day, after the restart: %+v; want 91 issuer-unavailable (three already)", a.Result)
	}
	h2.clock.Advance(24 * time.Hour)
	if a := h2.do(h2.purchase(100)); a.RC != "00" {
		t.Fatalf("the next day's first stand-in: %+v", a.Result)
	}
}

// TestRecordLocked: in a cluster every change of an original by another transaction
// (refund, void, the terminal's reversal, completion of a pre-authorization) is made
// under the original's lock across the nodes (RecordLocker): every write of the
// original's new version happens while it is held, and it is released after. Without
// the lock (held elsewhere too long, no quorum) the request is answered 91 and the
// original is left as it was, nothing sent.
func TestRecordLocked(t *testing.T) {
	cases := []struct {
		name string
		orig func(h *harness) (termclient.Txn, answer)
		tx   func(h *harness, otx termclient.Txn, orig answer) termclient.Txn
	}{
		{"refund", purchased, func(h *harness, _ termclient.Txn, o answer) termclient.Txn { return h.refund(o, 1000) }},
		{"void", purchased, func(h *harness, _ termclient.Txn, o answer) termclient.Txn { return h.void(o, 5000) }},
		{"reversal", purchased, func(h *harness, otx termclient.Txn, _ answer) termclient.Txn { return h.reversal(otx, 5000) }},
		{"completion", func(h *harness) (termclient.Txn, answer) { tx := h.preauth(5000); return tx, h.do(tx) },
			func(h *harness, _ termclient.Txn, o answer) termclient.Txn { return h.completion(o, 5000) }},
	}
	for _, tc := range cases {
		t.Run(tc.name+" under the lock", func(t *testing.T) {
			var mu sync.Mutex
			held, locked := map[string]int{}, []string{}
			h := newHarness(t, withLocks(func(_ context.Context, rrn string) (func(), error) {
				mu.Lock()
				defer mu.Unlock()
				held[rrn]++
				locked = append(locked, rrn)
				return func() { mu.Lock(); held[rrn]--; mu.Unlock() }, nil
			}))
			otx, o := tc.orig(h)
			if o.RC != "00" {
				t.Fatalf("original: %+v", o.Result)
			}
			var unlocked []string
			h.j.writeHook = func(r *journal.Record, first bool) error {
				mu.Lock()
				defer mu.Unlock()
				if r.RRN == o.RRN && held[r.RRN] == 0 {
					unlocked = append(unlocked, fmt.Sprintf("%s %s", r.RRN, r.State))
				}
				return nil
			}
			a := h.do(tc.tx(h, otx, o))
			if a.RC != "00" {
				t.Fatalf("%s: %+v", tc.name, a.Result)
			}
			after := h.record(o.RRN)
			if after.Refunded == 0 && after.ReversedBy == "" && after.CompletedBy == "" {
				t.Fatalf("the %s left its original unchanged: %+v", tc.name, after)
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Contains(locked, o.RRN) {
				t.Errorf("locked %v; want the original %s among them", locked, o.RRN)
			}
			if len(unlocked) > 0 {
				t.Errorf("the original's versions written without its lock: %v", unlocked)
			}
			for rrn, n := range held {
				if n != 0 {
					t.Errorf("lock of %s held %d times after the %s", rrn, n, tc.name)
				}
			}
		})
		t.Run(tc.name+" without the lock", func(t *testing.T) {
			refuse := false
			h := newHarness(t, withLocks(func(_ context.Context, rrn string) (func(), error) {
				if refuse {
					return nil, fmt.Errorf("cjournal: lock record %s: %w: held by node process 2.x for over 5s", rrn, journal.ErrUnavailable)
				}
				return func() {}, nil
			}))
			otx, o := tc.orig(h)
			if o.RC != "00" {
				t.Fatalf("original: %+v", o.Result)
			}
			before, sent, queuedBefore := h.record(o.RRN), len(h.bank.sent()), len(h.q.all())
			refuse = true
			a := h.do(tc.tx(h, otx, o))
			if a.RC != "91" {
				t.Errorf("%s without the original's lock: %+v; want 91", tc.name, a.Result)
			}
			after := h.record(o.RRN)
			if after.Refunded != before.Refunded || after.ReversedBy != before.ReversedBy || after.CompletedBy != before.CompletedBy || len(after.Events) != len(before.Events) {
				t.Errorf("original changed without its lock: before %+v, after %+v", before, after)
			}
			if n := len(h.bank.sent()); n != sent {
				t.Errorf("the issuer was asked %d times more", n-sent)
			}
			if n := len(h.q.all()); n != queuedBefore {
				t.Errorf("%d advices queued: %v", n-queuedBefore, queued(h))
			}
		})
	}
}

// TestRecoverUnderLock: recovery (a restart's, or a survivor's of a dead node's
// records) settles each record as it reads it again under its lock, not the scan's
// copy: an approval without a delivery mark that a refund or completion named since
// (on another node: the scan's copy lacks it) is not reversed, the terminal had its
// answer; one reversed meanwhile is left; the others are settled as before.
func TestRecoverUnderLock(t *testing.T) {
	var mu sync.Mutex
	var locked []string
	h := newHarness(t, withLocks(func(_ context.Context, rrn string) (func(), error) {
		mu.Lock()
		locked = append(locked, rrn)
		mu.Unlock()
		return func() {}, nil
	}))
	at := h.clock.Now().UTC()
	rec := func(rrn, typ string) *journal.Record {
		r := &journal.Record{RRN: rrn, Received: at, MTI: "0200", Type: typ, ProcCode: "000000", TID: testTID, MID: testMID,
			STAN: rrn[6:], DE7: message.FormatDE7(at), Amount: 100, Issuer: "bank", IssuerSTAN: "000009", RC: "00"}
		r.AddEvent(journal.StateReceived, at, "")
		r.AddEvent(journal.StateSent, at, "")
		r.AddEvent(journal.StateAnswered, at, "")
		return r
	}
	stale := []*journal.Record{rec("000000000001", "purchase"), rec("000000000002", "preauth"),
		rec("000000000003", "purchase"), rec("000000000004", "purchase")}
	for _, r := range stale {
		if err := h.j.Write(t.Context(), r, true, true); err != nil {
			t.Fatal(err)
		}
	}
	// Since the scan's copies: 1 refunded in part, 2 completed, 3 reversed by a void.
	for rrn, change := range map[string]func(r *journal.Record){
		"000000000001": func(r *journal.Record) { r.Refunded = 30 },
		"000000000002": func(r *journal.Record) { r.CompletedBy = "200000000009" },
		"000000000003": func(r *journal.Record) { r.ReversedBy = "200000000010" },
	} {
		r := h.record(rrn)
		change(r)
		if err := h.j.Write(t.Context(), r, false, true); err != nil {
			t.Fatal(err)
		}
	}
	n, err := h.p.RecoverRecords(t.Context(), "node 2 lost", "2", func(_ context.Context, fn func(*journal.Record) bool) error {
		for _, r := range stale {
			if !fn(copyRecord(r)) {
				break
			}
		}
		return nil
	})
	if err != nil || n != 1 {
		t.Fatalf("RecoverRecords: %d settled, %v; want 1", n, err)
	}
	for rrn, want := range map[string]string{"000000000001": "", "000000000002": "", "000000000003": "200000000010", "000000000004": "switch:undelivered-at-restart"} {
		if r := h.record(rrn); r.ReversedBy != want {
			t.Errorf("%s reversed by %q, want %q (refunded %d, completed by %q)", rrn, r.ReversedBy, want, r.Refunded, r.CompletedBy)
		}
	}
	if got := h.record("000000000001").Refunded; got != 30 {
		t.Errorf("the refunded purchase holds %d refunded after recovery, want 30", got)
	}
	if items := h.q.all(); len(items) != 1 || items[0].RRN != "000000000004" {
		t.Errorf("queued %v; want the reversal of 000000000004 alone", queued(h))
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(locked) != "[000000000001 000000000002 000000000003 000000000004]" {
		t.Errorf("locked %v; want each record recovered", locked)
	}
}

// TestRecoverPastHeldLock: a record whose lock recovery cannot take (held by a node
// that died holding it, until it lapses) does not hold up the others: they are
// settled, and the error names it for the caller to try again.
func TestRecoverPastHeldLock(t *testing.T) {
	h := newHarness(t, withLocks(func(_ context.Context, rrn string) (func(), error) {
		if rrn == "000000000001" {
			return nil, fmt.Errorf("cjournal: lock record %s: %w: held by node process 1.dead.", rrn, journal.ErrUnavailable)
		}
		return func() {}, nil
	}))
	at := h.clock.Now().UTC()
	var recs []*journal.Record
	for _, rrn := range []string{"000000000001", "000000000002"} {
		r := &journal.Record{RRN: rrn, Received: at, MTI: "0200", Type: "purchase", ProcCode: "000000", TID: testTID, MID: testMID,
			STAN: rrn[6:], DE7: message.FormatDE7(at), Amount: 100, Issuer: "bank", IssuerSTAN: "000009"}
		r.AddEvent(journal.StateReceived, at, "")
		r.AddEvent(journal.StateSent, at, "")
		if err := h.j.Write(t.Context(), r, true, true); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	n, err := h.p.RecoverRecords(t.Context(), "node 1 lost", "1", func(_ context.Context, fn func(*journal.Record) bool) error {
		for _, r := range recs {
			fn(copyRecord(r))
		}
		return nil
	})
	if n != 1 || !errors.Is(err, journal.ErrUnavailable) || !strings.Contains(err.Error(), "000000000001") {
		t.Fatalf("RecoverRecords: %d settled, %v; want 1 and an error naming 000000000001", n, err)
	}
	if r := h.record("000000000002"); r.RC != "91" || r.ReversedBy != "switch:restart" {
		t.Errorf("the record whose lock was free: rc %s, reversed by %q; want 91, switch:restart", r.RC, r.ReversedBy)
	}
	if r := h.record("000000000001"); r.Final() {
		t.Errorf("the record whose lock was held was settled: %+v", r)
	}
}

// TestUndeliveredWithoutLock: an approval whose answer did not reach its terminal
// is reversed even when its record cannot be locked across the cluster: the 0420
// is queued at once, and the record's reversal mark is owed and written under the
// lock by settle once it can be taken.
func TestUndeliveredWithoutLock(t *testing.T) {
	refuse := false
	h := newHarness(t, withLocks(func(_ context.Context, rrn string) (func(), error) {
		if refuse {
			return nil, fmt.Errorf("cjournal: lock record %s: %w: no quorum", rrn, journal.ErrUnavailable)
		}
		return func() {}, nil
	}))
	refuse = true
	a := h.process(h.frame(h.purchase(1000)), false)
	if a.RC != "00" {
		t.Fatalf("purchase: %+v", a.Result)
	}
	if items := h.q.all(); len(items) != 1 || items[0].MTI != "0420" || items[0].RRN != a.RRN {
		t.Fatalf("queued %v; want the 0420 of %s", queued(h), a.RRN)
	}
	if r := h.record(a.RRN); r.Reversed() {
		t.Fatalf("record written reversed without its lock: %+v", r)
	}
	h.p.settle(t.Context()) // still no lock: nothing changes
	if r := h.record(a.RRN); r.Reversed() {
		t.Fatalf("record written reversed without its lock: %+v", r)
	}
	refuse = false
	h.p.settle(t.Context())
	if r := h.record(a.RRN); r.ReversedBy != "switch:undelivered" {
		t.Fatalf("after settle under the lock: reversed by %q, want switch:undelivered", r.ReversedBy)
	}
	if n := len(h.q.all()); n != 1 {
		t.Errorf("%d advices queued; want the one 0420", n)
	}
}

// TestRecordLockedEverywhere: every version of a record that is final already (an
// original changed by another transaction, or by the switch after its answer) is
// written while the record's lock is held, on every path that makes one: a refund's
// reservation and its release when the issuer declines, a refund's reversal giving
// the amount back, a completion and its void reopening the pre-authorization, an
// undelivered approval's reversal, a QR order's late payment, and a reversal mark
// owed to the settle book.
func TestRecordLockedEverywhere(t *testing.T) {
	var mu sync.Mutex
	held := map[string]int{}
	h := newHarness(t, withLocks(func(_ context.Context, rrn string) (func(), error) {
		mu.Lock()
		defer mu.Unlock()
		held[rrn]++
		return func() { mu.Lock(); held[rrn]--; mu.Unlock() }, nil
	}))
	var unlocked []string
	failRRN := ""
	h.j.writeHook = func(r *journal.Record, first bool) error { // under h.j.mu
		if prev, ok := h.j.recs[r.RRN]; ok && prev.Final() && !first {
			mu.Lock()
			if held[r.RRN] == 0 {
				unlocked = append(unlocked, fmt.Sprintf("%s (%s, rc %s, refunded %d, reversed by %q, completed by %q)",
					r.RRN, r.Type, r.RC, r.Refunded, r.ReversedBy, r.CompletedBy))
			}
			mu.Unlock()
		}
		if r.RRN == failRRN && !first {
			return errNoQuorum
		}
		return nil
	}
	want := func(a answer, rc, what string) answer {
		t.Helper()
		if a.RC != rc {
			t.Fatalf("%s: %+v; want %s", what, a.Result, rc)
		}
		return a
	}
	// A refund the issuer declines: the reservation and its release.
	a := want(h.do(h.purchase(5000)), "00", "purchase A")
	h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer("05", ""), nil })
	want(h.do(h.refund(a, 1000)), "05", "refund of A declined")
	h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer("00", "123456"), nil })
	if r := h.record(a.RRN); r.Refunded != 0 {
		t.Fatalf("A holds %d refunded after a declined refund", r.Refunded)
	}
	// A refund approved, then reversed by its terminal: the amount given back.
	b := want(h.do(h.purchase(5000)), "00", "purchase B")
	rtx := h.refund(b, 2000)
	want(h.do(rtx), "00", "refund of B")
	want(h.do(h.reversal(rtx, 2000)), "00", "reversal of the refund of B")
	if r := h.record(b.RRN); r.Refunded != 0 {
		t.Fatalf("B holds %d refunded after its refund's reversal", r.Refunded)
	}
	// A completion, then its void: the pre-authorization marked, then reopened.
	pre := h.approvedPreauth(5000)
	c := want(h.do(h.completion(pre, 5000)), "00", "completion")
	want(h.do(h.void(c, 5000)), "00", "void of the completion")
	if r := h.record(pre.RRN); r.CompletedBy != "" {
		t.Fatalf("pre-authorization still completed by %s after its completion's void", r.CompletedBy)
	}
	// An approval whose answer did not reach its terminal: reversed.
	d := h.process(h.frame(h.purchase(5000)), false)
	if r := h.record(d.RRN); r.ReversedBy != "switch:undelivered" {
		t.Fatalf("undelivered D reversed by %q", r.ReversedBy)
	}
	// A QR order paid, then paid again late (another transaction): reversed.
	op := OrderPayment{RRN: "000000009999", TID: testTID, MID: testMID, Currency: "156", Amount: 700, Network: "wechat",
		Connector: "bank", AuthCode: "654321", At: h.clock.Now()}
	if _, err := h.p.RecordOrderPayment(t.Context(), op); err != nil {
		t.Fatal(err)
	}
	op.Late = true
	if _, err := h.p.RecordOrderPayment(t.Context(), op); err != nil {
		t.Fatal(err)
	}
	// A void whose original's update the journal does not take: the mark is owed,
	// and settle writes it.
	e := want(h.do(h.purchase(5000)), "00", "purchase E")
	failRRN = e.RRN
	want(h.do(h.void(e, 5000)), "91", "void of E, its original's update refused")
	failRRN = ""
	h.p.settle(t.Context())
	if r := h.record(e.RRN); !r.Reversed() {
		t.Fatalf("E not reversed after settle: %+v", r)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(unlocked) > 0 {
		t.Errorf("final records written without their lock:\n%s", strings.Join(unlocked, "\n"))
	}
	for rrn, n := range held {
		if n != 0 {
			t.Errorf("lock of %s held %d times at the end", rrn, n)
		}
	}
}

// purchased sends an approved purchase of 5000 and returns it with its answer.
func purchased(h *harness) (termclient.Txn, answer) {
	tx := h.purchase(5000)
	return tx, h.do(tx)
}

// withLocks makes the journal a cluster's whose LockRecord is lock.
func withLocks(lock func(ctx context.Context, rrn string) (func(), error)) option {
	return func(h *harness, _ *Config) { h.lock = lock }
}

// TestJournalUnavailable: when the journal cannot make a record durable (a cluster
// without a quorum), the request is answered 91 journal-unavailable, never approved: at
// the write ahead nothing goes to the issuer; at the final write an approval (the
// issuer's or a stand-in) is reversed through the queue; the updates of an original
// (reversal, void, refund) and the batch close answer 91 as well.
func TestJournalUnavailable(t *testing.T) {
	cases := []struct {
		name      string
		opts      []option
		setup     func(h *harness) // before the request, with the journal still up
		down      func(h *harness) // the journal loses its quorum
		tx        func(h *harness) termclient.Txn
		forwarded int      // requests the issuer got, setup's included
		queued    []string // "MTI reason" of the queued items, setup's included
		issuer    string   // the issuer label of the answer's metric
	}{
		{name: "write ahead fails: nothing sent",
			down: func(h *harness) { h.j.failWrite = errNoQuorum }, issuer: "bank"},
		{name: "final write after an approval fails: approval reversed", opts: []option{failFinal("")},
			forwarded: 1, queued: []string{"0420 switch:journal-unavailable"}, issuer: "bank"},
		{name: "pre-authorization approved, final write fails: reversed", opts: []option{failFinal("")},
			tx:        func(h *harness) termclient.Txn { tx := h.purchase(1000); tx.MTI = "0100"; return tx },
			forwarded: 1, queued: []string{"0420 switch:journal-unavailable"}, issuer: "bank"},
		{name: "issuer decline, final write fails", opts: []option{failFinal("")},
			setup: func(h *harness) {
				h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer("51", ""), nil })
			}, forwarded: 1, issuer: "bank"},
		{name: "rules decline, its only write fails", opts: []option{withRisk, failFinal("")},
			setup: func(h *harness) {
				h.risk.decide = func(*risk.Input) risk.Decision {
					return risk.Decision{Action: risk.ActionDecline, ResponseCode: "59", Reason: "velocity-card", Rule: "R1"}
				}
			}},
		{name: "stand-in approval not durable: advice reversed", opts: []option{withStandIn, failFinal("")},
			setup:  func(h *harness) { h.bank.setUp(false) },
			queued: []string{"0220 stand-in", "0420 switch:journal-unavailable"}, issuer: "bank"},
		{name: "refund: reservation on the original not durable, nothing sent",
			setup: func(h *harness) { h.approved(5000) },
			down:  func(h *harness) { h.j.failWrite = errNoQuorum },
			tx: func(h *harness) termclient.Txn {
				return h.refund(answer{Result: termclient.Result{RRN: "000000000001"}}, 1000)
			}, forwarded: 1},
		{name: "refund approved, final write fails: reversed", opts: []option{failFinal("refund")},
			setup: func(h *harness) { h.approved(5000) },
			tx: func(h *harness) termclient.Txn {
				return h.refund(answer{Result: termclient.Result{RRN: "000000000001"}}, 1000)
			}, forwarded: 2, queued: []string{"0420 switch:journal-unavailable"}, issuer: "bank"},
		{name: "void: original's update not durable",
			setup: func(h *harness) { h.approved(5000) },
			down:  func(h *harness) { h.j.failWrite = errNoQuorum },
			tx: func(h *harness) termclient.Txn {
				return h.void(answer{Result: termclient.Result{RRN: "000000000001", AuthCode: "123456"}}, 5000)
			}, forwarded: 1, queued: []string{"0420 000000000002"}},
		{name: "reversal: original's update not durable",
			setup: func(h *harness) { h.approved(5000) },
			down:  func(h *harness) { h.j.failWrite = errNoQuorum },
			tx: func(h *harness) termclient.Txn {
				return h.reversal(termclient.Txn{STAN: "000001", Time: h.clock.Now()}, 5000)
			}, forwarded: 1, queued: []string{"0420 000000000002"}},
		{name: "batch close not durable",
			down: func(h *harness) { h.j.failClose = errNoQuorum },
			tx: func(h *harness) termclient.Txn {
				tx := h.purchase(0)
				tx.MTI, tx.ProcCode, tx.PAN, tx.Expiry = "0500", message.PCBatch, "", ""
				tx.TLV = [][2]string{{message.TagBatchTotals, "0,0,0,0"}}
				return tx
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.opts...)
			if tc.setup != nil {
				tc.setup(h)
			}
			if tc.down != nil {
				tc.down(h)
			}
			tx := h.purchase(1000)
			if tc.tx != nil {
				tx = tc.tx(h)
			}
			a := h.do(tx)
			if a.RC != "91" || a.Reason != "journal-unavailable" || a.AuthCode != "" {
				t.Fatalf("answer %s %q auth %q, want 91 journal-unavailable", a.RC, a.Reason, a.AuthCode)
			}
			if n := len(h.bank.sent()); n != tc.forwarded {
				t.Errorf("issuer got %d requests, want %d", n, tc.forwarded)
			}
			if got := queued(h); fmt.Sprint(got) != fmt.Sprint(tc.queued) {
				t.Errorf("queued %q, want %q", got, tc.queued)
			}
			if rec, err := h.j.Get(a.RRN); err == nil && rec.Approved() {
				t.Errorf("the journal holds an approval: %+v", rec)
			}
			mti := tx.MTI
			if mti == "" {
				mti = "0200"
			}
			if n := counterValue(h.p.metrics.Transactions.WithLabelValues(mti, "91", tc.issuer, "journal")); n != 1 {
				t.Errorf("transactions{rc=91, decided_by=journal} = %v, want 1", n)
			}
		})
	}
	t.Run("refund approved, final write fails: reservation released", func(t *testing.T) {
		h := newHarness(t, failFinal("refund"))
		orig := h.approved(5000)
		if a := h.do(h.refund(orig, 1000)); a.RC != "91" {
			t.Fatalf("refund answered %s %q", a.RC, a.Reason)
		}
		if o := h.record(orig.RRN); o.Refunded != 0 {
			t.Fatalf("original's refunded sum %d after a refund answered 91", o.Refunded)
		}
	})
}

// admittingJournal is the fake journal with a cluster node's admission
// (cjournal.Journal.Admit).
type admittingJournal struct {
	Journal
	admit func() error
}

func (j admittingJournal) Admit() error { return j.admit() }

// TestJournalOverloaded: a new request that the journal does not admit because it
// cannot keep up (a cluster node shedding) is answered 91 journal-overloaded before
// its checks and rules, nothing sent; unlike a journal without a quorum, no record
// of it is kept for the journal's return (nothing is written when the journal
// takes writes again) and it is not left open. A resend once the journal keeps up is
// a new request, approved. Reversals and offline captures are not asked about.
func TestJournalOverloaded(t *testing.T) {
	overloaded := fmt.Errorf("cjournal: request refused: %w (%w): the applier is behind", journal.ErrUnavailable, journal.ErrOverloaded)
	var refuse atomic.Bool
	asked := 0
	h := newHarness(t, withRisk, func(h *harness, _ *Config) {
		h.store = admittingJournal{Journal: h.j, admit: func() error {
			asked++
			if refuse.Load() {
				return overloaded
			}
			return nil
		}}
	})
	rulesRan := 0
	h.risk.decide = func(*risk.Input) risk.Decision { rulesRan++; return risk.Decision{Action: risk.ActionAllow} }
	refuse.Store(true)
	tx := h.purchase(1000)
	a := h.do(tx)
	if a.RC != "91" || a.Reason != "journal-overloaded" || a.AuthCode != "" {
		t.Fatalf("answer %s %q auth %q; want 91 journal-overloaded", a.RC, a.Reason, a.AuthCode)
	}
	if asked != 1 || rulesRan != 0 {
		t.Errorf("admission asked %d times, rules run %d times; want 1 and 0", asked, rulesRan)
	}
	if n := len(h.bank.sent()); n != 0 {
		t.Errorf("the issuer got %d requests; want none", n)
	}
	if n := h.p.unsettled.len(); n != 0 {
		t.Errorf("%d records kept for the journal's return; want none", n)
	}
	if open := h.p.open.min(); open != "" {
		t.Errorf("the refused request %s is left open (lowest open RRN %s)", a.RRN, open)
	}
	if n := counterValue(h.p.metrics.Transactions.WithLabelValues("0200", "91", "", "journal")); n != 1 {
		t.Errorf("transactions{rc=91, decided_by=journal} = %v; want 1", n)
	}
	refuse.Store(false)
	h.p.settle(t.Context())
	if _, err := h.j.Get(a.RRN); !errors.Is(err, journal.ErrNotFound) {
		t.Errorf("the refused request's record after the journal's return: %v; want none", err)
	}
	b := h.do(tx)
	if b.RC != "00" || b.RRN == a.RRN {
		t.Errorf("its resend once the journal keeps up: %s %q RRN %s; want a new request approved", b.RC, b.Reason, b.RRN)
	}
	if rulesRan != 1 {
		t.Errorf("rules run %d times for the admitted resend; want 1", rulesRan)
	}
	// A reversal of it goes on while the journal refuses new requests.
	refuse.Store(true)
	asked = 0
	if r := h.do(h.reversal(tx, 1000)); r.RC != "00" || asked != 0 {
		t.Errorf("its reversal while the journal refuses new requests: %s %q, admission asked %d times; want 00 and never", r.RC, r.Reason, asked)
	}
}

// TestJournalUnavailableSettles: what the journal did not take while it was unavailable
// is written when it is back: the final record (91 journal-unavailable) of each request
// answered so, kept open until then, and the reversal mark of an original whose 0420
// was queued. A resend then gets the 91 again, and crash recovery finds nothing open.
func TestJournalUnavailableSettles(t *testing.T) {
	cases := []struct {
		name     string
		opts     []option
		setup    func(h *harness) termclient.Txn // returns the request, the journal still up
		down     func(h *harness)
		up       func(h *harness)
		reversed string // the request's record's ReversedBy
		orig     string // an original that must end reversed by the request
		sent     bool   // the request's record says it went to the issuer
	}{
		{name: "write ahead not taken",
			down: func(h *harness) { h.j.failWrite = errNoQuorum }, up: func(h *harness) { h.j.failWrite = nil }},
		{name: "write ahead taken, though reported unavailable",
			down: func(h *harness) {
				h.j.writeHook = func(r *journal.Record, _ bool) error {
					if !r.Final() {
						h.j.store(r) // the write ahead reached the cluster (under the fake's lock)
					}
					return errNoQuorum
				}
			}, up: func(h *harness) { h.j.writeHook = nil }},
		{name: "write ahead not taken, and a replay of its KSN ordered first: kept without the KSN",
			opts: []option{withHSM, withTerminal(termDUKPT)},
			setup: func(h *harness) termclient.Txn {
				tx := h.purchase(1000)
				tx.PINBlock, tx.TLV = pinBlock, [][2]string{{message.TagKSN, "FFFF9876543210E00007"}}
				return tx
			},
			down: func(h *harness) { h.j.failWrite = errNoQuorum },
			up: func(h *harness) {
				h.j.failWrite = nil
				h.j.writeHook = func(r *journal.Record, first bool) error {
					if first && r.KSN != "" {
						return &journal.KSNReplayError{RRN: "200000000009"}
					}
					return nil
				}
			}},
		{name: "final record of an approval not taken", opts: []option{failFinal("")},
			up: func(h *harness) { h.j.writeHook = nil }, reversed: "switch:journal-unavailable", sent: true},
		{name: "void: original's reversal mark not taken",
			setup: func(h *harness) termclient.Txn {
				orig := h.approved(5000)
				return h.void(orig, 5000)
			},
			down: func(h *harness) { h.j.failWrite = errNoQuorum }, up: func(h *harness) { h.j.failWrite = nil },
			orig: "000000000001"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.opts...)
			tx := h.purchase(1000)
			if tc.setup != nil {
				tx = tc.setup(h)
			}
			if tc.down != nil {
				tc.down(h)
			}
			a := h.do(tx)
			if a.RC != "91" || a.Reason != "journal-unavailable" {
				t.Fatalf("answer %s %q", a.RC, a.Reason)
			}
			if ck := h.p.open.min(); ck != a.RRN {
				t.Fatalf("open set's lowest %q, want %s (kept open until its record is written)", ck, a.RRN)
			}
			h.p.settle(t.Context()) // still down: nothing changes
			if rec, err := h.j.Get(a.RRN); (err == nil && rec.Final()) || h.p.open.min() != a.RRN {
				t.Fatalf("settled while the journal is down: %+v, %v", rec, err)
			}
			tc.up(h)
			h.p.settle(t.Context())
			rec := h.record(a.RRN)
			if rec.KSN != "" {
				t.Fatalf("record %s carries KSN %s", rec.RRN, rec.KSN)
			}
			if rec.RC != "91" || rec.Reason != "journal-unavailable" || rec.DecidedBy != "journal" || rec.ReversedBy != tc.reversed {
				t.Fatalf("record %s %q by %s reversed by %q, want 91 journal-unavailable by journal reversed by %q",
					rec.RC, rec.Reason, rec.DecidedBy, rec.ReversedBy, tc.reversed)
			}
			// A trial found "sent" in the record of a request whose write ahead had
			// failed, which never reached the issuer.
			saysSent := false
			for _, e := range rec.Events {
				saysSent = saysSent || e.State == journal.StateSent
			}
			if saysSent != tc.sent {
				t.Fatalf("record %s says sent: %v, want %v (events %+v)", rec.RRN, saysSent, tc.sent, rec.Events)
			}
			if ck := h.p.open.min(); ck != "" {
				t.Fatalf("%s still open after its record was written", ck)
			}
			if tc.orig != "" {
				if o := h.record(tc.orig); o.ReversedBy != a.RRN {
					t.Fatalf("original reversed by %q, want %s", o.ReversedBy, a.RRN)
				}
			}
			if n, err := h.p.Recover(t.Context()); n != 0 || err != nil {
				t.Fatalf("recovery settled %d (%v): something was left open", n, err)
			}
			sent := len(h.bank.sent())
			if again := h.do(tx); again.RC != "91" || again.Reason != "journal-unavailable" || again.RRN != a.RRN || len(h.bank.sent()) != sent {
				t.Fatalf("resend %+v", again.Result)
			}
		})
	}
}

// nodeTwo runs tx on another node (a harness of its own whose RRNs start with 2) and
// returns its final record, as the cluster journal replicates it.
func nodeTwo(t *testing.T, tx termclient.Txn, opts ...option) *journal.Record {
	t.Helper()
	n2 := newHarness(t, append([]option{func(h *harness, _ *Config) { h.j.rrnPrefix = "2" }}, opts...)...)
	a := n2.do(tx)
	return n2.record(a.RRN)
}

// inFlight is the version of rec written ahead: sent to the issuer, no answer yet.
func inFlight(rec *journal.Record) *journal.Record {
	c := copyRecord(rec)
	c.RC, c.AuthCode, c.DecidedBy, c.Reason = "", "", "", ""
	c.Events = c.Events[:2]
	c.State = c.Events[1].State
	return c
}

// undelivered is rec final, its delivery not known yet (the mark not applied here):
// an approval another node's pipeline may still reverse.
func undelivered(rec *journal.Record) *journal.Record {
	c := copyRecord(rec)
	c.Events = slices.DeleteFunc(c.Events, func(e journal.Event) bool { return e.State == journal.StateResponded })
	c.State = c.Events[len(c.Events)-1].State
	return c
}

// reversedThere is rec as its node ends it when its answer did not reach the terminal.
func reversedThere(rec *journal.Record) *journal.Record {
	c := undelivered(rec)
	at := c.Events[len(c.Events)-1].At
	c.AddEvent(journal.StateUndeliver, at, "")
	c.AddEvent(journal.StateReversed, at, "switch:undelivered")
	c.ReversedBy = "switch:undelivered"
	return c
}

// TestClusterDuplicates: a request journaled first on another node (the journal's first
// write says so with a DuplicateError, or the duplicate index finds it not final yet) is
// a duplicate: nothing is forwarded, and it gets the first one's answer once that is
// final here, or 94 if its content differs, or 91 if the wait ends.
func TestClusterDuplicates(t *testing.T) {
	type setup = func(h *harness, orig *journal.Record)
	elsewhere := func(h *harness, orig *journal.Record) { // the write ahead finds the key taken
		h.j.dupOf[journal.DupKey(orig.TID, orig.STAN, orig.DE7)] = orig.RRN
	}
	seen := func(h *harness, orig *journal.Record) { // the applier told the filter
		h.p.SeenRemote(orig.TID, orig.STAN, orig.DE7, orig.Received)
	}
	// Records from a minute ago: every request is looked up in the journal.
	firstWindow := func(h *harness, _ *Config) { h.j.lastRecv = h.clock.Now().Add(-time.Minute) }
	shortWait := func(_ *harness, c *Config) { c.DupWait = 20 * time.Millisecond }
	cases := []struct {
		name      string
		opts      []option
		setup     []setup
		orig      func(orig *journal.Record) // changes node 2's record before the setup
		rc        string
		reason    string
		firstRRN  bool // the answer carries the first one's RRN
		auth      string
		records   int      // in this node's journal after
		queued    []string // "MTI reason"
		forwarded int      // this node's requests to the issuer
	}{
		{name: "duplicate error, original final here: its answer",
			setup: []setup{elsewhere, func(h *harness, o *journal.Record) { h.j.remote(o) }},
			rc:    "00", firstRRN: true, auth: "123456", records: 1},
		{name: "duplicate error, original in flight: waits for its answer",
			setup: []setup{elsewhere, func(h *harness, o *journal.Record) { h.j.remote(inFlight(o)); h.j.applyLater(o, 3) }},
			rc:    "00", firstRRN: true, auth: "123456", records: 1},
		{name: "duplicate error, original not applied here yet: waits",
			setup: []setup{elsewhere, func(h *harness, o *journal.Record) { h.j.applyLater(o, 2) }},
			rc:    "00", firstRRN: true, auth: "123456", records: 1},
		{name: "duplicate error, original declined: its decline",
			orig:  func(o *journal.Record) { o.RC, o.AuthCode, o.DecidedBy, o.Reason = "51", "", "issuer", "" },
			setup: []setup{elsewhere, func(h *harness, o *journal.Record) { h.j.applyLater(o, 1) }},
			rc:    "51", firstRRN: true, records: 1},
		{name: "duplicate error, original with another amount: 94",
			orig:  func(o *journal.Record) { o.Amount = 999 },
			setup: []setup{elsewhere, func(h *harness, o *journal.Record) { h.j.remote(o) }},
			rc:    "94", reason: "duplicate-key-other-content", records: 2},
		{name: "duplicate error, the wait ends: 91, nothing journaled", opts: []option{shortWait},
			setup: []setup{elsewhere, func(h *harness, o *journal.Record) { h.j.remote(inFlight(o)) }},
			rc:    "91", reason: "duplicate-in-flight", firstRRN: true, records: 1},
		{name: "duplicate error at a rules decline's only write: the first answer", opts: []option{withRisk},
			setup: []setup{elsewhere, func(h *harness, o *journal.Record) {
				h.j.remote(o)
				h.risk.decide = func(*risk.Input) risk.Decision {
					return risk.Decision{Action: risk.ActionDecline, ResponseCode: "59", Reason: "velocity-card", Rule: "R1"}
				}
			}},
			rc: "00", firstRRN: true, auth: "123456", records: 1},
		// The stand-in is written ahead before its advice is queued: the duplicate is
		// found there, and nothing is queued (before, a 0220 and its 0420).
		{name: "duplicate error at a stand-in approval: nothing queued, the first answer", opts: []option{withStandIn},
			setup: []setup{elsewhere, func(h *harness, o *journal.Record) { h.j.remote(o); h.bank.setUp(false) }},
			rc:    "00", firstRRN: true, auth: "123456", records: 1},
		{name: "duplicate index finds it in flight: waits for its answer", opts: []option{firstWindow},
			setup: []setup{func(h *harness, o *journal.Record) { h.j.remote(inFlight(o)); h.j.applyLater(o, 2) }},
			rc:    "00", firstRRN: true, auth: "123456", records: 1},
		{name: "duplicate index finds it in flight, the wait ends: 91", opts: []option{firstWindow, shortWait},
			setup: []setup{func(h *harness, o *journal.Record) { h.j.remote(inFlight(o)) }},
			rc:    "91", reason: "duplicate-in-flight", firstRRN: true, records: 1},
		{name: "duplicate error, original approved, its delivery not known here yet: waits for it",
			setup: []setup{elsewhere, func(h *harness, o *journal.Record) { h.j.remote(undelivered(o)); h.j.applyLater(o, 2) }},
			rc:    "00", firstRRN: true, auth: "123456", records: 1},
		{name: "duplicate error, original approved, its answer undelivered there: 91 approval-reversed",
			setup: []setup{elsewhere, func(h *harness, o *journal.Record) { h.j.remote(undelivered(o)); h.j.applyLater(reversedThere(o), 2) }},
			rc:    "91", reason: "approval-reversed", firstRRN: true, records: 1},
		{name: "duplicate index finds an approval whose delivery stays unknown: 91 when the wait ends", opts: []option{firstWindow, shortWait},
			setup: []setup{func(h *harness, o *journal.Record) { h.j.remote(undelivered(o)) }},
			rc:    "91", reason: "duplicate-in-flight", firstRRN: true, records: 1},
		{name: "seen on another node and final here: its answer from the journal",
			setup: []setup{seen, func(h *harness, o *journal.Record) { h.j.remote(o) }},
			rc:    "00", firstRRN: true, auth: "123456", records: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.opts...)
			tx := h.purchase(1000)
			orig := nodeTwo(t, tx)
			if tc.orig != nil {
				tc.orig(orig)
			}
			for _, s := range tc.setup {
				s(h, orig)
			}
			a := h.do(tx)
			if a.RC != tc.rc || a.Reason != tc.reason || a.AuthCode != tc.auth {
				t.Fatalf("answer %s %q auth %q, want %s %q auth %q", a.RC, a.Reason, a.AuthCode, tc.rc, tc.reason, tc.auth)
			}
			if (a.RRN == orig.RRN) != tc.firstRRN {
				t.Errorf("answer's RRN %s, the first one's %s", a.RRN, orig.RRN)
			}
			if n := len(h.bank.sent()); n != tc.forwarded {
				t.Errorf("issuer got %d requests, want %d", n, tc.forwarded)
			}
			if n := h.j.count(); n != tc.records {
				t.Errorf("journal holds %d records, want %d", n, tc.records)
			}
			if got := queued(h); fmt.Sprint(got) != fmt.Sprint(tc.queued) {
				t.Errorf("queued %q, want %q", got, tc.queued)
			}
			if ck := h.p.open.min(); ck != "" {
				t.Errorf("%s left in the open set", ck)
			}
			if tc.rc == "94" {
				if rec := h.record(a.RRN); rec.OriginalRRN != orig.RRN || rec.RC != "94" {
					t.Errorf("94 record %+v", rec)
				}
			}
		})
	}
}

// TestSeenRemote: a key another node journaled sends the same key here to the journal,
// where a fresh key is not looked up once the filter covers a window; keys from before
// the filter's reach (an applier catching up) are left out of it.
func TestSeenRemote(t *testing.T) {
	h := newHarness(t)
	h.do(h.purchase(100))
	if h.j.lookups != 0 {
		t.Fatalf("%d lookups for a fresh key", h.j.lookups)
	}
	tx := h.purchase(100)
	h.p.SeenRemote(tx.TID, tx.STAN, message.FormatDE7(tx.Time), h.clock.Now())
	old := h.purchase(100)
	h.p.SeenRemote(old.TID, old.STAN, message.FormatDE7(old.Time), h.clock.Now().Add(-time.Hour))
	h.do(tx)
	if h.j.lookups != 1 {
		t.Fatalf("%d lookups for a key seen on another node, want 1", h.j.lookups)
	}
	h.do(old)
	if h.j.lookups != 1 {
		t.Fatalf("%d lookups after a key seen an hour ago, want still 1", h.j.lookups)
	}
}

// TestClusterKSNReplay: a DUKPT request whose first write the cluster refuses because
// another node's record carried its KSN first is declined 63 dukpt-replay by the HSM,
// never sent to the issuer, and journaled without the KSN and without a "sent" event.
func TestClusterKSNReplay(t *testing.T) {
	const ksn = "FFFF9876543210E00001"
	h := newHarness(t, withHSM, withTerminal(termDUKPT))
	var firstWrites []*journal.Record
	h.j.writeHook = func(rec *journal.Record, first bool) error {
		if !first {
			return nil
		}
		firstWrites = append(firstWrites, copyRecord(rec))
		if rec.KSN != "" {
			return &journal.KSNReplayError{RRN: "200000000042"}
		}
		return nil
	}
	tx := h.purchase(100)
	tx.PINBlock = pinBlock
	tx.TLV = [][2]string{{message.TagKSN, ksn}}
	a := h.do(tx)
	if a.RC != "63" || a.Reason != "dukpt-replay" {
		t.Fatalf("answer %s %q; want 63 dukpt-replay", a.RC, a.Reason)
	}
	if n := len(h.bank.sent()); n != 0 {
		t.Fatalf("the issuer got %d requests", n)
	}
	if len(firstWrites) != 2 || firstWrites[0].KSN != ksn || firstWrites[0].State != journal.StateSent {
		t.Fatalf("first writes %d; want the write-ahead record (with the KSN, sent) refused, then the decline", len(firstWrites))
	}
	rec := h.record(a.RRN)
	if rec.RC != "63" || rec.Reason != "dukpt-replay" || rec.DecidedBy != "hsm" || rec.KSN != "" || rec.IssuerSTAN != "" {
		t.Fatalf("record: rc %s reason %q by %s KSN %q issuer STAN %q", rec.RC, rec.Reason, rec.DecidedBy, rec.KSN, rec.IssuerSTAN)
	}
	for _, e := range rec.Events {
		if e.State == journal.StateSent {
			t.Fatalf("the record says sent: %+v", rec.Events)
		}
	}
	if items := h.q.all(); len(items) != 0 {
		t.Fatalf("queued %d items for a request never sent", len(items))
	}
}

// TestClusterReversalOfOriginalInFlight: a terminal's reversal reaching this node while
// its original is in flight on another node waits for the original's answer, and
// reverses it if approved; if the wait ends it is answered 91 original-in-flight,
// journaled nowhere, so that the terminal sends it again.
func TestClusterReversalOfOriginalInFlight(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   []option
		later  bool // the original's answer arrives
		rc     string
		reason string
		queued int
	}{
		{name: "original approved meanwhile: reversed", later: true, rc: "00", queued: 1},
		{name: "wait ends: 91", opts: []option{func(_ *harness, c *Config) { c.DupWait = 20 * time.Millisecond }},
			rc: "91", reason: "original-in-flight"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.opts...)
			tx := h.purchase(1000)
			orig := nodeTwo(t, tx)
			h.j.remote(inFlight(orig))
			if tc.later {
				h.j.applyLater(orig, 2)
			}
			a := h.do(h.reversal(tx, 1000))
			if a.RC != tc.rc || a.Reason != tc.reason {
				t.Fatalf("reversal answered %s %q, want %s %q", a.RC, a.Reason, tc.rc, tc.reason)
			}
			if n := len(h.q.all()); n != tc.queued {
				t.Fatalf("queued %d, want %d", n, tc.queued)
			}
			if tc.queued > 0 {
				checkReversalAdvice(t, h.q.all(), h.record(orig.RRN), a.RRN)
			} else if h.j.count() != 1 {
				t.Fatalf("journal holds %d records, want the original only", h.j.count())
			}
			if ck := h.p.open.min(); ck != "" {
				t.Fatalf("%s left open", ck)
			}
		})
	}
}

// TestReversalAdviceRetried: an issuer timeout owes a reversal; when the queue does not
// take its advice (a cluster's queue while its stream elects a leader) the answer is
// still 91, and the housekeeping queues the advice on a later try and marks the record
// reversed. It was dropped with a log line, the issuer keeping the approval.
func TestReversalAdviceRetried(t *testing.T) {
	h := newHarness(t)
	h.bank.script(func(sent) (*iso8583.Message, error) { return nil, ErrIssuerTimeout })
	h.queueRefuses(true)
	a := h.do(h.purchase(1000))
	if a.RC != "91" {
		t.Fatalf("answer %s, want 91", a.RC)
	}
	if rec := h.record(a.RRN); rec.ReversedBy != "" || len(h.q.all()) != 0 {
		t.Fatalf("reversed by %q with %d advices queued while the queue refuses", rec.ReversedBy, len(h.q.all()))
	}
	h.p.retryAdvices() // still refused: kept
	if h.p.owedAdvices.len() != 1 {
		t.Fatalf("%d advices kept, want 1", h.p.owedAdvices.len())
	}
	h.queueRefuses(false)
	h.p.retryAdvices()
	h.p.settle(t.Context())
	items := h.q.all()
	if len(items) != 1 || items[0].MTI != "0420" || items[0].RRN != a.RRN || h.p.owedAdvices.len() != 0 {
		t.Fatalf("queued %+v, %d still kept; want the 0420 of %s", items, h.p.owedAdvices.len(), a.RRN)
	}
	if rec := h.record(a.RRN); rec.ReversedBy == "" {
		t.Fatalf("record %s not marked reversed after its advice was queued", a.RRN)
	}
}

// TestLateOrderRefundOwedOnce: a late QR payment whose refund the queue refuses is
// notified again (the network repeating the 500) while the queue still refuses: one
// advice is owed, not one per repeat; a repeat once the queue is back queues the
// refund itself, and the owed advice, its original found reversed under its lock,
// is dropped: one 0420. The other way round, the owed advice queued first marks its
// record reversed under the lock at once, and the repeat queues nothing. Each repeat
// used to add an owed advice, all queued (four 0420s for one payment).
func TestLateOrderRefundOwedOnce(t *testing.T) {
	count := func(h *harness, rrn string) (n int) {
		for _, it := range h.q.all() {
			if it.RRN == rrn && it.MTI == "0420" {
				n++
			}
		}
		return n
	}
	for _, repeatFirst := range []bool{true, false} {
		h := newHarness(t)
		h.queueRefuses(true)
		op := OrderPayment{RRN: "000000009999", TID: testTID, MID: testMID, Currency: "156", Amount: 700, Network: "wechat",
			Connector: "bank", AuthCode: "654321", At: h.clock.Now(), Late: true}
		for i := range 3 {
			if _, err := h.p.RecordOrderPayment(t.Context(), op); err == nil {
				t.Fatalf("notification %d taken while the queue refuses its refund", i+1)
			}
		}
		if n := h.p.owedAdvices.len(); n != 1 {
			t.Fatalf("%d advices owed after three notifications, want 1", n)
		}
		h.queueRefuses(false)
		if repeatFirst {
			if _, err := h.p.RecordOrderPayment(t.Context(), op); err != nil {
				t.Fatalf("repeat once the queue is back: %v", err)
			}
			h.p.retryAdvices()
		} else {
			h.p.retryAdvices()
			if rec := h.record(op.RRN); rec.ReversedBy != "switch:qr-order-late" {
				t.Fatalf("owed advice queued, record reversed by %q", rec.ReversedBy)
			}
			if _, err := h.p.RecordOrderPayment(t.Context(), op); err != nil {
				t.Fatalf("repeat once the queue is back: %v", err)
			}
		}
		h.p.settle(t.Context())
		if n, owed := count(h, op.RRN), h.p.owedAdvices.len(); n != 1 || owed != 0 {
			t.Errorf("repeat first %v: %d 0420s queued for %s, %d still owed; want 1 and 0", repeatFirst, n, op.RRN, owed)
		}
		if rec := h.record(op.RRN); rec.ReversedBy != "switch:qr-order-late" {
			t.Errorf("repeat first %v: record reversed by %q", repeatFirst, rec.ReversedBy)
		}
	}
}

// TestStandInTakenBackSurvivesRestart: a stand-in approval whose advice (0220) the
// queue took, but whose final record the journal did not (the quorum lost at that
// moment), is taken back: the terminal gets 91 and a reversal (0420) is owed. When
// the queue refuses that reversal too (the same quorum loss) it is kept in memory
// only; a restart before the quorum returns must not leave the 0220 alone in the
// queue, or the issuer, once back, books a stand-in approval the terminal was told
// was declined. Either the restarted node's recovery reverses it, or nothing of it
// is queued at all.
func TestStandInTakenBackSurvivesRestart(t *testing.T) {
	h := newHarness(t, withStandIn)
	h.bank.setUp(false)
	// The quorum goes as the final record is written: the journal refuses it, and
	// the queue, which took the 0220 a moment before, refuses what follows.
	h.j.writeHook = func(r *journal.Record, _ bool) error {
		if r.Final() {
			h.queueRefuses(true)
			return errNoQuorum
		}
		return nil
	}
	a := h.do(h.purchase(1000))
	if a.RC != "91" || a.AuthCode != "" {
		t.Fatalf("answer %s %q auth %q, want 91 without an approval", a.RC, a.Reason, a.AuthCode)
	}
	if got := queued(h); fmt.Sprint(got) != "[0220 stand-in]" {
		t.Fatalf("queued %q before the restart, want the stand-in advice alone (its reversal refused)", got)
	}
	if n := h.p.owedAdvices.len(); n != 1 {
		t.Fatalf("%d reversal advices owed in memory, want 1", n)
	}
	// The node restarts (its memory lost) while the quorum is still lost, then
	// the quorum returns and the restarted node recovers what its last run left.
	h.p.Stop()
	h.j.writeHook = nil
	h.queueRefuses(false)
	h2 := newHarness(t, withStandIn, func(h2 *harness, _ *Config) { h2.j, h2.q = h.j, h.q })
	if _, err := h2.p.Recover(t.Context()); err != nil {
		t.Fatal(err)
	}
	var advice, reversal int
	for _, it := range h.q.all() {
		if it.RRN != a.RRN {
			continue
		}
		switch it.MTI {
		case "0220":
			advice++
		case "0420":
			reversal++
		}
	}
	if advice > 0 && reversal == 0 {
		t.Fatalf("after the restart the queue holds the stand-in advice (0220) of %s, answered 91, and no reversal: "+
			"the issuer will book an approval the terminal was told was declined (queued %q)", a.RRN, queued(h))
	}
}

// TestOwedReversalSurvivesRestart: an issuer timeout owes a reversal (the issuer may
// have approved); when the queue does not take its 0420 (a cluster's SAF stream
// without a quorum, or electing a leader for longer than the enqueue's 12 s) the
// record is written final (91, not reversed) and the advice is kept in memory only,
// tried again every 5 s. A restart (or a kill, recovered by a survivor) before it is
// queued must still reverse the transaction: the record says it timed out and is
// not reversed, and nothing else will ever send its 0420.
func TestOwedReversalSurvivesRestart(t *testing.T) {
	h := newHarness(t)
	h.bank.script(func(sent) (*iso8583.Message, error) { return nil, ErrIssuerTimeout })
	h.queueRefuses(true)
	a := h.do(h.purchase(1000))
	if a.RC != "91" {
		t.Fatalf("answer %s, want 91", a.RC)
	}
	if n := h.p.owedAdvices.len(); n != 1 {
		t.Fatalf("%d reversal advices owed, want 1", n)
	}
	// Later transactions, delivered, move the recovery checkpoint on; it must not
	// pass the record whose reversal is owed in memory.
	h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer("00", "123456"), nil })
	if b := h.do(h.purchase(500)); b.RC != "00" {
		t.Fatalf("later purchase answered %s", b.RC)
	}
	h.p.checkpoint()
	h.p.Stop() // logs "stopping with reversal advices the queue did not take: NOT queued"
	h.queueRefuses(false)
	// The restart: a new pipeline on the same journal and queue; its recovery
	// scans from the checkpoint.
	h2 := newHarness(t, func(h2 *harness, _ *Config) { h2.j, h2.q = h.j, h.q })
	if _, err := h2.p.Recover(t.Context()); err != nil {
		t.Fatal(err)
	}
	rec := h.record(a.RRN)
	reversal := 0
	for _, it := range h.q.all() {
		if it.RRN == a.RRN && it.MTI == "0420" {
			reversal++
		}
	}
	if reversal != 1 {
		t.Fatalf("after the restart %d reversal advices queued for the timed-out %s (record rc %s, reason %q, reversed by %q); "+
			"want 1: the issuer may have approved, the terminal was told 91", reversal, a.RRN, rec.RC, rec.Reason, rec.ReversedBy)
	}
}
