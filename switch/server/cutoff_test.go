package server

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/journal"
)

// testClock is a clock a test sets; every read of it is signalled on read (one kept).
type testClock struct {
	mu   sync.Mutex
	t    time.Time
	read chan struct{}
}

func newTestClock(t time.Time) *testClock {
	return &testClock{t: t, read: make(chan struct{}, 1)}
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case c.read <- struct{}{}:
	default:
	}
	return c.t
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// openRecord writes the write-ahead version of a purchase received at at: sent to
// its issuer, no outcome yet.
func openRecord(at time.Time, amount int64) *journal.Record {
	r := &journal.Record{Received: at, MTI: "0200", Type: "purchase", Amount: amount, Currency: "156", Issuer: "demo"}
	r.AddEvent(journal.StateReceived, at.UTC(), "")
	r.AddEvent(journal.StateSent, at.UTC(), "")
	return r
}

// approve writes r's final version, approved by its issuer at at.
func approve(t *testing.T, j *journal.Store, r *journal.Record, at time.Time) {
	t.Helper()
	r.RC, r.AuthCode, r.DecidedBy = "00", "A00001", "issuer"
	r.AddEvent(journal.StateAnswered, at.UTC(), "")
	if err := j.Write(t.Context(), r, false, true); err != nil {
		t.Fatal(err)
	}
}

// fileTotal reads the total row of a settlement file of one currency: purchase
// count and amount, late payment count and amount, net.
func fileTotal(t *testing.T, path string) (count, amount, lateCount, lateAmount, net string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows[1:] {
		if row[1] == "total" {
			return row[5], row[6], row[14], row[15], row[9]
		}
	}
	return "0", "0", "0", "0", "0"
}

// TestSettlementCutOffWaitsForTheDaysApprovals: an operator's cut-off at 00:00:00
// (the default is 00:15). A purchase received at 23:59:59, its write-ahead record
// journaled before midnight, is approved by its issuer at 00:00:02. The cut-off read
// the journal at once, saw it without an outcome and left it out of the day's file;
// the next day's report skipped it as received the day before: it was never paid.
// Now the cut-off waits, on the switch's clock, until the day's close (its end plus
// settleClose plus settleGrace) and the file has it; the next day's report does not
// pay it again. A purchase of 23:59:50 still open at the close (its node stopped) is
// left out of the file, which says so, and is paid by the day its approval is
// decided in, once, when it comes at 00:20.
func TestSettlementCutOffWaitsForTheDaysApprovals(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	midnight := time.Date(2026, 12, 4, 0, 0, 0, 0, loc)
	final := midnight.Add(settleClose + settleGrace)
	j, write := settleJournal(t)
	write(&journal.Record{Received: midnight.Add(-12 * time.Hour), MTI: "0200", Type: "purchase", RC: "00", Amount: 1000, Currency: "156"})
	stuck := write(openRecord(midnight.Add(-10*time.Second), 300))
	last := write(openRecord(midnight.Add(-time.Second), 7000))

	dir := t.TempDir()
	clock := newTestClock(midnight) // the slot's time
	s := &Server{cfg: &config.Config{Timezone: loc.String(), DataDir: dir, Clock: clock.now}, Journal: j}
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := s.settlementFile(t.Context(), midnight, nil)
		done <- result{out, err}
	}()
	// still waits checks that the cut-off reads the clock again (it waits on it)
	// rather than writing the file.
	stillWaits := func(when string) {
		t.Helper()
		select {
		case <-clock.read: // one made before
		default:
		}
		select {
		case <-clock.read:
		case res := <-done:
			t.Fatalf("the cut-off wrote the file %s, before the day's close: %q, %v", when, res.out, res.err)
		case <-time.After(10 * time.Second):
			t.Fatalf("the cut-off neither waited nor wrote the file %s within 10 s", when)
		}
	}
	stillWaits("at midnight")
	clock.set(midnight.Add(2 * time.Second))
	approve(t, j, last, midnight.Add(2*time.Second))
	clock.set(final.Add(-time.Second))
	stillWaits("at the close less a second")
	clock.set(final)
	var res result
	select {
	case res = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the cut-off did not write the file within 10 s of the day's close")
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	path := filepath.Join(dir, "settlement", "settlement-2026-12-03.csv")
	if count, amount, _, _, _ := fileTotal(t, path); count != "2" || amount != "8000" {
		t.Fatalf("the day's file pays %s purchases of %s, want 2 of 8000 (the purchase of 23:59:59 approved at 00:00:02 among them)", count, amount)
	}
	if !strings.Contains(res.out, "1 of the day's transactions still open") {
		t.Errorf("the cut-off's output %q does not say that a transaction of the day was still open", res.out)
	}

	// The purchase still open is approved at 00:20, after the file: a late
	// approval, paid by the next day's report; the day's report does not change.
	approve(t, j, stuck, midnight.Add(20*time.Minute))
	write(&journal.Record{Received: midnight.Add(8 * time.Hour), MTI: "0200", Type: "purchase", RC: "00", Amount: 500, Currency: "156"})
	reps := settleDays(t, j, midnight.AddDate(0, 0, -1), 2)
	if got := dayTotal(t, reps[0]); got.PurchaseCount != 2 || got.PurchaseAmount != 8000 || got.Net != 8000 {
		t.Errorf("the day's report run again: %+v, want the file's 2 purchases of 8000", got)
	}
	want := SettlementLine{Currency: "156", PurchaseCount: 1, PurchaseAmount: 500, LatePaymentCount: 1, LatePaymentAmount: 300, Net: 800}
	if got := dayTotal(t, reps[1]); got != want {
		t.Errorf("the next day: %+v, want %+v (its purchase and the late approval, and not the one of 23:59:59 again)", got, want)
	}
}

