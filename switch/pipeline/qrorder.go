package pipeline

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/qr"
	"github.com/switchyard/switchyard/switch/registry"
)

// Merchant-presented QR orders (docs/qr.md): an 0100 with DE 3 390000 asks for a
// dynamic code for an order, one with 380000 how the order named by DE 48 QO stands.
// Both pass the binding checks like a purchase; neither moves money, so only a
// declined one is journaled. The money moves when the network notifies the payment:
// RecordOrderPayment journals it as a QR purchase under the order's ID (an RRN the
// journal handed out), so that refunds and voids of it work as of any QR payment.

// QROrders makes and reads merchant-presented orders (the server's wiring over the
// order book).
type QROrders interface {
	// NewOrder makes the order and returns it with its code's payload. When an
	// earlier request with o.Key made an order within o.KeyWindow (in a cluster,
	// on another node at the same time), it makes none and returns that one,
	// Resent set.
	NewOrder(ctx context.Context, o OrderRequest) (OrderStatus, error)
	// Resent returns the order that the terminal's earlier request with the
	// duplicate key key (DE 41, 11, 7: journal.DupKey) made, while a request made
	// now is a resend of it (within the duplicate window), Resent set; ok false
	// when there is none.
	Resent(ctx context.Context, key string) (s OrderStatus, ok bool, err error)
	// Order returns how the order id of terminal tid (of merchant mid) stands,
	// after waiting for its payment as configured; ok false when the terminal has
	// no such order. Another terminal's order is answered ok false at once, as an
	// unknown one: never waited on.
	Order(ctx context.Context, id, tid, mid string) (s OrderStatus, ok bool, err error)
}

// OrderRequest is a terminal's request for a dynamic code.
type OrderRequest struct {
	ID, TID, MID, Currency string
	Amount                 int64 // 0: the payer enters it
	MerchantName, MCC      string
	City                   string
	// MerchantNameLatin and MerchantNameLanguage are the merchant's ASCII name and
	// its name's language from the registry ("" for none): the code's ID 59 and
	// its language template's preference (ID 64, its ID 00).
	MerchantNameLatin, MerchantNameLanguage string
	// Key is the request's duplicate key (journal.DupKey) and KeyWindow how long a
	// request with it is a resend of this one (Config.DupWindow).
	Key       string
	KeyWindow time.Duration
}

// DefaultOrderCurrency is an order's currency when its request has no DE 49.
const DefaultOrderCurrency = "156"

// OrderStatus is how an order stands: State open, paid, expired or refunded (paid
// after it expired); a paid one has the amount paid and an auth code.
type OrderStatus struct {
	ID, State, Payload, AuthCode string
	Amount                       int64
	// Currency is the order's (NewOrder and Resent).
	Currency string
	// Resent: the order an earlier request with the same duplicate key made
	// (Resent, NewOrder), Amount the amount it asked for.
	Resent bool
}

// isOrderRequest reports whether r is a merchant-presented order request.
func isOrderRequest(r *message.Request) bool {
	return r.MTI == "0100" && (r.ProcCode == message.PCQROrder || r.ProcCode == message.PCQRInquiry)
}

