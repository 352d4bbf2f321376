package pipeline

import (
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/termclient"
)

// fakeUpdates offers every terminal the same update and records the AV reports.
type fakeUpdates struct {
	mu      sync.Mutex
	reports []string // "TID AV" of each Offer
}

// offer is what fakeUpdates offers (DE 48 UP).
const offer = "1.1.0:100:ab12:TOKEN"

func (u *fakeUpdates) Offer(tid, _, av string, _ time.Time) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.reports = append(u.reports, tid+" "+av)
	return offer
}

// OfferAttested records as Offer does (no test here sends a token).
func (u *fakeUpdates) OfferAttested(tid, app, av string, now time.Time) string {
	return u.Offer(tid, app, av, now)
}

func (u *fakeUpdates) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reports)
}

// withUpdates gives the pipeline u as its application updates.
func withUpdates(u *fakeUpdates) option {
	return func(_ *harness, c *Config) { c.Updates = u }
}

// netMgmt is an 0800 of code from the test terminal reporting AV 1.0.0.
func netMgmt(h *harness, code string) termclient.Txn {
	tx := h.purchase(0)
	tx.PAN, tx.Expiry = "", ""
	tx.MTI, tx.NetCode = "0800", code
	tx.TLV = [][2]string{{"AV", "1.0.0"}}
	return tx
}

// hasOffer says whether an answer's DE 48 is the update offer (UP).
func hasOffer(a answer) bool {
	want, err := message.AppendTLV(nil, tagUpdate, offer)
	return err == nil && a.DE48 == string(want)
}

// TestEchoOfferKeyless: the echo of a terminal without a MAC key, which anyone knowing
// its terminal ID can send, is answered 00 but neither records its AV nor gets the
// update offer (whose token would let the sender download as the terminal); the
// terminal's sign-on still gets it.
func TestEchoOfferKeyless(t *testing.T) {
	u := &fakeUpdates{}
	h := newHarness(t, withHSM, withTerminal(termNoKey), withUpdates(u))
	if a := h.do(netMgmt(h, message.NMEcho)); a.RC != "00" || hasOffer(a) || u.count() != 0 {
		t.Fatalf("unauthenticated echo: rc %s DE 48 %q, AV reports %v; want 00, no offer, nothing recorded", a.RC, a.DE48, u.reports)
	}
	if a := h.do(netMgmt(h, message.NMSignOn)); a.RC != "00" || !hasOffer(a) || u.count() != 1 {
		t.Fatalf("sign-on: rc %s DE 48 %q, AV reports %v; want 00 and the offer", a.RC, a.DE48, u.reports)
	}
}

// TestEchoOfferMAC: a terminal with a MAC key gets its offer by echo when the echo's
// MAC verifies; with a wrong MAC the echo is refused 63 and offers nothing.
func TestEchoOfferMAC(t *testing.T) {
	u := &fakeUpdates{}
	h := newHarness(t, withHSM, withTerminal(termMAC), withUpdates(u))
	h.macKey = "wrong"
	if a := h.do(netMgmt(h, message.NMEcho)); a.RC != "63" || hasOffer(a) || u.count() != 0 {
		t.Fatalf("echo with a wrong MAC: rc %s DE 48 %q, AV reports %v; want 63, no offer, nothing recorded", a.RC, a.DE48, u.reports)
	}
	h.macKey = termMAC.Keys.TAK
	if a := h.do(netMgmt(h, message.NMEcho)); a.RC != "00" || !hasOffer(a) || a.MAC == "" || len(u.reports) != 1 || u.reports[0] != testTID+" 1.0.0" {
		t.Fatalf("signed echo: rc %s DE 48 %q MAC %q, AV reports %v; want 00, the offer, MAC'd, AV recorded", a.RC, a.DE48, a.MAC, u.reports)
	}
}

// TestEchoOfferSuspended: a suspended terminal, even with a verified MAC, gets no offer
// and has no AV recorded: its sign-on is refused by the terminal checks and its echo,
// still answered 00 (a keep-alive), carries none.
func TestEchoOfferSuspended(t *testing.T) {
	u := &fakeUpdates{}
	term := termMAC
	term.Status = registry.TerminalSuspended
	h := newHarness(t, withHSM, withTerminal(term), withUpdates(u))
	h.terms.decide = func(req registry.CheckRequest) registry.CheckResult {
		return registry.CheckResult{Decline: true, ResponseCode: "58", Reason: registry.ReasonTerminalSuspended}
	}
	h.macKey = term.Keys.TAK
	if a := h.do(netMgmt(h, message.NMSignOn)); a.RC != "58" || hasOffer(a) || u.count() != 0 {
		t.Fatalf("suspended sign-on: rc %s DE 48 %q, AV reports %v; want 58, no offer", a.RC, a.DE48, u.reports)
	}
	if a := h.do(netMgmt(h, message.NMEcho)); a.RC != "00" || hasOffer(a) || u.count() != 0 {
		t.Fatalf("suspended echo: rc %s DE 48 %q, AV reports %v; want 00, no offer, nothing recorded", a.RC, a.DE48, u.reports)
	}
}
