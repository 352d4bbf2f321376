package server

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/switch/journal"
)

// settleJournal is a journal in a temporary directory and a writer of records into
// it, each received at the time given, with the next RRN.
func settleJournal(t *testing.T) (*journal.Store, func(r *journal.Record) *journal.Record) {
	t.Helper()
	dir := t.TempDir()
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "db")).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(db, journal.Options{Dir: filepath.Join(dir, "log"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close(); _ = db.Close() })
	n := 0
	return j, func(r *journal.Record) *journal.Record {
		t.Helper()
		n++
		if r.RRN == "" {
			r.RRN = fmt.Sprintf("0000000%05d", n)
		}
		r.STAN = fmt.Sprintf("%06d", n)
		r.DE7 = r.Received.UTC().Format("0102150405")
		if r.MID == "" {
			r.MID = "000000000000001"
		}
		if r.TID == "" {
			r.TID = "T0000001"
		}
		if r.Events == nil {
			r.AddEvent(journal.StateReceived, r.Received, "")
			r.AddEvent(journal.StateAnswered, r.Received, "")
		}
		if err := j.Write(t.Context(), r, true, true); err != nil {
			t.Fatal(err)
		}
		return r
	}
}

// TestSettlementTotalsPerCurrency: a day with purchases in yuan and in dollars has a
// total per currency; no line, merchant total or total adds fen to cents. (Until 5
// December 2026 the report's one total added every currency together: 10,000 fen and
// 2,500 cents made a "net" of 12,500 in no currency, which the settlement file's
// total row and the task's summary gave.)
func TestSettlementTotalsPerCurrency(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	noon := time.Date(2026, 12, 3, 12, 0, 0, 0, loc)
	j, write := settleJournal(t)
	write(&journal.Record{Received: noon, MTI: "0200", Type: "purchase", RC: "00", Amount: 10000, Currency: "156"})
	write(&journal.Record{Received: noon.Add(time.Minute), MTI: "0200", Type: "purchase", RC: "00", Amount: 2500, Currency: "840"})
	write(&journal.Record{Received: noon.Add(2 * time.Minute), MTI: "0200", Type: "refund", RC: "00", Amount: 500, Currency: "840"})

	rep, err := Settle(t.Context(), j, "2026-12-03", loc)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]SettlementLine{
		"156": {Currency: "156", PurchaseCount: 1, PurchaseAmount: 10000, Net: 10000},
		"840": {Currency: "840", PurchaseCount: 1, PurchaseAmount: 2500, RefundCount: 1, RefundAmount: 500, Net: 2000},
	}
	if len(rep.Totals) != 2 {
		t.Fatalf("totals %+v: want one per currency", rep.Totals)
	}
	for _, tot := range rep.Totals {
		if tot != want[tot.Currency] {
			t.Errorf("total in %s: %+v, want %+v", tot.Currency, tot, want[tot.Currency])
		}
	}
	if rep.Total != nil {
		t.Errorf("a total across currencies: %+v", *rep.Total)
	}
	var buf bytes.Buffer
	if err := rep.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	totals := 0
	for _, row := range rows[1:] {
		if row[1] != "total" {
			continue
		}
		totals++
		if w := want[row[4]]; row[4] == "" || row[9] != fmt.Sprint(w.Net) {
			t.Errorf("CSV total row %q: want the net of currency %q, %d", row, row[4], w.Net)
		}
	}
	if totals != 2 {
		t.Errorf("CSV %d total rows, want one per currency:\n%s", totals, buf.String())
	}

	// A day in one currency keeps its single total.
	j1, write1 := settleJournal(t)
	write1(&journal.Record{Received: noon, MTI: "0200", Type: "purchase", RC: "00", Amount: 10000, Currency: "156"})
	rep, err = Settle(t.Context(), j1, "2026-12-03", loc)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total == nil || *rep.Total != want["156"] || len(rep.Totals) != 1 {
		t.Errorf("one currency: total %v, totals %+v", rep.Total, rep.Totals)
	}
}

// reverse marks r reversed by by at at, as the pipeline does (its reversal mark and a
// reversed event), and writes it.
func reverse(t *testing.T, j *journal.Store, r *journal.Record, by string, at time.Time) {
	t.Helper()
	r.ReversedBy = by
	r.AddEvent(journal.StateReversed, at.UTC(), by)
	if err := j.Write(t.Context(), r, false, true); err != nil {
		t.Fatal(err)
	}
}

