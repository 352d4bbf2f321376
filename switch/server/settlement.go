package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/switchyard/switchyard/internal/csvcell"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/journal"
)

// SettlementLine is one terminal's totals of a day.
type SettlementLine struct {
	MID            string `json:"mid"`
	TID            string `json:"tid"`
	Currency       string `json:"currency"`
	PurchaseCount  int64  `json:"purchase_count"`
	PurchaseAmount int64  `json:"purchase_amount"`
	RefundCount    int64  `json:"refund_count"`
	RefundAmount   int64  `json:"refund_amount"`
	// LateReversalCount and LateReversalAmount are the purchases and completions of
	// earlier days reversed or voided on this day (by their reversal's time): their
	// own day's report counted them, and this day's net takes them off.
	LateReversalCount  int64 `json:"late_reversal_count"`
	LateReversalAmount int64 `json:"late_reversal_amount"`
	// LateRefundReversalCount and LateRefundReversalAmount are the refunds of
	// earlier days reversed on this day: this day's net gives them back.
	LateRefundReversalCount  int64 `json:"late_refund_reversal_count"`
	LateRefundReversalAmount int64 `json:"late_refund_reversal_amount"`
	// Net is PurchaseAmount - RefundAmount - LateReversalAmount +
	// LateRefundReversalAmount + LatePaymentAmount - LateRefundAmount.
	Net int64 `json:"net"`
	// LatePaymentCount and LatePaymentAmount are the purchases and completions of
	// earlier days journaled on this day (Record.Written: a merchant-presented
	// payment journaled by the sweep of owed orders, a notification that came
	// after the day's end), or approved on it more than settleClose after they were
	// received (an offline capture approved by recovery after a restart), not
	// reversed by its end: their own day's report leaves them out (it may have been
	// filed without them), and this day's net pays them.
	LatePaymentCount  int64 `json:"late_payment_count"`
	LatePaymentAmount int64 `json:"late_payment_amount"`
	// LateRefundCount and LateRefundAmount are the refunds of earlier days
	// journaled, or approved late, on this day, not reversed by its end: this day's
	// net takes them off.
	LateRefundCount  int64 `json:"late_refund_count"`
	LateRefundAmount int64 `json:"late_refund_amount"`
}

// Settlement is the report of a day: per merchant and terminal, approved purchases and
// refunds not reversed or voided, and their totals. Amounts of different currencies
// are never added together: every line, merchant total and total is of one currency.
type Settlement struct {
	Date      string           `json:"date"`
	Timezone  string           `json:"timezone"`
	Lines     []SettlementLine `json:"lines"`
	Merchants []SettlementLine `json:"merchants"` // TID empty: the merchant's total
	// Totals are the day's totals, one per currency (MID and TID empty), in
	// currency order.
	Totals []SettlementLine `json:"totals"`
	// Total is the day's total when the day has lines of a single currency (the
	// one of Totals), nil when it has several or none. Until 5 December 2026 it
	// added every currency together.
	Total *SettlementLine `json:"total,omitempty"`
	// Incomplete is true when records the report may count could not be read
	// (their frames in the journal's log damaged): its sums leave them out, and
	// Unreadable names them (RRN, segment file, offset). Restore the data directory
	// from its backup and settle again. Until the fifteenth release such a record
	// stopped the report (500).
	Incomplete bool                 `json:"incomplete"`
	Unreadable []journal.Unreadable `json:"unreadable,omitempty"`
}

// settleLookback is how far before its day a settlement looks for transactions
// reversed, journaled or approved on that day without a record of that day naming
// them (the switch's reversals: an answer undelivered, crash recovery, an owed advice
// queued at last; a payment journaled late; an approval decided late). A terminal's
// reversal or void received on the day names its original, of any age, and the
// journal's index of late changes (Store.ScanLate) has every reversal, first write
// and approval more than journal.LateAfter after the transaction was received:
// together they find every change of the day.
const settleLookback = 24 * time.Hour

