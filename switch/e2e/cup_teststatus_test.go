package e2e

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/cup"
)

// TestCUPTestStatus, over TCP: a terminal whose header says it is in test status
// (terminal status 1) has its sale refused 58 terminal-test-mode, journaled,
// counted, the issuer never asked; back in normal status it sells. With the
// listener's test_mode answer, the switch answers its sale 00 itself, the issuer
// never asked and nothing journaled. Until 6 December 2026 the status was not
// read: a terminal left in test status traded for real.
func TestCUPTestStatus(t *testing.T) {
	test := cup.Header{0x60, 0x31, 0x10, 0x31, 0x00, 0x00}
	normal := cup.Header{0x60, 0x31, 0x00, 0x31, 0x00, 0x00}
	t.Run("reject", func(t *testing.T) {
		f := startCUP(t)
		term := cupTerminal(t, f, "003", cupHome)
		term.Header = test
		ans := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 2100, PIN: "1234"})
		if ans.Str(39) != cup.RCTestMode || !ans.Has(64) {
			t.Fatalf("sale in test status: %s, want 58 MAC'd", cup.Summary(ans))
		}
		if rec := f.record(ans.Str(37)); rec.Reason != cup.ReasonTestMode || rec.DecidedBy != "cup" || rec.RC != cup.RCTestMode {
			t.Errorf("sale in test status journaled %s %s by %s, want 58 %s by cup", rec.RC, rec.Reason, rec.DecidedBy, cup.ReasonTestMode)
		}
		if n := len(f.sim().Ledger()); n != 0 {
			t.Errorf("the issuer saw %d requests of a terminal in test status", n)
		}
		if n := testutil.ToFloat64(f.s.Metrics.CUPTestMode.WithLabelValues("rejected")); n != 1 {
			t.Errorf("switchyard_cup_test_mode_total{action=rejected} %v, want 1", n)
		}
		term.Header = normal
		if ans := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 2200, PIN: "1234"}); ans.Str(39) != "00" {
			t.Fatalf("sale in normal status: %s", cup.Summary(ans))
		}
	})
	t.Run("answer", func(t *testing.T) {
		f := startDemo(t, func(c *config.Config) {
			c.RulesDir = middayRules(t, time.Now())
			for i := range c.Listeners {
				if c.Listeners[i].Dialect == "cup" {
					if c.Listeners[i].CUP == nil {
						c.Listeners[i].CUP = &config.CUPListener{}
					}
					c.Listeners[i].CUP.TestMode = "answer"
				}
			}
		})
		term := cupTerminal(t, f, "003", cupHome)
		term.Header = test
		ans := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 2300, PIN: "1234"})
		if ans.Str(39) != "00" || !ans.Has(64) || ans.Str(37) == "" {
			t.Fatalf("sale in test status, test_mode answer: %s, want 00 MAC'd with an RRN", cup.Summary(ans))
		}
		if _, err := f.s.Journal.Get(ans.Str(37)); err == nil {
			t.Errorf("the switch's test answer %s was journaled", ans.Str(37))
		}
		if n := len(f.sim().Ledger()); n != 0 {
			t.Errorf("the issuer saw %d requests of a terminal in test status", n)
		}
		if n := testutil.ToFloat64(f.s.Metrics.CUPTestMode.WithLabelValues("answered")); n != 1 {
			t.Errorf("switchyard_cup_test_mode_total{action=answered} %v, want 1", n)
		}
	})
}
