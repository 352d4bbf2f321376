package pipeline

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moov-io/iso8583"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/internal/syncbuf"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/saf"
	"github.com/switchyard/switchyard/switch/termclient"
)

// pinBlock is an enciphered PIN block as a terminal sends it (the fake HSM does not
// decipher it).
var pinBlock = []byte{1, 2, 3, 4, 5, 6, 7, 8}

// Terminals of the tests: a SoftPOS with a MAC key, one whose PINs come under DUKPT,
// and one without PIN keys.
var (
	termMAC   = registry.Terminal{ID: testTID, MerchantID: testMID, Kind: registry.KindSoftPOS, Keys: registry.KeyRefs{TAK: "T0000001.TAK", TPK: "T0000001.TPK", TMK: "T0000001.TMK"}}
	termTPK   = registry.Terminal{ID: testTID, MerchantID: testMID, Keys: registry.KeyRefs{TPK: "T0000001.TPK"}}
	termDUKPT = registry.Terminal{ID: testTID, MerchantID: testMID, Keys: registry.KeyRefs{PINMode: registry.PINModeDUKPT, BDK: registry.DemoBDKRef, DUKPTDevice: registry.DemoDUKPTDevice}}
	termNoKey = registry.Terminal{ID: testTID, MerchantID: testMID}
)

type option = func(h *harness, c *Config)

// TestDeclines runs one request per decline the switch makes on a financial request,
// and checks its response code, DE 48 reason, who decided, the journal record and
// whether anything reached the issuer or the queue.
func TestDeclines(t *testing.T) {
	withPIN := func(tx termclient.Txn) termclient.Txn { tx.PINBlock = pinBlock; return tx }
	cases := []struct {
		name      string
		opts      []option
		setup     func(h *harness)
		tx        func(h *harness) termclient.Txn
		rc        string
		reason    string // DE 48 RS and the record's reason
		by        string // the record's DecidedBy
		forwarded bool   // the issuer got the request
		reversed  string // the record's ReversedBy (and a 0420 queued)
	}{
		{name: "amount zero", tx: func(h *harness) termclient.Txn { return h.purchase(0) },
			rc: "13", reason: "invalid-amount", by: "switch"},
		{name: "no route", tx: func(h *harness) termclient.Txn { tx := h.purchase(100); tx.PAN = "4111111111111111"; return tx },
			rc: "15", reason: "no-route", by: "switch"},
		{name: "issuer link down", setup: func(h *harness) { h.bank.setUp(false) },
			rc: "91", reason: "issuer-unavailable", by: "switch"},
		{name: "issuer unavailable on send", setup: func(h *harness) {
			h.bank.script(func(sent) (*iso8583.Message, error) { return nil, ErrIssuerUnavailable })
		}, rc: "91", reason: "issuer-unavailable", by: "switch", forwarded: true},
		{name: "issuer timeout", setup: func(h *harness) {
			h.bank.script(func(sent) (*iso8583.Message, error) { return nil, fmt.Errorf("no answer in 10s: %w", ErrIssuerTimeout) })
		}, rc: "91", reason: "issuer-timeout", by: "switch", forwarded: true, reversed: "switch:timeout"},
		// Any error but "unavailable" (not sent) leaves the request in doubt: reversed.
		{name: "issuer link error", setup: func(h *harness) {
			h.bank.script(func(sent) (*iso8583.Message, error) { return nil, errScripted })
		}, rc: "91", reason: "issuer-error", by: "switch", forwarded: true, reversed: "switch:issuer-error"},
		{name: "issuer answer without DE 39", setup: func(h *harness) {
			h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer("", "123456"), nil })
		}, rc: "96", reason: "issuer-answer-invalid", by: "switch", forwarded: true, reversed: "switch:invalid-answer"},
		{name: "issuer declines", setup: func(h *harness) {
			h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer("51", ""), nil })
		}, rc: "51", reason: "", by: "issuer", forwarded: true},
		{name: "rules decline", opts: []option{withRisk}, setup: func(h *harness) {
			h.risk.decide = func(*risk.Input) risk.Decision {
				return risk.Decision{Action: risk.ActionDecline, ResponseCode: "59", Reason: "velocity-card", Rule: "R1"}
			}
		}, rc: "59", reason: "velocity-card", by: "risk"},
		{name: "rules decline without code or reason", opts: []option{withRisk}, setup: func(h *harness) {
			h.risk.decide = func(*risk.Input) risk.Decision { return risk.Decision{Action: risk.ActionDecline, Rule: "R2"} }
		}, rc: "05", reason: "R2", by: "risk"},
		{name: "binding check", opts: []option{withTerminal(termNoKey)}, setup: func(h *harness) {
			h.terms.decide = func(registry.CheckRequest) registry.CheckResult {
				return registry.CheckResult{Decline: true, ResponseCode: "58", Reason: registry.ReasonTerminalSuspended}
			}
		}, rc: "58", reason: "terminal-suspended", by: "binding"},
		{name: "malformed location", opts: []option{withTerminal(termNoKey)},
			tx: func(h *harness) termclient.Txn {
				tx := h.purchase(100)
				tx.TLV = [][2]string{{message.TagGeo, "north"}}
				return tx
			}, rc: "30", reason: "de48-GL-malformed", by: "switch"},
		{name: "MAC missing", opts: []option{withHSM, withTerminal(termMAC)},
			rc: "63", reason: "mac-missing", by: "hsm"},
		{name: "MAC wrong", opts: []option{withHSM, withTerminal(termMAC)}, setup: func(h *harness) { h.macKey = "another key" },
			rc: "63", reason: "mac-invalid", by: "hsm"},
		{name: "MAC not verifiable", opts: []option{withHSM, withTerminal(termMAC)}, setup: func(h *harness) {
			h.macKey = termMAC.Keys.TAK
			h.hsm.verifyErr = fmt.Errorf("key T0000001.TAK: %w", hsm.ErrKeyNotFound)
		}, rc: "63", reason: "mac-unverifiable", by: "hsm"},
		{name: "SoftPOS without MAC key", opts: []option{withHSM, withTerminal(registry.Terminal{ID: testTID, Kind: registry.KindSoftPOS})},
			rc: "63", reason: "mac-key-missing", by: "hsm"},
		{name: "PIN without HSM", tx: func(h *harness) termclient.Txn { return withPIN(h.purchase(100)) },
			rc: "63", reason: "pin-not-translatable", by: "hsm"},
		{name: "DUKPT PIN without KSN", opts: []option{withHSM, withTerminal(termDUKPT)},
			tx: func(h *harness) termclient.Txn { return withPIN(h.purchase(100)) }, rc: "30", reason: "ksn-missing", by: "hsm"},
		{name: "PIN without PIN key", opts: []option{withHSM, withTerminal(termNoKey)},
			tx: func(h *harness) termclient.Txn { return withPIN(h.purchase(100)) }, rc: "63", reason: "no-pin-key", by: "hsm"},
		{name: "DUKPT replay", opts: []option{withHSM, withTerminal(termTPK)}, setup: func(h *harness) { h.hsm.translateErr = hsm.ErrReplay },
			tx: func(h *harness) termclient.Txn { return withPIN(h.purchase(100)) }, rc: "63", reason: "dukpt-replay", by: "hsm"},
		{name: "PIN block invalid", opts: []option{withHSM, withTerminal(termTPK)}, setup: func(h *harness) { h.hsm.translateErr = hsm.ErrInput },
			tx: func(h *harness) termclient.Txn { return withPIN(h.purchase(100)) }, rc: "55", reason: "pin-block-invalid", by: "hsm"},
		{name: "PIN format refused", opts: []option{withHSM, withTerminal(termTPK)}, setup: func(h *harness) { h.hsm.translateErr = hsm.ErrPolicy },
			tx: func(h *harness) termclient.Txn { return withPIN(h.purchase(100)) }, rc: "63", reason: "pin-format-policy", by: "hsm"},
		{name: "PIN translation fails", opts: []option{withHSM, withTerminal(termTPK)}, setup: func(h *harness) { h.hsm.translateErr = errScripted },
			tx: func(h *harness) termclient.Txn { return withPIN(h.purchase(100)) }, rc: "63", reason: "pin-translation-failed", by: "hsm"},
		{name: "PIN: no HSM answers", opts: []option{withHSM, withTerminal(termTPK)}, setup: func(h *harness) { h.hsm.translateErr = hsm.ErrUnavailable },
			tx: func(h *harness) termclient.Txn { return withPIN(h.purchase(100)) }, rc: "96", reason: "hsm-unavailable", by: "hsm"},
		{name: "MAC: no HSM answers", opts: []option{withHSM, withTerminal(termMAC)}, setup: func(h *harness) {
			h.macKey = termMAC.Keys.TAK
			h.hsm.verifyErr = fmt.Errorf("M8: %w", hsm.ErrUnavailable)
		}, rc: "96", reason: "hsm-unavailable", by: "hsm"},
		{name: "unsupported message type",
			tx: func(h *harness) termclient.Txn { tx := h.purchase(100); tx.MTI = "0300"; return tx },
			rc: "12", reason: "unsupported-message", by: "switch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.opts...)
			if tc.setup != nil {
				tc.setup(h)
			}
			tx := h.purchase(1000)
			if tc.tx != nil {
				tx = tc.tx(h)
			}
			a := h.do(tx)
			if a.RC != tc.rc || a.Reason != tc.reason {
				t.Fatalf("answer %s %q, want %s %q", a.RC, a.Reason, tc.rc, tc.reason)
			}
			if a.AuthCode != "" {
				t.Errorf("decline carries auth code %q", a.AuthCode)
			}
			rec := h.record(a.RRN)
			if rec.RC != tc.rc || rec.Reason != tc.reason || rec.DecidedBy != tc.by {
				t.Errorf("record rc %s reason %q by %s, want %s %q %s", rec.RC, rec.Reason, rec.DecidedBy, tc.rc, tc.reason, tc.by)
			}
			if rec.PANMasked != "" && rec.PANMasked != message.MaskPAN(tx.PAN) || strings.Contains(fmt.Sprintf("%+v", rec), tx.PAN) {
				t.Errorf("record holds the card as %q", rec.PANMasked)
			}
			if n := len(h.bank.sent()); (n > 0) != tc.forwarded {
				t.Errorf("issuer got %d requests, forwarded %v", n, tc.forwarded)
			}
			if rec.ReversedBy != tc.reversed {
				t.Errorf("record reversed by %q, want %q", rec.ReversedBy, tc.reversed)
			}
			items := h.q.all()
			if tc.reversed == "" && len(items) > 0 {
				t.Errorf("queued %d items for a decline that owes nothing", len(items))
			}
			if tc.reversed != "" {
				checkReversalAdvice(t, items, rec, tc.reversed)
			}
		})
	}
}