// The look-back must reach what the index of late changes leaves out: this does
// not compile when journal.LateAfter is longer than settleLookback.
var _ = [1]struct{}{}[max(0, journal.LateAfter-settleLookback)]

// settleClose is how long after a transaction was received its approval still counts
// in the day it was received: longer than an approval takes in the normal course (an
// issuer's timeout is at most 2 minutes, a QR payer's confirmation at most 5: config
// refuses longer ones), with a margin. An approval decided later than that
// (journal.Record.DecidedAt: an offline capture approved by recovery after a
// restart, or by the housekeeping after its final write failed) is a late approval:
// paid in the day it was decided, as a late payment when that is a later day than
// the one it was received in. So a transaction whose approval the cut-off could not
// see (still open at the issuer, or in doubt) is never left out for good: approved
// within settleClose, it is in its own day's report, which the cut-off makes only
// after that (settlementFile); approved later, it is in a later day's.
const settleClose = 10 * time.Minute

// settleGrace is how long after a day's close (its end plus settleClose) the cut-off
// still waits before it reads the journal: the time of a decision is taken before its
// journal write is durable, and an approval decided just before the close must be
// readable when the report is made.
const settleGrace = time.Minute

// settled reports whether r is a transaction a settlement counts when it stands:
// an approved purchase, completion or refund (a pre-authorization is settled by its
// completion).
func settled(r *journal.Record) bool {
	return r.Approved() && (r.Type == "purchase" || r.Type == "completion" || r.Type == "refund")
}

// payableAt is when r counts as paid (or, a refund, as taken back): when it was
// received, or when the journal first had it if that is later (Record.Written: a
// merchant-presented payment journaled after its payer paid), or when it was
// approved if that is more than settleClose after it was received (a late approval,
// Record.DecidedAt). A day's report counts the transactions payable during it; one
// received in a day that closed before it was journaled, or approved, is the late
// payment of the day it was.
func payableAt(r *journal.Record) time.Time {
	at := r.Received
	if r.Written.After(at) {
		at = r.Written
	}
	if d, ok := r.DecidedAt(); ok && d.Sub(r.Received) > settleClose && d.After(at) {
		at = d
	}
	return at
}

// Settle builds the settlement report of the local day date (YYYY-MM-DD) in loc:
// the approved purchases, completions and refunds received that day and not
// reversed by its end; the ones of earlier days reversed during it (late reversals,
// taken off the day's net); and the ones received on earlier days but journaled, or
// approved late (payableAt), during it (late payments, paid by the day's net). A day
// closes at its end, whether or not its report was filed: what happens afterwards to
// its transactions, a transaction of it journaled afterwards, and one approved more
// than settleClose after it was received, is in the report of the day it happens. A
// day's report therefore does not change once the day is over and its last
// approvals are in (settleClose after its end: the cut-off file, settlement.file,
// is made no earlier), and over the sequence of days every transaction that stands
// is paid once and every one taken back after its day's report is taken off once.
//
// A record it cannot read (its frame in the journal's log damaged) does not stop
// it: the report leaves it out, is marked Incomplete and names it in Unreadable.
//
// Its errors carry the admin API's status (api.Error): 400 for a date that is no
// date, 500 for the journal failing the report (the index unreadable, the store
// closed). Until 7 December 2026 both were 400, as if the client had asked wrong.
func Settle(ctx context.Context, j *journal.Store, date string, loc *time.Location) (*Settlement, error) {
	if _, _, err := DayBounds(date, loc); err != nil {
		return nil, api.WithStatus(http.StatusBadRequest, err)
	}
	s, _, err := settleDay(ctx, j, date, loc)
	if err != nil {
		return nil, api.WithStatus(http.StatusInternalServerError, fmt.Errorf("%w (the day is not settled: the journal could not be read)", err))
	}
	return s, nil
}