// TestSettlementCutOffLateSlotDoesNotWait: a cut-off after the day's close (the
// default slot, 00:15) and a report of a day not over yet (params.date of today) are
// made at once, without reading the clock again to wait.
func TestSettlementCutOffLateSlotDoesNotWait(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	midnight := time.Date(2026, 12, 4, 0, 0, 0, 0, loc)
	j, write := settleJournal(t)
	write(&journal.Record{Received: midnight.Add(-time.Hour), MTI: "0200", Type: "purchase", RC: "00", Amount: 1000, Currency: "156"})
	write(&journal.Record{Received: midnight.Add(time.Hour), MTI: "0200", Type: "purchase", RC: "00", Amount: 600, Currency: "156"})
	dir := t.TempDir()
	for _, c := range []struct {
		now, slot time.Time
		date      string
		file      string
		amount    string
	}{
		{midnight.Add(15 * time.Minute), midnight.Add(15 * time.Minute), "", "settlement-2026-12-03.csv", "1000"},
		{midnight.Add(2 * time.Hour), midnight.Add(2 * time.Hour), "2026-12-04", "settlement-2026-12-04.csv", "600"},
	} {
		clock := newTestClock(c.now)
		s := &Server{cfg: &config.Config{Timezone: loc.String(), DataDir: dir, Clock: clock.now}, Journal: j}
		if _, err := s.settlementFile(t.Context(), c.slot, map[string]string{"date": c.date}); err != nil {
			t.Fatal(err)
		}
		if _, amount, _, _, _ := fileTotal(t, filepath.Join(dir, "settlement", c.file)); amount != c.amount {
			t.Errorf("%s: purchases of %s, want %s", c.file, amount, c.amount)
		}
	}
}

