package pipeline

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/qr"
	"github.com/switchyard/switchyard/switch/termclient"
)

// fakeWallet is a wallet connector: its answers come from pay and refund (default:
// approve), and it records what it was asked.
type fakeWallet struct {
	*fakeLink
	mu      sync.Mutex
	pays    []WalletPayment
	refunds []WalletRefund
	pay     func(WalletPayment) (string, string, error)
}

func (w *fakeWallet) Pay(_ context.Context, p WalletPayment) (string, string, error) {
	w.mu.Lock()
	w.pays = append(w.pays, p)
	f := w.pay
	w.mu.Unlock()
	if f != nil {
		return f(p)
	}
	return "00", "WX0001", nil
}

func (w *fakeWallet) Refund(_ context.Context, r WalletRefund) (string, string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.refunds = append(w.refunds, r)
	return "00", "RF0001", nil
}

// fakeQRRoutes routes every code of the default table's WeChat lines to one wallet.
type fakeQRRoutes struct {
	table  *qr.Table
	wallet *fakeWallet
}

func (r *fakeQRRoutes) RouteQR(code string) (IssuerLink, string, bool) {
	rt, ok := r.table.Classify(code)
	if !ok || rt.Connector != r.wallet.id {
		return nil, "", false
	}
	return r.wallet, rt.Network, true
}

func (r *fakeQRRoutes) Connector(id string) (IssuerLink, bool) {
	return r.wallet, id == r.wallet.id
}

const wxCode = "134567890123456789"

// withWallet wires a WeChat Pay connector (also reachable by its ID, as the server's
// route table makes it) and the rules.
func withWallet(w *fakeWallet) option {
	return func(h *harness, c *Config) {
		tb, _ := qr.NewTable(qr.DefaultRoutes())
		c.QR = &fakeQRRoutes{table: tb, wallet: w}
		c.Risk, c.Cases = h.risk, h.cases
	}
}

func (h *harness) qrPurchase(code string, amount int64) termclient.Txn {
	tx := h.purchase(amount)
	tx.PAN, tx.Expiry, tx.QRCode = "", "", code
	return tx
}

