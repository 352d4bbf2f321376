package pipeline

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/qr"
)

// TestWalkAwaysDoNotOpenTheBreaker: consumer-presented payments whose payers never
// confirm (the network answering USERPAYING until the time runs out) were counted
// as the network's timeouts, so that a few walk-aways opened the circuit breaker of
// the whole network (every payer of it answered 91 issuer-circuit-open). They are
// still answered 91 and cancelled through the queue, but the breaker counts them as
// answered; timeouts of a network that does not answer still open it.
func TestWalkAwaysDoNotOpenTheBreaker(t *testing.T) {
	w := &fakeWallet{fakeLink: newFakeLink(qr.WeChat)}
	h := newHarness(t, withWallet(w), func(_ *harness, c *Config) {
		c.Breaker = BreakerConfig{Window: 10 * time.Second, Buckets: 10, MinRequests: 4, FailureRate: 0.5, OpenFor: 5 * time.Second, Probes: 2}
	})
	w.pay = func(p WalletPayment) (string, string, error) {
		return "", "", fmt.Errorf("%w: %w: payment %s", ErrIssuerTimeout, ErrPayerNotConfirmed, p.RRN)
	}
	for i := range 6 {
		a := h.do(h.qrPurchase(wxCode, 1000+int64(i)))
		if a.RC != "91" || a.Reason != "issuer-timeout" {
			t.Fatalf("walk-away %d: %s %q, want 91 issuer-timeout", i, a.RC, a.Reason)
		}
		if rec := h.record(a.RRN); rec.ReversedBy != "switch:timeout" {
			t.Fatalf("walk-away %d: reversed by %q, want cancelled through the queue", i, rec.ReversedBy)
		}
		if s := h.p.breaker(qr.WeChat).current(h.clock.Now()); s != BreakerClosed {
			t.Fatalf("after %d walk-aways the breaker is %s, want closed", i+1, s)
		}
		h.clock.Advance(100 * time.Millisecond)
	}
	// The network itself silent: its timeouts open the breaker.
	w.pay = func(WalletPayment) (string, string, error) { return "", "", ErrIssuerTimeout }
	for range 6 {
		h.do(h.qrPurchase(wxCode, 1100))
		h.clock.Advance(100 * time.Millisecond)
	}
	if s := h.p.breaker(qr.WeChat).current(h.clock.Now()); s != BreakerOpen {
		t.Fatalf("after 6 timeouts of a silent network the breaker is %s, want open", s)
	}
}
