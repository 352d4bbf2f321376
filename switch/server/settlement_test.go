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
