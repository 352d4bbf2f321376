package pipeline

import (
	"context"
	"errors"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/qr"
)

// QR payments (docs/qr.md): a purchase that carries the payer's payment code instead
// of a card goes through the same steps as a card (binding checks, rules, the
// journal written ahead, reversal through the store-and-forward queue when its answer
// is in doubt), with three differences: the code is routed by the payment-code table
// (QRRoutes) rather than by BIN, the journal and the rules see the code only masked
// and hashed (PANMasked, CardHash, so that the rules' card counters count per payer
// code), and the connector may be a wallet's HTTP API (WalletLink) rather than an
// ISO 8583 link. The switch never stands in for a QR payment: the wallet decides.

// QRRoutes finds the connector of a payment code by the payment-code table.
type QRRoutes interface {
	// RouteQR returns the link of the code's connector and its network; false when
	// no line of the table matches or its connector is not configured.
	RouteQR(code string) (link IssuerLink, network string, ok bool)
	// Connector returns a connector by its ID (a refund goes to its original's).
	Connector(id string) (IssuerLink, bool)
}

// WalletPayment is a consumer-presented payment as a wallet's API takes it: the
// switch's RRN is the merchant's order number (out_trade_no), by which the payment is
// queried, cancelled and refunded.
type WalletPayment struct {
	RRN, Code, TID, MID, Currency string
	Amount                        int64
}

// WalletRefund is a refund of a wallet payment: RRN is the refund's own number
// (out_refund_no), OriginalRRN the payment's.
type WalletRefund struct {
	RRN, OriginalRRN, TID, MID, Currency string
	Amount                               int64
}

// WalletLink is an IssuerLink that speaks a wallet's API instead of ISO 8583. Pay and
// Refund return the response code to give the terminal and an authorization code,
// or an error that IsTimeout / IsUnavailable classify as for an ISO link: a timeout
// (the payer still confirming when time ran out, or no answer) is reversed through
// the store-and-forward queue, which the wiring delivers to the wallet as a cancel.
type WalletLink interface {
	IssuerLink
	Pay(ctx context.Context, p WalletPayment) (rc, auth string, err error)
	Refund(ctx context.Context, r WalletRefund) (rc, auth string, err error)
}

// ErrPayerNotConfirmed is wrapped, beside ErrIssuerTimeout, by a wallet payment
// whose time ran out while the network kept answering that the payer had not
// confirmed (USERPAYING, NOTPAY): a payer who walked away, not a network that failed.
// The payment is answered 91 and cancelled through the queue like any timeout, but
// the connector's circuit breaker counts it as answered: walk-aways must not open the
// breaker for every payer of a network.
var ErrPayerNotConfirmed = errors.New("the payer did not confirm the payment in time (the network answered)")

// errQRCodeTooLong: an ISO 8583 link carries the code in DE 2, at most 19 digits.
var errQRCodeTooLong = errors.New("payment code longer than 19 digits cannot go in DE 2 of an ISO 8583 issuer link")

// qrPreauth reports whether r is a pre-authorization (0100) with a payment code. The
// switch declines it before any wallet or issuer is asked: a wallet has no hold, its
// pay charges the payer at once, while a pre-authorization is in no batch and no
// settlement, and its completion (0220) needs a card number, which a QR request has
// not. So a QR pre-authorization could only take the payer's money and never pay the
// merchant.
func qrPreauth(r *message.Request) bool {
	return r.QR && r.MTI == "0100"
}

// qrTxn is a QR request's connector by its code (link), or the QR original of a
// refund or void (orig).
type qrTxn struct {
	link IssuerLink
	orig *journal.Record
}

// newQRRecord fills what a QR request puts in its record: the code masked and hashed
// in place of the PAN, and its network by the payment-code table (its connector is
// kept for authorize). Refunds and voids take theirs from their original.
func (p *Pipeline) newQRRecord(t *txn) {
	r, rec := t.req, &t.rec
	if r.QRCode == "" {
		return
	}
	rec.PANMasked = qr.Mask(r.QRCode)
	rec.CardHash = p.CardHash(r.QRCode)
	if p.cfg.QR != nil {
		if link, network, ok := p.cfg.QR.RouteQR(r.QRCode); ok {
			t.qr, rec.QR = &qrTxn{link: link}, network
		}
	}
}

// qrOriginal checks that a refund or void and its original agree on being QR
// payments (a card refund of a QR payment, or the reverse, is declined: a QR refund
// goes back to the payer's wallet, a card refund to the card), and gives a QR one its
// original's network, masked code and hash. It returns a decline reason, or "".
func qrOriginal(t *txn, orig *journal.Record) string {
	switch {
	case orig == nil:
		return ""
	case orig.QR != "" && !t.req.QR:
		return "qr-original-needs-qc"
	case orig.QR == "" && t.req.QR:
		return "original-not-a-qr-payment"
	case orig.QR != "":
		t.rec.QR, t.rec.PANMasked, t.rec.CardHash = orig.QR, orig.PANMasked, orig.CardHash
		t.qr = &qrTxn{orig: orig}
	}
	return ""
}

// qrRoute returns the link of a QR request: a refund's original's connector, or the
// payer's code's.
func (p *Pipeline) qrRoute(t *txn) (IssuerLink, bool) {
	switch {
	case t.qr == nil:
		return nil, false
	case t.qr.orig != nil:
		if p.cfg.QR == nil {
			return nil, false
		}
		return p.cfg.QR.Connector(t.qr.orig.Issuer)
	}
	return t.qr.link, t.qr.link != nil
}

// walletExchange sends a QR request to a wallet's API.
func (p *Pipeline) walletExchange(ctx context.Context, t *txn, wl WalletLink) (rc, auth string, err error) {
	r := t.req
	if t.qr != nil && t.qr.orig != nil {
		return wl.Refund(ctx, WalletRefund{RRN: t.rec.RRN, OriginalRRN: t.qr.orig.RRN, TID: r.TID, MID: r.MID, Currency: r.Currency, Amount: r.Amount})
	}
	return wl.Pay(ctx, WalletPayment{RRN: t.rec.RRN, Code: r.QRCode, TID: r.TID, MID: r.MID, Currency: r.Currency, Amount: r.Amount})
}

// qrNoRoute declines a QR request the switch cannot route (no table line or no
// connector), releasing what the caller reserved.
func (p *Pipeline) qrNoRoute(ctx context.Context, t *txn, declined func()) (frontend.Response, error) {
	declined()
	return p.decline(ctx, t, message.RCNoSuchIssuer, "switch", "qr-no-route")
}
