package e2e

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/cup"
)

// TestCUPReversalTakesBackItsOwnSTAN: a UnionPay terminal's reversal is the request
// it takes back sent again as 0400 (cup.ReversalOf): F11 is that request's STAN, and
// F61 what that request carried, which for a void is the sale it voids and for a
// completion 61.1 and 61.2 zeros and 61.3 the pre-authorization's date. Over loopback
// TCP to the demo switch:
//
//   - the reversal of a void that never reached the switch leaves the sale alone
//     (an original the switch never saw: nothing reversed). Until the fix 61.2 came
//     first and the sale was reversed at its issuer while the terminal kept it as
//     sold: the merchant unpaid for goods handed over;
//   - the reversal of a void the switch approved names the void (the pipeline's
//     void-not-reversible, 12), not the sale;
//   - the reversal of a completion reverses the completion and reopens its
//     pre-authorization. Until the fix it named STAN 000000, reversed nothing and
//     was answered 00 (the pipeline took it, in the completion's second, for the
//     completion's duplicate): the card charged, the terminal showing it reversed.
func TestCUPReversalTakesBackItsOwnSTAN(t *testing.T) {
	f := startCUP(t)
	term := cupTerminal(t, f, "003", cupHome)
	term.SetSTAN(200)
	sale := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1111, PIN: "1234"})
	if sale.Str(39) != "00" {
		t.Fatalf("sale: %s", cup.Summary(sale))
	}
	void := func() *cup.Frame {
		t.Helper()
		v, err := term.Build(cup.Txn{Kind: "void", PAN: cupCard, Expiry: cupCardExp, Amount: 1111, RRN: sale.Str(37), Auth: sale.Str(38), OrigSTAN: sale.Str(11)})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	reverse := func(req *cup.Frame) *cup.Frame {
		t.Helper()
		rev, err := cup.ReversalOf(req)
		if err != nil {
			t.Fatal(err)
		}
		ans, err := term.Exchange(rev, true)
		if err != nil {
			t.Fatalf("reversal of %s STAN %s: %v", req.MTI(), req.Str(11), err)
		}
		return ans
	}

	// A void lost on its way: its reversal must not take the sale back.
	lost := void()
	if ans := reverse(lost); ans.Str(39) != "00" || ans.MTI() != "0410" {
		t.Errorf("reversal of a void the switch never saw: %s, want 0410 rc=00", cup.Summary(ans))
	}
	if rec := f.record(sale.Str(37)); rec.ReversedBy != "" {
		t.Fatalf("the reversal of a void that never arrived reversed the sale (by %s): the terminal keeps it as sold", rec.ReversedBy)
	}

	// A void the switch approved: its reversal names the void.
	v := void()
	vans, err := term.Exchange(v, true)
	if err != nil || vans.Str(39) != "00" {
		t.Fatalf("void: %v %s", err, cup.Summary(vans))
	}
	ans := reverse(v)
	if got := f.record(ans.Str(37)).OriginalRRN; got != vans.Str(37) {
		t.Errorf("reversal of the void (%s) named original %q, want the void %s", cup.Summary(ans), got, vans.Str(37))
	}

	// A completion whose F61 is the pre-authorization's date alone.
	pre := cupDo(t, term, cup.Txn{Kind: "preauth", PAN: cupCard, Expiry: cupCardExp, Amount: 2222, PIN: "1234"})
	if pre.Str(39) != "00" {
		t.Fatalf("pre-authorization: %s", cup.Summary(pre))
	}
	c, err := term.Build(cup.Txn{Kind: "completion", PAN: cupCard, Expiry: cupCardExp, Amount: 2222, RRN: pre.Str(37), Auth: pre.Str(38)})
	if err != nil {
		t.Fatal(err)
	}
	c.Set(61, "000000000000"+time.Now().UTC().Format("0102"))
	comp, err := term.Exchange(c, true)
	if err != nil || comp.Str(39) != "00" {
		t.Fatalf("completion: %v %s", err, cup.Summary(comp))
	}
	ans = reverse(c)
	if ans.Str(39) != "00" || ans.Str(37) == comp.Str(37) {
		t.Errorf("reversal of the completion: %s (completion %s)", cup.Summary(ans), cup.Summary(comp))
	}
	if rec := f.record(comp.Str(37)); rec.ReversedBy != ans.Str(37) {
		t.Errorf("completion %s reversed by %q, want the reversal %s", comp.Str(37), rec.ReversedBy, ans.Str(37))
	}
}
