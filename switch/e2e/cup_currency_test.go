package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/cup"
	"github.com/switchyard/switchyard/switch/message"
)

// TestCUPOtherCurrency: a cup terminal whose F49 is not 156 (the UnionPay
// specification has every domestic POS send 156; a DCC or foreign-acquired terminal,
// or a buggy or hostile one, may not), over loopback TCP to the demo switch. A
// listener takes 156 alone unless its cup.currencies lists more (a sale in 840 is
// refused 12 currency-not-accepted; until 6 December 2026 it was authorized, and
// the merchant's limits, minor units meant as fen, were read as cents). A listener
// that lists 840 and 392 takes the currency as sent: the sale is journaled and answered in it (F49 echoed); a
// refund of it in 156 is refused 12 refund-currency-mismatch; a batch of 156 and 840
// sales is answered 95 (batch-currencies-mixed, F48's settlement code 2), since one
// set of totals cannot say how much of each it took, and a batch of 840 sales alone
// balances; an F49 that is not 3 digits is answered 30 with nothing authorized.
// `switchyard term --dialect cup --currency` sends another currency (until 6
// December 2026 the simulator sent 156 only).
func TestCUPOtherCurrency(t *testing.T) {
	// By default a cup listener takes 156 alone: a sale in 840 is refused 12
	// currency-not-accepted, nothing authorized.
	d := startCUP(t)
	dterm := cupTerminal(t, d, "003", cupHome)
	dterm.SetSTAN(400)
	if ans := cupDo(t, dterm, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1250, Currency: "840", PIN: "1234"}); ans.Str(39) != message.RCInvalidTransaction || ans.Str(38) != "" {
		t.Errorf("sale in 840 on a listener of 156: %s, want 12", cup.Summary(ans))
	} else if rec := d.record(ans.Str(37)); rec.Reason != "currency-not-accepted" || rec.DecidedBy != "cup" {
		t.Errorf("the refusal journaled as %s by %s", rec.Reason, rec.DecidedBy)
	}

	f := startDemo(t, func(c *config.Config) {
		c.RulesDir = middayRules(t, time.Now())
		for i := range c.Listeners {
			if c.Listeners[i].Dialect == "cup" {
				if c.Listeners[i].CUP == nil {
					c.Listeners[i].CUP = &config.CUPListener{}
				}
				c.Listeners[i].CUP.Currencies = []string{"156", "840", "392"}
			}
		}
	})
	term := cupTerminal(t, f, "003", cupHome)
	term.SetSTAN(300)
	usd := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1250, Currency: "840", PIN: "1234"})
	if usd.Str(39) != "00" || usd.Str(49) != "840" {
		t.Fatalf("sale in 840: %s F49 %s", cup.Summary(usd), usd.Str(49))
	}
	if rec := f.record(usd.Str(37)); rec.Currency != "840" || rec.Amount != 1250 {
		t.Errorf("sale in 840 journaled as %d %s", rec.Amount, rec.Currency)
	}
	cny := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1250, PIN: "1234"})
	if cny.Str(39) != "00" || cny.Str(49) != "156" {
		t.Fatalf("sale in 156: %s", cup.Summary(cny))
	}
	refund := cupDo(t, term, cup.Txn{Kind: "refund", PAN: cupCard, Expiry: cupCardExp, Amount: 1250, RRN: usd.Str(37), OrigSTAN: usd.Str(11)})
	if refund.Str(39) != message.RCInvalidTransaction {
		t.Errorf("refund in 156 of a sale in 840: %s, want 12", cup.Summary(refund))
	}
	mixed := cupDo(t, term, cup.Txn{Kind: "settlement", Totals: message.BatchTotals{PurchaseCount: 2, PurchaseSum: 2500}})
	if mixed.Str(39) != message.RCReconciliationError || len(mixed.Str(48)) < 31 || mixed.Str(48)[30] != '2' {
		t.Errorf("settlement of a batch in 156 and 840: %s F48 %q, want 95 with code 2", cup.Summary(mixed), mixed.Str(48))
	}
	usd2 := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 700, Currency: "840", PIN: "1234"})
	one := cupDo(t, term, cup.Txn{Kind: "settlement", Totals: message.BatchTotals{PurchaseCount: 1, PurchaseSum: 700}})
	if usd2.Str(39) != "00" || one.Str(39) != "00" {
		t.Errorf("a batch of one sale in 840: sale %s, settlement %s", cup.Summary(usd2), cup.Summary(one))
	}
	bad, err := term.Build(cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 900, Currency: "USD", PIN: "1234"})
	if err != nil {
		t.Fatal(err)
	}
	if ans, err := term.Exchange(bad, true); err != nil || ans.Str(39) != message.RCFormatError || ans.Str(38) != "" {
		t.Errorf("sale with F49 USD: %v %s, want 30", err, cup.Summary(ans))
	}
	out, code := cliLocal("term", "purchase", "--dialect", "cup", "--addr", f.s.ListenerAddr("cup"), "--pan", cupCard, "--amount", "1000", "--currency", "392", "--pin", "1234", "--json")
	if code != 0 || !strings.Contains(out, `"rc":"00"`) {
		t.Fatalf("term purchase --dialect cup --currency 392: exit %d\n%s", code, out)
	}
	i := strings.LastIndex(out, `"rrn":"`) // the purchase's (the sign-in's line comes first)
	if rec := f.record(out[i+7 : i+19]); rec.Currency != "392" || rec.Amount != 1000 {
		t.Errorf("term --currency 392 --amount 1000 journaled as %d %s", rec.Amount, rec.Currency)
	}
}