// TestSettlementStableAfterCutOff: the report of a day does not change once the day
// is over, and what happens afterwards to its transactions is in the report of the
// day it happens. A purchase of 23:59 reversed by its terminal at 00:20, a completion
// reversed by the switch's recovery at 00:30 (no reversal record) and a refund
// reversed at 00:40, all after the settlement file of the day was written at 00:15:
// the day's report as run again still counts them (the file paid them out), and the
// next day's takes them back. Over the two files every reversed transaction nets to
// nothing. (Until 5 December 2026 a report left out whatever was reversed by the time
// it ran, whenever: the file of 00:15 had paid the merchant for the purchase, and no
// file ever took it back.)
func TestSettlementStableAfterCutOff(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	midnight := time.Date(2026, 12, 4, 0, 0, 0, 0, loc)
	j, write := settleJournal(t)
	// Written in the order received, as RRNs are taken.
	old := write(&journal.Record{Received: midnight.Add(-36 * time.Hour), MTI: "0200", Type: "purchase", RC: "00", Amount: 2000, Currency: "156"})
	kept := write(&journal.Record{Received: midnight.Add(-2 * time.Hour), MTI: "0200", Type: "purchase", RC: "00", Amount: 1000, Currency: "156"})
	sameDay := write(&journal.Record{Received: midnight.Add(-time.Hour), MTI: "0200", Type: "purchase", RC: "00", Amount: 900, Currency: "156"})
	reverse(t, j, sameDay, "switch:undelivered", midnight.Add(-time.Hour+time.Second))
	sale := write(&journal.Record{Received: midnight.Add(-30 * time.Second), MTI: "0200", Type: "purchase", RC: "00", Amount: 7000, Currency: "156"})
	comp := write(&journal.Record{Received: midnight.Add(-20 * time.Second), MTI: "0220", Type: "completion", RC: "00", Amount: 3000, Currency: "156"})
	refund := write(&journal.Record{Received: midnight.Add(-10 * time.Second), MTI: "0200", Type: "refund", RC: "00", Amount: 400, Currency: "156", OriginalRRN: kept.RRN})

	file, err := Settle(t.Context(), j, "2026-12-03", loc) // the cut-off at 00:15
	if err != nil {
		t.Fatal(err)
	}
	if file.Total == nil || file.Total.PurchaseCount != 3 || file.Total.PurchaseAmount != 11000 || file.Total.RefundAmount != 400 || file.Total.Net != 10600 {
		t.Fatalf("the day's file: %+v", file.Total)
	}

	rev := write(&journal.Record{Received: midnight.Add(20 * time.Minute), MTI: "0400", Type: "reversal", RC: "00", Amount: 7000, Currency: "156", OriginalRRN: sale.RRN})
	reverse(t, j, sale, rev.RRN, midnight.Add(20*time.Minute))
	reverse(t, j, comp, "switch:recovered", midnight.Add(30*time.Minute))
	rrev := write(&journal.Record{Received: midnight.Add(40 * time.Minute), MTI: "0400", Type: "reversal", RC: "00", Amount: 400, Currency: "156", OriginalRRN: refund.RRN})
	reverse(t, j, refund, rrev.RRN, midnight.Add(40*time.Minute))
	// A terminal's reversal names its original of any age (beyond the look-back).
	orev := write(&journal.Record{Received: midnight.Add(50 * time.Minute), MTI: "0400", Type: "reversal", RC: "00", Amount: 2000, Currency: "156", OriginalRRN: old.RRN})
	reverse(t, j, old, orev.RRN, midnight.Add(50*time.Minute))
	write(&journal.Record{Received: midnight.Add(time.Hour), MTI: "0200", Type: "purchase", RC: "00", Amount: 500, Currency: "156"})

	again, err := Settle(t.Context(), j, "2026-12-03", loc)
	if err != nil {
		t.Fatal(err)
	}
	if *again.Total != *file.Total || len(again.Lines) != len(file.Lines) || again.Lines[0] != file.Lines[0] {
		t.Errorf("the day's report run again: %+v, the file had %+v", again.Total, file.Total)
	}
	next, err := Settle(t.Context(), j, "2026-12-04", loc)
	if err != nil {
		t.Fatal(err)
	}
	want := SettlementLine{Currency: "156", PurchaseCount: 1, PurchaseAmount: 500,
		LateReversalCount: 3, LateReversalAmount: 12000, LateRefundReversalCount: 1, LateRefundReversalAmount: 400,
		Net: 500 - 12000 + 400}
	if next.Total == nil || *next.Total != want {
		t.Errorf("the next day: %+v, want %+v", next.Total, want)
	}
	if got := file.Total.Net + next.Total.Net; got != 1000+500-2000 {
		t.Errorf("the two files net %d, want the two purchases that stand less the earlier day's purchase reversed, %d", got, 1000+500-2000)
	}
}
