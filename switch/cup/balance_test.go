package cup

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// TestBalanceAnswer: an approved balance inquiry's answer carries the issuer's
// balances (the pipeline's DE 54) in F54, the available balance (amount type 02)
// first, then the ledger balance (01), at most two; a DE 54 of another layout, a
// declined inquiry and a sale give no F54. Until 6 December 2026 (fifth release)
// no balance reached the terminal.
func TestBalanceAnswer(t *testing.T) {
	mak := []byte("0123456789ABCDEF")
	p := &fakePipeline{}
	a := NewAdapter(Config{HSM: &fakeHSM{mak: mak}, Terminals: fakeTerminals{},
		Now: func() time.Time { return time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC) }}, p)
	term := &Terminal{TID: "T0000001", MID: "000000000000001", mak: mak, batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	conn := &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}
	const card = "4761739001010119"
	send := func(tx Txn) *Frame {
		t.Helper()
		f, err := term.Build(tx)
		if err != nil {
			t.Fatal(err)
		}
		return exchange(t, a, conn, f, term.MACOf)
	}
	const (
		ledger    = "0001156C000000100000"
		available = "0002156C000000090000"
		other     = "0003156D000000000500"
	)
	for _, c := range []struct {
		name, de54, rc, want string
	}{
		{"available and ledger", ledger + other + available, "", available + ledger},
		{"available only", available, "", available},
		{"debit ledger only", "0001156D000000001234", "", "0001156D000000001234"},
		{"another amount type only", other, "", ""},
		{"not the ISO layout", "0002156X000000090000", "", ""},
		{"cut short", available[:19], "", ""},
		{"declined", available, "51", ""},
		{"none", "", "", ""},
	} {
		p.balance, p.rc = c.de54, c.rc
		ans := send(Txn{Kind: "balance", PAN: card, Expiry: "2912"})
		wantRC := c.rc
		if wantRC == "" {
			wantRC = "00"
		}
		if ans.Str(39) != wantRC || ans.Str(54) != c.want || ans.Has(54) != (c.want != "") {
			t.Errorf("%s: %s F54 %q, want %s F54 %q", c.name, Summary(ans), ans.Str(54), wantRC, c.want)
		}
	}
	p.balance, p.rc = available, ""
	if ans := send(Txn{Kind: "sale", PAN: card, Expiry: "2912", Amount: 100}); ans.Str(39) != "00" || ans.Has(54) {
		t.Errorf("sale: %s F54 %q, want none", Summary(ans), ans.Str(54))
	}
}
