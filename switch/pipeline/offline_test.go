package pipeline

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/termclient"
)

// offlineSale is a purchase of amount the card approved offline at approvedAt (DE 7),
// as an adapter renders its upload.
func (h *harness) offlineSale(amount int64, approvedAt time.Time) termclient.Txn {
	tx := h.purchase(amount)
	tx.Time = approvedAt
	return tx
}

// capture runs tx through CaptureOffline, reports the answer's delivery as delivered
// says, and decodes the answer.
func (h *harness) capture(tx termclient.Txn, delivered bool) answer {
	h.t.Helper()
	resp, err := h.p.CaptureOffline(context.Background(), h.conn, h.frame(tx))
	if err != nil {
		h.t.Fatalf("CaptureOffline: %v", err)
	}
	if resp.Sent != nil {
		resp.Sent(delivered)
	}
	m := iso8583.NewMessage(message.SpecASCII)
	if err := m.Unpack(resp.Body); err != nil {
		h.t.Fatalf("answer does not decode: %v", err)
	}
	r, err := termclient.Decode(m)
	if err != nil {
		h.t.Fatal(err)
	}
	return answer{Result: r, resp: resp}
}

// TestCaptureOffline: a purchase the card approved offline is captured without the
// issuer being asked: answered 00 (approval code Y1), journaled once as an approved
// purchase marked offline and decided by the card, its advice (0220 with the sealed
// PAN and the record's DE 11) queued for the card's issuer; the rules do not decide
// (a decline of theirs does not stand) but the velocity counters and the journal's
// facts see it; settlement counts it. Its answer lost, it is not reversed (neither at
// once nor by recovery after a restart), and the upload sent again gets the first
// answer: no second record, no second advice.
func TestCaptureOffline(t *testing.T) {
	h := newHarness(t, withRisk, withTerminal(termNoKey))
	h.risk.decide = func(*risk.Input) risk.Decision {
		return risk.Decision{Action: risk.ActionDecline, ResponseCode: "59", Reason: "velocity-card", Rule: "R1"}
	}
	tx := h.offlineSale(4200, h.clock.Now().Add(-30*time.Hour))
	a := h.capture(tx, false) // the answer never reached the terminal
	if a.RC != "00" || a.RRN == "" || strings.TrimSpace(a.AuthCode) != "Y1" {
		t.Fatalf("offline capture: %+v", a.Result)
	}
	if n := len(h.bank.sent()); n != 0 {
		t.Errorf("the issuer was asked %d times: an offline approval is advised, not authorized", n)
	}
	rec := h.record(a.RRN)
	if !rec.Offline || rec.DecidedBy != DecidedByCard || rec.Type != "purchase" || !rec.Approved() || rec.Reversed() ||
		rec.Amount != 4200 || rec.DE7 != message.FormatDE7(tx.Time) || rec.Issuer != "bank" || rec.PANMasked != message.MaskPAN(testPAN) {
		t.Fatalf("record of the capture %+v", rec)
	}
	if len(rec.Facts) == 0 || len(rec.RuleHits) != 0 {
		t.Errorf("record facts %d bytes, rule hits %v: want the facts journaled, the rules not run", len(rec.Facts), rec.RuleHits)
	}
	if len(h.risk.observed) != 1 {
		t.Errorf("velocity counters told %d times, want once", len(h.risk.observed))
	}
	items := h.q.all()
	if len(items) != 1 || items[0].MTI != "0220" || items[0].RRN != a.RRN || items[0].Issuer != "bank" || items[0].Reason != "offline" {
		t.Fatalf("queued %+v; want one 0220 advice of the capture", items)
	}
	it := items[0]
	if it.Fields[4] != "000000004200" || it.Fields[39] != "00" || it.Fields[11] != rec.IssuerSTAN || rec.IssuerSTAN == "" {
		t.Errorf("advice fields %v (record's issuer STAN %q)", it.Fields, rec.IssuerSTAN)
	}
	if pan, err := h.p.OpenSealedPAN(it.Binary[2]); err != nil || pan != testPAN {
		t.Errorf("advice PAN does not open to the card: %v", err)
	}
	if n := h.advices("0420", a.RRN); n != 0 {
		t.Errorf("%d reversals of a capture whose answer was lost; want none", n)
	}
	tot, err := h.p.TerminalTotals(context.Background(), testTID, journal.Query{})
	if err != nil || tot.PurchaseCount != 1 || tot.PurchaseSum != 4200 {
		t.Errorf("totals %+v (%v): want the capture", tot, err)
	}
	// The terminal uploads it again, after the switch restarted.
	h = h.restart(t)
	if r := h.record(a.RRN); r.Reversed() || !r.Approved() {
		t.Fatalf("recovery reversed the capture: %+v", r)
	}
	again := h.capture(tx, true)
	if again.RC != "00" || again.RRN != a.RRN {
		t.Errorf("upload sent again: %+v, want the first answer (%s)", again.Result, a.RRN)
	}
	if n := h.advices("0220", a.RRN); n != 1 || len(h.q.all()) != 1 {
		t.Errorf("%d advices of the capture, %d items queued; want one", n, len(h.q.all()))
	}
	n := 0
	_ = h.j.Scan(context.Background(), journal.Query{TID: testTID}, func(r *journal.Record) bool {
		if r.Offline {
			n++
		}
		return true
	})
	if n != 1 {
		t.Errorf("%d offline records, want one", n)
	}
}

