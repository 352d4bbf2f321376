package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
)

// countingOrders is an order book that counts the orders it is asked to make.
type countingOrders struct{ made []OrderRequest }

func (o *countingOrders) NewOrder(_ context.Context, r OrderRequest) (OrderStatus, error) {
	o.made = append(o.made, r)
	return OrderStatus{ID: r.ID, State: "open"}, nil
}

func (o *countingOrders) Order(context.Context, string, string, string) (OrderStatus, bool, error) {
	return OrderStatus{}, false, nil
}

func (o *countingOrders) Resent(context.Context, string) (OrderStatus, bool, error) {
	return OrderStatus{}, false, nil
}

// TestUnpayableCurrencyDeclined: a purchase, a pre-authorization, an offline
// capture and a merchant-presented QR order whose DE 49 is three digits but no
// currency payments are made in (000, 999 XXX, 123 unassigned, 959 gold) are
// declined 12 currency-not-payable at a merchant of any currency, before the
// rules, the issuer and the order book are asked, the journal saying which code;
// the same in 156 are taken. Before, the purchase in 999 was approved and settled
// on a line of its own, and the order's code carried 5303999.
func TestUnpayableCurrencyDeclined(t *testing.T) {
	orders := &countingOrders{}
	rules := 0
	h := newHarness(t, withRisk, withMerchantCurrency("", registry.Limits{}), func(_ *harness, c *Config) { c.Orders = orders })
	h.risk.decide = func(*risk.Input) risk.Decision {
		rules++
		return risk.Decision{Action: risk.ActionAllow}
	}
	h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer("00", "123456"), nil })
	order := func(cur string) answer {
		tx := h.purchase(500)
		tx.MTI, tx.ProcCode, tx.PAN, tx.Expiry, tx.Currency = "0100", message.PCQROrder, "", "", cur
		return h.do(tx)
	}
	for _, cur := range []string{"000", "999", "123", "959"} {
		pur := h.purchase(1000)
		pur.Currency = cur
		pre := h.preauth(1000)
		pre.Currency = cur
		off := h.offlineSale(1000, h.clock.Now().Add(-time.Hour))
		off.Currency = cur
		for _, c := range []struct {
			name string
			a    answer
		}{{"purchase", h.do(pur)}, {"pre-authorization", h.do(pre)}, {"offline capture", h.capture(off, true)}, {"QR order", order(cur)}} {
			if c.a.RC != "12" || c.a.Reason != ReasonCurrencyNotPayable {
				t.Fatalf("%s in %s: %s %q, want 12 %s", c.name, cur, c.a.RC, c.a.Reason, ReasonCurrencyNotPayable)
			}
			rec := h.record(c.a.RRN)
			note := ""
			for _, e := range rec.Events {
				if e.State == journal.StateDeclined {
					note = e.Note
				}
			}
			if rec.RC != "12" || note != ReasonCurrencyNotPayable+": DE 49 "+cur+" is not the ISO 4217 numeric code of a currency payments are made in" {
				t.Errorf("%s in %s: journaled %s, declined event %q", c.name, cur, rec.RC, note)
			}
		}
	}
	if n := len(h.bank.sent()); n != 0 || rules != 0 || len(orders.made) != 0 || len(h.q.all()) != 0 {
		t.Fatalf("in no currency: the issuer was asked %d times, the rules ran %d times, %d orders made, %d advices queued; want none",
			n, rules, len(orders.made), len(h.q.all()))
	}
	if a := h.do(h.purchase(1000)); a.RC != "00" {
		t.Fatalf("purchase in 156: %s %q", a.RC, a.Reason)
	}
	if a := order("156"); a.RC != "00" || len(orders.made) != 1 {
		t.Fatalf("QR order in 156: %s %q, %d orders made", a.RC, a.Reason, len(orders.made))
	}
}