// settleDay is Settle, and the RRNs of the day's purchases, completions and refunds
// still open (no outcome yet: in flight at the issuer, or left open by a node that
// stopped): an approval of one of them decided later than settleClose after it was
// received is paid in the day it is decided.
func settleDay(ctx context.Context, j *journal.Store, date string, loc *time.Location) (*Settlement, []string, error) {
	day, end, err := DayBounds(date, loc)
	if err != nil {
		return nil, nil, err
	}
	byTerm := map[[3]string]*SettlementLine{}
	line := func(r *journal.Record) *SettlementLine {
		k := [3]string{r.MID, r.TID, r.Currency}
		l := byTerm[k]
		if l == nil {
			l = &SettlementLine{MID: r.MID, TID: r.TID, Currency: r.Currency}
			byTerm[k] = l
		}
		return l
	}
	// lateReversal counts r when it is a transaction paid on an earlier day and
	// reversed during this one, once.
	late := map[string]bool{}
	lateReversal := func(r *journal.Record) {
		at, ok := r.ReversedAt()
		if !ok || late[r.RRN] || !settled(r) || !payableAt(r).Before(day) || at.Before(day) || !at.Before(end) {
			return
		}
		late[r.RRN] = true
		l := line(r)
		if r.Type == "refund" {
			l.LateRefundReversalCount++
			l.LateRefundReversalAmount += r.Amount
		} else {
			l.LateReversalCount++
			l.LateReversalAmount += r.Amount
		}
	}
	// latePayment counts r when it is a transaction received on an earlier day,
	// journaled during this one and not reversed by its end, once.
	paid := map[string]bool{}
	latePayment := func(r *journal.Record) {
		p := payableAt(r)
		if paid[r.RRN] || !settled(r) || !r.Received.Before(day) || p.Before(day) || !p.Before(end) {
			return
		}
		if at, ok := r.ReversedAt(); ok && at.Before(end) {
			return // taken back the day it was journaled
		}
		paid[r.RRN] = true
		l := line(r)
		if r.Type == "refund" {
			l.LateRefundCount++
			l.LateRefundAmount += r.Amount
		} else {
			l.LatePaymentCount++
			l.LatePaymentAmount += r.Amount
		}
	}
	var named []string // the originals of the reversals and voids received on the day
	var open []string  // the day's payments still without an outcome
	// The records the journal could not read, once each: the report goes on without
	// them and says so.
	var unreadable []journal.Unreadable
	skipped := map[string]bool{}
	skip := func(err error) error {
		recs, rest := journal.Unreadables(err)
		for _, u := range recs {
			if !skipped[u.RRN] {
				skipped[u.RRN] = true
				unreadable = append(unreadable, u)
			}
		}
		return rest
	}
	err = j.Scan(ctx, journal.Query{From: day.Add(-settleLookback), To: end}, func(r *journal.Record) bool {
		if r.Received.Before(day) {
			lateReversal(r)
			latePayment(r)
			return true
		}
		if (r.Type == "reversal" || r.Type == "void") && r.OriginalRRN != "" {
			named = append(named, r.OriginalRRN)
		}
		if !r.Final() && (r.Type == "purchase" || r.Type == "completion" || r.Type == "refund") {
			open = append(open, r.RRN)
		}
		if !settled(r) {
			return true
		}
		if !payableAt(r).Before(end) {
			return true // journaled or approved after the day closed: the late payment of the day it was
		}
		if at, ok := r.ReversedAt(); ok && at.Before(end) {
			return true // reversed or voided within the day
		}
		l := line(r)
		if r.Type != "refund" { // purchases and completions (a pre-authorization itself is not settled)
			l.PurchaseCount++
			l.PurchaseAmount += r.Amount
		} else {
			l.RefundCount++
			l.RefundAmount += r.Amount
		}
		return true
	})
	if err = skip(err); err != nil {
		return nil, nil, fmt.Errorf("settlement of %s: %w", date, err)
	}
	for _, rrn := range named {
		r, err := j.Get(rrn)
		if errors.Is(err, journal.ErrNotFound) {
			continue // removed by retention, or never a transaction
		}
		if err = skip(err); err != nil {
			return nil, nil, fmt.Errorf("settlement of %s: original %s of a reversal: %w", date, rrn, err)
		}
		if r == nil {
			continue // unreadable: named
		}
		lateReversal(r)
	}
	// What changed during the day long after it was received: the switch's
	// reversals of transactions older than the look-back, payments journaled or
	// approved late.
	err = j.ScanLate(ctx, day, end, func(r *journal.Record) bool {
		lateReversal(r)
		latePayment(r)
		return true
	})
	if err = skip(err); err != nil {
		return nil, nil, fmt.Errorf("settlement of %s: %w", date, err)
	}
	s := &Settlement{Date: date, Timezone: loc.String(), Incomplete: len(unreadable) > 0, Unreadable: unreadable}
	byMerch := map[[2]string]*SettlementLine{}
	byCur := map[string]*SettlementLine{}
	for _, l := range byTerm {
		l.Net = l.PurchaseAmount - l.RefundAmount - l.LateReversalAmount + l.LateRefundReversalAmount + l.LatePaymentAmount - l.LateRefundAmount
		s.Lines = append(s.Lines, *l)
		mk := [2]string{l.MID, l.Currency}
		m := byMerch[mk]
		if m == nil {
			m = &SettlementLine{MID: l.MID, Currency: l.Currency}
			byMerch[mk] = m
		}
		add(m, l)
		c := byCur[l.Currency]
		if c == nil {
			c = &SettlementLine{Currency: l.Currency}
			byCur[l.Currency] = c
		}
		add(c, l)
	}
	for _, m := range byMerch {
		s.Merchants = append(s.Merchants, *m)
	}
	for _, c := range byCur {
		s.Totals = append(s.Totals, *c)
	}
	sort.Slice(s.Totals, func(a, b int) bool { return s.Totals[a].Currency < s.Totals[b].Currency })
	if len(s.Totals) == 1 {
		tot := s.Totals[0]
		s.Total = &tot
	}
	sort.Slice(s.Lines, func(a, b int) bool {
		return s.Lines[a].MID+s.Lines[a].TID+s.Lines[a].Currency < s.Lines[b].MID+s.Lines[b].TID+s.Lines[b].Currency
	})
	sort.Slice(s.Merchants, func(a, b int) bool {
		return s.Merchants[a].MID+s.Merchants[a].Currency < s.Merchants[b].MID+s.Merchants[b].Currency
	})
	return s, open, nil
}

