package cup

import (
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// TestCurrencyNotAccepted: a sale, pre-authorization or offline approval's upload in
// a currency (F49) the listener does not take (Config.Currencies, default 156 only) is
// refused 12 currency-not-accepted, MAC'd, journaled as a refusal and nothing
// forwarded: the merchants' limits and the offline ceiling are minor units meant as
// fen, and a terminal naming 840 had them read as cents (an offline upload of
// 5,000,000 cents, 50,000.00 USD, passed the ceiling of 50,000.00 CNY). A request
// without F49 is 156. Voids, refunds and reversals of an original are not checked.
// A listener that lists 840 takes it.
func TestCurrencyNotAccepted(t *testing.T) {
	mak := []byte("0123456789ABCDEF")
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	term := &Terminal{TID: "T0000001", MID: "000000000000001", mak: mak, batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	conn := &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}
	newAdapter := func(currencies ...string) (*Adapter, *fakePipeline, *fakeRefusals, map[string]int) {
		p, refs, counted := &fakePipeline{}, &fakeRefusals{}, map[string]int{}
		a := NewAdapter(Config{HSM: &fakeHSM{mak: mak}, Terminals: fakeTerminals{}, Journal: recordsJournal{}, Refusals: refs,
			Offline: offlinePipeline{p}, Currencies: currencies, Logger: zerolog.Nop(), Now: func() time.Time { return now },
			UploadUnmatched: func(reason string) { counted[reason]++ }}, p)
		return a, p, refs, counted
	}
	stan := 0
	send := func(a *Adapter, tx Txn, cur string, change func(*Frame)) *Frame {
		t.Helper()
		stan++
		tx.STAN = fmt.Sprintf("%06d", stan)
		f, err := term.Build(tx)
		if err != nil {
			t.Fatal(err)
		}
		if cur == "-" {
			f.Msg.UnsetField(49)
		} else if cur != "" {
			f.Set(49, cur)
		}
		if change != nil {
			change(f)
		}
		return exchange(t, a, conn, f, term.MACOf)
	}
	card := "4761739001010119"
	sale := Txn{Kind: "sale", PAN: card, Expiry: "2912", Amount: 5_000_000}
	a, p, refs, counted := newAdapter()
	for _, tx := range []Txn{sale, {Kind: "preauth", PAN: card, Expiry: "2912", Amount: 5_000_000}} {
		ans := send(a, tx, "840", nil)
		if ans.Str(39) != message.RCInvalidTransaction || !ans.Has(64) || len(p.reqs) != 0 {
			t.Errorf("%s in 840 on a 156 listener: %s, %d requests forwarded; want 12, MAC'd, none", tx.Kind, Summary(ans), len(p.reqs))
		}
	}
	if len(refs.got) != 2 || refs.got[0].Reason != "currency-not-accepted" || refs.got[0].Currency != "840" {
		t.Errorf("refusals journaled %+v, want two currency-not-accepted", refs.got)
	}
	for _, cur := range []string{"156", "-"} {
		if ans := send(a, sale, cur, nil); ans.Str(39) != "00" {
			t.Errorf("sale with F49 %q: %s", cur, Summary(ans))
		}
	}
	// A void or refund names its original, which is in its own currency.
	n := len(p.reqs)
	send(a, Txn{Kind: "void", PAN: card, Expiry: "2912", Amount: 100, RRN: "000000000042"}, "840", nil)
	send(a, Txn{Kind: "refund", PAN: card, Expiry: "2912", Amount: 100, RRN: "000000000042"}, "840", nil)
	if len(p.reqs) != n+2 {
		t.Errorf("a void and a refund in 840 were not forwarded (%d of 2)", len(p.reqs)-n)
	}
	// An offline approval's upload in 840, within the ceiling's 5,000,000 minor units.
	at := now.Add(-time.Hour)
	upload := Txn{Kind: "upload", PAN: "6225880212345678", Expiry: "2912", Amount: 5_000_000, Offline: true, ApprovedAt: at}
	n = len(p.reqs)
	icc := func(f *Frame) { f.SetBytes(55, offlineICC(5_000_000, "0840", "40")) }
	if ans := send(a, upload, "840", icc); ans.Str(39) != message.RCInvalidTransaction || len(p.reqs) != n || counted[UploadCurrencyNotAccepted] != 1 {
		t.Errorf("offline upload in 840 on a 156 listener: %s, forwarded %d, counted %v", Summary(ans), len(p.reqs)-n, counted)
	}
	// A listener that takes 840.
	a, p, _, _ = newAdapter("156", "840")
	if ans := send(a, sale, "840", nil); ans.Str(39) != "00" || len(p.reqs) != 1 || p.last().Currency != "840" {
		t.Errorf("sale in 840 on a listener of 156 and 840: %s", Summary(ans))
	}
	if ans := send(a, upload, "840", icc); ans.Str(39) != "00" {
		t.Errorf("offline upload in 840 on a listener of 156 and 840: %s", Summary(ans))
	}
}