// TestQRPayment: a purchase with a payment code goes to its wallet by the code's
// table line; the journal and the rules see it masked and hashed (never in clear),
// with txn.qr and txn.wallet; a timed-out payment is reversed through the queue to the
// wallet; a refund of it goes back to the wallet with its original's number, a card
// refund of it and a QR refund of a card payment are declined; an unknown code is
// declined 15.
func TestQRPayment(t *testing.T) {
	w := &fakeWallet{fakeLink: newFakeLink(qr.WeChat)}
	h := newHarness(t, withWallet(w))
	var seen risk.Input
	h.risk.decide = func(in *risk.Input) risk.Decision { seen = *in; return risk.Decision{} }
	a := h.do(h.qrPurchase(wxCode, 1000))
	if a.RC != "00" || a.AuthCode != "WX0001" {
		t.Fatalf("answer %+v", a.Result)
	}
	rec := h.record(a.RRN)
	if rec.QR != qr.WeChat || rec.Issuer != qr.WeChat || rec.PANMasked != qr.Mask(wxCode) || rec.CardHash != h.p.CardHash(wxCode) {
		t.Fatalf("record QR %q issuer %q pan %q", rec.QR, rec.Issuer, rec.PANMasked)
	}
	if b, _ := json.Marshal(rec); strings.Contains(string(b), wxCode) {
		t.Fatalf("the journal holds the payment code in clear: %s", b)
	}
	if !seen.Txn.QR || seen.Txn.Wallet != qr.WeChat || seen.Txn.CardHash != rec.CardHash || seen.Txn.BIN != "" {
		t.Fatalf("rules saw qr %v wallet %q hash %q bin %q", seen.Txn.QR, seen.Txn.Wallet, seen.Txn.CardHash, seen.Txn.BIN)
	}
	if len(w.pays) != 1 || w.pays[0].Code != wxCode || w.pays[0].RRN != a.RRN || w.pays[0].Amount != 1000 {
		t.Fatalf("wallet asked %+v", w.pays)
	}
	if len(h.bank.sent()) != 0 {
		t.Fatal("a QR payment went to the card issuer")
	}

	// Refund back to the wallet, naming the original; card refund of it declined.
	ref := h.refund(a, 400)
	ref.PAN, ref.Expiry, ref.QRRefund = "", "", true
	if r := h.do(ref); r.RC != "00" || len(w.refunds) != 1 || w.refunds[0].OriginalRRN != a.RRN || w.refunds[0].Amount != 400 {
		t.Fatalf("refund %+v, wallet refunds %+v", r.Result, w.refunds)
	} else if rr := h.record(r.RRN); rr.QR != qr.WeChat || rr.PANMasked != rec.PANMasked {
		t.Fatalf("refund record QR %q pan %q", rr.QR, rr.PANMasked)
	}
	if r := h.do(h.refund(a, 100)); r.RC != "12" || r.Reason != "qr-original-needs-qc" {
		t.Fatalf("card refund of a QR payment: %+v", r.Result)
	}
	card := h.do(h.purchase(500))
	ref = h.refund(card, 100)
	ref.PAN, ref.Expiry, ref.QRRefund = "", "", true
	if r := h.do(ref); r.RC != "12" || r.Reason != "original-not-a-qr-payment" {
		t.Fatalf("QR refund of a card payment: %+v", r.Result)
	}

	// The payer never confirmed in time: reversed (cancelled) through the queue.
	w.pay = func(WalletPayment) (string, string, error) { return "", "", ErrIssuerTimeout }
	a = h.do(h.qrPurchase(wxCode, 1200))
	if a.RC != "91" || a.Reason != "issuer-timeout" {
		t.Fatalf("timed out: %+v", a.Result)
	}
	items := h.q.all()
	if last := items[len(items)-1]; last.Issuer != qr.WeChat || last.MTI != "0420" || last.RRN != a.RRN {
		t.Fatalf("queued %+v", last)
	}
	if rec := h.record(a.RRN); rec.ReversedBy != "switch:timeout" {
		t.Fatalf("reversed by %q", rec.ReversedBy)
	}

	// A void of a QR payment cancels it through the queue.
	w.pay = nil
	a = h.do(h.qrPurchase(wxCode, 700))
	v := h.void(a, 700)
	v.PAN, v.Expiry, v.QRRefund = "", "", true
	if r := h.do(v); r.RC != "00" {
		t.Fatalf("void: %+v", r.Result)
	}
	if rec := h.record(a.RRN); !rec.Reversed() {
		t.Fatal("voided QR payment not reversed")
	}

	// A code nobody's table line matches.
	if r := h.do(h.qrPurchase("990000000000000000", 100)); r.RC != message.RCNoSuchIssuer || r.Reason != "qr-no-route" {
		t.Fatalf("unknown code: %+v", r.Result)
	}
}

// TestQRNeverStandsIn: a QR payment to a connector that is down is declined 91 even
// where stand-in is configured for it.
func TestQRNeverStandsIn(t *testing.T) {
	w := &fakeWallet{fakeLink: newFakeLink(qr.WeChat)}
	w.setUp(false)
	h := newHarness(t, withWallet(w), func(_ *harness, c *Config) {
		c.StandIn = map[string]StandInLimits{qr.WeChat: {Enabled: true, MaxAmount: 100000, PerCardCount: 10, PerCardSum: 100000}}
	})
	if a := h.do(h.qrPurchase(wxCode, 1000)); a.RC != "91" {
		t.Fatalf("%+v", a.Result)
	}
}

// isoQRRoutes routes UnionPay codes to an ISO 8583 issuer link.
type isoQRRoutes struct{ link *fakeLink }

func (r isoQRRoutes) RouteQR(code string) (IssuerLink, string, bool) {
	if strings.HasPrefix(code, "62") && len(code) == 19 {
		return r.link, qr.UnionPay, true
	}
	return nil, "", false
}

func (r isoQRRoutes) Connector(id string) (IssuerLink, bool) { return r.link, id == r.link.id }

