package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

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
	return h.answered(resp, delivered)
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
// the same upload is captured. One whose card has no issuer is refused 15 (one whose
// advice the queue does not take is captured all the same: TestCaptureOfflineAdviceOwed).
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

}

// TestCaptureOfflineAdviceOwed: an offline capture whose advice the queue refuses (a
// cluster's stream without a quorum) is answered 00 all the same, its record
// approved with an advice_owed event and the card sealed in it, nothing reversed;
// the upload sent again gets the same 00 and RRN. The housekeeping's retry queues
// the advice (as a repeat, the refused enqueue's fate being unknown) once the queue
// takes it again, marks the record advice_queued and drops the sealed card, and
// queues it once only.
func TestCaptureOfflineAdviceOwed(t *testing.T) {
	h := newHarness(t, withTerminal(termNoKey))
	h.queueRefuses(true)
	tx := h.offlineSale(900, h.clock.Now().Add(-time.Hour))
	a := h.capture(tx, true)
	if a.RC != "00" || a.RRN == "" || strings.TrimSpace(a.AuthCode) != "Y1" {
		t.Fatalf("offline capture whose advice the queue refused: %+v, want 00", a.Result)
	}
	rec := h.record(a.RRN)
	if !rec.Approved() || rec.Reversed() || rec.DecidedBy != DecidedByCard || !hasEvent(rec, journal.StateAdviceOwed) ||
		hasEvent(rec, journal.StateAdviceQueued) || len(rec.SealedPAN) == 0 || len(rec.SealedExpiry) == 0 || reversalOwed(rec) {
		t.Fatalf("record %+v: want approved by the card, its advice owed, the card and its expiry sealed in it", rec)
	}
	if pan, err := h.p.OpenSealedPAN(rec.SealedPAN); err != nil || pan != testPAN {
		t.Fatalf("the record's sealed card does not open to the card: %v", err)
	}
	if again := h.capture(tx, true); again.RC != "00" || again.RRN != a.RRN {
		t.Fatalf("upload sent again: %+v, want 00 with %s", again.Result, a.RRN)
	}
	h.p.retryAdvices() // the housekeeping's tick, the queue still refusing
	if n := len(h.q.all()); n != 0 {
		t.Fatalf("%d items queued while the queue refuses", n)
	}
	h.queueRefuses(false)
	h.p.retryAdvices()
	h.p.retryAdvices()
	items := h.q.all()
	if len(items) != 1 || items[0].MTI != "0220" || items[0].RRN != a.RRN || !items[0].Repeat {
		t.Fatalf("queued %+v; want the capture's advice once, as a repeat", items)
	}
	rec = h.record(a.RRN)
	if it := items[0]; it.Fields[4] != "000000000900" || it.Fields[11] != rec.IssuerSTAN || it.Fields[38] != "Y1    " || it.Fields[14] != "" {
		t.Errorf("advice fields %v: want DE 14 sealed, not in the clear fields", it.Fields)
	}
	if exp, err := h.p.OpenSealedExpiry(items[0].Binary[14]); err != nil || exp != tx.Expiry {
		t.Errorf("advice DE 14 %q (%v), want the card's expiry %q", exp, err, tx.Expiry)
	}
	if pan, err := h.p.OpenSealedPAN(items[0].Binary[2]); err != nil || pan != testPAN {
		t.Errorf("advice PAN does not open to the card: %v", err)
	}
	if !rec.Approved() || rec.Reversed() || !hasEvent(rec, journal.StateAdviceQueued) || rec.SealedPAN != nil || rec.SealedExpiry != nil || owesOfflineAdvice(rec) {
		t.Errorf("record once its advice is queued: %+v", rec)
	}
	if again := h.capture(tx, true); again.RC != "00" || again.RRN != a.RRN || len(h.q.all()) != 1 {
		t.Errorf("upload sent again once the advice is queued: %+v, %d items queued", again.Result, len(h.q.all()))
	}
}