// settlementDate is the day a settlement report asked for date is of: date, or,
// when it is "", the local day in loc (the switch's timezone) before the one now is
// in, the last day over (DayBefore), as the cut-off files it. GET
// /api/v1/settlement without a date, and so `switchyard settle` without --date,
// get the switch's yesterday. Until the fifth release of 6 December 2026 the CLI
// chose the day itself, in $SWITCHYARD_TIMEZONE (default Asia/Shanghai) rather
// than the switch's zone: against a switch in UTC, from 00:00 to 08:00 in Shanghai
// it asked for the UTC day not yet over, and printed its report as it stood.
func settlementDate(date string, now time.Time, loc *time.Location) string {
	if date == "" {
		return DayBefore(now, loc)
	}
	return date
}

// DayBounds returns when the local day date (YYYY-MM-DD) begins in loc and when the
// next one does: the span a settlement of the day covers. The days of a zone tile
// time, each instant in exactly one day. A day begins at its midnight or, in a zone
// whose summer time begins at 00:00 (America/Santiago, Asia/Beirut: the clocks go from
// 23:59:59 to 01:00), at its first instant, where the skip ends. (Until 7 December
// 2026 a day ended at its start plus one calendar day, from a start that Go's
// normalization of the missing midnight put in the day before: the last hour of
// Santiago's 6 September 2026 was in no report, the first of Beirut's 30 March 2026 in
// two.)
func DayBounds(date string, loc *time.Location) (start, end time.Time, err error) {
	d, err := time.Parse("2006-01-02", date)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("date %q: want YYYY-MM-DD", date)
	}
	return dayStart(d, loc), dayStart(d.AddDate(0, 0, 1), loc), nil
}