// qrOrder answers an order request.
func (p *Pipeline) qrOrder(ctx context.Context, t *txn) (frontend.Response, error) {
	r := t.req
	if p.cfg.Orders == nil {
		return p.decline(ctx, t, message.RCInvalidTransaction, "switch", "qr-orders-not-enabled")
	}
	if r.ProcCode == message.PCQROrder && unpayable(r.Currency) {
		// An order's code carries its currency (ID 53): none for no currency.
		return p.declineUnpayable(ctx, t)
	}
	if r.ProcCode == message.PCQROrder {
		// A resend is answered before anything is checked again: a SoftPOS
		// terminal's carries the first one's attestation token, used already.
		if resp, done, err := p.orderOnce(ctx, t); done {
			return resp, err
		}
		defer func() {
			if t.dup != nil && !t.dupAtSent { // not finished by respond (a decline)
				p.dups.forget(t.dupKey, t.dup) // its duplicates look for themselves
				t.dup = nil
			}
		}()
	}
	res, declined, err := p.checkTerminal(ctx, t, t.macOK, registry.CheckFinancial)
	if declined != nil || err != nil {
		return *declined, err
	}
	var st OrderStatus
	if r.ProcCode == message.PCQROrder {
		if m := checkedMerchant(res); wrongCurrency(m, r.Currency) {
			// A merchant that transacts in one currency takes no order in
			// another, as it takes no card purchase.
			return p.declineCurrency(ctx, t, m)
		}
		if rc, reason := p.orderSoftPOSLimit(t, res); rc != "" {
			// Its payment would be a purchase the SoftPOS may not take; the
			// notification cannot refuse it for that (docs/qr.md).
			return p.decline(ctx, t, rc, "risk", reason)
		}
		id, err := p.journal.NextRRN()
		if err != nil {
			return p.systemError(t, err)
		}
		o := OrderRequest{ID: id, TID: r.TID, MID: r.MID, Currency: r.Currency, Amount: r.Amount, Key: t.dupKey, KeyWindow: p.cfg.DupWindow}
		if res != nil && res.Merchant != nil {
			o.MerchantName, o.MCC, o.City = res.Merchant.Name, res.Merchant.MCC, res.Merchant.Region
			o.MerchantNameLatin, o.MerchantNameLanguage = res.Merchant.NameLatin, res.Merchant.NameLanguage
		}
		if st, err = p.cfg.Orders.NewOrder(ctx, o); err != nil {
			return p.systemError(t, fmt.Errorf("qr order: %w", err))
		}
		if st.Resent {
			// Made by a resend of this request at the same time (another
			// node's, in a cluster): answered with it.
			return p.resentOrder(ctx, t, st)
		}
	} else {
		var ok bool
		id, _ := message.TLVValue(r.DE48, message.TagQROrder)
		if st, ok, err = p.cfg.Orders.Order(ctx, id, r.TID, r.MID); err != nil {
			return p.systemError(t, fmt.Errorf("qr order %s: %w", id, err))
		} else if !ok {
			return p.decline(ctx, t, message.RCOriginalNotFound, "switch", "qr-order-not-found")
		}
	}
	return p.orderAnswer(t, st)
}

// orderOnce answers an order request that resends an earlier one (the same DE 41,
// 11 and 7), before the request is checked (done true): with the order the first
// made (Resent), the first one's decline (journaled), or 94 when it asks for
// another amount, currency or processing code. A resend of a request in flight
// waits for its answer. Otherwise (done false) t holds the key in the duplicate
// table (t.dup) until it is answered. Until 8 December 2026 (fifteenth release)
// every resend made an order of its own, and a SoftPOS one was declined 59
// attestation-replayed.
func (p *Pipeline) orderOnce(ctx context.Context, t *txn) (resp frontend.Response, done bool, err error) {
	r := t.req
	t.dupKey = journal.DupKey(r.TID, r.STAN, r.DE7)
	content := dupContent{amount: r.Amount, proc: r.ProcCode, pan: p.dups.panSum(orderCurrency(r.Currency))}
	e, first := p.dups.claim(t.dupKey, t.start, content, false)
	if !first {
		if !e.hold && e.content != content {
			first := ""
			if rrn := e.rrn.Load(); rrn != nil {
				first = *rrn
			}
			resp, err = p.duplicateMismatch(ctx, t, first)
			return resp, true, err
		}
		select {
		case <-e.done:
		case <-ctx.Done():
			return frontend.Response{}, true, ctx.Err()
		}
		if e.out.rc == "" { // an order made (the book has it), or not processed: look again
			return p.orderOnce(ctx, t)
		}
		resp, err = p.repeat(t, e.out)
		return resp, true, err
	}
	p.recent.add(t.dupKey, p.now())
	st, ok, err := p.cfg.Orders.Resent(ctx, t.dupKey)
	if err != nil {
		p.dups.forget(t.dupKey, e)
		resp, err = p.systemError(t, fmt.Errorf("qr order of request %s: %w", t.dupKey, err))
		return resp, true, err
	}
	if ok {
		p.dups.forget(t.dupKey, e)
		resp, err = p.resentOrder(ctx, t, st)
		return resp, true, err
	}
	// A first request declined (journaled), or another request with the key.
	if rrn, found, err := p.journal.LookupDuplicate(r.TID, r.STAN, r.DE7); err != nil {
		p.dups.forget(t.dupKey, e)
		resp, err = p.systemError(t, err)
		return resp, true, err
	} else if found {
		resp, err = p.answerAsDuplicate(ctx, t, e, rrn)
		return resp, true, err
	}
	t.dup = e
	return frontend.Response{}, false, nil
}

// orderCurrency is the currency of an order requested in cur (DE 49).
func orderCurrency(cur string) string {
	if cur == "" {
		return DefaultOrderCurrency
	}
	return cur
}

