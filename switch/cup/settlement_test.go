package cup

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// TestSettlementCountsForeignTotals: F48 of an 0500 carries the domestic-card totals
// (31 digits with their settlement code) and then the foreign-card totals (31 more).
// The switch's journal holds every card the terminal took, so the two are compared
// together: a terminal whose foreign totals name transactions the switch does not
// have is not told its batch balanced (the 62nd digit said 1 unchecked), and one with
// foreign cards in a batch that does balance is not told 95.
func TestSettlementCountsForeignTotals(t *testing.T) {
	mak := []byte("0123456789ABCDEF")
	p := &fakePipeline{}
	a := NewAdapter(Config{HSM: &fakeHSM{mak: mak}, Terminals: fakeTerminals{},
		Now: func() time.Time { return time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC) }}, p)
	term := &Terminal{TID: "T0000001", MID: "000000000000001", mak: mak, batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	conn := &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}
	settle := func(f48 string) *Frame {
		t.Helper()
		f, err := term.Build(Txn{Kind: "settlement"})
		if err != nil {
			t.Fatal(err)
		}
		f.Set(48, f48)
		return exchange(t, a, conn, f, term.MACOf)
	}
	totals := func(debitSum, debitCount, creditSum, creditCount int64) string {
		return fmt.Sprintf("%012d%03d%012d%03d0", debitSum, debitCount, creditSum, creditCount)
	}
	// Domestic: 2 sales of 400 in all and a refund of 50; foreign: 1 sale of 1000.
	ans := settle(totals(400, 2, 50, 1) + totals(1000, 1, 0, 0))
	if r := p.last(); r == nil || r.TLV.BatchTotals != "3,1400,1,50" {
		t.Fatalf("settlement with foreign totals reached the pipeline with BT %q, want the sum of both, 3,1400,1,50", r.TLV.BatchTotals)
	}
	if f48 := ans.Str(48); ans.Str(39) != "00" || len(f48) != 62 || f48[30] != '1' || f48[61] != '1' {
		t.Errorf("balanced settlement: %s F48 %q", Summary(ans), f48)
	}
	// Only domestic totals: as before.
	settle(totals(400, 2, 0, 0))
	if r := p.last(); r.TLV.BatchTotals != "2,400,0,0" {
		t.Errorf("domestic-only settlement BT %q", r.TLV.BatchTotals)
	}
	// Foreign totals cut short (a 45-digit F48): not the domestic totals alone,
	// which would balance a batch whose foreign cards nobody compared, but 30.
	before := p.last()
	if ans := settle(totals(400, 2, 0, 0) + "12345678901234"); ans.Str(39) != "30" || p.last() != before {
		t.Errorf("settlement with foreign totals cut short: %s, reached the pipeline: %v", Summary(ans), p.last() != before)
	}
}

