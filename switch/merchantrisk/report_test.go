package merchantrisk

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/registry"
)

// TestReportHourlyAmountIsSales: an hour's amount is its approved purchases; the
// refund and the void of that hour are counted, by type too, but their amounts are
// not added to the hour's takings (a trial read the refunds as sales).
func TestReportHourlyAmountIsSales(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	at := now.Add(-2 * time.Hour)
	rec := func(typ string, amount int64) *journal.Record {
		return &journal.Record{MID: "M1", Type: typ, Amount: amount, RC: "00", Received: at, State: journal.StateAnswered}
	}
	voided := rec("purchase", 7000)
	voided.ReversedBy = "000000000009" // approved, then voided: no sale
	j := &fakeJournal{recs: []*journal.Record{rec("purchase", 10000), rec("purchase", 5000), rec("refund", 3000), rec("void", 5000), voided}}
	reg := &fakeRegistry{merchants: []*registry.Merchant{{ID: "M1"}}}
	rep, err := MerchantReport(context.Background(), j, reg, "M1", 1, now, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	h := rep.Hourly[at.Hour()]
	if h.Count != 5 || h.Approved != 5 || h.ApprovedAmount != 15000 {
		t.Fatalf("hour %02d: %+v; want 5 transactions, 5 approved, 150.00 of purchases (the voided one not)", at.Hour(), h)
	}
	if c := rep.ByType["purchase"]; c == nil || c.ApprovedAmount != 15000 {
		t.Fatalf("purchases by type: %+v; want 150.00 (the voided one not)", c)
	}
	if c := rep.ByType["refund"]; c == nil || c.ApprovedAmount != 3000 {
		t.Fatalf("refunds by type: %+v", c)
	}
}

// TestReportAmountsByCurrency: a merchant taking yuan and Hong Kong dollars (or
// yen) has its amounts by currency too, never added together; the scalar amount
// stays the sum of all, as before.
func TestReportAmountsByCurrency(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	at := now.Add(-2 * time.Hour)
	rec := func(cur string, amount int64) *journal.Record {
		return &journal.Record{MID: "M1", Type: "purchase", Amount: amount, Currency: cur, RC: "00", Received: at, State: journal.StateAnswered}
	}
	j := &fakeJournal{recs: []*journal.Record{rec("156", 10000), rec("344", 5000), rec("392", 1000), rec("156", 2500)}}
	reg := &fakeRegistry{merchants: []*registry.Merchant{{ID: "M1"}}}
	rep, err := MerchantReport(context.Background(), j, reg, "M1", 1, now, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"156": 12500, "344": 5000, "392": 1000}
	if c := rep.ByType["purchase"]; c == nil || !maps.Equal(c.ApprovedAmounts, want) {
		t.Fatalf("purchases by currency: %+v, want %v", c, want)
	}
	if h := rep.Hourly[at.Hour()]; !maps.Equal(h.ApprovedAmounts, want) {
		t.Fatalf("hour by currency: %+v, want %v", h, want)
	}
}