// resentOrder answers t, a resend of the request that made order st, with the
// order as it stands, nothing checked or made; 94 when t asks for another amount or
// currency (not a resend).
func (p *Pipeline) resentOrder(ctx context.Context, t *txn, st OrderStatus) (frontend.Response, error) {
	r := t.req
	if st.Amount != r.Amount || st.Currency != orderCurrency(r.Currency) {
		return p.duplicateMismatch(ctx, t, st.ID)
	}
	p.log.Info().Str("tid", r.TID).Str("stan", r.STAN).Str("order", st.ID).Str("state", st.State).
		Msg("qr order: resend answered with the order its first request made, nothing checked or made again")
	return p.orderAnswer(t, st)
}

// orderAnswer answers an order request or inquiry with order st.
func (p *Pipeline) orderAnswer(t *txn, st OrderStatus) (frontend.Response, error) {
	r := t.req
	var de48 []byte
	var err error
	de48, _ = message.AppendTLV(de48, message.TagQROrder, st.ID)
	de48, _ = message.AppendTLV(de48, message.TagQRState, st.State)
	if st.Payload != "" && r.ProcCode == message.PCQROrder {
		if de48, err = appendOrderPayload(de48, st.Payload); err != nil {
			return p.systemError(t, fmt.Errorf("qr order %s: %w", st.ID, err))
		}
	}
	// An inquiry's answer carries the order's amount (the amount paid, once paid),
	// whatever the inquiry's DE 4 said.
	echo := *r
	if r.ProcCode == message.PCQRInquiry {
		echo.AmountRaw = fmt.Sprintf("%012d", st.Amount)
	}
	resp := message.NewResponseBuilder(&echo).Set(37, st.ID).Set(39, message.RCApproved).Set(48, string(de48))
	if st.State == "paid" {
		resp.Set(38, st.AuthCode)
	}
	raw, err := resp.Bytes(p.macFunc(t))
	if err != nil {
		return frontend.Response{}, err
	}
	by := "switch"
	if st.Resent {
		by = "duplicate"
	}
	p.metrics.Transactions.WithLabelValues(r.MTI, message.RCApproved, "", by).Inc()
	p.log.Info().Str("tid", r.TID).Str("order", st.ID).Str("state", st.State).Str("proc", r.ProcCode).Bool("resent", st.Resent).Msg("qr order")
	return frontend.Response{Body: raw}, nil
}

// ReasonSoftPOSLimit is the reason of the rule pack's SoftPOS limit (rules/10-limits.yaml,
// softpos-limit: a SoftPOS takes at most 1,000.00 per transaction), which an order
// request is held to (orderSoftPOSLimit).
const ReasonSoftPOSLimit = "softpos-limit"

// orderSoftPOSLimit holds an order request t (checked as res says) to the SoftPOS
// limit a purchase of its amount is held to: the rules are shown that purchase (an
// 0200 000000 with a payment code, the terminal and merchant of the checks, no card),
// and an enforced decline rule of reason softpos-limit that hits gives the response
// code and reason to decline the order with ("" when none does). No other rule
// decides an order (docs/qr.md, "Merchant-presented"), and nothing is observed: an
// order moves no money. An order whose amount the payer enters (0) is not checked:
// there is nothing to check yet. Until the fifteenth release of 8 December 2026 an
// order over the limit was made, and its payment, notified, was taken.
func (p *Pipeline) orderSoftPOSLimit(t *txn, res *registry.CheckResult) (rc, reason string) {
	if p.risk == nil || t.req.Amount <= 0 {
		return "", ""
	}
	in := inputs.Get().(*risk.Input)
	defer inputs.Put(in)
	in.Reset()
	p.fillInput(in, t, res, nil)
	x := &in.Txn
	x.MTI, x.ProcCode, x.Type, x.QR = "0200", message.PCPurchase, risk.TxnPurchase, true
	d := p.risk.Evaluate(in)
	for _, h := range d.Hits {
		if h.Reason == ReasonSoftPOSLimit && h.Action == risk.ActionDecline && h.Mode == risk.ModeEnforce {
			if rc = h.ResponseCode; rc == "" {
				rc = message.RCDoNotHonour
			}
			return rc, h.Reason
		}
	}
	return "", ""
}