// checkReversalAdvice checks that items is one 0420 for rec.
func checkReversalAdvice(t *testing.T, items []*saf.Item, rec *journal.Record, by string) {
	t.Helper()
	if len(items) != 1 {
		t.Fatalf("queued %d items, want one reversal", len(items))
	}
	it := items[0]
	// DE 90: as the issuer got it (TestReversalNamesWhatTheIssuerGot checks that
	// against the wire), the fake link's acquirer 12345678.
	want90 := issuerMTI(rec) + pad6(rec.IssuerSTAN) + issuerDE7(rec) + "00012345678" + strings.Repeat("0", 11)
	if it.MTI != "0420" || it.Issuer != rec.Issuer || it.RRN != rec.RRN || it.Reason != by ||
		it.Fields[37] != rec.RRN || it.Fields[4] != fmt.Sprintf("%012d", rec.Amount) || it.Fields[90] != want90 {
		t.Fatalf("reversal advice %+v, want 0420 of %s (DE 90 %s) by %s", it, rec.RRN, want90, by)
	}
	if !hasEvent(rec, journal.StateReversed) {
		t.Errorf("record events %v without reversed", rec.Events)
	}
}

// TestApproval checks the approved path: the issuer gets the request with the switch's
// RRN and its own STAN, the record is written ahead and is final, the answer carries the
// issuer's code and auth code, and the delivery mark is recorded.
func TestApproval(t *testing.T) {
	h := newHarness(t, withHSM, withTerminal(termMAC), withRisk)
	h.macKey = termMAC.Keys.TAK
	tx := h.purchase(2500)
	tx.PINBlock = pinBlock
	a := h.do(tx)
	if a.RC != "00" || a.AuthCode != "123456" || a.Reason != "" || a.MAC == "" {
		t.Fatalf("answer %+v, want 00 with auth code and a MAC", a.Result)
	}
	sends := h.bank.sent()
	if len(sends) != 1 || sends[0].RRN != a.RRN || sends[0].STAN != "000001" || sends[0].MTI != "0200" {
		t.Fatalf("issuer got %+v", sends)
	}
	rec := h.record(a.RRN)
	if rec.Issuer != "bank" || rec.IssuerSTAN != "000001" || rec.DecidedBy != "issuer" || rec.AuthCode != "123456" ||
		!hasEvent(rec, journal.StateSent) || !hasEvent(rec, journal.StateAnswered) || rec.State != journal.StateResponded {
		t.Fatalf("record %+v", rec)
	}
	if tr := h.hsm.translations; len(tr) != 1 || tr[0].Source.ID != "T0000001.TPK" || tr[0].Dest.ID != "bank.ZPK" {
		t.Fatalf("PIN translations %+v", tr)
	}
	if len(h.risk.observed) != 1 || len(h.q.all()) != 0 {
		t.Fatalf("observed %d outcomes, queued %d", len(h.risk.observed), len(h.q.all()))
	}
}

// TestLabelJournaled: generated traffic's ground-truth label (DE 48 LB, set by the
// bench) reaches the journal record, for backtests by label; real traffic has none,
// and an oversized one is dropped.
func TestLabelJournaled(t *testing.T) {
	h := newHarness(t)
	tx := h.purchase(2500)
	tx.TLV = append(tx.TLV, [2]string{message.TagLabel, "card-testing-spread"})
	if rec := h.record(h.do(tx).RRN); rec.Label != "card-testing-spread" {
		t.Fatalf("label %q", rec.Label)
	}
	if rec := h.record(h.do(h.purchase(2600)).RRN); rec.Label != "" {
		t.Fatalf("unlabelled request journaled with label %q", rec.Label)
	}
	tx = h.purchase(2700)
	tx.TLV = append(tx.TLV, [2]string{message.TagLabel, strings.Repeat("x", 65)})
	if rec := h.record(h.do(tx).RRN); rec.Label != "" {
		t.Fatalf("oversized label journaled: %q", rec.Label)
	}
}

// TestSystemErrors: when the journal fails, the answer is 96 and nothing goes to the
// issuer.
func TestSystemErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup option
	}{
		{"journal write fails", func(h *harness, _ *Config) { h.j.failWrite = errScripted }},
		// Records from a minute ago: the duplicate filter does not cover a window yet.
		{"duplicate lookup fails", func(h *harness, _ *Config) {
			h.j.failLookup = errScripted
			h.j.lastRecv = h.clock.Now().Add(-time.Minute)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.setup)
			a := h.do(h.purchase(100))
			if a.RC != "96" || a.Reason != "system-malfunction" || len(h.bank.sent()) != 0 {
				t.Fatalf("answer %s %q, issuer got %d", a.RC, a.Reason, len(h.bank.sent()))
			}
		})
	}
}

// TestFormatErrorAnswered30: a request with a malformed field is answered 30 and not
// journaled.
func TestFormatErrorAnswered30(t *testing.T) {
	h := newHarness(t)
	tx := h.purchase(100)
	tx.Expiry = "2813"
	a := h.do(tx)
	if a.RC != "30" || h.j.count() != 0 || len(h.bank.sent()) != 0 {
		t.Fatalf("answer %s, %d records, %d sent", a.RC, h.j.count(), len(h.bank.sent()))
	}
}

// TestDuplicates covers resends of a request (same DE 41, 11, 7) after its answer.
func TestDuplicates(t *testing.T) {
	t.Run("final: first answer repeated, nothing forwarded", func(t *testing.T) {
		h := newHarness(t)
		tx := h.purchase(1000)
		first := h.do(tx)
		again := h.do(tx)
		if again.RC != first.RC || again.RRN != first.RRN || again.AuthCode != first.AuthCode || first.RC != "00" {
			t.Fatalf("first %+v, resend %+v", first.Result, again.Result)
		}
		if len(h.bank.sent()) != 1 || h.j.count() != 1 {
			t.Fatalf("issuer got %d, journal has %d", len(h.bank.sent()), h.j.count())
		}
		if again.resp.Sent != nil {
			t.Error("a repeated answer asks for its delivery to be recorded")
		}
	})
	t.Run("final decline repeated with its reason", func(t *testing.T) {
		h := newHarness(t)
		tx := h.purchase(1000)
		tx.PAN = "4111111111111111"
		first := h.do(tx)
		again := h.do(tx)
		if again.RC != "15" || again.Reason != "no-route" || again.RRN != first.RRN {
			t.Fatalf("resend %+v", again.Result)
		}
	})
	t.Run("reused key with another amount: 94, journaled", func(t *testing.T) {
		h := newHarness(t)
		tx := h.purchase(1000)
		first := h.do(tx)
		other := tx
		other.Amount = 2000
		a := h.do(other)
		if a.RC != "94" || a.Reason != "duplicate-key-other-content" || a.RRN == first.RRN {
			t.Fatalf("answer %+v", a.Result)
		}
		rec := h.record(a.RRN)
		if rec.OriginalRRN != first.RRN || rec.RC != "94" || rec.Amount != 2000 {
			t.Fatalf("record %+v", rec)
		}
		// The key stays the first one's: its resend still gets its answer.
		if again := h.do(tx); again.RRN != first.RRN || again.RC != "00" {
			t.Fatalf("first's resend %+v", again.Result)
		}
		if len(h.bank.sent()) != 1 {
			t.Fatalf("issuer got %d", len(h.bank.sent()))
		}
	})
	t.Run("reused key with another card: 94", func(t *testing.T) {
		h := newHarness(t)
		tx := h.purchase(1000)
		h.do(tx)
		other := tx
		other.PAN = "6212345678905678"
		if a := h.do(other); a.RC != "94" {
			t.Fatalf("answer %+v", a.Result)
		}
	})
	t.Run("resend of an approval reversed since: 91 approval-reversed", func(t *testing.T) {
		h := newHarness(t)
		tx := h.purchase(1000)
		first := h.process(h.frame(tx), false) // undelivered: the switch reverses it
		if first.RC != "00" {
			t.Fatalf("first %+v", first.Result)
		}
		again := h.do(tx)
		if again.RC != "91" || again.Reason != "approval-reversed" || again.AuthCode != "" || again.RRN != first.RRN {
			t.Fatalf("resend %+v", again.Result)
		}
	})
}

