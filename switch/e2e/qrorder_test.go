package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/qr"
	"github.com/switchyard/switchyard/switch/server"
	"github.com/switchyard/switchyard/switch/termclient"
	"github.com/switchyard/switchyard/switch/wallet"
)

// orderTx is T0000001 asking for a dynamic code (proc 390000) or how an order stands
// (380000, DE 48 QO).
func orderTx(proc string, amount int64, order string) termclient.Txn {
	tx := pos(amount)
	tx.MTI, tx.ProcCode, tx.PAN, tx.Expiry = "0100", proc, "", ""
	if order != "" {
		tx.TLV = append(tx.TLV, [2]string{message.TagQROrder, order})
	}
	return tx
}

// orderAnswer is what an order answer's DE 48 says.
type orderAnswer struct{ QROrder, QRState, QRPayload string }

func orderTLV(t *testing.T, r termclient.Result) orderAnswer {
	t.Helper()
	var a orderAnswer
	a.QROrder, _ = message.TLVValue(r.DE48, message.TagQROrder)
	a.QRState, _ = message.TLVValue(r.DE48, message.TagQRState)
	a.QRPayload, _ = message.TLVValue(r.DE48, message.TagQRPayload)
	return a
}

// TestQRMerchantPresented: over TCP, a terminal gets a dynamic code for an order (an
// EMVCo payload whose CRC and TLV check, with the amount, currency 156, a merchant
// account per network and the order in ID 62); the payer pays it in the wallet, the
// network notifies, and the terminal's inquiry finds it paid, journaled as a QR
// purchase that refunds like one; an order not paid in time is expired; one paid
// after it expired is journaled and refunded at the network by itself.
func TestQRMerchantPresented(t *testing.T) {
	var offset atomic.Int64
	f, sim := startQRWith(t, func(c *config.Config) {
		c.QR.Orders.TTL = config.Duration(time.Minute)
		c.Clock = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	})
	ctx := context.Background()

	// Paid in time.
	a := f.send(orderTx(message.PCQROrder, 2500, ""))
	tlv := orderTLV(t, a)
	if a.RC != "00" || tlv.QROrder == "" || tlv.QROrder != a.RRN || tlv.QRState != "open" {
		t.Fatalf("order: %+v (%+v)", a, tlv)
	}
	p, err := qr.Decode(tlv.QRPayload)
	if err != nil {
		t.Fatalf("payload %q: %v", tlv.QRPayload, err)
	}
	if p.Get(qr.IDAmount) != "25.00" || p.Get(qr.IDCurrency) != "156" || p.Sub(qr.IDAdditional, "05") != a.RRN || p.Get(qr.IDInitiation) != "12" ||
		p.Sub("26", "00") == "" || p.Sub("27", "00") == "" || p.Sub("28", "00") == "" {
		t.Fatalf("payload objects: %+v", p.Objects)
	}
	if _, res, err := sim.PayOrder(ctx, wallet.MPMPayRequest{Payload: tlv.QRPayload, Network: qr.WeChat}); err != nil || res.Result != wallet.Success {
		t.Fatalf("notification: %+v %v", res, err)
	}
	q := f.send(orderTx(message.PCQRInquiry, 0, a.RRN))
	if st := orderTLV(t, q).QRState; q.RC != "00" || st != "paid" || len(q.AuthCode) != 6 || q.Amount != "000000002500" {
		t.Fatalf("inquiry after payment: %+v (%s)", q, st)
	}
	rec := f.record(a.RRN)
	if !rec.Approved() || rec.QR != qr.WeChat || rec.Issuer != qr.WeChat || rec.Amount != 2500 || rec.Reversed() {
		t.Fatalf("journal: %+v", rec)
	}
	ref := pos(1000)
	ref.PAN, ref.Expiry, ref.QRRefund, ref.ProcCode, ref.RRN = "", "", true, message.PCRefund, a.RRN
	if r := f.send(ref); r.RC != "00" {
		t.Fatalf("refund of a merchant-presented payment: %+v", r)
	}
	if tr, _ := sim.Trade(a.RRN); tr.Refunded != 1000 {
		t.Fatalf("refunded at the network: %+v", tr)
	}

	// Not paid in time: expired; then paid: refunded.
	b := f.send(orderTx(message.PCQROrder, 0, ""))
	btlv := orderTLV(t, b)
	if p, err := qr.Decode(btlv.QRPayload); err != nil || p.Get(qr.IDAmount) != "" {
		t.Fatalf("order without an amount: %v %+v", err, p)
	}
	offset.Add(int64(2 * time.Minute))
	if q := f.send(orderTx(message.PCQRInquiry, 0, b.RRN)); orderTLV(t, q).QRState != "expired" {
		t.Fatalf("inquiry after expiry: %+v", q)
	}
	if _, res, err := sim.PayOrder(ctx, wallet.MPMPayRequest{Payload: btlv.QRPayload, Network: qr.Alipay, Amount: 1800}); err != nil || res.Result != wallet.Success {
		t.Fatalf("late notification: %+v %v", res, err)
	}
	if rec := f.record(b.RRN); !rec.Approved() || rec.ReversedBy != "switch:qr-order-late" || rec.QR != qr.Alipay {
		t.Fatalf("late payment's record: %+v", rec)
	}
	waitFor(t, "the late payment refunded at the network", func() bool {
		tr, ok := sim.Trade(b.RRN)
		return ok && tr.State == wallet.Revoked
	})
	if q := f.send(orderTx(message.PCQRInquiry, 0, b.RRN)); orderTLV(t, q).QRState != "refunded" {
		t.Fatalf("inquiry after the late payment: %+v", q)
	}

	// Another terminal's order, and an unknown one, are not found.
	if q := f.send(orderTx(message.PCQRInquiry, 0, "999999999999")); q.RC != "25" {
		t.Fatalf("unknown order: %+v", q)
	}
}