// TestSettlementLateApproval: transactions whose approval is decided long after they
// were received: an offline capture of day D left open by a crash and approved by
// recovery at the restart on D+2 (more than journal.LateAfter later: found by the
// journal's index of late changes), a refund of D approved at D+1 00:30, and a
// purchase of D 23:58 approved at 00:03 (within settleClose: its own day's). Each
// is paid, or taken off, once, in the report of the day its approval was decided; the
// capture reversed on D+3 is taken back there; D's report is the same before and
// after the late approvals. (Until the third release of 6 December 2026 a transaction counted in the day it
// was received whenever it was approved: one approved after its day's file was never
// paid.)
func TestSettlementLateApproval(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	d := time.Date(2026, 12, 1, 0, 0, 0, 0, loc)
	j, write := settleJournal(t)
	write(&journal.Record{Received: d.Add(9 * time.Hour), MTI: "0200", Type: "purchase", RC: "00", Amount: 1000, Currency: "156"})
	capture := write(openRecord(d.Add(22*time.Hour), 400))
	refund := openRecord(d.Add(23*time.Hour+50*time.Minute), 250)
	refund.Type = "refund"
	refund = write(refund)
	soon := write(openRecord(d.Add(23*time.Hour+58*time.Minute), 700))
	approve(t, j, soon, d.AddDate(0, 0, 1).Add(3*time.Minute))

	file := settleDays(t, j, d, 1)[0] // D+1 00:15
	if tot := dayTotal(t, file); tot.PurchaseCount != 2 || tot.Net != 1700 {
		t.Fatalf("D's file: %+v, want the purchases of 09:00 and 23:58", tot)
	}
	approve(t, j, refund, d.AddDate(0, 0, 1).Add(30*time.Minute))
	approve(t, j, capture, d.AddDate(0, 0, 2).Add(10*time.Hour))
	reverse(t, j, capture, "switch:recovered", d.AddDate(0, 0, 3).Add(time.Hour))

	reps := settleDays(t, j, d, 5)
	if got := dayTotal(t, reps[0]); got != dayTotal(t, file) {
		t.Errorf("D's report run again: %+v, the file had %+v", got, dayTotal(t, file))
	}
	want := []SettlementLine{
		dayTotal(t, file),
		{Currency: "156", LateRefundCount: 1, LateRefundAmount: 250, Net: -250},
		{Currency: "156", LatePaymentCount: 1, LatePaymentAmount: 400, Net: 400},
		{Currency: "156", LateReversalCount: 1, LateReversalAmount: 400, Net: -400},
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
	if sum != 1000+700-250 {
		t.Errorf("the days net %d, want the purchases that stand less the refund, %d", sum, 1000+700-250)
	}
}

// TestSettlementCutOffFilesMissedDays: a scheduled cut-off files, besides the day
// before its slot, the days its directory misses since the last day filed there.
// After a stop over the slot of 3 December 00:15 (the scheduler runs the latest
// missed slot once), the run of 4 December files the 3rd and the 2nd. A schedule
// in another zone than the switch's with summer time (a switch in UTC, a slot at
// 00:30 London time) runs at 23:30 UTC on 24 October 2026 and next at 00:30 UTC on
// the 26th: the second run files the 25th and the 24th. A first run in a new
// directory files its own day only, and a run with params.date that day only.
// Before, the missed days were filed by no run: their merchants were in no file.
func TestSettlementCutOffFilesMissedDays(t *testing.T) {
	exists := func(path string) bool { _, err := os.Stat(path); return err == nil }
	t.Run("stopped over a slot", func(t *testing.T) {
		loc, _ := time.LoadLocation("Asia/Shanghai")
		j, write := settleJournal(t)
		for d := 1; d <= 3; d++ { // in the order of their RRNs
			write(&journal.Record{Received: time.Date(2026, 12, d, 12, 0, 0, 0, loc), MTI: "0200", Type: "purchase", RC: "00", Amount: int64(d) * 100, Currency: "156"})
		}
		dir := t.TempDir()
		clock := newTestClock(time.Time{})
		s := &Server{cfg: &config.Config{Timezone: loc.String(), DataDir: dir, Clock: clock.now}, Journal: j}
		file := func(day string) string { return filepath.Join(dir, "settlement", "settlement-"+day+".csv") }
		slot := time.Date(2026, 12, 2, 0, 15, 0, 0, loc)
		clock.set(slot)
		if _, err := s.settlementFile(t.Context(), slot, nil); err != nil {
			t.Fatal(err)
		}
		if !exists(file("2026-12-01")) || exists(file("2026-11-30")) {
			t.Fatal("the first run in a new directory: want the file of 1 December only")
		}
		slot = time.Date(2026, 12, 4, 0, 15, 0, 0, loc) // the switch was down at 3 December 00:15
		clock.set(slot)
		out, err := s.settlementFile(t.Context(), slot, nil)
		if err != nil {
			t.Fatal(err)
		}
		for day, want := range map[string]string{"2026-12-02": "200", "2026-12-03": "300"} {
			if !exists(file(day)) {
				t.Fatalf("the run after the missed slot did not file %s: %q", day, out)
			}
			if _, amount, _, _, _ := fileTotal(t, file(day)); amount != want {
				t.Errorf("%s filed with purchases of %s, want %s", day, amount, want)
			}
		}
		if !strings.Contains(out, "missed day") {
			t.Errorf("the run's output %q does not say it filed a missed day", out)
		}
		// A rerun of one day files that day only.
		if _, err := s.settlementFile(t.Context(), slot, map[string]string{"date": "2026-12-10"}); err != nil {
			t.Fatal(err)
		}
		if exists(file("2026-12-05")) {
			t.Error("a run with params.date filed days besides its own")
		}
	})
	t.Run("summer time in the schedule's zone", func(t *testing.T) {
		j, write := settleJournal(t)
		write(&journal.Record{Received: time.Date(2026, 10, 24, 12, 0, 0, 0, time.UTC), MTI: "0200", Type: "purchase", RC: "00", Amount: 2400, Currency: "826"})
		dir := t.TempDir()
		clock := newTestClock(time.Time{})
		s := &Server{cfg: &config.Config{Timezone: "UTC", DataDir: dir, Clock: clock.now}, Journal: j}
		file := func(day string) string { return filepath.Join(dir, "settlement", "settlement-"+day+".csv") }
		london, _ := time.LoadLocation("Europe/London")
		for _, slot := range []time.Time{time.Date(2026, 10, 25, 0, 30, 0, 0, london), time.Date(2026, 10, 26, 0, 30, 0, 0, london)} {
			clock.set(slot)
			if _, err := s.settlementFile(t.Context(), slot, nil); err != nil {
				t.Fatal(err)
			}
		}
		for _, day := range []string{"2026-10-23", "2026-10-24", "2026-10-25"} {
			if !exists(file(day)) {
				t.Fatalf("%s not filed across the end of summer time in the schedule's zone", day)
			}
		}
		if _, amount, _, _, _ := fileTotal(t, file("2026-10-24")); amount != "2400" {
			t.Errorf("24 October filed with purchases of %s, want 2400", amount)
		}
	})
}