// TestQRUnionPayOverISO: a UnionPay code routed to an ISO 8583 issuer link goes in
// DE 2 with the terminal's DE 22 (03x); the answer is the issuer's; a timeout is
// reversed like a card's.
func TestQRUnionPayOverISO(t *testing.T) {
	cup := newFakeLink("cup")
	h := newHarness(t, func(_ *harness, c *Config) { c.QR = isoQRRoutes{link: cup} })
	const code = "6225880123456789012"
	a := h.do(h.qrPurchase(code, 1000))
	if a.RC != "00" || len(cup.sent()) != 1 {
		t.Fatalf("answer %+v, sent %d", a.Result, len(cup.sent()))
	}
	r, err := message.Decode(cup.sent()[0].Body, message.DialectASCII)
	if err != nil {
		t.Fatal(err)
	}
	if r.PAN != code || r.EntryMode != "032" {
		t.Fatalf("issuer got DE 2 %s, DE 22 %q", qr.Mask(r.PAN), r.EntryMode)
	}
	if rec := h.record(a.RRN); rec.QR != qr.UnionPay || rec.Issuer != "cup" || rec.PANMasked != qr.Mask(code) {
		t.Fatalf("record %+v", rec)
	}
	cup.script(func(sent) (*iso8583.Message, error) { return nil, ErrIssuerTimeout })
	a = h.do(h.qrPurchase(code, 1200))
	if items := h.q.all(); a.RC != "91" || len(items) == 0 || items[len(items)-1].Issuer != "cup" {
		t.Fatalf("timeout: %+v, queue %d", a.Result, len(items))
	}
}

// TestOrderPaymentOverAnotherRecord: a notified payment whose order ID is the RRN of
// a record that is not that order's payment (a card or consumer-presented purchase:
// the RRN handed out again, by a cluster node rebuilt on an empty disk that did not
// know the order) is not taken as journaled already, and a late one does not reverse
// that other purchase at its issuer: it is an error (the network repeats the
// notification, and the operator sees it), the purchase left as it was.
func TestOrderPaymentOverAnotherRecord(t *testing.T) {
	h := newHarness(t)
	a := h.do(h.purchase(1000))
	if a.RC != "00" {
		t.Fatalf("purchase: %+v", a.Result)
	}
	queued := len(h.q.all())
	op := OrderPayment{RRN: a.RRN, TID: testTID, MID: testMID, Currency: "156", Amount: 700, Network: "wechat",
		Connector: "bank", AuthCode: "654321", At: h.clock.Now()}
	if _, err := h.p.RecordOrderPayment(t.Context(), op); err == nil {
		t.Error("a payment of an order whose ID is a card purchase's RRN was taken as journaled")
	}
	op.Late = true
	if _, err := h.p.RecordOrderPayment(t.Context(), op); err == nil {
		t.Error("a late payment of an order whose ID is a card purchase's RRN was taken")
	}
	if rec := h.record(a.RRN); rec.Reversed() || len(h.q.all()) != queued {
		t.Fatalf("the card purchase was reversed by another order's late payment: reversed by %q, %d advices queued", rec.ReversedBy, len(h.q.all())-queued)
	}
}

// TestOrderPaymentWrittenTime: a notified payment's record is received at the payer's
// time and carries the time the journal got it (Record.Written): a payment journaled
// a day after it was made (by the sweep of owed orders) says so, and settlement pays
// it out in the day it was written instead of a day already filed.
func TestOrderPaymentWrittenTime(t *testing.T) {
	h := newHarness(t)
	paid := h.clock.Now().Add(-25 * time.Hour)
	op := OrderPayment{RRN: "000000099999", TID: testTID, MID: testMID, Currency: "156", Amount: 700, Network: "wechat",
		Connector: "bank", AuthCode: "654321", At: paid}
	if _, err := h.p.RecordOrderPayment(t.Context(), op); err != nil {
		t.Fatal(err)
	}
	rec := h.record(op.RRN)
	if !rec.Received.Equal(paid) || !rec.Written.Equal(h.clock.Now()) {
		t.Fatalf("record received %v, written %v: want received at the payment (%v), written now (%v)", rec.Received, rec.Written, paid, h.clock.Now())
	}
}