// TestQROrderWait: with qr.orders.wait, a terminal's inquiry is answered when the
// payment arrives, in the answer it is waiting on.
func TestQROrderWait(t *testing.T) {
	f, sim := startQRWith(t, func(c *config.Config) { c.QR.Orders.Wait = config.Duration(20 * time.Second) })
	a := f.send(orderTx(message.PCQROrder, 1200, ""))
	o := orderTLV(t, a)
	if a.RC != "00" || o.QRState != "open" {
		t.Fatalf("order: %+v", a)
	}
	c, err := termclient.Dial(f.s.ListenerAddr("ascii"), message.DialectASCII, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	answered := make(chan termclient.Result, 1)
	m, err := termclient.Build(orderTx(message.PCQRInquiry, 0, o.QROrder), message.DialectASCII)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var r termclient.Result
		if resp, err := c.Send(ctx, m, nil); err == nil {
			r, _ = termclient.Decode(resp)
		}
		answered <- r // an empty result on failure fails the checks below
	}()
	select {
	case r := <-answered:
		t.Fatalf("inquiry answered before the payment: %+v", r)
	case <-time.After(300 * time.Millisecond): // the inquiry is held (a bound, not a synchronization)
	}
	if _, res, err := sim.PayOrder(context.Background(), wallet.MPMPayRequest{Payload: o.QRPayload, Network: qr.UnionPay}); err != nil || res.Result != wallet.Success {
		t.Fatalf("notification: %+v %v", res, err)
	}
	select {
	case r := <-answered:
		if st := orderTLV(t, r).QRState; st != "paid" || r.Amount != "000000001200" {
			t.Fatalf("held inquiry: %+v (%s)", r, st)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the held inquiry was not answered after the payment")
	}
}

// TestQROrderSurvivesRestart: an order made before a restart is still open after it,
// and can be paid.
func TestQROrderSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	open := func() (*server.Server, *termclient.Client) {
		c := demoConfig(t, dir)
		s, err := server.New(c, zerolog.Nop(), demoIssuer)
		if err != nil {
			t.Fatal(err)
		}
		tc, err := termclient.Dial(s.ListenerAddr("ascii"), message.DialectASCII, nil)
		if err != nil {
			s.Close()
			t.Fatal(err)
		}
		return s, tc
	}
	s, c := open()
	a := sendOn(t, c, orderTx(message.PCQROrder, 3300, ""), nil)
	o := orderTLV(t, a)
	c.Close()
	s.Close()
	if a.RC != "00" || o.QROrder == "" {
		t.Fatalf("order: %+v", a)
	}
	s, c = open()
	defer s.Close()
	defer c.Close()
	if r := sendOn(t, c, orderTx(message.PCQRInquiry, 0, o.QROrder), nil); orderTLV(t, r).QRState != "open" {
		t.Fatalf("after the restart: %+v", r)
	}
	sim := s.DemoWallet().(*wallet.Sim)
	if _, res, err := sim.PayOrder(context.Background(), wallet.MPMPayRequest{Payload: o.QRPayload, Network: qr.WeChat}); err != nil || res.Result != wallet.Success {
		t.Fatalf("notification after the restart: %+v %v", res, err)
	}
	if r := sendOn(t, c, orderTx(message.PCQRInquiry, 0, o.QROrder), nil); orderTLV(t, r).QRState != "paid" {
		t.Fatalf("paid after the restart: %+v", r)
	}
}

