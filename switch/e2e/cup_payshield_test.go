package e2e

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/cup"
)

// TestPayShieldCUPSignInAndSale runs the cup dialect end to end with hsm.backend
// payshield against hsm serve over TCP: a terminal signs in with scheme 004, its
// working keys come under its TMK with 4-byte check values that verify (the
// terminal decrypts each key and checks its value), and a PIN purchase MAC'd with
// ANSI X9.19 (cup.mac x919) is approved with an answer whose MAC verifies. Until 6
// December 2026 the payShield client set no 4-byte check value and every cup
// sign-in on a payShield failed (96). A sign-in of scheme 003 (a single-length MAK,
// which no payShield makes) is refused, where the terminal was given the first half
// of a double-length key. The listener's settings that cannot work on a payShield
// (the ECB MAC, single-length keys) are warned about at start.
func TestPayShieldCUPSignInAndSale(t *testing.T) {
	addr, _ := startHSMServe(t)
	rules := middayRules(t, time.Now())
	f := startDemo(t, func(c *config.Config) {
		c.RulesDir = rules
		c.HSM = config.HSM{Backend: "payshield", Addrs: []string{addr}, Timeout: config.Duration(2 * time.Second)}
		for i := range c.Listeners {
			if c.Listeners[i].Dialect == "cup" {
				c.Listeners[i].CUP = &config.CUPListener{MAC: "x919"}
			}
		}
	})
	if strings.Contains(f.logs.String(), "payShield") && strings.Contains(f.logs.String(), "cup listener") {
		t.Errorf("a cup listener with x919 MACs and no single-length keys is warned about:\n%s", f.logs.String())
	}
	tmk, _ := hex.DecodeString(cupTMK)
	term, err := cup.DialTerminal(f.s.ListenerAddr("cup"), "T0000001", "000000000000001", tmk)
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	term.MAC = cup.MACX919
	term.Device = cupHome
	ans, err := term.SignIn("004")
	if err != nil || ans.Str(39) != "00" {
		t.Fatalf("sign-in 004 on the payShield backend: %v %s", err, answerSummary(ans))
	}
	if n := len(ans.Bytes(62)); n != 3*(16+4) {
		t.Fatalf("sign-in 004: F62 of %d bytes, want PIK, MAK and TDK of 16 bytes with 4-byte check values", n)
	}
	sale := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1200, PIN: "1234"})
	if sale.Str(39) != "00" || !sale.Has(64) || sale.Str(38) == "" {
		t.Fatalf("PIN sale MAC'd with x919 on the payShield backend: %s, F64 %v", cup.Summary(sale), sale.Has(64))
	}
	wrong := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1300, PIN: "9999"})
	if wrong.Str(39) != "55" {
		t.Errorf("wrong PIN on the payShield backend: %s, want 55", cup.Summary(wrong))
	}

	// The demo's cup listener (ECB MACs, single-length MAKs allowed) on a
	// payShield: the start says what will fail.
	g := startDemo(t, func(c *config.Config) {
		c.RulesDir = rules
		c.HSM = config.HSM{Backend: "payshield", Addrs: []string{addr}, Timeout: config.Duration(2 * time.Second)}
	})
	logs := g.logs.String()
	for _, want := range []string{"cup.mac is ecb", "single-length"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the start on a payShield with the demo's cup listener does not warn %q", want)
		}
	}
	// Scheme 003 asks for a single-length MAK, which no payShield makes: refused
	// (96), no key sent.
	single, err := cup.DialTerminal(g.s.ListenerAddr("cup"), "T0000001", "000000000000001", tmk)
	if err != nil {
		t.Fatal(err)
	}
	defer single.Close()
	single.Device = cupHome
	ans, err = single.SignIn("003")
	if err != nil || ans.Str(39) != "96" || len(ans.Bytes(62)) != 0 {
		t.Fatalf("sign-in 003 (single-length MAK) on the payShield backend: %v %s; want 96 and no keys", err, answerSummary(ans))
	}
	if !strings.Contains(g.logs.String(), "no single-length key") {
		t.Errorf("the refused single-length sign-in does not say why in the log")
	}
}