// TestCaptureOfflineAdviceOwedRestart: the advice owed of an offline capture is not
// lost with the process: the switch stops while the queue refuses it, and recovery
// at the next start queues it (a repeat, 0221, from the card, its expiry and its
// chip data sealed in the record, read back through the journal's codec), without
// reversing the capture; it carries DE 14 as the first try would have, sealed. The
// upload sent again gets the first 00.
func TestCaptureOfflineAdviceOwedRestart(t *testing.T) {
	h := newHarness(t, withTerminal(termNoKey))
	h.queueRefuses(true)
	tx := h.offlineSale(1200, h.clock.Now().Add(-3*time.Hour))
	tx.Expiry = "2907"
	const tc = "9F26081122334455667788" + "9F270140"
	tx.ICC = tc + "5A086212345678901234"
	a := h.capture(tx, true)
	if a.RC != "00" {
		t.Fatalf("offline capture: %+v", a.Result)
	}
	owed := h.record(a.RRN)
	stan := owed.IssuerSTAN
	if bytes.Contains(owed.SealedExpiry, []byte(tx.Expiry)) || len(owed.SealedExpiry) == 0 {
		t.Fatalf("record's sealed expiry %x: want the expiry sealed, never clear", owed.SealedExpiry)
	}
	// What the restarted process reads is the record as the journal stores it.
	b, err := owed.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var stored journal.Record
	if err := stored.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	h.j.mu.Lock()
	h.j.recs[a.RRN] = &stored
	h.j.mu.Unlock()
	h = h.restart(t) // the stop's last retry refused; the queue takes items again
	items := h.q.all()
	if len(items) != 1 || items[0].MTI != "0220" || items[0].RRN != a.RRN || !items[0].Repeat ||
		items[0].Fields[11] != stan || items[0].Fields[4] != "000000001200" || items[0].Fields[13]+items[0].Fields[12] != message.FormatDE7(tx.Time) {
		t.Fatalf("queued after the restart %+v; want the owed advice, as a repeat", items)
	}
	if pan, err := h.p.OpenSealedPAN(items[0].Binary[2]); err != nil || pan != testPAN {
		t.Errorf("recovered advice PAN does not open to the card: %v", err)
	}
	if icc, err := h.p.OpenSealedICC(items[0].Binary[55]); err != nil || icc != tc {
		t.Errorf("recovered advice DE 55 %q (%v), want the card's cryptogram %q", icc, err, tc)
	}
	if exp, err := h.p.OpenSealedExpiry(items[0].Binary[14]); err != nil || exp != tx.Expiry || items[0].Fields[14] != "" {
		t.Errorf("recovered advice DE 14 %q (%v), clear %q: want the card's expiry %q, sealed", exp, err, items[0].Fields[14], tx.Expiry)
	}
	rec := h.record(a.RRN)
	if !rec.Approved() || rec.Reversed() || !hasEvent(rec, journal.StateAdviceQueued) || rec.SealedPAN != nil || rec.SealedICC != nil || rec.SealedExpiry != nil {
		t.Errorf("record after recovery %+v", rec)
	}
	if again := h.capture(tx, true); again.RC != "00" || again.RRN != a.RRN || len(h.q.all()) != 1 {
		t.Errorf("upload sent again after the restart: %+v, %d items queued", again.Result, len(h.q.all()))
	}
	if n, err := h.p.Recover(t.Context()); err != nil || n != 0 || len(h.q.all()) != 1 {
		t.Errorf("a second recovery settled %d (%v), %d items queued: want nothing more", n, err, len(h.q.all()))
	}
}