// withMerchantAccounts returns payload with the merchant ID (ID 01) of every merchant
// account template (IDs 26-51) replaced by mid, its CRC computed again: the code a
// third party makes up with another merchant's account and the order's reference.
func withMerchantAccounts(t *testing.T, payload, mid string) string {
	t.Helper()
	p, err := qr.Decode(payload)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, o := range p.Objects {
		v := o.Value
		if o.ID >= "26" && o.ID <= "51" {
			var tb strings.Builder
			for _, s := range o.Objects {
				if s.ID == "01" {
					s.Value = mid
				}
				fmt.Fprintf(&tb, "%s%02d%s", s.ID, len(s.Value), s.Value)
			}
			v = tb.String()
		}
		if o.ID == qr.IDCRC {
			continue
		}
		fmt.Fprintf(&b, "%s%02d%s", o.ID, utf8.RuneCountInString(v), v)
	}
	b.WriteString(qr.IDCRC + "04")
	return b.String() + qr.CRC(b.String())
}

// TestQROrderOtherMerchantsPayment: a payer pays a code made up with another
// merchant's account (ID 26-28's merchant ID) and the order's reference (ID 62): the
// network pays that merchant and says so in the notification (mch_id), and the
// switch refuses it (409 MCH_ID_MISMATCH): the order stays open, nothing is
// journaled. The order's own code then pays it. Before, the notification named no
// merchant and the order was paid, the terminal told so, with the money in the
// other merchant's account.
func TestQROrderOtherMerchantsPayment(t *testing.T) {
	f, sim := startQR(t)
	a := f.send(orderTx(message.PCQROrder, 2500, ""))
	o := orderTLV(t, a)
	if a.RC != "00" || o.QRState != "open" {
		t.Fatalf("order: %+v", a)
	}
	forged := withMerchantAccounts(t, o.QRPayload, "999999999999999")
	n, res, err := sim.PayOrder(context.Background(), wallet.MPMPayRequest{Payload: forged, Network: qr.WeChat})
	if err != nil {
		t.Fatal(err)
	}
	if n.MchID != "999999999999999" || n.OrderID != a.RRN {
		t.Fatalf("the network's notification: %+v", n)
	}
	if res.Result == wallet.Success || res.ErrCode != "MCH_ID_MISMATCH" {
		t.Fatalf("a payment to another merchant answered %+v, want FAIL MCH_ID_MISMATCH", res)
	}
	if q := f.send(orderTx(message.PCQRInquiry, 0, a.RRN)); orderTLV(t, q).QRState != "open" {
		t.Fatalf("inquiry after another merchant's payment: %+v", q)
	}
	if _, err := f.s.Journal.Get(a.RRN); !errors.Is(err, journal.ErrNotFound) {
		t.Fatalf("another merchant's payment journaled under the order: %v", err)
	}
	if n, res, err := sim.PayOrder(context.Background(), wallet.MPMPayRequest{Payload: o.QRPayload, Network: qr.WeChat}); err != nil ||
		res.Result != wallet.Success || n.MchID == "" {
		t.Fatalf("the order's own code: %+v %+v %v", n, res, err)
	}
	if q := f.send(orderTx(message.PCQRInquiry, 0, a.RRN)); orderTLV(t, q).QRState != "paid" {
		t.Fatalf("inquiry after the payment: %+v", q)
	}
}

