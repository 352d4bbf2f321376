package pipeline

import (
	"testing"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
)

// partialIssuer makes h's issuer approve purchases partially: RC 10 with de4 in DE 4
// ("" for none). Refunds, reversals and advices are approved.
func partialIssuer(h *harness, de4 string) {
	h.bank.script(func(s sent) (*iso8583.Message, error) {
		m := issuerAnswer("00", "123456")
		req := iso8583.NewMessage(message.SpecASCII)
		if err := req.Unpack(s.Body); err != nil {
			return nil, err
		}
		if proc, _ := req.GetString(3); (s.MTI == "0200" || s.MTI == "0100") && proc == message.PCPurchase {
			m = issuerAnswer(message.RCPartialApproval, "654321")
			if de4 != "" {
				_ = m.Field(4, de4)
			}
		}
		return m, nil
	})
}

// TestPartialApproval: an issuer's partial approval (RC 10, DE 4 600 of 1000) is, for
// a terminal that accepts partial approvals (DE 48 PA = 1), an approval of 600: the
// answer's DE 4 says 600 (a resend's too), the journal records 600 (batch totals and
// refund ceilings count it) with 1000 requested; the terminal's reversal with the
// amount it asked for reverses it. A terminal that does not say it accepts them, and
// an RC 10 without an amount, are declined and the issuer's approval reversed.
func TestPartialApproval(t *testing.T) {
	t.Run("accepted", func(t *testing.T) {
		h := newHarness(t)
		partialIssuer(h, "000000000600")
		tx := h.purchase(1000)
		tx.TLV = [][2]string{{message.TagPartialOK, "1"}}
		a := h.do(tx)
		if a.RC != "10" || a.Amount != "000000000600" || a.AuthCode != "654321" {
			t.Fatalf("answer rc %s amount %s auth %s, want 10 for 000000000600 with the issuer's code", a.RC, a.Amount, a.AuthCode)
		}
		rec := h.record(a.RRN)
		if rec.Amount != 600 || rec.Requested != 1000 || !rec.Approved() {
			t.Fatalf("journal: amount %d requested %d rc %s, want 600 of 1000 approved", rec.Amount, rec.Requested, rec.RC)
		}
		if again := h.do(tx); again.RC != "10" || again.Amount != "000000000600" || again.RRN != a.RRN {
			t.Fatalf("resend: rc %s amount %s rrn %s, want the first answer (10, 600, %s)", again.RC, again.Amount, again.RRN, a.RRN)
		}
		tot, err := h.p.TerminalTotals(t.Context(), testTID, journal.Query{})
		if err != nil || tot.PurchaseCount != 1 || tot.PurchaseSum != 600 {
			t.Fatalf("batch totals %+v (%v), want 1 purchase of 600", tot, err)
		}
		if r := h.do(h.refund(a, 700)); r.RC != message.RCInvalidAmount {
			t.Fatalf("refund of 700 of a 600 approval: rc %s %s, want 13", r.RC, r.Reason)
		}
		if r := h.do(h.refund(a, 600)); r.RC != "00" {
			t.Fatalf("refund of the 600 approved: rc %s %s, want 00", r.RC, r.Reason)
		}
	})
	t.Run("reversal with the requested amount", func(t *testing.T) {
		h := newHarness(t)
		partialIssuer(h, "000000000600")
		tx := h.purchase(1000)
		tx.TLV = [][2]string{{message.TagPartialOK, "1"}}
		a := h.do(tx)
		rev := h.purchase(1000)
		rev.MTI, rev.Original = "0400", "0200"+tx.STAN+message.FormatDE7(tx.Time)+"0000000000000000000000"
		if r := h.do(rev); r.RC != "00" {
			t.Fatalf("reversal of 1000 (the amount asked): rc %s %s, want 00", r.RC, r.Reason)
		}
		if rec := h.record(a.RRN); !rec.Reversed() {
			t.Fatalf("original not reversed: %+v", rec)
		}
	})
	for _, tc := range []struct {
		name, de4, pa, rc, reason, by string
	}{
		{name: "terminal does not accept", de4: "000000000600", rc: "05", reason: "partial-approval-not-accepted", by: "switch:partial-not-accepted"},
		{name: "terminal says no", de4: "000000000600", pa: "0", rc: "05", reason: "partial-approval-not-accepted", by: "switch:partial-not-accepted"},
		{name: "no amount", pa: "1", rc: "96", reason: "issuer-partial-amount-invalid", by: "switch:partial-amount-invalid"},
		{name: "more than asked", de4: "000000001200", pa: "1", rc: "96", reason: "issuer-partial-amount-invalid", by: "switch:partial-amount-invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			partialIssuer(h, tc.de4)
			tx := h.purchase(1000)
			if tc.pa != "" {
				tx.TLV = [][2]string{{message.TagPartialOK, tc.pa}}
			}
			a := h.do(tx)
			if a.RC != tc.rc || a.Reason != tc.reason || a.Amount != "000000001000" {
				t.Fatalf("answer rc %s %s amount %s, want %s %s for 000000001000", a.RC, a.Reason, a.Amount, tc.rc, tc.reason)
			}
			rec := h.record(a.RRN)
			if rec.Approved() || rec.ReversedBy != tc.by || rec.Amount != 1000 || rec.Requested != 0 {
				t.Fatalf("journal: rc %s reversed by %q amount %d requested %d", rec.RC, rec.ReversedBy, rec.Amount, rec.Requested)
			}
			items := h.q.all()
			if len(items) != 1 || items[0].MTI != "0420" || items[0].RRN != a.RRN {
				t.Fatalf("queued %d items, want the reversal advice of %s", len(items), a.RRN)
			}
			tot, _ := h.p.TerminalTotals(t.Context(), testTID, journal.Query{})
			if tot.PurchaseCount != 0 {
				t.Fatalf("batch totals count the declined partial approval: %+v", tot)
			}
		})
	}
}