// TestDuplicateInFlight: a resend that arrives while the first is with the issuer waits
// for the first's answer and gets it; one with other content gets 94 at once. The
// issuer sees one request.
func TestDuplicateInFlight(t *testing.T) {
	h := newHarness(t)
	entered, release := h.gateIssuer()
	tx := h.purchase(1000)
	frame := h.frame(tx)
	var wg sync.WaitGroup
	var first, second answer
	wg.Add(1)
	go func() { defer wg.Done(); first = h.process(frame, true) }()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("first request never reached the issuer")
	}
	// Other content is answered at once, without waiting for the first (a wait would
	// last until release: fail rather than hang).
	other := tx
	other.Amount = 999
	otherFrame := h.frame(other)
	got := make(chan *journal.Record, 1)
	go func() {
		resp, err := h.p.Process(t.Context(), h.conn, otherFrame)
		if err != nil {
			got <- nil
			return
		}
		req, _ := message.Decode(resp.Body, message.DialectASCII)
		rec, _ := h.j.Get(req.RRN)
		got <- rec
	}()
	select {
	case rec := <-got:
		if rec == nil || rec.RC != "94" || rec.Reason != "duplicate-key-other-content" || rec.OriginalRRN != "" {
			t.Fatalf("other content in flight: %+v", rec)
		}
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("a request with other content waited for the one in flight")
	}
	wg.Add(1)
	go func() { defer wg.Done(); second = h.process(frame, true) }()
	waitForBlocked(t, "select", "(*Pipeline).once(")
	close(release)
	wg.Wait()
	if first.RC != "00" || second.RC != "00" || second.RRN != first.RRN || second.AuthCode != "654321" {
		t.Fatalf("first %+v, resend %+v", first.Result, second.Result)
	}
	if n := len(h.bank.sent()); n != 1 {
		t.Fatalf("issuer got %d requests", n)
	}
}

// TestDuplicateWaitsForDelivery: a resend waiting for an approval in flight gets its
// outcome once the approval's answer is delivered or not: approved when it reached
// the terminal, 91 approval-reversed when it did not (the switch reverses it), never
// "approved" for an approval taken back a moment later.
func TestDuplicateWaitsForDelivery(t *testing.T) {
	for _, tc := range []struct {
		name      string
		delivered bool
		rc        string
		reason    string
	}{
		{"first answer delivered", true, "00", ""},
		{"first answer undelivered", false, "91", "approval-reversed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			entered, release := h.gateIssuer()
			frame := h.frame(h.purchase(1000))
			var wg sync.WaitGroup
			var first, second answer
			wg.Add(2)
			go func() { defer wg.Done(); first = h.process(frame, tc.delivered) }()
			<-entered
			go func() { defer wg.Done(); second = h.process(frame, true) }()
			waitForBlocked(t, "select", "(*Pipeline).once(")
			close(release)
			wg.Wait()
			if first.RC != "00" {
				t.Fatalf("first: %+v", first.Result)
			}
			if second.RC != tc.rc || second.RRN != first.RRN || second.Reason != tc.reason {
				t.Fatalf("resend: rc %s RRN %s reason %q; want %s, the first's RRN %s, %q", second.RC, second.RRN, second.Reason, tc.rc, first.RRN, tc.reason)
			}
			if rec := h.record(first.RRN); (rec.ReversedBy != "") == tc.delivered {
				t.Fatalf("first's record reversed by %q (delivered %v)", rec.ReversedBy, tc.delivered)
			}
			if n := len(h.bank.sent()); n != 1 {
				t.Fatalf("issuer got %d requests", n)
			}
		})
	}
}

// TestOtherContentWhileDeliveryPending: a request with an approval's key and other
// content, arriving after the approval is answered but before its delivery is
// reported (the approval still in the table), is answered 94 naming the approval's
// RRN, as one arriving later is.
func TestOtherContentWhileDeliveryPending(t *testing.T) {
	h := newHarness(t)
	h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer("00", "654321"), nil })
	tx := h.purchase(1000)
	resp, err := h.p.Process(t.Context(), h.conn, h.frame(tx))
	if err != nil || resp.Sent == nil {
		t.Fatalf("first: %v (Sent %v)", err, resp.Sent != nil)
	}
	firstRRN := termclientDecode(t, resp.Body).RRN
	other := tx
	other.Amount = 999
	a := h.process(h.frame(other), true)
	if a.RC != "94" {
		t.Fatalf("other content: %+v", a.Result)
	}
	if rec := h.record(a.RRN); rec.OriginalRRN != firstRRN {
		t.Fatalf("94 record names %q; want the approval %s", rec.OriginalRRN, firstRRN)
	}
	resp.Sent(true)
	if again := h.process(h.frame(tx), true); again.RC != "00" || again.RRN != firstRRN {
		t.Fatalf("a true resend: %+v", again.Result)
	}
}

// termclientDecode decodes an answer's body.
func termclientDecode(t *testing.T, body []byte) termclient.Result {
	t.Helper()
	m := iso8583.NewMessage(message.SpecASCII)
	if err := m.Unpack(body); err != nil {
		t.Fatal(err)
	}
	r, err := termclient.Decode(m)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// gateIssuer makes the issuer hold its answers (00, auth code 654321) until release
// is closed; entered is closed when the first request reaches it.
func (h *harness) gateIssuer() (entered, release chan struct{}) {
	entered, release = make(chan struct{}), make(chan struct{})
	var once sync.Once
	h.bank.script(func(sent) (*iso8583.Message, error) {
		once.Do(func() { close(entered) })
		<-release
		return issuerAnswer("00", "654321"), nil
	})
	return entered, release
}

// waitForBlocked polls the goroutines' stacks until one is blocked (state, e.g.
// "select") in the function fn, for at most 10 s: a test's way to know that a request
// waits for another without a hook in the code under test.
func waitForBlocked(t *testing.T, state, fn string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); runtime.Gosched() {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			header, rest, _ := strings.Cut(g, "\n")
			top, _, _ := strings.Cut(rest, "\n")
			if strings.Contains(header, "["+state) && strings.Contains(top, fn) {
				return
			}
		}
	}
	t.Fatalf("no goroutine blocked (%s) in %s", state, fn)
}

// TestDuplicateFilter checks when the journal is asked about duplicates: always in the
// first window after a start with recent records, never for a fresh key once the
// filter covers a window, and for a resend whose key is in the current or the previous
// (rotated) filter.
func TestDuplicateFilter(t *testing.T) {
	t.Run("first window after a restart: journal asked", func(t *testing.T) {
		h := newHarness(t, func(h *harness, _ *Config) { h.j.lastRecv = h.clock.Now().Add(-time.Minute) })
		h.do(h.purchase(100))
		h.clock.Advance(4 * time.Minute)
		h.do(h.purchase(100))
		if h.j.lookups != 2 {
			t.Fatalf("%d lookups in the first window, want 2", h.j.lookups)
		}
		h.clock.Advance(2 * time.Minute) // the filter has seen a whole window
		h.do(h.purchase(100))
		if h.j.lookups != 2 {
			t.Fatalf("%d lookups after a window, want 2", h.j.lookups)
		}
	})
	t.Run("resend found through the rotated filter", func(t *testing.T) {
		h := newHarness(t)
		h.clock.Advance(4*time.Minute + 30*time.Second)
		tx := h.purchase(100)
		tx.Time = h.clock.Now()
		first := h.do(tx)
		if h.j.lookups != 0 {
			t.Fatalf("%d lookups for a fresh key", h.j.lookups)
		}
		// One minute on, a new window: the key moves to the previous filter.
		h.clock.Advance(time.Minute)
		h.do(h.purchase(100)) // rotates
		if h.j.lookups != 0 {
			t.Fatalf("%d lookups for a fresh key after rotation", h.j.lookups)
		}
		again := h.do(tx)
		if h.j.lookups != 1 || again.RRN != first.RRN {
			t.Fatalf("resend after rotation: %d lookups, rrn %s want %s", h.j.lookups, again.RRN, first.RRN)
		}
		// A window later its DE 7 is too old for the filter: the journal is asked.
		h.clock.Advance(5 * time.Minute)
		again = h.do(tx)
		if h.j.lookups != 2 || again.RRN != first.RRN || len(h.bank.sent()) != 2 {
			t.Fatalf("old resend: %d lookups, rrn %s, %d sent", h.j.lookups, again.RRN, len(h.bank.sent()))
		}
	})
	t.Run("filter rotation keeps one window", func(t *testing.T) {
		start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
		r := newRecentKeys(time.Minute, 1000, start)
		r.add("a", start)
		r.add("b", start.Add(59*time.Second))
		if !r.mayHave("a") || !r.mayHave("b") {
			t.Fatal("keys not found in the current filter")
		}
		r.add("c", start.Add(61*time.Second)) // rotates: a and b in the previous filter
		if !r.mayHave("a") || !r.mayHave("b") || !r.mayHave("c") {
			t.Fatal("keys of the previous window lost at the first rotation")
		}
		r.add("d", start.Add(122*time.Second)) // rotates again: a and b are gone
		if r.mayHave("a") || r.mayHave("b") || !r.mayHave("c") || !r.mayHave("d") {
			t.Fatal("second rotation did not drop the oldest window")
		}
		if r.complete(start.Add(time.Minute)) || !r.complete(start.Add(61*time.Second)) {
			t.Fatal("complete is wrong about the first window")
		}
	})
}