// TestCaptureOfflineNotFinal: an offline capture whose final record is not written
// is never reversed. Its write ahead refused (the journal without a quorum), it is
// answered 91 and what is kept for the journal's return does not take the upload's
// key: the resend is captured. Its final write refused (unavailable), it is answered
// 91 and its approval written once the journal is back, the resend then answered 00
// from it. Its final write failing otherwise, the switch stopping without it (a
// crash), recovery approves the open record and queues its advice again as a repeat.
func TestCaptureOfflineNotFinal(t *testing.T) {
	h := newHarness(t, withTerminal(termNoKey))
	unavailable := fmt.Errorf("no quorum: %w", journal.ErrUnavailable)
	h.j.writeHook = func(_ *journal.Record, first bool) error {
		if first {
			return unavailable
		}
		return nil
	}
	tx := h.offlineSale(500, h.clock.Now().Add(-time.Hour))
	a := h.capture(tx, true)
	if a.RC != "91" || len(h.q.all()) != 0 {
		t.Fatalf("write ahead refused: %+v, %d items queued; want 91, nothing queued", a.Result, len(h.q.all()))
	}
	h.j.writeHook = nil
	h.p.settle(t.Context()) // the journal back
	if r := h.record(a.RRN); r.Approved() || r.DE7 != "" || r.SealedPAN != nil {
		t.Fatalf("record kept while the journal was unavailable: %+v, want 91 without the upload's key", r)
	}
	ok := h.capture(tx, true)
	if ok.RC != "00" || ok.RRN == a.RRN || h.advices("0220", ok.RRN) != 1 {
		t.Fatalf("resend once the journal is back: %+v, want captured", ok.Result)
	}

	// The final write refused: 91, then the approval once the journal is back.
	tx2 := h.offlineSale(600, h.clock.Now().Add(-time.Hour))
	h.j.writeHook = func(rec *journal.Record, first bool) error {
		if rec.Final() {
			return unavailable
		}
		return nil
	}
	b := h.capture(tx2, true)
	if b.RC != "91" || h.advices("0220", b.RRN) != 1 || h.advices("0420", b.RRN) != 0 {
		t.Fatalf("final write refused: %+v; want 91, the advice queued, nothing reversed", b.Result)
	}
	h.j.writeHook = nil
	h.p.settle(t.Context())
	if r := h.record(b.RRN); !r.Approved() || r.Reversed() || r.DecidedBy != DecidedByCard {
		t.Fatalf("record once the journal is back: %+v, want the approval", r)
	}
	if again := h.capture(tx2, true); again.RC != "00" || again.RRN != b.RRN {
		t.Fatalf("resend once the journal is back: %+v, want 00 with %s", again.Result, b.RRN)
	}

	// The final write failing (a disk error), then a crash: recovery approves it.
	tx3 := h.offlineSale(700, h.clock.Now().Add(-time.Hour))
	h.j.writeHook = func(rec *journal.Record, first bool) error {
		if rec.Final() {
			return errScripted
		}
		return nil
	}
	c := h.capture(tx3, true)
	if c.RC != "96" || h.advices("0220", c.RRN) != 1 {
		t.Fatalf("final write failed: %+v; want 96, the advice queued", c.Result)
	}
	if r := h.record(c.RRN); r.Final() || len(r.SealedPAN) == 0 {
		t.Fatalf("record written ahead %+v: want open, the card sealed in it", r)
	}
	h.j.writeHook = nil
	h = h.restart(t)
	r := h.record(c.RRN)
	if !r.Approved() || r.Reversed() || r.DecidedBy != DecidedByCard || strings.TrimSpace(r.AuthCode) != "Y1" ||
		!hasEvent(r, journal.StateAdviceQueued) || r.SealedPAN != nil || h.advices("0420", c.RRN) != 0 {
		t.Fatalf("open offline capture after recovery: %+v, want approved by the card, not reversed", r)
	}
	var repeats int
	for _, it := range h.q.all() {
		if it.RRN == c.RRN && it.MTI == "0220" && it.Repeat {
			repeats++
		}
	}
	if repeats != 1 {
		t.Errorf("%d repeats of the advice queued by recovery, want 1", repeats)
	}
	if again := h.capture(tx3, true); again.RC != "00" || again.RRN != c.RRN {
		t.Errorf("resend after recovery: %+v, want 00 with %s", again.Result, c.RRN)
	}
}

// TestCaptureOfflineAdviceOwedVoided: an offline capture voided while its advice is
// owed has that advice dropped once the queue takes advices again: its 0420 went,
// and a 0220 sent after it would charge the card for a voided sale.
func TestCaptureOfflineAdviceOwedVoided(t *testing.T) {
	h := newHarness(t, withTerminal(termNoKey))
	h.q.mu.Lock()
	h.q.refuseMTI, h.q.refuse = "0220", errScripted
	h.q.mu.Unlock()
	a := h.capture(h.offlineSale(800, h.clock.Now().Add(-time.Hour)), true)
	if a.RC != "00" || !owesOfflineAdvice(h.record(a.RRN)) {
		t.Fatalf("offline capture: %+v, want 00 with its advice owed", a.Result)
	}
	if v := h.do(h.void(a, 800)); v.RC != "00" {
		t.Fatalf("void of the capture: %+v", v.Result)
	}
	h.q.mu.Lock()
	h.q.refuseMTI = ""
	h.q.mu.Unlock()
	h.p.retryAdvices()
	if n0220, n0420 := h.advices("0220", a.RRN), h.advices("0420", a.RRN); n0220 != 0 || n0420 != 1 {
		t.Errorf("queued %d 0220 and %d 0420 of the voided capture; want its 0420 only", n0220, n0420)
	}
	if r := h.record(a.RRN); !r.Reversed() || owesOfflineAdvice(r) {
		t.Errorf("voided capture %+v", r)
	}
}

