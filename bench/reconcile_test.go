package bench

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/journal"
)

var faultT0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// at is faultT0 plus s seconds.
func at(s float64) time.Time { return faultT0.Add(time.Duration(s * float64(time.Second))) }

// faultFixture is a fault run in miniature: an outage from 30 s to 60 s, the after
// window up to 120 s, a kill at 120 s and the restarted switch ready at 121 s, with one
// transaction for each case the reconciliation tells apart.
func faultFixture() ([]faultTxn, []issuersim.Entry, []*journal.Record, map[string]bool, faultTimeline) {
	tl := faultTimeline{OutageStart: at(30), OutageEnd: at(60), AfterWindow: 60 * time.Second, KillAt: at(120), RestartedAt: at(121),
		Drop: 0.05, Late: 0.05, IssuerTimeout: 2 * time.Second, LateBy: 3 * time.Second, Outage: 30 * time.Second, OutageMode: "down"}
	txn := func(key, label string, sent, answered float64, rc, rrn string) faultTxn {
		t := faultTxn{Key: key, Label: label, Sent: at(sent), RC: rc, RRN: rrn}
		if answered > 0 {
			t.Answered = at(answered)
		}
		return t
	}
	txns := []faultTxn{
		txn("A", LabelLegit, 1, 1.01, "00", "01"),          // delivered approval
		txn("B", LabelLegit, 2, 4, "91", "02"),             // late: 91, reversed by the switch
		txn("C", LabelLegit, 3, 5, "91", "03"),             // approved, answer lost, never reversed
		txn("D", LabelLegit, 40, 41, "91", "04"),           // in the outage
		txn("E", LabelLegit, 29.9, 31, "91", "05"),         // overlaps the outage's start
		txn("F", LabelLegit, 61, 62.5, "00", "06"),         // first issuer approval after the return
		txn("G", LabelLegit, 60.5, 61, "00", "07"),         // approved in stand-in: not the issuer's
		txn("H", LabelLegit, 70, 70.01, "59", "08"),        // declined by the rules after the outage
		txn("I", LabelLegit, 119.9, 0, "", ""),             // in flight at the kill
		txn("J", LabelLegit, 122, 122.3, "00", "10"),       // first approval after the restart
		txn("K", LabelLegit, 80, 80.01, "00", "11"),        // answered, not journaled
		txn("L", LabelLegit, 90, 90.01, "00", "13"),        // approved twice by the issuer
		txn("M", LabelLegit, 95, 95.01, "00", "16"),        // delivered, then reversed by the switch
		txn("N", "legitimate-echo", 100, 100.01, "00", ""), // not an authorization
	}
	led := []issuersim.Entry{
		{RRN: "01", Requests: 1, Approved: true},
		{RRN: "02", Requests: 1, Approved: true, Reversed: true, ReversedAt: at(5), Fault: "delayed"},
		{RRN: "03", Requests: 1, Approved: true},
		{RRN: "06", Requests: 1, Approved: true},
		{RRN: "07", Advices: 1, Approved: true, StandIn: true},
		{RRN: "09", Requests: 1, Approved: true, Reversed: true, ReversedAt: at(125)},
		{RRN: "10", Requests: 1, Approved: true},
		{RRN: "12", Requests: 1, Approved: true}, // not journaled, not delivered
		{RRN: "13", Requests: 2, Approved: true},
		{RRN: "16", Requests: 1, Approved: true, Reversed: true, ReversedAt: at(96.5)},
		{RRN: "99", Requests: 1, Approved: true}, // the readiness probe, before the load
	}
	rec := func(rrn, tid, stan, by, rc, reversedBy string, reversed float64) *journal.Record {
		r := &journal.Record{RRN: rrn, TID: tid, STAN: stan, DE7: "1201100000", Type: "purchase", DecidedBy: by, RC: rc, ReversedBy: reversedBy}
		r.AddEvent(journal.StateReceived, faultT0, "")
		if reversed > 0 {
			r.AddEvent(journal.StateReversed, at(reversed), reversedBy)
		}
		return r
	}
	recs := []*journal.Record{
		rec("01", "LT1", "000001", "issuer", "00", "", 0),
		rec("02", "LT1", "000002", "switch", "91", "switch:timeout", 4),
		rec("03", "LT1", "000003", "switch", "91", "", 0),
		rec("04", "LT1", "000004", "switch", "91", "", 0),
		rec("05", "LT1", "000005", "switch", "91", "", 0),
		rec("06", "LT1", "000006", "issuer", "00", "", 0),
		rec("07", "LT1", "000007", "stand-in", "00", "", 0),
		rec("08", "LT1", "000008", "risk", "59", "", 0),
		rec("09", "LT1", "000009", "", "", "switch:restart", 121.5),
		rec("10", "LT1", "000010", "issuer", "00", "", 0),
		rec("13", "LT1", "000013", "issuer", "00", "", 0),
		rec("14", "LT2", "000001", "issuer", "00", "", 0), // one terminal request...
		rec("15", "LT2", "000001", "issuer", "00", "", 0), // ...approved twice
		rec("16", "LT1", "000016", "issuer", "00", "switch:undelivered", 96),
	}
	return txns, led, recs, map[string]bool{"99": true}, tl
}