// TestUndeliveredApproval: an approval whose answer could not be written to the
// terminal is reversed at once; a decline is not; a delivered approval is not.
func TestUndeliveredApproval(t *testing.T) {
	for _, tc := range []struct {
		name      string
		delivered bool
		rc        string
		reversed  string
		mark      journal.State
	}{
		{"approval undelivered", false, "00", "switch:undelivered", journal.StateUndeliver},
		{"approval delivered", true, "00", "", journal.StateResponded},
		{"decline undelivered", false, "51", "", journal.StateUndeliver},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer(tc.rc, "123456"), nil })
			a := h.process(h.frame(h.purchase(1000)), tc.delivered)
			rec := h.record(a.RRN)
			if rec.ReversedBy != tc.reversed || !hasEvent(rec, tc.mark) {
				t.Fatalf("record reversed by %q events %v", rec.ReversedBy, rec.Events)
			}
			if tc.reversed == "" {
				if n := len(h.q.all()); n != 0 {
					t.Fatalf("queued %d", n)
				}
				return
			}
			checkReversalAdvice(t, h.q.all(), rec, tc.reversed)
		})
	}
}

// TestStandIn covers the stand-in limits for an unreachable issuer.
func TestStandIn(t *testing.T) {
	limits := func(h *harness, c *Config) {
		c.StandIn = map[string]StandInLimits{"bank": {Enabled: true, MaxAmount: 5000, PerCardCount: 2, PerCardSum: 8000}}
	}
	type step struct {
		tx      func(h *harness) termclient.Txn
		advance time.Duration
		rc      string
		reason  string
	}
	purchase := func(amount int64) func(h *harness) termclient.Txn {
		return func(h *harness) termclient.Txn { return h.purchase(amount) }
	}
	cases := []struct {
		name  string
		opts  []option
		steps []step
	}{
		{"within limits", nil, []step{{tx: purchase(1000), rc: "00"}, {tx: purchase(5000), rc: "00"}}},
		{"over the amount", nil, []step{{tx: purchase(5001), rc: "91", reason: "issuer-unavailable"}}},
		{"over the count", nil, []step{{tx: purchase(100), rc: "00"}, {tx: purchase(100), rc: "00"},
			{tx: purchase(100), rc: "91", reason: "issuer-unavailable"}}},
		{"over the sum", nil, []step{{tx: purchase(5000), rc: "00"}, {tx: purchase(3001), rc: "91", reason: "issuer-unavailable"},
			{tx: purchase(3000), rc: "00"}}},
		{"limits are per day", nil, []step{{tx: purchase(100), rc: "00"}, {tx: purchase(100), rc: "00"},
			{tx: purchase(100), advance: 24 * time.Hour, rc: "00"}}},
		{"limits are per card", nil, []step{{tx: purchase(100), rc: "00"}, {tx: purchase(100), rc: "00"},
			{tx: func(h *harness) termclient.Txn { tx := h.purchase(100); tx.PAN = "6212345678905678"; return tx }, rc: "00"}}},
		{"not with a PIN", []option{withHSM, withTerminal(termTPK)}, []step{{tx: func(h *harness) termclient.Txn {
			tx := h.purchase(100)
			tx.PINBlock = pinBlock
			return tx
		}, rc: "91", reason: "issuer-unavailable"}}},
		{"not for a balance inquiry", nil, []step{{tx: func(h *harness) termclient.Txn {
			tx := h.purchase(0)
			tx.ProcCode = message.PCBalance
			return tx
		}, rc: "91", reason: "issuer-unavailable"}}},
		{"pre-authorization", nil, []step{{tx: func(h *harness) termclient.Txn { tx := h.purchase(100); tx.MTI = "0100"; return tx }, rc: "00"}}},
		{"issuer without stand-in", []option{func(_ *harness, c *Config) { c.StandIn = nil }},
			[]step{{tx: purchase(100), rc: "91", reason: "issuer-unavailable"}}},
		{"advice not queued", []option{func(h *harness, _ *Config) { h.q.fail = errScripted }},
			[]step{{tx: purchase(100), rc: "96", reason: "standin-advice-not-queued"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, append([]option{limits}, tc.opts...)...)
			h.bank.setUp(false)
			approvals := 0
			for i, s := range tc.steps {
				h.clock.Advance(s.advance)
				tx := s.tx(h)
				a := h.do(tx)
				if a.RC != s.rc || a.Reason != s.reason {
					t.Fatalf("step %d: %s %q, want %s %q", i, a.RC, a.Reason, s.rc, s.reason)
				}
				if s.rc == "96" { // a system error: the record stays open for recovery
					continue
				}
				rec := h.record(a.RRN)
				if s.rc != "00" {
					if rec.StandIn || rec.DecidedBy != "switch" {
						t.Fatalf("step %d: decline recorded as %+v", i, rec)
					}
					continue
				}
				approvals++
				if !rec.StandIn || rec.DecidedBy != "stand-in" || !strings.HasPrefix(a.AuthCode, "S") {
					t.Fatalf("step %d: stand-in approval recorded as %+v, auth %q", i, rec, a.AuthCode)
				}
				items := h.q.all()
				if len(items) != approvals {
					t.Fatalf("step %d: %d advices queued, want %d", i, len(items), approvals)
				}
				it := items[len(items)-1]
				want := "0220"
				if tx.MTI == "0100" {
					want = "0120"
				}
				if it.MTI != want || it.RRN != a.RRN || it.Fields[38] != a.AuthCode || it.Fields[2] != "" {
					t.Fatalf("step %d: advice %+v", i, it)
				}
				if pan, err := h.p.OpenSealedPAN(it.Binary[2]); err != nil || pan != tx.PAN {
					t.Fatalf("step %d: sealed PAN opens to %q, %v", i, pan, err)
				}
			}
			if len(h.bank.sent()) != 0 {
				t.Fatal("a down issuer was sent requests")
			}
		})
	}
}

// TestCircuitBreaker: timeouts open the issuer's breaker (no request is sent, stand-in
// or 91 issuer-circuit-open), it probes after OpenFor, a probe timeout reopens it and
// answered probes close it.
func TestCircuitBreaker(t *testing.T) {
	h := newHarness(t, func(_ *harness, c *Config) {
		c.Breaker = BreakerConfig{Window: 10 * time.Second, Buckets: 10, MinRequests: 4, FailureRate: 0.5, OpenFor: 5 * time.Second, Probes: 2}
	})
	var mu sync.Mutex
	timeout := true
	h.bank.script(func(sent) (*iso8583.Message, error) {
		mu.Lock()
		defer mu.Unlock()
		if timeout {
			return nil, ErrIssuerTimeout
		}
		return issuerAnswer("00", "123456"), nil
	})
	setTimeout := func(v bool) { mu.Lock(); timeout = v; mu.Unlock() }
	expect := func(step, rc, reason string, sends int, state BreakerState) {
		t.Helper()
		a := h.do(h.purchase(100))
		if a.RC != rc || a.Reason != reason || len(h.bank.sent()) != sends {
			t.Fatalf("%s: %s %q with %d sent, want %s %q with %d", step, a.RC, a.Reason, len(h.bank.sent()), rc, reason, sends)
		}
		if s := h.p.breaker("bank").current(h.clock.Now()); s != state {
			t.Fatalf("%s: breaker %s, want %s", step, s, state)
		}
		h.clock.Advance(100 * time.Millisecond)
	}
	expect("timeout 1", "91", "issuer-timeout", 1, BreakerClosed)
	expect("timeout 2", "91", "issuer-timeout", 2, BreakerClosed)
	expect("timeout 3", "91", "issuer-timeout", 3, BreakerClosed)
	expect("timeout 4 opens", "91", "issuer-timeout", 4, BreakerOpen)
	expect("open: not sent", "91", "issuer-circuit-open", 4, BreakerOpen)
	if n := len(h.q.all()); n != 4 {
		t.Fatalf("%d reversals queued for 4 timeouts", n)
	}
	h.clock.Advance(5 * time.Second)
	expect("probe times out: reopens", "91", "issuer-timeout", 5, BreakerOpen)
	expect("reopened: not sent", "91", "issuer-circuit-open", 5, BreakerOpen)
	h.clock.Advance(5 * time.Second)
	setTimeout(false)
	expect("probe 1 answered", "00", "", 6, BreakerHalfOpen)
	expect("probe 2 answered: closes", "00", "", 7, BreakerClosed)
	expect("closed", "00", "", 8, BreakerClosed)
}

// TestBreakerOpenStandsIn: with the breaker open, stand-in approves within limits.
func TestBreakerOpenStandsIn(t *testing.T) {
	h := newHarness(t, func(_ *harness, c *Config) {
		c.Breaker = BreakerConfig{MinRequests: 1, FailureRate: 1, OpenFor: time.Minute}
		c.StandIn = map[string]StandInLimits{"bank": {Enabled: true, MaxAmount: 5000, PerCardCount: 5, PerCardSum: 50000}}
	})
	h.bank.script(func(sent) (*iso8583.Message, error) { return nil, ErrIssuerTimeout })
	if a := h.do(h.purchase(100)); a.RC != "91" || a.Reason != "issuer-timeout" {
		t.Fatalf("timeout: %+v", a.Result)
	}
	a := h.do(h.purchase(100))
	if rec := h.record(a.RRN); a.RC != "00" || !rec.StandIn || len(h.bank.sent()) != 1 {
		t.Fatalf("open breaker: %+v, stand-in %v, %d sent", a.Result, rec.StandIn, len(h.bank.sent()))
	}
	if a := h.do(h.purchase(6000)); a.RC != "91" || a.Reason != "issuer-circuit-open" {
		t.Fatalf("over the stand-in amount: %+v", a.Result)
	}
}