// TestQRResendFoundInTheJournal: a QR payment, a QR refund and a QR void resent after
// a restart (their duplicate found in the journal, not in memory) get their first
// answers, the wallet asked once each. Until the third release of 6 December 2026 the
// journal's duplicate was compared with the request's PAN, which a QR request has
// not: each resend was answered 94 duplicate-key-other-content.
func TestQRResendFoundInTheJournal(t *testing.T) {
	w := &fakeWallet{fakeLink: newFakeLink(qr.WeChat)}
	h := newHarness(t, withWallet(w))
	pay := h.qrPurchase(wxCode, 1000)
	paid := h.do(pay)
	other := h.do(h.qrPurchase(wxCode, 700))
	ref := h.refund(paid, 400)
	ref.PAN, ref.Expiry, ref.QRRefund = "", "", true
	refunded := h.do(ref)
	void := h.void(other, 700)
	void.PAN, void.Expiry, void.QRRefund = "", "", true
	voided := h.do(void)
	for _, a := range []answer{paid, other, refunded, voided} {
		if a.RC != "00" {
			t.Fatalf("first answers: %+v", a.Result)
		}
	}
	h = h.restart(t)
	for _, c := range []struct {
		name  string
		tx    termclient.Txn
		first answer
	}{{"payment", pay, paid}, {"refund", ref, refunded}, {"void", void, voided}} {
		again := h.do(c.tx)
		if again.RC != c.first.RC || again.RRN != c.first.RRN || again.AuthCode != c.first.AuthCode {
			t.Errorf("%s resent after a restart: %+v, want the first answer %+v", c.name, again.Result, c.first.Result)
		}
	}
	if len(w.pays) != 2 || len(w.refunds) != 1 {
		t.Errorf("wallet asked to pay %d times and to refund %d, want 2 and 1", len(w.pays), len(w.refunds))
	}
	// Another payer's code under the payment's key is still another transaction.
	otherPayer := pay
	otherPayer.QRCode = wxCode[:len(wxCode)-1] + "0"
	if a := h.do(otherPayer); a.RC != "94" {
		t.Errorf("another code under the payment's key: %+v, want 94", a.Result)
	}
}

// TestQRPreauthDeclined: a pre-authorization with a payment code (0100 with QC) is
// declined 12 qr-preauth-not-supported, nothing sent to the wallet or to an ISO 8583
// issuer link. A wallet has no hold: its pay charges the payer at once, while a
// pre-authorization is in no batch and no settlement and a completion of it needs a
// PAN. Until the fifteenth release of 8 December 2026 it went to the wallet's pay:
// the payer was charged and the merchant never paid.
func TestQRPreauthDeclined(t *testing.T) {
	w := &fakeWallet{fakeLink: newFakeLink(qr.WeChat)}
	h := newHarness(t, withWallet(w))
	tx := h.qrPurchase(wxCode, 1000)
	tx.MTI = "0100"
	a := h.do(tx)
	if a.RC != message.RCInvalidTransaction || a.Reason != "qr-preauth-not-supported" {
		t.Fatalf("QR pre-authorization: %+v, want 12 qr-preauth-not-supported", a.Result)
	}
	if len(w.pays) != 0 || len(w.refunds) != 0 {
		t.Fatalf("the wallet was asked: pays %+v, refunds %+v", w.pays, w.refunds)
	}
	if rec := h.record(a.RRN); rec.RC != message.RCInvalidTransaction || rec.Type != "preauth" || rec.Issuer != "" {
		t.Fatalf("record rc %s type %s issuer %q", rec.RC, rec.Type, rec.Issuer)
	}
	// The purchase of the same code still goes to the wallet.
	if a := h.do(h.qrPurchase(wxCode, 1000)); a.RC != "00" || len(w.pays) != 1 {
		t.Fatalf("QR purchase after: %+v, pays %d", a.Result, len(w.pays))
	}

	// A UnionPay code routed to an ISO 8583 issuer link: not sent either.
	cup := newFakeLink("cup")
	h = newHarness(t, func(_ *harness, c *Config) { c.QR = isoQRRoutes{link: cup} })
	tx = h.qrPurchase("6225880123456789012", 1000)
	tx.MTI = "0100"
	if a := h.do(tx); a.RC != message.RCInvalidTransaction || a.Reason != "qr-preauth-not-supported" || len(cup.sent()) != 0 {
		t.Fatalf("QR pre-authorization over ISO: %+v, sent %d", a.Result, len(cup.sent()))
	}
}
