package pipeline

import (
	"testing"
)

// TestVoidReversalOtherCurrency: a void or a terminal's reversal in another
// currency (DE 49) than its original's is not of that original's money: declined
// 12 void-currency-mismatch or reversal-currency-mismatch, the original not
// reversed and nothing queued, reversal_mismatch reverse_full or not (it is for
// another amount, which a sum in another currency is not comparable to). In the
// original's currency both reverse it. Before, a void in 156 of a purchase of
// 2000 in 048 was approved: the terminal showed 20.00 yuan voided, the switch
// voided 2.000 dinars.
func TestVoidReversalOtherCurrency(t *testing.T) {
	for _, full := range []bool{false, true} {
		h := newHarness(t, func(_ *harness, c *Config) {
			if full {
				c.ReversalMismatch = "reverse_full"
			}
		})
		orig := h.purchase(2000)
		orig.Currency = "048"
		oa := h.do(orig)
		if oa.RC != "00" {
			t.Fatalf("purchase in 048: %s %q", oa.RC, oa.Reason)
		}
		queued := len(h.q.all())
		void := h.void(oa, 2000)
		void.Currency = "156"
		rev := h.reversal(orig, 2000)
		rev.Currency = "392"
		for _, c := range []struct {
			name, reason string
			a            answer
		}{{"void in 156", "void-currency-mismatch", h.do(void)}, {"reversal in 392", "reversal-currency-mismatch", h.do(rev)}} {
			if c.a.RC != "12" || c.a.Reason != c.reason {
				t.Fatalf("reverse_full %v: %s of a purchase in 048: %s %q, want 12 %s", full, c.name, c.a.RC, c.a.Reason, c.reason)
			}
		}
		if o := h.record(oa.RRN); o.Reversed() || len(h.q.all()) != queued {
			t.Fatalf("reverse_full %v: original reversed by %q, %d reversals queued; want neither", full, o.ReversedBy, len(h.q.all())-queued)
		}
		void = h.void(oa, 2000) // a new STAN: the one above is answered as it was
		void.Currency = "048"
		if a := h.do(void); a.RC != "00" || h.record(oa.RRN).ReversedBy != a.RRN {
			t.Fatalf("void in 048: %s %q, original reversed by %q", a.RC, a.Reason, h.record(oa.RRN).ReversedBy)
		}
		other := h.purchase(2000)
		other.Currency = "048"
		ob := h.do(other)
		rev = h.reversal(other, 2000)
		rev.Currency = "048"
		if a := h.do(rev); a.RC != "00" || h.record(ob.RRN).ReversedBy != a.RRN {
			t.Fatalf("reversal in 048: %s %q, original reversed by %q", a.RC, a.Reason, h.record(ob.RRN).ReversedBy)
		}
	}
}