// TestSettlementAnswerCode pins the settlement code of an 0510's F48
// (docs/cup-dialect.md, Settlement): 1 when the switch's journal balances (00), 2 when
// it does not (95), the foreign totals' code following; a settlement the switch
// refused before comparing (58 terminal-suspended, 59, 63 for its MAC, 03, 30
// batch-totals-missing, 91, 96) closed nothing and is answered without F48, so that a
// terminal reading the code without F39 does not close its batch while the switch's
// stays open. Before the third release of 6 December 2026 those carried code 2.
func TestSettlementAnswerCode(t *testing.T) {
	totals := "000000001000001" + "000000000000000" + "0"
	for _, c := range []struct{ rc, code string }{{"00", "1"}, {"95", "2"}} {
		got, ok := settlementAnswer(totals+totals, c.rc)
		if !ok || got[30:31] != c.code || got[61:62] != c.code || got[:30] != totals[:30] {
			t.Errorf("F39 %s: F48 %q (%v), want settlement code %s in digits 31 and 62, the totals echoed", c.rc, got, ok, c.code)
		}
	}
	// Totals without their code digit (30 digits, or 61 with the foreign ones),
	// which the switch reads: the answer adds the code where the terminal reads it
	// (until 6 December 2026 it echoed them without one, a settlement error on the
	// terminal, whose batch stayed open while the switch's closed).
	if got, ok := settlementAnswer(totals[:30], "00"); !ok || got != totals[:30]+"1" {
		t.Errorf("30-digit totals balanced: F48 %q, want %q", got, totals[:30]+"1")
	}
	if got, ok := settlementAnswer(totals+totals[:30], "95"); !ok || len(got) != 62 || got[30] != '2' || got[61] != '2' {
		t.Errorf("61-digit totals unbalanced: F48 %q, want 62 digits with code 2 at 31 and 62", got)
	}
	for _, rc := range []string{"58", "59", "63", "03", "30", "91", "96"} {
		if got, ok := settlementAnswer(totals+totals, rc); ok {
			t.Errorf("F39 %s (refused before comparing): F48 %q, want none", rc, got)
		}
	}

	// Through the adapter: the pipeline refuses the batch (the terminal suspended).
	mak := []byte("0123456789ABCDEF")
	p := &fakePipeline{rc: "58", reason: "terminal-suspended"}
	a := NewAdapter(Config{HSM: &fakeHSM{mak: mak}, Terminals: fakeTerminals{},
		Now: func() time.Time { return time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC) }}, p)
	term := &Terminal{TID: "T0000001", MID: "000000000000001", mak: mak, batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	conn := &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}
	f, err := term.Build(Txn{Kind: "settlement"})
	if err != nil {
		t.Fatal(err)
	}
	f.Set(48, totals)
	ans := exchange(t, a, conn, f, term.MACOf)
	if ans.Str(39) != "58" || ans.Has(48) || !ans.Has(64) {
		t.Errorf("settlement refused 58 by the pipeline: %s, F48 %q (present %v), F64 %v; want 58 without F48, MAC'd", Summary(ans), ans.Str(48), ans.Has(48), ans.Has(64))
	}
	p.mu.Lock()
	p.rc, p.reason = "95", ""
	p.mu.Unlock()
	if ans := exchange(t, a, conn, f, term.MACOf); ans.Str(39) != "95" || len(ans.Str(48)) != 31 || ans.Str(48)[30] != '2' {
		t.Errorf("unbalanced settlement: %s, F48 %q; want 95 with settlement code 2", Summary(ans), ans.Str(48))
	}
}

// TestSettlementTotalsFitTheirColumns: F48 of an 0500 is fixed-width (amount N12,
// count N3, twice, and the code): the terminal client refuses totals that do not
// fit rather than write a wider column that moves every later one (a count of
// 1000 was written "1000", and the switch read the refund sum one digit off), and
// refuses negative ones.
func TestSettlementTotalsFitTheirColumns(t *testing.T) {
	term := &Terminal{TID: "T0000001", MID: "000000000000001", mak: []byte("0123456789ABCDEF"), batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	f48 := func(f *Frame) string { s, _ := f.Msg.GetString(48); return s } // set, not packed: the bitmap is not yet
	f, err := term.Build(Txn{Kind: "settlement", Totals: message.BatchTotals{PurchaseCount: 999, PurchaseSum: 999999999999, RefundCount: 1, RefundSum: 50}})
	if err != nil || f48(f) != "9999999999999990000000000500010" {
		t.Fatalf("largest totals: F48 %q, %v", f48(f), err)
	}
	for _, tot := range []message.BatchTotals{
		{PurchaseCount: 1000, PurchaseSum: 100000},
		{PurchaseCount: 1, PurchaseSum: 1000000000000},
		{RefundCount: 1000, RefundSum: 1},
		{RefundCount: 1, RefundSum: 1000000000000},
		{RefundCount: 1, RefundSum: -50},
	} {
		if f, err := term.Build(Txn{Kind: "settlement", Totals: tot}); err == nil {
			t.Errorf("totals %+v: F48 %q, want an error", tot, f48(f))
		}
	}
}