// OrderPayment is a merchant-presented payment a network notified.
type OrderPayment struct {
	// RRN is the order's ID; the payment's journal record takes it.
	RRN, TID, MID, Currency string
	Amount                  int64
	// Network and Connector are the payer's network and its connector (the issuer
	// that refunds go to); AuthCode comes from its transaction ID.
	Network, Connector, AuthCode string
	// Late marks a payment the order does not take (expired, another amount, already
	// paid): it is journaled approved and reversed at once through the queue, which
	// the connector carries as the network's cancel (a refund in full).
	Late bool
	// Refused says why the merchant could not take a late payment (a limit, a
	// merchant not active; "": late for the order's own reasons): its reversal says
	// so.
	Refused string
	At      time.Time
}

// OrderListener is the listener of a notified payment's record: what tells it from
// another transaction's.
const OrderListener = "qr-notify"

// RecordOrderPayment journals a notified payment durably, as an approved QR purchase
// under the order's RRN, received at op.At and written now (Record.Written), and
// reverses a late one through the store-and-forward queue. A repeat of a payment already journaled writes nothing more (a late one
// not yet reversed is reversed).
func (p *Pipeline) RecordOrderPayment(ctx context.Context, op OrderPayment) (*journal.Record, error) {
	unlock, err := p.lockRecord(ctx, op.RRN)
	if err != nil {
		return nil, err
	}
	defer unlock()
	rec, err := p.journal.Get(op.RRN)
	switch {
	case err == nil && (rec.Listener != OrderListener || rec.TID != op.TID || rec.MID != op.MID):
		// Another transaction has the order's RRN (one handed out again, by a cluster
		// node rebuilt on an empty disk that did not know the order): it is neither
		// this payment's record nor to be reversed for it.
		p.log.Error().Str("rrn", op.RRN).Str("network", op.Network).Str("record_type", rec.Type).Str("record_tid", rec.TID).
			Msg("merchant-presented payment notified for an order whose ID is another transaction's RRN: not journaled")
		return nil, fmt.Errorf("qr order %s: its RRN is another transaction's record (%s of terminal %s, listener %q): the payment is not journaled over it",
			op.RRN, rec.Type, rec.TID, rec.Listener)
	case err == nil:
	case errors.Is(err, journal.ErrNotFound):
		// Its first write is its batch time (pipeline.BatchTime): read inside the
		// decision gate, which a batch received after it waits at until it is
		// written.
		decided := p.decisions.enter()
		at := op.At.UTC()
		rec = &journal.Record{RRN: op.RRN, Received: at, MTI: "0200", ProcCode: message.PCPurchase, Type: "purchase",
			TID: op.TID, MID: op.MID, Listener: OrderListener, Amount: op.Amount, Currency: op.Currency, EntryMode: "030",
			Issuer: op.Connector, QR: op.Network, RC: message.RCApproved, AuthCode: op.AuthCode, DecidedBy: "issuer",
			// Received is when the order book took the payment; the journal has it
			// only now, which may be a later day (the sweep of owed orders, a
			// notification repeated after midnight): settlement pays it out in the
			// day it was written when that day is later.
			Written: p.now().UTC()}
		rec.AddEvent(journal.StateReceived, at, "merchant-presented payment notified by "+op.Network)
		rec.AddEvent(journal.StateAnswered, at, "")
		// The payer's wallet told the payer; the terminal asks for the order. No answer
		// to a terminal can be lost, so recovery must not reverse it as undelivered.
		rec.AddEvent(journal.StateResponded, at, "merchant-presented: the terminal polls the order")
		var in *risk.Input
		if op.Late {
			// Reversed before its first write: the journal never holds a late or
			// refused payment approved and unreversed, which a refund could move
			// while its full reversal goes to the network (until the fifth release
			// of 6 December 2026 it was written approved, then marked reversed by a
			// second write that could fail or never come). Its reversal, queued
			// now, or owed (reversal_owed, written with it) when the queue refuses
			// it, cancels a payment the switch does not take whether or not this
			// write succeeds: a repeat that writes the record again queues it again,
			// and the network takes a second cancel as done. It carries no facts:
			// the merchant did not take it, so no counter, here or on the other
			// nodes, counts it.
			p.queueReversal(rec, op.reversedBy())
		} else if in = p.orderInput(rec); in != nil {
			// The other nodes of a cluster fold it from these facts as they apply the
			// record (server.foldVelocity), and take it back out when it is reversed.
			rec.Facts = journalFacts(in)
			defer inputs.Put(in)
		}
		err := p.journal.Write(ctx, rec, true, true)
		decided.leave()
		if err != nil {
			return nil, err
		}
		if in != nil {
			p.risk.Observe(in, risk.Outcome{Approved: true, ResponseCode: message.RCApproved})
		}
	default:
		return nil, err
	}
	if op.Late && !rec.Reversed() {
		// Journaled unreversed: by a version before the fifth release of 6 December
		// 2026, or with its reversal owed (the queue refused it).
		if p.queueReversal(rec, op.reversedBy()) {
			p.writeOwed(ctx, rec)
		}
		if !rec.Reversed() {
			return rec, errors.New("the refund of a late payment could not be queued yet: retried")
		}
		if err := p.journal.Write(ctx, rec, false, true); err != nil {
			p.oweReversal(rec.RRN, rec.ReversedBy, err)
			return rec, err
		}
	}
	return rec, nil
}