// TestCaptureOfflineCryptogram: the advice of an offline approval carries the card's
// chip data (DE 55, sealed while it waits, with the transaction certificate) less the
// card's track, PAN and name; an upload whose chip data says the card declined (9F27
// an AAC) is refused 12, nothing queued and the upload's duplicate key not taken; one
// whose chip data does not parse is captured, its advice without DE 55.
func TestCaptureOfflineCryptogram(t *testing.T) {
	h := newHarness(t, withTerminal(termNoKey))
	const tc = "9F26081122334455667788" + "9F270140" + "9F3602000C"
	const track = "57106212345678901234D25122010000000F" + "5A086212345678901234" + "5F20055A48414E47"
	tx := h.offlineSale(4200, h.clock.Now().Add(-time.Hour))
	tx.ICC = tc + track
	a := h.capture(tx, true)
	if a.RC != "00" {
		t.Fatalf("offline capture with a TC: %+v", a.Result)
	}
	items := h.q.all()
	if len(items) != 1 {
		t.Fatalf("%d items queued, want the advice", len(items))
	}
	sealed := items[0].Binary[55]
	if strings.Contains(string(sealed), "9F2608") || strings.Contains(string(sealed), "6212345678901234") {
		t.Errorf("the queued advice holds the chip data in clear")
	}
	icc, err := h.p.OpenSealedICC(sealed)
	if err != nil || icc != tc {
		t.Errorf("advice DE 55 %q (%v), want %q: the cryptogram without track, PAN and name", icc, err, tc)
	}
	if _, err := h.p.OpenSealedPAN(sealed); err == nil {
		t.Errorf("sealed chip data opens as a sealed PAN")
	}

	declined := h.offlineSale(800, h.clock.Now().Add(-time.Hour))
	declined.ICC = "9F26088877665544332211" + "9F270100"
	d := h.capture(declined, true)
	if d.RC != "12" || d.Reason != reasonCardDeclinedOffline {
		t.Fatalf("upload of an offline decline (AAC): %+v, want 12 %s", d.Result, reasonCardDeclinedOffline)
	}
	if r := h.record(d.RRN); !r.Offline || r.Approved() || r.DE7 != "" || r.DecidedBy != DecidedByCard {
		t.Errorf("record of the AAC upload %+v: want offline, refused by the card, without the duplicate key", r)
	}
	if n := len(h.q.all()); n != 1 {
		t.Errorf("%d items queued, want only the first capture's advice", n)
	}

	// Chip data that does not parse: the card approved, the goods are gone: captured,
	// the advice without DE 55, the record saying why.
	bad := h.offlineSale(500, h.clock.Now().Add(-time.Hour))
	bad.ICC = "9F2608AABB"
	b := h.capture(bad, true)
	if b.RC != "00" {
		t.Fatalf("upload with chip data that does not parse: %+v, want captured (00)", b.Result)
	}
	if r := h.record(b.RRN); !r.Offline || !r.Approved() || len(r.Events) == 0 || !strings.Contains(r.Events[0].Note, "chip data (DE 55) unreadable") {
		t.Errorf("record of the capture with unreadable chip data %+v: want approved, its first event saying why", r)
	}
	items = h.q.all()
	if len(items) != 2 || items[1].RRN != b.RRN {
		t.Fatalf("%d items queued, want the first capture's advice and this one's", len(items))
	}
	if _, ok := items[1].Binary[55]; ok {
		t.Errorf("the advice of chip data that does not parse carries DE 55")
	}
}