// TestTimeoutReversalIsFirstTry: the 0420 of a timeout queued by the live process goes
// as a first advice (0420), not as a repeat: only recovery's may have gone before.
func TestTimeoutReversalIsFirstTry(t *testing.T) {
	h := newHarness(t)
	h.bank.script(func(sent) (*iso8583.Message, error) { return nil, ErrIssuerTimeout })
	if a := h.do(h.purchase(100)); a.RC != "91" {
		t.Fatalf("timeout: %+v", a.Result)
	}
	items := h.q.all()
	if len(items) != 1 || items[0].MTI != "0420" || items[0].Repeat {
		t.Fatalf("queued %+v, want one 0420 without Repeat", items)
	}
}

// approved runs an approved purchase of amount and returns its answer.
func (h *harness) approved(amount int64) answer {
	h.t.Helper()
	a := h.do(h.purchase(amount))
	if a.RC != "00" {
		h.t.Fatalf("original not approved: %+v", a.Result)
	}
	return a
}

// TestVoid covers the checks of a void (0200 020000) against its original.
func TestVoid(t *testing.T) {
	cases := []struct {
		name   string
		setup  func(h *harness, orig answer) // after the original
		change func(tx *termclient.Txn)
		issuer string // the original's issuer answer (default 00)
		rc     string
		reason string
	}{
		{name: "approved", rc: "00"},
		{name: "original unknown", change: func(tx *termclient.Txn) { tx.RRN = "999999999999" }, rc: "25", reason: "original-not-found"},
		{name: "other terminal", change: func(tx *termclient.Txn) { tx.TID = "T0000002" }, rc: "12", reason: "void-not-same-terminal-purchase"},
		{name: "original declined", issuer: "51", rc: "12", reason: "original-not-approved"},
		{name: "next day", setup: func(h *harness, _ answer) { h.clock.Advance(24 * time.Hour) }, rc: "12", reason: "void-not-same-day"},
		{name: "other auth code", change: func(tx *termclient.Txn) { tx.AuthCode = "999999" }, rc: "12", reason: "void-auth-code-mismatch"},
		{name: "other amount", change: func(tx *termclient.Txn) { tx.Amount = 999 }, rc: "13", reason: "void-amount-mismatch"},
		// Found by a trial: the void's record carried the other card.
		{name: "other card", change: func(tx *termclient.Txn) { tx.PAN = "6212345678901242" }, rc: "12", reason: "void-other-card"},
		{name: "voided twice", setup: func(h *harness, orig answer) {
			if a := h.do(h.void(orig, 1000)); a.RC != "00" {
				h.t.Fatalf("first void: %+v", a.Result)
			}
		}, rc: "12", reason: "original-already-reversed"},
		{name: "refunded", setup: func(h *harness, orig answer) {
			if a := h.do(h.refund(orig, 100)); a.RC != "00" {
				h.t.Fatalf("refund: %+v", a.Result)
			}
		}, rc: "12", reason: "original-refunded"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			rc := tc.issuer
			if rc == "" {
				rc = "00"
			}
			h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer(rc, "123456"), nil })
			orig := h.do(h.purchase(1000))
			h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer("00", "777777"), nil })
			if tc.setup != nil {
				tc.setup(h, orig)
			}
			queued := len(h.q.all())
			tx := h.void(orig, 1000)
			if tc.change != nil {
				tc.change(&tx)
			}
			sends := len(h.bank.sent())
			a := h.do(tx)
			if a.RC != tc.rc || a.Reason != tc.reason {
				t.Fatalf("void: %s %q, want %s %q", a.RC, a.Reason, tc.rc, tc.reason)
			}
			if len(h.bank.sent()) != sends {
				t.Fatal("a void was sent to the issuer")
			}
			o := h.record(orig.RRN)
			if tc.rc != "00" {
				if len(h.q.all()) != queued {
					t.Fatal("a declined void queued a reversal")
				}
				return
			}
			if a.AuthCode != "123456" || o.ReversedBy != a.RRN || h.record(a.RRN).OriginalRRN != orig.RRN {
				t.Fatalf("void %+v: original reversed by %q", a.Result, o.ReversedBy)
			}
			checkReversalAdvice(t, h.q.all(), o, a.RRN)
		})
	}
}

// void is a void of orig.
func (h *harness) void(orig answer, amount int64) termclient.Txn {
	tx := h.purchase(amount)
	tx.ProcCode, tx.RRN, tx.AuthCode = message.PCVoid, orig.RRN, orig.AuthCode
	return tx
}

// refund is a refund of amount against orig.
func (h *harness) refund(orig answer, amount int64) termclient.Txn {
	tx := h.purchase(amount)
	tx.ProcCode, tx.RRN = message.PCRefund, orig.RRN
	return tx
}

// TestRefund covers the checks of a refund against its original and the reservation
// of its amount.
func TestRefund(t *testing.T) {
	cases := []struct {
		name     string
		setup    func(h *harness, orig answer)
		change   func(tx *termclient.Txn)
		amount   int64
		issuer   string // the refund's issuer answer (default 00)
		origRC   string // the original's issuer answer (default 00)
		rc       string
		reason   string
		refunded int64 // the original's Refunded afterwards
	}{
		{name: "approved", amount: 400, rc: "00", refunded: 400},
		{name: "in full over two", amount: 600, setup: func(h *harness, orig answer) { h.do(h.refund(orig, 400)) }, rc: "00", refunded: 1000},
		{name: "issuer declines: reservation released", amount: 400, issuer: "05", rc: "05", refunded: 0},
		{name: "issuer times out: reservation released", amount: 400, issuer: "timeout", rc: "91", reason: "issuer-timeout", refunded: 0},
		{name: "original unknown", amount: 400, change: func(tx *termclient.Txn) { tx.RRN = "999999999999" }, rc: "25", reason: "original-not-found"},
		{name: "other merchant", amount: 400, change: func(tx *termclient.Txn) { tx.MID = "M00000000000002" }, rc: "12", reason: "refund-original-not-a-purchase-of-merchant"},
		{name: "original declined", amount: 400, origRC: "51", rc: "12", reason: "original-not-approved"},
		{name: "original voided", amount: 400, setup: func(h *harness, orig answer) { h.do(h.void(orig, 1000)) }, rc: "12", reason: "original-already-reversed"},
		{name: "window passed", amount: 400, setup: func(h *harness, _ answer) { h.clock.Advance(31 * 24 * time.Hour) }, rc: "12", reason: "refund-window-passed"},
		{name: "more than the original", amount: 1001, rc: "13", reason: "refund-exceeds-original"},
		{name: "nothing", amount: 0, rc: "13", reason: "invalid-amount"},
		{name: "another currency", amount: 1000, change: func(tx *termclient.Txn) { tx.Currency = "840" }, rc: "12", reason: "refund-currency-mismatch"},
		{name: "more than what is left", amount: 700, setup: func(h *harness, orig answer) { h.do(h.refund(orig, 400)) }, rc: "13", reason: "refund-exceeds-original", refunded: 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			origRC := tc.origRC
			if origRC == "" {
				origRC = "00"
			}
			h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer(origRC, "123456"), nil })
			orig := h.do(h.purchase(1000))
			h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer("00", "222222"), nil })
			if tc.setup != nil {
				tc.setup(h, orig)
			}
			switch tc.issuer {
			case "":
			case "timeout":
				h.bank.script(func(sent) (*iso8583.Message, error) { return nil, ErrIssuerTimeout })
			default:
				h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer(tc.issuer, ""), nil })
			}
			tx := h.refund(orig, tc.amount)
			if tc.change != nil {
				tc.change(&tx)
			}
			a := h.do(tx)
			if a.RC != tc.rc || a.Reason != tc.reason {
				t.Fatalf("refund: %s %q, want %s %q", a.RC, a.Reason, tc.rc, tc.reason)
			}
			if got := h.record(orig.RRN).Refunded; got != tc.refunded {
				t.Fatalf("original refunded %d, want %d", got, tc.refunded)
			}
			if rec := h.record(a.RRN); rec.Type != "refund" || rec.OriginalRRN != tx.RRN {
				t.Fatalf("refund record %+v", rec)
			}
			// An approved refund says how far it took the original's refunds, for
			// the nodes of a cluster that fold it (whole or partial).
			if rec := h.record(a.RRN); tc.rc == "00" && rec.RefundedTo != tc.refunded {
				t.Fatalf("refund record's RefundedTo %d, want %d", rec.RefundedTo, tc.refunded)
			}
		})
	}
}

// reversal is the terminal's 0400 of the request tx, for amount, with tx's DE 3
// (a terminal's reversal repeats it).
func (h *harness) reversal(tx termclient.Txn, amount int64) termclient.Txn {
	r := h.purchase(amount)
	r.MTI, r.ProcCode = "0400", tx.ProcCode
	mti := tx.MTI
	if mti == "" {
		mti = "0200" // termclient's default
	}
	r.Original = termclient.OriginalData(mti, tx.STAN, message.FormatDE7(tx.Time))
	return r
}