// dayStart is the first instant in loc of the calendar day of d (a UTC midnight).
func dayStart(d time.Time, loc *time.Location) time.Time {
	t := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, loc)
	if t.Year() != d.Year() || t.YearDay() != d.YearDay() {
		// A missing midnight, normalized into the day before (its offset kept):
		// the day begins where that offset ends.
		if _, zoneEnd := t.ZoneBounds(); !zoneEnd.IsZero() {
			t = zoneEnd
		}
	}
	return t
}

// DayBefore is the local day (YYYY-MM-DD) in loc before the one at is in: the day a
// cut-off at at files. The calendar is counted without the zone, so that a day whose
// midnight is missing is never skipped (Go normalized at less a day, in such a day's
// first hour, into the day before it).
func DayBefore(at time.Time, loc *time.Location) string {
	y, m, d := at.In(loc).Date()
	return time.Date(y, m, d-1, 12, 0, 0, 0, time.UTC).Format("2006-01-02")
}

func add(dst, l *SettlementLine) {
	dst.PurchaseCount += l.PurchaseCount
	dst.PurchaseAmount += l.PurchaseAmount
	dst.RefundCount += l.RefundCount
	dst.RefundAmount += l.RefundAmount
	dst.LateReversalCount += l.LateReversalCount
	dst.LateReversalAmount += l.LateReversalAmount
	dst.LateRefundReversalCount += l.LateRefundReversalCount
	dst.LateRefundReversalAmount += l.LateRefundReversalAmount
	dst.LatePaymentCount += l.LatePaymentCount
	dst.LatePaymentAmount += l.LatePaymentAmount
	dst.LateRefundCount += l.LateRefundCount
	dst.LateRefundAmount += l.LateRefundAmount
	dst.Net += l.Net
}

// WriteCSV writes the report as CSV: terminal lines, then merchant totals, then the
// totals, one row per currency. A text cell a spreadsheet would run as a formula
// is written with a quote before it (csvcell); the amounts stay numbers.
func (s *Settlement) WriteCSV(w io.Writer) error {
	cw := csvcell.NewWriter(w)
	_ = cw.Write([]string{"date", "level", "mid", "tid", "currency", "purchase_count", "purchase_amount", "refund_count", "refund_amount", "net",
		"late_reversal_count", "late_reversal_amount", "late_refund_reversal_count", "late_refund_reversal_amount",
		"late_payment_count", "late_payment_amount", "late_refund_count", "late_refund_amount"})
	row := func(level string, l SettlementLine) {
		i := func(n int64) string { return strconv.FormatInt(n, 10) }
		_ = cw.Write([]string{s.Date, level, l.MID, l.TID, l.Currency, i(l.PurchaseCount), i(l.PurchaseAmount), i(l.RefundCount), i(l.RefundAmount), i(l.Net),
			i(l.LateReversalCount), i(l.LateReversalAmount), i(l.LateRefundReversalCount), i(l.LateRefundReversalAmount),
			i(l.LatePaymentCount), i(l.LatePaymentAmount), i(l.LateRefundCount), i(l.LateRefundAmount)})
	}
	for _, l := range s.Lines {
		row("terminal", l)
	}
	for _, l := range s.Merchants {
		row("merchant", l)
	}
	for _, l := range s.Totals {
		row("total", l)
	}
	cw.Flush()
	return cw.Error()
}