// TestStandInAdviceCarriesChipData: a stand-in approval's advice carries the card's
// chip data (its ARQC), filtered as an offline capture's and sealed, and its expiry
// (DE 14) sealed as the card is; chip data that does not parse is left out, and the
// stand-in stands.
func TestStandInAdviceCarriesChipData(t *testing.T) {
	h := newHarness(t, func(h *harness, c *Config) {
		c.StandIn = map[string]StandInLimits{"bank": {Enabled: true, MaxAmount: 5000, PerCardCount: 5, PerCardSum: 8000}}
	})
	h.bank.setUp(false)
	const arqc = "9F26081122334455667788" + "9F270180" + "9F3602000C"
	tx := h.purchase(1000)
	tx.ICC = arqc + "57106212345678901234D25122010000000F"
	if a := h.do(tx); a.RC != "00" || a.AuthCode[0] != 'S' {
		t.Fatalf("stand-in with chip data: %+v", a.Result)
	}
	bad := h.purchase(1000)
	bad.ICC = "9F2608AABB"
	if a := h.do(bad); a.RC != "00" {
		t.Fatalf("stand-in with chip data that does not parse: %+v", a.Result)
	}
	items := h.q.all()
	if len(items) != 2 {
		t.Fatalf("%d advices queued, want 2", len(items))
	}
	if icc, err := h.p.OpenSealedICC(items[0].Binary[55]); err != nil || icc != arqc {
		t.Errorf("stand-in advice DE 55 %q (%v), want %q", icc, err, arqc)
	}
	if exp, err := h.p.OpenSealedExpiry(items[0].Binary[14]); err != nil || exp != tx.Expiry || items[0].Fields[14] != "" {
		t.Errorf("stand-in advice DE 14 %q (%v), clear %q: want %q, sealed", exp, err, items[0].Fields[14], tx.Expiry)
	}
	if _, err := h.p.OpenSealedExpiry(items[0].Binary[2]); err == nil {
		t.Errorf("a sealed PAN opens as a sealed expiry")
	}
	if _, ok := items[1].Binary[55]; ok {
		t.Errorf("the advice of chip data that does not parse carries DE 55")
	}
}

// TestCaptureOfflineSameCardTwice: an offline approval is keyed by the card's
// approval (the PAN, 9F36 and 9F26 under the card hash key), not by its STAN and
// time: the same approval uploaded again under another STAN and another time, also
// after a restart, gets the first answer (its RRN and approval code), and no second
// record nor advice; from another terminal it is answered 94 and not captured.
// Another approval of the same card (another counter and cryptogram) is captured;
// the record holds the key, never the clear PAN.
func TestCaptureOfflineSameCardTwice(t *testing.T) {
	h := newHarness(t, withTerminal(termNoKey))
	const tc = "9F26081122334455667788" + "9F270140" + "9F3602000C"
	tx := h.offlineSale(4200, h.clock.Now().Add(-time.Hour))
	tx.ICC, tx.STAN = tc, "000101"
	a := h.capture(tx, true)
	if a.RC != "00" {
		t.Fatalf("offline capture: %+v", a.Result)
	}
	rec := h.record(a.RRN)
	if rec.CaptureKey == "" || strings.Contains(rec.CaptureKey, testPAN) || rec.CaptureKey != h.p.captureKey(&message.Request{PAN: testPAN, ICC: tc}) {
		t.Fatalf("record's capture key %q", rec.CaptureKey)
	}
	offline := func() int {
		n := 0
		_ = h.j.Scan(context.Background(), journal.Query{}, func(r *journal.Record) bool {
			if r.Offline && r.Approved() {
				n++
			}
			return true
		})
		return n
	}
	replay := tx
	replay.STAN, replay.Time = "000102", h.clock.Now().Add(-10*time.Minute)
	if again := h.capture(replay, true); again.RC != "00" || again.RRN != a.RRN || again.AuthCode != a.AuthCode {
		t.Errorf("the approval again under another STAN and time: %+v, want the first answer (%s)", again.Result, a.RRN)
	}
	h = h.restart(t)
	replay.STAN = "000103"
	if again := h.capture(replay, true); again.RC != "00" || again.RRN != a.RRN {
		t.Errorf("the approval again after a restart: %+v, want the first answer (%s)", again.Result, a.RRN)
	}
	other := replay
	other.TID, other.STAN = "T0000009", "000001"
	if o := h.capture(other, true); o.RC != message.RCDuplicate {
		t.Errorf("the approval from another terminal: %+v, want 94", o.Result)
	}
	if n, q := offline(), len(h.q.all()); n != 1 || q != 1 || h.advices("0220", a.RRN) != 1 {
		t.Fatalf("%d captures, %d advices queued; want one of each", n, q)
	}
	next := h.offlineSale(4200, h.clock.Now().Add(-5*time.Minute))
	next.ICC, next.STAN = "9F26088877665544332211"+"9F270140"+"9F3602000D", "000104"
	if n := h.capture(next, true); n.RC != "00" || n.RRN == a.RRN {
		t.Errorf("another approval of the card: %+v, want a capture of its own", n.Result)
	}
	if n := offline(); n != 2 {
		t.Errorf("%d captures, want two", n)
	}
}