// TestQROrderOtherTerminal: over TCP, with inquiries held up to 30 s for the
// payment (qr.orders.wait), a terminal asking how another terminal's order
// stands (of another merchant, or of its own merchant) is answered at once,
// exactly as for an order that does not exist: 25 qr-order-not-found, the same
// DE 48; also once the order is paid. The owner's inquiries are unchanged.
// Before, the foreign inquiry was held until the order was paid (the other
// terminal learnt when) or expired (and settled its expiry), then refused: order
// IDs are sequential RRNs, so any terminal could watch its neighbours' sales.
func TestQROrderOtherTerminal(t *testing.T) {
	f, sim := startQRWith(t, func(c *config.Config) { c.QR.Orders.Wait = config.Duration(30 * time.Second) })
	addr := f.s.ListenerAddr("ascii")
	// dial is a connection of its own for a load terminal (Demo Load Merchant:
	// no binding, no MAC).
	dial := func() *termclient.Client {
		c, err := termclient.Dial(addr, message.DialectASCII, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	ltTx := func(tid, proc string, amount int64, order string) termclient.Txn {
		tx := orderTx(proc, amount, order)
		tx.TID, tx.MID, tx.TLV = tid, "000000000000003", nil
		if order != "" {
			tx.TLV = [][2]string{{message.TagQROrder, order}}
		}
		return tx
	}
	// ask sends an inquiry that must be answered well before the wait: a held
	// one fails the test instead of holding it for 30 s.
	ask := func(c *termclient.Client, tx termclient.Txn) termclient.Result {
		t.Helper()
		m, err := termclient.Build(tx, message.DialectASCII)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := c.Send(ctx, m, nil)
		if err != nil {
			t.Fatalf("%s asking about order %v: %v (held for the owner's payment?)", tx.TID, tx.TLV, err)
		}
		r, err := termclient.Decode(resp)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	a := f.send(orderTx(message.PCQROrder, 2500, "")) // T0000001, Demo Grocery
	ao := orderTLV(t, a)
	c2 := dial() // LT000002
	b := sendOn(t, c2, ltTx("LT000002", message.PCQROrder, 1500, ""), nil)
	bo := orderTLV(t, b)
	if a.RC != "00" || ao.QRState != "open" || b.RC != "00" || bo.QRState != "open" {
		t.Fatalf("orders: %+v %+v", a, b)
	}
	c1 := dial() // LT000001
	unknown := ask(c1, ltTx("LT000001", message.PCQRInquiry, 0, "999999999999"))
	if unknown.RC != "25" {
		t.Fatalf("unknown order: %+v", unknown)
	}
	same := func(what string, r termclient.Result) {
		t.Helper()
		if r.RC != unknown.RC || r.DE48 != unknown.DE48 || r.AuthCode != "" || r.Amount != unknown.Amount || r.Reason != unknown.Reason {
			t.Errorf("%s: %+v, want it answered as the unknown order: %+v", what, r, unknown)
		}
	}
	same("another merchant's terminal's open order", ask(c1, ltTx("LT000001", message.PCQRInquiry, 0, a.RRN)))
	same("another terminal's open order, same merchant", ask(c1, ltTx("LT000001", message.PCQRInquiry, 0, b.RRN)))

	if _, res, err := sim.PayOrder(context.Background(), wallet.MPMPayRequest{Payload: ao.QRPayload, Network: qr.WeChat}); err != nil || res.Result != wallet.Success {
		t.Fatalf("notification: %+v %v", res, err)
	}
	if q := f.send(orderTx(message.PCQRInquiry, 0, a.RRN)); orderTLV(t, q).QRState != "paid" || q.Amount != "000000002500" {
		t.Fatalf("the owner's inquiry after the payment: %+v", q)
	}
	same("another terminal's paid order", ask(c1, ltTx("LT000001", message.PCQRInquiry, 0, a.RRN)))
	if _, res, err := sim.PayOrder(context.Background(), wallet.MPMPayRequest{Payload: bo.QRPayload, Network: qr.Alipay}); err != nil || res.Result != wallet.Success {
		t.Fatalf("notification: %+v %v", res, err)
	}
	if q := ask(c2, ltTx("LT000002", message.PCQRInquiry, 0, b.RRN)); orderTLV(t, q).QRState != "paid" {
		t.Fatalf("the owner LT000002's inquiry after the payment: %+v", q)
	}
}

// TestQROrderAmountInCurrencyDecimals: an order in yen (DE 49 392, no minor unit)
// gets a code whose amount (ID 54) is the yen amount, "1000", not "10.00" (as
// before the third release of 6 December 2026, which asked the payer for a
// hundredth of the price); the payer pays that, and the order is paid and
// journaled for 1000 yen, not refunded as a payment of another amount.
func TestQROrderAmountInCurrencyDecimals(t *testing.T) {
	f, sim := startQRWith(t, nil)
	tx := orderTx(message.PCQROrder, 1000, "")
	tx.Currency = "392"
	a := f.send(tx)
	tlv := orderTLV(t, a)
	if a.RC != "00" {
		t.Fatalf("order: %+v", a)
	}
	p, err := qr.Decode(tlv.QRPayload)
	if err != nil {
		t.Fatalf("payload %q: %v", tlv.QRPayload, err)
	}
	if p.Get(qr.IDAmount) != "1000" || p.Get(qr.IDCurrency) != "392" {
		t.Fatalf("yen order's code: ID 54 %q, ID 53 %q; want 1000 and 392", p.Get(qr.IDAmount), p.Get(qr.IDCurrency))
	}
	if n, res, err := sim.PayOrder(context.Background(), wallet.MPMPayRequest{Payload: tlv.QRPayload, Network: qr.WeChat}); err != nil || res.Result != wallet.Success || n.TotalFee != 1000 {
		t.Fatalf("payment: %+v %+v %v", n, res, err)
	}
	if q := f.send(orderTx(message.PCQRInquiry, 0, a.RRN)); orderTLV(t, q).QRState != "paid" {
		t.Fatalf("inquiry: %+v", q)
	}
	if rec := f.record(a.RRN); !rec.Approved() || rec.Amount != 1000 || rec.Currency != "392" || rec.Reversed() {
		t.Fatalf("journal: %+v", rec)
	}
}