// TestReversal covers the terminal's reversals: always answered 00 unless the amount
// differs, the original reversed at its issuer through the queue when approved, and
// an original that comes after its reversal declined.
func TestReversal(t *testing.T) {
	cases := []struct {
		name     string
		opts     []option
		origRC   string // the original's issuer answer; "" no original
		setup    func(h *harness, orig termclient.Txn, a answer)
		amount   int64
		rc       string
		reason   string
		reversed bool // the original is reversed by the reversal
	}{
		{name: "approved original", origRC: "00", amount: 1000, rc: "00", reversed: true},
		{name: "declined original", origRC: "51", amount: 1000, rc: "00"},
		{name: "other amount", origRC: "00", amount: 500, rc: "13", reason: "reversal-amount-mismatch"},
		{name: "other amount, reverse in full", opts: []option{func(_ *harness, c *Config) { c.ReversalMismatch = "reverse_full" }},
			origRC: "00", amount: 500, rc: "00", reversed: true},
		{name: "original of another merchant", origRC: "00", amount: 1000, rc: "00",
			setup: func(h *harness, _ termclient.Txn, _ answer) {
				h.j.mu.Lock()
				for _, r := range h.j.recs {
					r.MID = "M00000000000002"
				}
				h.j.mu.Unlock()
			}},
		{name: "refunded original", origRC: "00", amount: 1000, rc: "12", reason: "original-refunded",
			setup: func(h *harness, _ termclient.Txn, a answer) {
				// Reversing a refunded purchase would credit the card twice.
				if r := h.do(h.refund(a, 300)); r.RC != "00" {
					h.t.Fatalf("refund: %+v", r.Result)
				}
			}},
		{name: "already reversed (undelivered)", origRC: "00", amount: 1000, rc: "00",
			setup: func(h *harness, orig termclient.Txn, _ answer) {
				// The original is resent, reversed by the switch as undelivered.
				h.j.mu.Lock()
				for _, r := range h.j.recs {
					r.ReversedBy = "switch:undelivered"
				}
				h.j.mu.Unlock()
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.opts...)
			h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer(tc.origRC, "123456"), nil })
			orig := h.purchase(1000)
			oa := h.do(orig)
			if tc.setup != nil {
				tc.setup(h, orig, oa)
			}
			queued := len(h.q.all())
			a := h.do(h.reversal(orig, tc.amount))
			if a.RC != tc.rc || a.Reason != tc.reason {
				t.Fatalf("reversal: %s %q, want %s %q", a.RC, a.Reason, tc.rc, tc.reason)
			}
			o := h.record(oa.RRN)
			if rec := h.record(a.RRN); rec.OriginalRRN != oa.RRN || rec.Type != "reversal" {
				t.Fatalf("reversal record %+v", rec)
			}
			if !tc.reversed {
				if len(h.q.all()) != queued || (o.ReversedBy != "" && o.ReversedBy[:7] != "switch:") {
					t.Fatalf("original reversed by %q, %d queued", o.ReversedBy, len(h.q.all())-queued)
				}
				return
			}
			if o.ReversedBy != a.RRN {
				t.Fatalf("original reversed by %q, want %s", o.ReversedBy, a.RRN)
			}
			checkReversalAdvice(t, h.q.all(), o, a.RRN)
			if len(h.bank.sent()) != 1 {
				t.Fatal("the reversal went to the issuer directly")
			}
		})
	}
	t.Run("reversed refund releases its amount", func(t *testing.T) {
		h := newHarness(t)
		orig := h.purchase(1000)
		oa := h.do(orig)
		rf := h.refund(oa, 300)
		if ra := h.do(rf); ra.RC != "00" || h.record(oa.RRN).Refunded != 300 {
			t.Fatalf("refund: %+v, refunded %d", ra.Result, h.record(oa.RRN).Refunded)
		}
		if a := h.do(h.reversal(rf, 300)); a.RC != "00" {
			t.Fatalf("reversal of the refund: %+v", a.Result)
		}
		if got := h.record(oa.RRN).Refunded; got != 0 {
			t.Fatalf("after the refund's reversal the original holds %d refunded, want 0", got)
		}
		// The purchase can now be reversed (or refunded in full) again.
		a := h.do(h.reversal(orig, 1000))
		if o := h.record(oa.RRN); a.RC != "00" || o.ReversedBy != a.RRN {
			t.Fatalf("reversal of the purchase: %+v, reversed by %q", a.Result, o.ReversedBy)
		}
	})
	t.Run("refund reversed by a later retry releases its amount once", func(t *testing.T) {
		// The queue refuses the refund's reversal advice (a cluster's stream without a
		// quorum): the reversal is answered 96, the advice kept and queued on a later
		// try, and the mark written then; only then does the amount go back, once.
		h := newHarness(t)
		oa := h.do(h.purchase(1000))
		rf := h.refund(oa, 300)
		if ra := h.do(rf); ra.RC != "00" {
			t.Fatalf("refund: %+v", ra.Result)
		}
		h.queueRefuses(true)
		if a := h.do(h.reversal(rf, 300)); a.RC != "96" {
			t.Fatalf("reversal of the refund while the queue refuses: %+v", a.Result)
		}
		if got := h.record(oa.RRN).Refunded; got != 300 {
			t.Fatalf("before the advice is queued the original holds %d refunded, want 300", got)
		}
		h.queueRefuses(false)
		h.p.retryAdvices()
		h.p.settle(t.Context())
		h.p.settle(t.Context())
		if got := h.record(oa.RRN).Refunded; got != 0 {
			t.Fatalf("after the refund's reversal mark was written the original holds %d refunded, want 0", got)
		}
		if r := h.do(h.refund(oa, 1000)); r.RC != "00" || h.record(oa.RRN).Refunded != 1000 {
			t.Fatalf("refund in full after the release: %+v, refunded %d", r.Result, h.record(oa.RRN).Refunded)
		}
	})
	t.Run("refund timed out, its advice queued late: released once", func(t *testing.T) {
		// Found by a review: the refund answered 91 had been released when it was
		// answered, and the late mark released it again, freeing refund A's 300.
		h := newHarness(t)
		oa := h.do(h.purchase(1000))
		if a := h.do(h.refund(oa, 300)); a.RC != "00" {
			t.Fatalf("refund A: %+v", a.Result)
		}
		h.bank.script(func(sent) (*iso8583.Message, error) { return nil, ErrIssuerTimeout })
		h.queueRefuses(true)
		if b := h.do(h.refund(oa, 300)); b.RC != "91" {
			t.Fatalf("refund B while the issuer times out: %+v", b.Result)
		}
		h.queueRefuses(false)
		h.p.retryAdvices()
		h.p.settle(t.Context())
		if got := h.record(oa.RRN).Refunded; got != 300 {
			t.Fatalf("after refund B's late reversal mark the original holds %d refunded, want refund A's 300", got)
		}
		h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer("00", "123456"), nil })
		if r := h.do(h.refund(oa, 1000)); r.RC == "00" {
			t.Fatalf("a refund of 1000 beyond refund A's 300 was approved: %+v", r.Result)
		}
	})
	t.Run("a void is not reversed", func(t *testing.T) {
		// Found by a trial: the reversal of a void was answered 00 and queued a 0420
		// of the void itself, while its sale stayed reversed.
		h := newHarness(t)
		oa := h.do(h.purchase(1000))
		vtx := h.void(oa, 1000)
		if va := h.do(vtx); va.RC != "00" {
			t.Fatalf("void: %+v", va.Result)
		}
		queued := len(h.q.all())
		a := h.do(h.reversal(vtx, 1000))
		if a.RC != "12" || a.Reason != "void-not-reversible" || len(h.q.all()) != queued {
			t.Fatalf("reversal of the void: %s %q, %d advices queued (want 12 void-not-reversible, none)", a.RC, a.Reason, len(h.q.all())-queued)
		}
		if o := h.record(oa.RRN); !o.Reversed() {
			t.Fatalf("the sale after the void's reversal was refused: %+v", o)
		}
	})
	t.Run("original after its reversal", func(t *testing.T) {
		h := newHarness(t)
		orig := h.purchase(1000)
		a := h.do(h.reversal(orig, 1000))
		if a.RC != "00" {
			t.Fatalf("reversal of an unknown original: %+v", a.Result)
		}
		late := h.do(orig)
		if late.RC != "12" || late.Reason != "reversed-before-arrival" || len(h.bank.sent()) != 0 {
			t.Fatalf("late original: %+v, %d sent", late.Result, len(h.bank.sent()))
		}
		// Only once: the memory is taken.
		if again := h.do(orig); again.RRN != late.RRN || again.RC != "12" {
			t.Fatalf("resend of the late original: %+v", again.Result)
		}
	})
	t.Run("late original after the window", func(t *testing.T) {
		h := newHarness(t)
		orig := h.purchase(1000)
		h.do(h.reversal(orig, 1000))
		h.clock.Advance(6 * time.Minute)
		if late := h.do(orig); late.RC != "00" {
			t.Fatalf("original past the window: %+v", late.Result)
		}
	})
}

