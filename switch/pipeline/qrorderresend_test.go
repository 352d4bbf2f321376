package pipeline

import (
	"context"
	"sync"
	"testing"

	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
)

// keyedOrders is an order book that keeps the orders it makes by their request's
// duplicate key, as the server's desk does.
type keyedOrders struct {
	mu    sync.Mutex
	made  []OrderRequest
	byKey map[string]OrderStatus
}

func (o *keyedOrders) NewOrder(_ context.Context, r OrderRequest) (OrderStatus, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if st, ok := o.byKey[r.Key]; ok {
		return st, nil
	}
	o.made = append(o.made, r)
	st := OrderStatus{ID: r.ID, State: "open", Payload: "000201ORDER" + r.ID, Amount: r.Amount, Currency: orderCurrency(r.Currency)}
	resent := st
	resent.Resent = true
	o.byKey[r.Key] = resent
	return st, nil
}

func (o *keyedOrders) Order(context.Context, string, string, string) (OrderStatus, bool, error) {
	return OrderStatus{}, false, nil
}

func (o *keyedOrders) Resent(_ context.Context, key string) (OrderStatus, bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	st, ok := o.byKey[key]
	return st, ok, nil
}

// TestQROrderResend: an order request resent (the same DE 41, 11, 7: a terminal
// that lost the answer) is answered with the order its first request made, the
// same order ID and code, before the terminal's checks run again (a SoftPOS
// resend carries the first one's attestation token, which the registry refuses as
// replayed); the same key with another amount or currency is 94, no order made. A
// declined first request's resend gets its decline. Before, every resend made an
// order of its own, and a SoftPOS one was declined 59 attestation-replayed.
func TestQROrderResend(t *testing.T) {
	orders := &keyedOrders{byKey: map[string]OrderStatus{}}
	seen := map[string]bool{} // the tokens (here, the requests) the registry has seen
	h := newHarness(t, func(h *harness, c *Config) {
		c.Orders = orders
		h.terms.decide = func(r registry.CheckRequest) registry.CheckResult {
			id := r.TerminalID + "/" + r.Request.STAN
			if seen[id] {
				return registry.CheckResult{Decline: true, ResponseCode: "59", Reason: registry.ReasonAttestationReplayed}
			}
			seen[id] = true
			if r.Request.STAN == "000900" {
				return registry.CheckResult{Decline: true, ResponseCode: "58", Reason: registry.ReasonAttestationStale}
			}
			return registry.CheckResult{Terminal: &registry.Terminal{ID: r.TerminalID, Status: registry.TerminalActive}}
		}
	})
	tx := h.purchase(1500)
	tx.MTI, tx.ProcCode, tx.PAN, tx.Expiry, tx.Currency, tx.STAN = "0100", message.PCQROrder, "", "", "156", "777001"
	first := h.do(tx)
	id, _ := message.TLVValue(first.DE48, message.TagQROrder)
	code, _ := message.TLVValue(first.DE48, message.TagQRPayload)
	if first.RC != "00" || id == "" || code == "" {
		t.Fatalf("first order request: %+v", first.Result)
	}
	for i := range 2 {
		again := h.do(tx)
		aid, _ := message.TLVValue(again.DE48, message.TagQROrder)
		acode, _ := message.TLVValue(again.DE48, message.TagQRPayload)
		if again.RC != "00" || again.RRN != first.RRN || aid != id || acode != code {
			t.Fatalf("resend %d: %+v; want 00 with order %s and its code", i+1, again.Result, id)
		}
	}
	other := tx
	other.Amount = 2500
	if a := h.do(other); a.RC != message.RCDuplicate {
		t.Fatalf("the same key, another amount: %+v; want 94", a.Result)
	}
	other = tx
	other.Currency = "840"
	if a := h.do(other); a.RC != message.RCDuplicate {
		t.Fatalf("the same key, another currency: %+v; want 94", a.Result)
	}
	if len(orders.made) != 1 {
		t.Fatalf("%d orders made, want 1: %+v", len(orders.made), orders.made)
	}
	if n := len(h.terms.checks); n != 1 {
		t.Fatalf("the terminal's checks ran %d times, want once (the first request)", n)
	}

	// A first request declined: its resend gets its decline, not checked again.
	bad := tx
	bad.STAN = "000900"
	d := h.do(bad)
	if d.RC != "58" {
		t.Fatalf("declined first: %+v", d.Result)
	}
	if a := h.do(bad); a.RC != "58" || a.RRN != d.RRN || a.Reason != string(registry.ReasonAttestationStale) {
		t.Fatalf("resend of a declined order request: %+v; want its first answer 58 %s", a.Result, d.RRN)
	}
	if len(orders.made) != 1 || len(h.terms.checks) != 2 {
		t.Fatalf("after the declined one: %d orders made, %d checks", len(orders.made), len(h.terms.checks))
	}
}
