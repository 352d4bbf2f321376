package server

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

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
	Net            int64  `json:"net"`
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
}

// Settle builds the settlement report of the local day date (YYYY-MM-DD) in loc.
func Settle(ctx context.Context, j *journal.Store, date string, loc *time.Location) (*Settlement, error) {
	day, err := time.ParseInLocation("2006-01-02", date, loc)
	if err != nil {
		return nil, fmt.Errorf("date %q: want YYYY-MM-DD", date)
	}
	byTerm := map[[3]string]*SettlementLine{}
	err = j.Scan(ctx, journal.Query{From: day, To: day.AddDate(0, 0, 1)}, func(r *journal.Record) bool {
		if !r.Approved() || r.Reversed() || (r.Type != "purchase" && r.Type != "completion" && r.Type != "refund") {
			return true
		}
		k := [3]string{r.MID, r.TID, r.Currency}
		l := byTerm[k]
		if l == nil {
			l = &SettlementLine{MID: r.MID, TID: r.TID, Currency: r.Currency}
			byTerm[k] = l
		}
		if r.Type != "refund" { // purchases and completions (a pre-authorization itself is not settled)
			l.PurchaseCount++
			l.PurchaseAmount += r.Amount
		} else {
			l.RefundCount++
			l.RefundAmount += r.Amount
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	s := &Settlement{Date: date, Timezone: loc.String()}
	byMerch := map[[2]string]*SettlementLine{}
	byCur := map[string]*SettlementLine{}
	for _, l := range byTerm {
		l.Net = l.PurchaseAmount - l.RefundAmount
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
	return s, nil
}

func add(dst, l *SettlementLine) {
	dst.PurchaseCount += l.PurchaseCount
	dst.PurchaseAmount += l.PurchaseAmount
	dst.RefundCount += l.RefundCount
	dst.RefundAmount += l.RefundAmount
	dst.Net += l.Net
}

// WriteCSV writes the report as CSV: terminal lines, then merchant totals, then the
// totals, one row per currency.
func (s *Settlement) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"date", "level", "mid", "tid", "currency", "purchase_count", "purchase_amount", "refund_count", "refund_amount", "net"})
	row := func(level string, l SettlementLine) {
		i := func(n int64) string { return strconv.FormatInt(n, 10) }
		_ = cw.Write([]string{s.Date, level, l.MID, l.TID, l.Currency, i(l.PurchaseCount), i(l.PurchaseAmount), i(l.RefundCount), i(l.RefundAmount), i(l.Net)})
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