func TestReconcile(t *testing.T) {
	txns, led, recs, base, tl := faultFixture()
	fr := reconcile(txns, led, recs, base, tl)
	finding := func(rrns ...string) Finding { return Finding{Count: int64(len(rrns)), Examples: rrns} }
	want := &FaultResult{Drop: 0.05, Late: 0.05, LateBy: 3 * time.Second, IssuerTimeout: 2 * time.Second, Outage: 30 * time.Second,
		OutageMode: "down", AfterWindow: 60 * time.Second, Kill: true,
		Sent: 14, Answered: 13, Unanswered: 1,
		// Outside the outage: A B C H J K L M; the 91s B and C, of which only B's
		// answer the issuer delayed. G and F were sent between the issuer's return and
		// the first approval (62.5 s), while the links reconnected.
		Outside91: 2, OutsideAnswered: 8, Share91: 0.25, OutsideFaulty: 1, FaultShare: 0.125, GapAnswered: 2,
		ReturnToApproval: 2500 * time.Millisecond, RestartToApproval: 1300 * time.Millisecond,
		// Before: A B C E; after (60-120 s): F G H K L M.
		RuleDeclinesBefore: 0, LegitBefore: 4, RuleDeclinesAfter: 1, LegitAfter: 6,
		IssuerApprovals: 9, // 01 02 03 06 09 10 12 13 16
		ReversalsOwed:   3, ReversalsDelivered: 3, ReversalP50: time.Second, ReversalMax: 3500 * time.Millisecond,
		Lost:                  finding("11", "12"),
		DoubleAuthorizations:  finding("13", "15"),
		UndeliveredUnreversed: finding("03", "12"),
		DeliveredReversed:     finding("16"),
	}
	if !reflect.DeepEqual(fr, want) {
		t.Errorf("reconcile:\n got %+v\nwant %+v", fr, want)
	}

	met := map[string]bool{}
	for _, tg := range fr.Targets() {
		met[tg.Name] = tg.Met
	}
	wantMet := map[string]bool{
		"91s outside the outage":                                false,
		"issuer's return to the first approval":                 true,
		"legitimate rule declines in the 1m0s after the outage": false,
		"reversals owed delivered to the issuer":                true,
		"lost (issuer approval or answer not journaled)":        false,
		"double authorizations":                                 false,
		"approvals neither delivered nor reversed":              false,
		"delivered approvals reversed by the switch":            false,
	}
	if !reflect.DeepEqual(met, wantMet) {
		t.Errorf("targets met:\n got %v\nwant %v", met, wantMet)
	}
}

// TestReconcileClean is a run that meets every target: no approval left hanging.
func TestReconcileClean(t *testing.T) {
	txns, led, recs, base, tl := faultFixture()
	keep := map[string]bool{"A": true, "D": true, "F": true, "J": true}
	var clean []faultTxn
	for _, x := range txns {
		if keep[x.Key] {
			clean = append(clean, x)
		}
	}
	var cleanLed []issuersim.Entry
	for _, e := range led {
		if e.RRN == "01" || e.RRN == "06" || e.RRN == "10" || e.RRN == "99" {
			cleanLed = append(cleanLed, e)
		}
	}
	var cleanRecs []*journal.Record
	for _, r := range recs {
		if r.RRN == "01" || r.RRN == "04" || r.RRN == "06" || r.RRN == "10" {
			cleanRecs = append(cleanRecs, r)
		}
	}
	fr := reconcile(clean, cleanLed, cleanRecs, base, tl)
	for _, tg := range fr.Targets() {
		if !tg.Met {
			t.Errorf("target %q missed: measured %v, goal %s", tg.Name, tg.Measured, tg.Goal)
		}
	}
}