// reversedBy is the reversal reason of a late payment's record: refused by the
// merchant's checks, or late for the order's own reasons.
func (op OrderPayment) reversedBy() string {
	if op.Refused != "" {
		return "switch:qr-order-refused:" + op.Refused
	}
	return "switch:qr-order-late"
}

// merchantRegistry is the part of the registry that finds a merchant by its ID; the
// pipeline's Terminals (the registry) has it, a test's fake may not.
type merchantRegistry interface {
	Merchant(id string) (*registry.Merchant, bool)
}

// orderInput returns what the velocity counters observe of a merchant-presented
// payment's record rec (nil without rules): an approved QR purchase of the merchant,
// with no card, device, terminal or binding facts (a notification has none: the payer
// is known to its network only). So the merchant's counters (merchant_count_24h and
// merchant_sum_24h of the rules' limits: its daily count limit on cards) count it, and
// no counter keyed by a card, a terminal, a device, a BIN or a region does (an empty
// key counts nothing). The merchant is the registry's (tier, group, limits) when it
// is known, else the record's MID alone. The caller puts it back in inputs.
func (p *Pipeline) orderInput(rec *journal.Record) *risk.Input {
	if p.risk == nil {
		return nil
	}
	in := inputs.Get().(*risk.Input)
	in.Reset()
	x := &in.Txn
	x.MTI, x.ProcCode, x.Type = rec.MTI, rec.ProcCode, risk.TxnPurchase
	x.Amount, x.Currency = int(rec.Amount), rec.Currency
	x.SetEntryMode(rec.EntryMode)
	x.QR, x.Wallet = true, rec.QR
	x.RRN, x.Time = rec.RRN, rec.Received
	in.Device.AttestationAgeS = -1
	mid := rec.MID
	if p.terminals != nil {
		if t, ok := p.terminals.Terminal(rec.TID); ok && t.MerchantID != "" {
			mid = t.MerchantID
		}
	}
	in.Merchant.ID = mid
	if mr, ok := p.terminals.(merchantRegistry); ok {
		if m, ok := mr.Merchant(mid); ok {
			in.Merchant = risk.Merchant{ID: m.ID, MCC: m.MCC, Tier: m.Tier, Rating: ratingGrade(m.Rating), Status: string(m.Status),
				SingleLimit: int(m.Limits.PerTransaction), DailyLimit: int(m.Limits.Daily), MonthlyLimit: int(m.Limits.Monthly),
				DailyCount: int(m.Limits.DailyCount), Group: m.Group, Currency: m.Currency}
			if p.profiles != nil {
				p.profiles.Fill(&in.Merchant)
			}
		}
	}
	return in
}

// appendOrderPayload appends an order's code to an answer's DE 48: QP, and for a
// code that is not ASCII (a merchant named in another script, in the language
// template, ID 64) QP without ID 64 and QU the whole code in base64. DE 48 is
// ASCII on the terminal interface: until 6 December 2026 the UTF-8 bytes went in
// QP, and a terminal decoding DE 48 as ASCII (moov-io/iso8583's Spec87ASCII, the
// switch's own term client) could not read the answer.
func appendOrderPayload(de48 []byte, payload string) ([]byte, error) {
	if isASCII(payload) {
		return message.AppendTLV(de48, message.TagQRPayload, payload)
	}
	plain, err := qr.WithoutLanguageTemplate(payload)
	if err != nil {
		return de48, fmt.Errorf("code without its language template: %w", err)
	}
	if !isASCII(plain) {
		return de48, fmt.Errorf("code is not ASCII outside its language template")
	}
	if de48, err = message.AppendTLV(de48, message.TagQRPayload, plain); err != nil {
		return de48, err
	}
	return message.AppendTLV(de48, message.TagQRPayloadUTF8, base64.StdEncoding.EncodeToString([]byte(payload)))
}

// isASCII reports whether s holds bytes below 0x80 only.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