// TestApprovalOfAnotherAmount: an issuer's approval (RC 00) whose DE 4 is not the
// amount requested (600, or 1200, of 1000: a partial approval not said as one, or an
// answer of another transaction) is not taken as the approval of the request: the
// terminal gets 96 issuer-amount-mismatch, the journal no approval, and the issuer's
// approval is reversed. An approval that echoes the amount, or carries none, stands.
// (Until the third release of 6 December 2026 DE 4 of an approval other than RC 10 was not read: the
// terminal, the journal, batch totals and the settlement file counted 1000 approved
// that the issuer had approved for 600.)
func TestApprovalOfAnotherAmount(t *testing.T) {
	for _, tc := range []struct {
		name, de4, rc, reason string
	}{
		{name: "less", de4: "000000000600", rc: "96", reason: "issuer-amount-mismatch"},
		{name: "more", de4: "000000001200", rc: "96", reason: "issuer-amount-mismatch"},
		{name: "not a number", de4: "00000000x000", rc: "96", reason: "issuer-amount-mismatch"},
		{name: "echoed", de4: "000000001000", rc: "00"},
		{name: "none", rc: "00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.bank.script(func(s sent) (*iso8583.Message, error) {
				m := issuerAnswer("00", "123456")
				if s.MTI == "0200" && tc.de4 != "" {
					_ = m.Field(4, tc.de4)
				}
				return m, nil
			})
			a := h.do(h.purchase(1000))
			if a.RC != tc.rc || a.Reason != tc.reason || a.Amount != "000000001000" {
				t.Fatalf("answer rc %s %s amount %s, want %s %s for 000000001000", a.RC, a.Reason, a.Amount, tc.rc, tc.reason)
			}
			rec := h.record(a.RRN)
			items := h.q.all()
			if tc.rc == "00" {
				if !rec.Approved() || rec.Reversed() || len(items) != 0 {
					t.Fatalf("journal: rc %s reversed by %q, %d queued; want the approval standing", rec.RC, rec.ReversedBy, len(items))
				}
				return
			}
			if rec.Approved() || rec.ReversedBy != "switch:amount-mismatch" || rec.Amount != 1000 {
				t.Fatalf("journal: rc %s reversed by %q amount %d", rec.RC, rec.ReversedBy, rec.Amount)
			}
			if len(items) != 1 || items[0].MTI != "0420" || items[0].RRN != a.RRN {
				t.Fatalf("queued %d items, want the reversal advice of %s", len(items), a.RRN)
			}
			tot, _ := h.p.TerminalTotals(t.Context(), testTID, journal.Query{})
			if tot.PurchaseCount != 0 {
				t.Fatalf("batch totals count the approval of another amount: %+v", tot)
			}
		})
	}
}