// TestReconcileNoReturn: without an issuer approval after the outage the return target
// is missed and its figure is not a number, which the reports show as "-" and "none
// came", and the JSON as 0.
func TestReconcileNoReturn(t *testing.T) {
	txns, led, recs, base, tl := faultFixture()
	tl.KillAt, tl.RestartedAt = time.Time{}, time.Time{}
	fr := reconcile(txns[:5], led, recs, base, tl)
	if fr.ReturnToApproval != -1 || fr.Kill || fr.RestartToApproval != 0 {
		t.Fatalf("return %v, kill %v, restart %v", fr.ReturnToApproval, fr.Kill, fr.RestartToApproval)
	}
	tg := fr.Targets()[1]
	if tg.Met || !math.IsNaN(tg.Measured) {
		t.Errorf("return target %+v: want missed, NaN", tg)
	}
	r := &Result{Scenario: "faults", Faults: fr, Targets: fr.Targets()}
	var table, js bytes.Buffer
	r.WriteTable(&table)
	if !strings.Contains(table.String(), "none came") || strings.Contains(table.String(), "restarted switch") {
		t.Errorf("table:\n%s", table.String())
	}
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	back, err := ReadResult(&js)
	if err != nil {
		t.Fatal(err)
	}
	if back.Faults == nil || back.Faults.ReturnToApproval != -1 || back.Targets[1].Measured != 0 {
		t.Errorf("JSON round trip: %+v", back.Faults)
	}
}

// TestFaultReports checks that the table, the JSON and the HTML carry the fault figures,
// the targets and the note on a shortened window, and no cost figures of a speed run.
func TestFaultReports(t *testing.T) {
	txns, led, recs, base, tl := faultFixture()
	fr := reconcile(txns, led, recs, base, tl)
	fr.Notes = []string{"the window after the outage is 1m0s, not the issue's 10 minutes (--after-outage)"}
	fr.Schedule = Schedule{OutageStart: 30, OutageEnd: 60, Kill: 120, Ready: 121}
	_, lr := (&faultLoad{txns: txns}).result(faultT0, at(130))
	r := &Result{Started: faultT0, Scenario: "faults", Settings: Settings{Terminals: 50, Conns: 8, Duration: 130 * time.Second, Rate: 200},
		Switch: lr.Phase(phaseName(200, fr.Schedule)), Faults: fr, Targets: fr.Targets()}
	var table bytes.Buffer
	r.WriteTable(&table)
	for _, want := range []string{"faults and reconciliation", "91s outside the outage", "2 of 8 (25.00%)", "2.50 s", "1.30 s",
		"1 of 6 (16.67%)", "3 / 3", "1.00 s / 3.50 s", "2: 11 12", "from 30.0 s to 60.0 s", "at 120.0 s, ready again at 121.0 s", "note: the window after the outage is 1m0s", "targets: 2 of 8 met"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	if strings.Contains(table.String(), "relay throughput") || strings.Contains(table.String(), "CPU per authorization") {
		t.Errorf("table shows the speed run's cost figures:\n%s", table.String())
	}
	var page bytes.Buffer
	if err := r.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Faults and reconciliation", "approvals neither delivered nor reversed", "Note: the window after",
		"switch, open loop at 200/s under faults: issuer outage 30.0-60.0 s, kill -9 at 120.0 s (ready at 121.0 s)"} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("page lacks %q", want)
		}
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	back, err := ReadResult(&js)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Faults, fr) {
		t.Errorf("JSON round trip:\n got %+v\nwant %+v", back.Faults, fr)
	}
	if lr.Errors != 1 || lr.Answered != 13 || lr.Codes["91"] != 4 || lr.Failed != 4 || lr.Hist.TotalCount() != 13 {
		t.Errorf("load result: errors %d, answered %d, codes %v, failed %d, histogram %d: want the 4 91s failed, and in the histogram",
			lr.Errors, lr.Answered, lr.Codes, lr.Failed, lr.Hist.TotalCount())
	}
}

func TestOwedReversals(t *testing.T) {
	_, led, recs, _, _ := faultFixture()
	if n := owedReversals(recs, led); n != 0 {
		t.Errorf("owed %d, want 0", n)
	}
	if n := owedReversals(recs, led[:1]); n != 3 {
		t.Errorf("owed %d with no reversal at the issuer, want 3", n)
	}
}