// TestCaptureOfflineRefused: an offline approval of a suspended terminal is refused
// (the check's code), journaled as a refusal marked offline that does not take the
// upload's duplicate key, and nothing is queued; once the terminal is active again,
// the same upload is captured. One whose card has no issuer is refused 15, and one
// whose advice the queue does not take is answered 96 and reversed.
func TestCaptureOfflineRefused(t *testing.T) {
	h := newHarness(t, withTerminal(termNoKey))
	h.terms.decide = func(registry.CheckRequest) registry.CheckResult {
		return registry.CheckResult{Decline: true, ResponseCode: "58", Reason: registry.ReasonTerminalSuspended}
	}
	tx := h.offlineSale(1500, h.clock.Now().Add(-2*time.Hour))
	a := h.capture(tx, true)
	if a.RC != "58" || a.Reason != "terminal-suspended" {
		t.Fatalf("offline approval of a suspended terminal: %+v", a.Result)
	}
	if r := h.record(a.RRN); !r.Offline || r.Approved() || r.DE7 != "" {
		t.Errorf("refusal record %+v: want offline, refused, without the duplicate key's DE 7", r)
	}
	if n := len(h.q.all()); n != 0 {
		t.Errorf("%d advices queued for a refusal", n)
	}
	h.terms.decide = nil
	h.clock.Advance(time.Hour)
	ok := h.capture(tx, true)
	if ok.RC != "00" || ok.RRN == a.RRN {
		t.Fatalf("the same upload once the terminal is active: %+v, want captured anew", ok.Result)
	}

	other := h.offlineSale(700, h.clock.Now().Add(-time.Hour))
	other.PAN = "4111111111111111"
	if r := h.capture(other, true); r.RC != "15" || r.Reason != "no-route" {
		t.Errorf("offline approval of a card without issuer: %+v", r.Result)
	}

	h.queueRefuses(true)
	lost := h.capture(h.offlineSale(900, h.clock.Now().Add(-time.Hour)), true)
	if lost.RC != "96" || lost.Reason != reasonOfflineAdviceUnknown {
		t.Fatalf("advice not queued: %+v", lost.Result)
	}
	if r := h.record(lost.RRN); r.Approved() || !strings.HasPrefix(r.ReversedBy, "switch:") && !reversalOwed(r) {
		t.Errorf("capture whose advice was not queued: %+v, want refused and its reversal queued or owed", r)
	}
}
