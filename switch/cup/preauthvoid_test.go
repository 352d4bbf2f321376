package cup

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
)

// TestPreauthVoidByReference: a pre-authorization void whose 61.2 is zeros (as
// UnionPay terminals send it) reaches the pipeline as the reversal of the
// pre-authorization its F37 names, or else its F38, card and amount: never of one of
// another card, never a guess between two (25 preauth-void-original-ambiguous),
// 25 preauth-void-original-not-found when none matches, 30 without F37 and F38.
// Until 6 December 2026 (fifth release) it was a reversal of an unknown original,
// answered 00 with nothing released: the hold stayed on the card.
func TestPreauthVoidByReference(t *testing.T) {
	mak := []byte("0123456789ABCDEF")
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	const card, other = "4761739001010119", "4761739001010267"
	hash := func(pan string) string { return "h:" + pan }
	preauth := func(rrn, stan, auth string, amount int64, pan string, age time.Duration) *journal.Record {
		return &journal.Record{RRN: rrn, TID: "T0000001", MID: "000000000000001", MTI: "0100", ProcCode: "000000", Type: "preauth",
			STAN: stan, DE7: message.FormatDE7(now.Add(-age)), Amount: amount, RC: "00", AuthCode: auth,
			CardHash: hash(pan), PANMasked: message.MaskPAN(pan), Received: now.Add(-age)}
	}
	reversed := preauth("000000000105", "000025", "444444", 900, card, 30*time.Hour)
	reversed.ReversedBy = "000000000199"
	jr := recordsJournal{
		preauth("000000000101", "000021", "111111", 5000, card, 50*time.Hour), // two days ago: another batch
		preauth("000000000102", "000022", "222222", 7000, card, 3*time.Hour),
		preauth("000000000103", "000023", "222222", 7000, card, 2*time.Hour), // the same code, card and amount: ambiguous
		preauth("000000000104", "000024", "333333", 100, other, time.Hour),
		reversed,
		preauth("000000000106", "000026", "555555", 800, card, 40*24*time.Hour), // past the 30 days
	}
	p := &fakePipeline{}
	refs := &fakeRefusals{}
	a := NewAdapter(Config{HSM: &fakeHSM{mak: mak}, Terminals: fakeTerminals{}, Journal: jr, Refusals: refs, CardHash: hash,
		Now: func() time.Time { return now }}, p)
	term := &Terminal{TID: "T0000001", MID: "000000000000001", mak: mak, batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	conn := &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}
	for _, c := range []struct {
		name          string
		tx            Txn
		rc, de90, why string
	}{
		{"by F37", Txn{PAN: card, Amount: 5000, RRN: "000000000101"}, "00", "0100000021", ""},
		{"by F37 and F38", Txn{PAN: card, Amount: 5000, RRN: "000000000101", Auth: "111111"}, "00", "0100000021", ""},
		{"by F37, no card", Txn{Amount: 5000, RRN: "000000000101"}, "00", "0100000021", ""},
		{"by F38, card and amount", Txn{PAN: card, Amount: 5000, Auth: "111111"}, "00", "0100000021", ""},
		{"by F38 and card, no amount", Txn{PAN: card, Auth: "111111"}, "00", "0100000021", ""},
		{"by F38 of a reversed one (sent again)", Txn{PAN: card, Amount: 900, Auth: "444444"}, "00", "0100000025", ""},
		{"F37 and another F38", Txn{PAN: card, Amount: 5000, RRN: "000000000101", Auth: "999999"}, "25", "", ReasonPreauthNotFound},
		{"F37 of another card's", Txn{PAN: card, Amount: 100, RRN: "000000000104"}, "25", "", ReasonPreauthNotFound},
		{"F38 of another card's", Txn{PAN: card, Amount: 100, Auth: "333333"}, "25", "", ReasonPreauthNotFound},
		{"F38 and another amount", Txn{PAN: card, Amount: 4000, Auth: "111111"}, "25", "", ReasonPreauthNotFound},
		{"F38 of two", Txn{PAN: card, Amount: 7000, Auth: "222222"}, "25", "", ReasonPreauthAmbiguous},
		{"F38 of one past 30 days", Txn{PAN: card, Amount: 800, Auth: "555555"}, "25", "", ReasonPreauthNotFound},
		{"F37 of a sale", Txn{PAN: card, Amount: 5000, RRN: "000000000999"}, "25", "", ReasonPreauthNotFound},
		{"neither F37 nor F38", Txn{PAN: card, Amount: 5000}, "30", "", "format-error-F38"},
		{"F38 without a card", Txn{Amount: 5000, Auth: "111111"}, "30", "", "format-error-F2"},
	} {
		tx := c.tx
		tx.Kind, tx.Expiry = "preauth-void", "2912"
		f, err := term.Build(tx)
		if err != nil {
			t.Fatal(err)
		}
		if tx.PAN == "" {
			f.Msg.UnsetField(2)
			f.Msg.UnsetField(14)
		}
		if tx.Amount == 0 {
			f.Msg.UnsetField(4)
		}
		if f61, _ := f.Msg.GetString(61); len(f61) < 12 || f61[6:12] != zeroSTAN {
			t.Fatalf("%s: F61 %q, want 61.2 zeros", c.name, f61)
		}
		n, nref := len(p.reqs), len(refs.got)
		ans := exchange(t, a, conn, f, term.MACOf)
		if ans.Str(39) != c.rc {
			t.Errorf("%s: %s, want %s", c.name, Summary(ans), c.rc)
			continue
		}
		if c.de90 != "" {
			r := p.last()
			if len(p.reqs) != n+1 || r.MTI != "0400" || !strings.HasPrefix(r.Original, c.de90) {
				t.Errorf("%s: pipeline got %d requests, the last %s DE 90 %q, want a reversal of %s...", c.name, len(p.reqs)-n, r.MTI, r.Original, c.de90)
			}
			continue
		}
		if len(p.reqs) != n || len(refs.got) != nref+1 || refs.got[nref].Reason != c.why {
			t.Errorf("%s: pipeline saw %d, journaled %+v, want nothing forwarded and one refusal %s", c.name, len(p.reqs)-n, refs.got[nref:], c.why)
		}
	}
}