// TestBatch covers the settlement request (0500): totals compared with the journal's
// approved, not reversed purchases and refunds since the last batch.
func TestBatch(t *testing.T) {
	batch := func(h *harness, bt string) termclient.Txn {
		tx := h.purchase(0)
		tx.MTI, tx.ProcCode, tx.PAN, tx.Expiry = "0500", message.PCBatch, "", ""
		if bt != "" {
			tx.TLV = [][2]string{{message.TagBatchTotals, bt}}
		} else {
			tx.TLV = [][2]string{{message.TagDevice, "D1"}}
		}
		return tx
	}
	h := newHarness(t)
	p1 := h.approved(1000)
	h.approved(2500)
	h.do(h.refund(p1, 300))
	h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer("51", ""), nil })
	h.do(h.purchase(777)) // declined: not counted
	h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer("00", "123456"), nil })
	p4 := h.approved(400)
	h.do(h.void(p4, 400)) // voided: not counted
	h.clock.Advance(time.Second)
	for _, tc := range []struct {
		name, bt, rc, reason string
		before               func() // runs first
	}{
		{name: "missing", rc: "30", reason: "batch-totals-missing"},
		{name: "malformed", bt: "2,3500", rc: "30", reason: "batch-totals-malformed"},
		// Two purchases, one refund: the declined and the voided ones do not count.
		{name: "matching", bt: "2,3500,1,300", rc: "00"},
		{name: "differ: only the new batch", bt: "1,1200,0,1", rc: "95", reason: "batch-totals-differ",
			before: func() { h.clock.Advance(time.Second); h.approved(1200); h.clock.Advance(time.Second) }},
		{name: "after close: empty batch", bt: "0,0,0,0", rc: "00"},
	} {
		if tc.before != nil {
			tc.before()
		}
		a := h.do(batch(h, tc.bt))
		if a.RC != tc.rc || a.Reason != tc.reason {
			t.Fatalf("%s: %s %q, want %s %q", tc.name, a.RC, a.Reason, tc.rc, tc.reason)
		}
	}
}

// TestNetworkManagement covers 0800: sign-on and echo, an unknown code, a key change,
// and a wrong MAC (63, answer not MAC'd).
func TestNetworkManagement(t *testing.T) {
	h := newHarness(t, withHSM, withTerminal(termMAC))
	h.macKey = termMAC.Keys.TAK
	net := func(code string) termclient.Txn {
		tx := h.purchase(0)
		tx.MTI, tx.NetCode = "0800", code
		return tx
	}
	for _, code := range []string{message.NMSignOn, message.NMEcho, message.NMSignOff} {
		if a := h.do(net(code)); a.RC != "00" || a.MAC == "" {
			t.Fatalf("%s: %+v", code, a.Result)
		}
	}
	if a := h.do(net("999")); a.RC != "12" {
		t.Fatalf("unknown code: %+v", a.Result)
	}
	a := h.do(net(message.NMKeyChange))
	tlv, err := message.ParseTLV(a.DE48)
	if a.RC != "00" || err != nil || tlv.PINKey != "KEY(T0000001.TPK):ABCDEF" || tlv.MACKey != "KEY(T0000001.TAK):ABCDEF" {
		t.Fatalf("key change: %+v (%v)", a.Result, err)
	}
	if g := h.hsm.generated; len(g) != 2 || g[0].Export == nil || g[0].Export.KEK.ID != "T0000001.TMK" || g[0].KeySpec.Grace != 10*time.Minute {
		t.Fatalf("keys generated %+v", g)
	}
	h.macKey = "wrong"
	if a := h.do(net(message.NMEcho)); a.RC != "63" || a.Reason != "mac-invalid" || a.MAC != "" {
		t.Fatalf("wrong MAC: %+v", a.Result)
	}
	if h.j.count() != 0 {
		t.Fatalf("network messages journaled: %d", h.j.count())
	}
}

// TestKeyChangeSharedKeyAndInterval: a terminal's key change (0800/161) does not
// rotate a TPK or TAK another terminal's record names (63 shared-working-key,
// nothing generated), and a terminal gets at most one new set of keys per
// KeyChangeInterval: a change sooner gets the last one's keys again, nothing
// generated. Until 8 December 2026 one load terminal rotated LT.TPK under the
// 1,999 others, and 200 changes in 1.4 s made 203 key versions.
func TestKeyChangeSharedKeyAndInterval(t *testing.T) {
	other := termMAC
	other.ID = "T0000002"
	other.Keys.TAK, other.Keys.TMK = "T0000002.TAK", "T0000002.TMK" // T0000001.TPK shared
	h := newHarness(t, withHSM, withTerminal(termMAC), withTerminal(other),
		func(_ *harness, c *Config) { c.KeyChangeInterval = 30 * time.Second })
	h.macKey = termMAC.Keys.TAK
	change := func() answer {
		tx := h.purchase(0)
		tx.MTI, tx.NetCode = "0800", message.NMKeyChange
		return h.do(tx)
	}
	if a := change(); a.RC != "63" || a.Reason != "shared-working-key" || len(h.hsm.generated) != 0 {
		t.Fatalf("key change of a terminal whose TPK another terminal uses: %+v, %d keys generated (want 63 shared-working-key, none)", a.Result, len(h.hsm.generated))
	}
	// The other terminal gets a TPK of its own: the key is T0000001's alone.
	h.terms.mu.Lock()
	o := *h.terms.terms["T0000002"]
	o.Keys.TPK = "T0000002.TPK"
	h.terms.terms["T0000002"] = &o
	h.terms.mu.Unlock()
	first := change()
	if first.RC != "00" || len(h.hsm.generated) != 2 || first.DE48 == "" {
		t.Fatalf("key change of the terminal's own keys: %+v, %d keys generated", first.Result, len(h.hsm.generated))
	}
	h.clock.Advance(29 * time.Second)
	for i := range 3 {
		if a := change(); a.RC != "00" || a.DE48 != first.DE48 || len(h.hsm.generated) != 2 {
			t.Fatalf("key change %d within the interval: %+v, %d keys generated (want 00 with the first change's keys %q, no new key)", i, a.Result, len(h.hsm.generated), first.DE48)
		}
	}
	h.clock.Advance(time.Second)
	if a := change(); a.RC != "00" || len(h.hsm.generated) != 4 {
		t.Fatalf("key change once the interval passed: %+v, %d keys generated", a.Result, len(h.hsm.generated))
	}
}

// TestRiskReviewOpensCase: a review decision lets the transaction go on and opens a case;
// the outcome is observed once.
func TestRiskReviewOpensCase(t *testing.T) {
	h := newHarness(t, withRisk)
	h.risk.decide = func(*risk.Input) risk.Decision {
		return risk.Decision{Action: risk.ActionReview, Rule: "R9", Version: "v1", Hits: []risk.Hit{{Rule: "R9", Action: risk.ActionReview}}}
	}
	a := h.approved(1000)
	rec := h.record(a.RRN)
	if len(h.cases.opened) != 1 || h.cases.opened[0] != a.RRN || rec.RuleSet != "v1" || len(rec.RuleHits) != 1 || len(rec.Facts) == 0 {
		t.Fatalf("cases %v, record rule set %q hits %v facts %d", h.cases.opened, rec.RuleSet, rec.RuleHits, len(rec.Facts))
	}
	if len(h.risk.observed) != 1 {
		t.Fatalf("observed %d times", len(h.risk.observed))
	}
	// Each hit is counted by rule and mode (the console's early warning reads it).
	if n := counterValue(h.p.metrics.RuleHits.WithLabelValues("R9", "")); n != 1 {
		t.Fatalf("switchyard_risk_rule_hits_total{rule=R9}: %v, want 1", n)
	}
}

// TestRecover settles what a crash left open: sent without an answer (91, reversed),
// never sent (96), an approval without a delivery mark (reversed); a delivered approval
// and records below the checkpoint are left alone.
func TestRecover(t *testing.T) {
	h := newHarness(t)
	at := h.clock.Now().UTC()
	rec := func(rrn, rc string, states ...journal.State) *journal.Record {
		r := &journal.Record{RRN: rrn, Received: at, MTI: "0200", Type: "purchase", ProcCode: "000000", TID: testTID, MID: testMID,
			STAN: rrn[6:], DE7: message.FormatDE7(at), Amount: 100, Issuer: "bank", IssuerSTAN: "000009", RC: rc}
		for _, s := range states {
			r.AddEvent(s, at, "")
		}
		return r
	}
	// Two refunds of 000000000001 (delivered, below the checkpoint), each holding 30
	// of its amount: one left open, one approved without a delivery mark. Both are
	// reversed; their reservations stay (see releaseRefund).
	refundOf := func(rrn, rc string, states ...journal.State) *journal.Record {
		r := rec(rrn, rc, states...)
		r.ProcCode, r.Type, r.OriginalRRN, r.Amount = "200000", "refund", "000000000001", 30
		return r
	}
	first := rec("000000000001", "00", journal.StateReceived, journal.StateSent, journal.StateAnswered)
	first.Refunded = 60
	for _, r := range []*journal.Record{first,
		rec("000000000002", "", journal.StateReceived, journal.StateSent),
		rec("000000000003", "", journal.StateReceived),
		rec("000000000004", "00", journal.StateReceived, journal.StateSent, journal.StateAnswered),
		rec("000000000005", "00", journal.StateReceived, journal.StateSent, journal.StateAnswered),
		refundOf("000000000006", "", journal.StateReceived, journal.StateSent),
		refundOf("000000000007", "00", journal.StateReceived, journal.StateSent, journal.StateAnswered),
	} {
		if err := h.j.Write(t.Context(), r, true, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.j.MarkDelivery("000000000005", true, at); err != nil {
		t.Fatal(err)
	}
	h.j.ckpt = "000000000002"
	if err := h.j.MarkDelivery("000000000001", true, at); err != nil {
		t.Fatal(err)
	}
	n, err := h.p.Recover(t.Context())
	if err != nil || n != 5 {
		t.Fatalf("Recover: %d, %v", n, err)
	}
	for _, want := range []struct {
		rrn, rc, reason, reversed string
	}{
		{"000000000001", "00", "", ""},
		{"000000000002", "91", "in-doubt-after-restart", "switch:restart"},
		{"000000000003", "96", "open-at-restart", ""},
		{"000000000004", "00", "", "switch:undelivered-at-restart"},
		{"000000000005", "00", "", ""},
		{"000000000006", "91", "in-doubt-after-restart", "switch:restart"},
		{"000000000007", "00", "", "switch:undelivered-at-restart"},
	} {
		r := h.record(want.rrn)
		if r.RC != want.rc || r.Reason != want.reason || r.ReversedBy != want.reversed {
			t.Errorf("%s: rc %s reason %q reversed by %q, want %s %q %q", want.rrn, r.RC, r.Reason, r.ReversedBy, want.rc, want.reason, want.reversed)
		}
	}
	// Recovery releases no reservation: one released in memory before the crash
	// would be released twice (an over-refund); kept, it is at worst an under-refund.
	if got := h.record("000000000001").Refunded; got != 60 {
		t.Errorf("the refunds' original holds %d refunded after recovery, want the 60 reserved", got)
	}
	items := h.q.all()
	if len(items) != 4 || items[0].RRN != "000000000002" || items[1].RRN != "000000000006" || items[2].RRN != "000000000004" || items[0].MTI != "0420" {
		t.Fatalf("queued %+v", items)
	}
	// The process that died may have queued them already: each goes as a repeat
	// (0421) from its first try.
	for _, it := range items {
		if !it.Repeat {
			t.Errorf("recovery queued the reversal of %s (%s) as a first 0420, not a repeat", it.RRN, it.Reason)
		}
	}
}

// TestQueueRefusesReversal: a timeout whose reversal the queue refuses still answers 91,
// and the record does not claim a reversal it does not have.
func TestQueueRefusesReversal(t *testing.T) {
	h := newHarness(t)
	h.q.fail = errors.New("queue full")
	h.bank.script(func(sent) (*iso8583.Message, error) { return nil, ErrIssuerTimeout })
	a := h.do(h.purchase(100))
	if rec := h.record(a.RRN); a.RC != "91" || rec.ReversedBy != "" || !hasEvent(rec, journal.StateTimedOut) {
		t.Fatalf("answer %+v, record reversed by %q", a.Result, rec.ReversedBy)
	}
}

// TestCheckpointWaitsForDelivery: the recovery checkpoint stays at an answered
// transaction until its delivery is known (so that recovery after a crash finds an
// approval the terminal may not have had), and moves on after.
func TestCheckpointWaitsForDelivery(t *testing.T) {
	h := newHarness(t)
	first := h.approved(1000)
	resp, err := h.p.Process(t.Context(), h.conn, h.frame(h.purchase(2000)))
	if err != nil || resp.Sent == nil {
		t.Fatalf("Process: %v", err)
	}
	h.approved(3000)
	h.p.checkpoint()
	ck, _ := h.j.Checkpoint()
	if ck <= first.RRN {
		t.Fatalf("checkpoint %s not past the delivered %s", ck, first.RRN)
	}
	req, _ := message.Decode(resp.Body, message.DialectASCII)
	if ck != req.RRN {
		t.Fatalf("checkpoint %s passed or missed the answer of unknown delivery %s", ck, req.RRN)
	}
	resp.Sent(true)
	h.p.checkpoint()
	if ck2, _ := h.j.Checkpoint(); ck2 <= ck {
		t.Fatalf("checkpoint %s did not move past %s once delivered", ck2, ck)
	}
}

// TestCheckpointPassesSystemError: a request answered 96 because its record could not
// be written leaves nothing open, so the recovery checkpoint moves on past it.
func TestCheckpointPassesSystemError(t *testing.T) {
	h := newHarness(t)
	h.j.failWrite = errScripted
	failed := h.do(h.purchase(1000))
	if failed.RC != "96" {
		t.Fatalf("answer %+v, want 96", failed.Result)
	}
	h.j.failWrite = nil
	ok := h.approved(2000)
	h.p.checkpoint()
	if ck, _ := h.j.Checkpoint(); ck != ok.RRN {
		t.Fatalf("checkpoint %s, want %s: the unwritten record of a 96 holds it back", ck, ok.RRN)
	}
}

// TestJournalUnavailableLogSampled: a journal that takes no new records (a
// cluster without a quorum, a nearly full disk) gets every request answered 91,
// and the pipeline logs a burst of those, not a line each (a full disk would be
// filled faster by its own logs); every one is still answered and counted.
func TestJournalUnavailableLogSampled(t *testing.T) {
	var logs syncbuf.Buffer
	h := newHarness(t, func(_ *harness, c *Config) { c.Logger = zerolog.New(&logs) })
	h.j.failWrite = fmt.Errorf("data directory nearly full: %w", journal.ErrUnavailable)
	const n = 100
	for range n {
		if a := h.do(h.purchase(100)); a.RC != "91" {
			t.Fatalf("answer %+v, want 91 journal-unavailable", a.Result)
		}
	}
	lines := strings.Count(logs.String(), "journal unavailable: answered 91")
	// 10 a second: more than 2 s for 100 requests would let a third burst in.
	if lines == 0 || lines > 3*journalUnavailableBurst {
		t.Fatalf("%d lines for %d requests answered 91, want 1 to %d", lines, n, 3*journalUnavailableBurst)
	}
}

// TestUnsupportedProcessingCode: an 0200 or 0100 whose DE 3 the terminal interface
// does not define is declined 12 before its checks, rules and issuer, and journaled
// so. Before 7 December 2026 an 0200 with DE 3 020030 (a void from a credit account),
// 200030 or 999999 carrying an approved purchase's DE 37 and 38 was approved as a
// new purchase: the card charged again where the terminal meant to take it back.
func TestUnsupportedProcessingCode(t *testing.T) {
	h := newHarness(t, withRisk)
	rulesRan := 0
	h.risk.decide = func(*risk.Input) risk.Decision { rulesRan++; return risk.Decision{Action: risk.ActionAllow} }
	orig := h.do(h.purchase(1234))
	if orig.RC != "00" {
		t.Fatalf("purchase: %s %q", orig.RC, orig.Reason)
	}
	sent, ran := len(h.bank.sent()), rulesRan
	for _, c := range []struct{ mti, proc string }{
		{"0200", "020030"}, {"0200", "200030"}, {"0200", "999999"}, {"0200", message.PCBatch},
		{"0200", "000001"}, {"0100", message.PCBalance}, {"0100", "999999"},
	} {
		tx := h.purchase(1234)
		tx.MTI, tx.ProcCode, tx.RRN, tx.AuthCode = c.mti, c.proc, orig.RRN, orig.AuthCode
		a := h.do(tx)
		if a.RC != "12" || a.Reason != "unsupported-processing-code" || a.AuthCode != "" {
			t.Errorf("%s DE 3 %s: %s %q auth %q; want 12 unsupported-processing-code", c.mti, c.proc, a.RC, a.Reason, a.AuthCode)
			continue
		}
		rec := h.record(a.RRN)
		if rec.ProcCode != c.proc || rec.RC != "12" || rec.Reason != "unsupported-processing-code" || (c.mti == "0200" && rec.Type != "other") {
			t.Errorf("%s DE 3 %s journaled as %s %s %s %q", c.mti, c.proc, rec.Type, rec.ProcCode, rec.RC, rec.Reason)
		}
	}
	if n := len(h.bank.sent()); n != sent || rulesRan != ran {
		t.Errorf("the issuer got %d requests more and the rules ran %d times more; want none", n-sent, rulesRan-ran)
	}
	// The codes the interface defines go on as before.
	pre := h.purchase(500)
	pre.MTI, pre.ProcCode = "0100", "003000"
	if a := h.do(pre); a.RC != "00" {
		t.Errorf("0100 DE 3 003000 (a pre-authorization from a credit account): %s %q; want 00", a.RC, a.Reason)
	}
	if a := h.do(h.void(orig, 1234)); a.RC != "00" {
		t.Errorf("the void of the purchase: %s %q; want 00", a.RC, a.Reason)
	}
}

// TestKeyChangesAtOnce: key changes of one terminal sent side by side (a
// connection's requests run concurrently) make one new set of keys, and each
// gets it. Before the terminal's changes were taken one at a time, each missed
// the others' and generated keys of its own.
func TestKeyChangesAtOnce(t *testing.T) {
	h := newHarness(t, withHSM, withTerminal(termMAC))
	h.macKey = termMAC.Keys.TAK
	h.hsm.generateYield = true // the HSM's round trip, during which the others come
	const n = 8
	answers := make(chan answer, n)
	var wg sync.WaitGroup
	for range n {
		tx := h.purchase(0)
		tx.MTI, tx.NetCode = "0800", message.NMKeyChange
		wg.Add(1)
		go func() { defer wg.Done(); answers <- h.do(tx) }()
	}
	wg.Wait()
	close(answers)
	var first string
	for a := range answers {
		if a.RC != "00" || first != "" && a.DE48 != first {
			t.Fatalf("key change at once: %+v, want 00 with the one set of keys %q", a.Result, first)
		}
		first = a.DE48
	}
	if got := len(h.hsm.generated); got != 2 {
		t.Fatalf("%d key changes at once generated %d keys, want one TPK and one TAK", n, got)
	}
}
