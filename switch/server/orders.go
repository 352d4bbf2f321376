package server

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/pipeline"
	"github.com/switchyard/switchyard/switch/qr"
	"github.com/switchyard/switchyard/switch/qrorder"
	"github.com/switchyard/switchyard/switch/wallet"
)

// NotifyPath is where QR networks post merchant-presented payment notifications, on
// the admin server (signed: qr.notify_secret_env).
const NotifyPath = "/qr/v1/notify"

// orderJournal journals a notified payment (the pipeline's RecordOrderPayment).
type orderJournal interface {
	RecordOrderPayment(ctx context.Context, op pipeline.OrderPayment) (*journal.Record, error)
}

// orderRecords reads a paid order's payment record (the journal's Get).
type orderRecords interface {
	Get(rrn string) (*journal.Record, error)
}

// orderDesk is the pipeline's QROrders over the order book, and the notification
// route: a paid order's payment is journaled by the pipeline, a late one refunded.
type orderDesk struct {
	book *qrorder.Book
	cfg  config.QR
	now  func() time.Time
	pipe orderJournal // the pipeline, set once it exists
	// secret signs the notifications of the networks without a secret of their own
	// (qr.notify_secret_env); nil: theirs are refused.
	secret []byte
	// secrets are the networks' own secrets (qr.connectors[].notify_secret_env), by
	// network: a notification naming one is taken only under it.
	secrets map[string][]byte
	log     zerolog.Logger
	// refusedLog is log sampled to adminRefusedBurst lines a second, for the
	// notifications refused before they are known to come from a network (a bad
	// signature, a network without a connector): the endpoint takes requests from
	// outside, and a flood of them must not fill the log; notified counts every one.
	// The zero value logs nothing.
	refusedLog zerolog.Logger
	// notified counts the notifications by network and outcome
	// (switchyard_qr_notifications_total); nil counts nothing.
	notified *prometheus.CounterVec
	// reg and hist serve the merchant's checks of a payment (refusal); nil reg
	// checks nothing.
	reg  orderRegistry
	hist orderHistory
	// records tell an inquiry whether a paid order's payment was voided,
	// reversed or refunded in full since (paidState); nil: not looked at.
	records orderRecords
	// sums keep the merchants' sums for their daily and monthly limits, and their
	// locks (ordersums.go); made on first use when nil (merchantSums).
	sums     *merchantSums
	sumsOnce sync.Once
	// hooks are for tests; zero in production.
	hooks orderHooks
	// marks note the payments that may be owed to the journal (orderowed.go); nil
	// notes nothing.
	marks *orderMarks
	// locks take the merchants' cluster-wide locks (orderlimits.go); nil on a
	// single switch.
	locks merchantLocker
	// kept are the merchants' cluster-wide locks kept for orders whose payment's
	// journal write failed, by order ID (limitHold.keepFor, releaseKept).
	keptMu sync.Mutex
	kept   map[string]func()
}

// Outcomes of a notification, as switchyard_qr_notifications_total counts them.
const (
	notePaid        = "paid"              // the order is paid, the payment journaled
	noteLate        = "late"              // journaled and reversed: expired, another amount or currency
	noteRefused     = "refused"           // journaled and reversed: over a merchant limit, merchant or terminal not active
	noteRepeat      = "repeat"            // the same transaction again: nothing new
	noteOtherTxn    = "other-transaction" // the order was decided by another transaction: FAIL ORDERPAID
	noteNotFound    = "order-not-found"   // no such order: 404
	noteOtherMch    = "other-merchant"    // paid to another merchant than the order's: 409
	noteBadSig      = "bad-signature"     // 401
	noteStale       = "stale"             // 401: notify_time further than qr.notify_max_age from the clock
	noteUndated     = "undated"           // 401: no notify_time from a network whose connector requires it
	noteInvalid     = "invalid"           // unreadable, or a network without a connector: 400
	noteUnavailable = "not-configured"    // no secret: 503
	noteError       = "error"             // not recorded (500): the network repeats it
)

// count counts one notification of network with outcome.
func (d *orderDesk) count(network, outcome string) {
	if d.notified != nil {
		d.notified.WithLabelValues(network, outcome).Inc()
	}
}

func (s *Server) newOrderDesk() (*orderDesk, error) {
	secret, err := s.cfg.QR.NotifySecret(s.cfg.Demo, os.Getenv)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Clock
	if now == nil {
		now = time.Now
	}
	// In a cluster the book is shared through the STATE stream (store "qrorders"):
	// any node serves any order, its notification and its terminal's inquiries. Its
	// requests are decided as every node applies them (qrorder.Resolve), so the
	// StoreLog's Await needs the follower started below; until every node's lease
	// says it decides them (qrRequests), the book commits with a compare-and-set,
	// which earlier versions read.
	olog, err := s.cl.storeLog("qrorders")
	if err != nil {
		return nil, err
	}
	book, err := qrorder.NewBook(s.db, qrorder.Options{Persist: s.Journal.PutDurable, Now: now, Log: asLog(olog), CatchUp: catchUp(olog),
		Requests: s.cl.qrRequests()})
	if err != nil {
		return nil, err
	}
	if err := s.cl.follow(olog, book); err != nil {
		return nil, fmt.Errorf("qr orders: %w", err)
	}
	if s.cl != nil {
		// An order's ID is an RRN that no journal record carries until the order is
		// paid: a node rebuilt on an empty disk, which continues its RRNs after the
		// records the other nodes give back, must continue after its orders too, or
		// hand an open order's ID to a purchase (the order's payment would then be
		// taken for that purchase's record). Its orders are here once followed.
		if err := book.EachID(s.Journal.NoteRRN); err != nil {
			return nil, fmt.Errorf("qr orders: note their IDs in the RRN sequence: %w", err)
		}
	}
	notified := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_qr_notifications_total",
		Help: "Merchant-presented QR payment notifications, by network (empty before it is known to have a connector) and outcome (paid, late, refused, repeat, other-transaction, order-not-found, other-merchant, bad-signature, stale, undated, invalid, not-configured, error)."},
		[]string{"network", "outcome"})
	if err := s.Metrics.Registry.Register(notified); err != nil {
		return nil, fmt.Errorf("qr orders: metrics: %w", err)
	}
	// The orders offer, and take payments through, the wallet connectors that were
	// made (offered).
	cfg := s.cfg.QR
	cfg.Connectors = nil
	for _, c := range s.cfg.QR.Connectors {
		if _, ok := s.wallets[c.ID]; ok && offered(c) {
			cfg.Connectors = append(cfg.Connectors, c)
		}
	}
	// The merchants' sums for their limits are kept by every record version this
	// node's journal writes, its own and, in a cluster, the other nodes' as it
	// applies them.
	// A network with a secret of its own signs its notifications with it (the first
	// offered connector of the network, as connectorOf finds it).
	secrets := map[string][]byte{}
	for _, c := range cfg.Connectors {
		if _, seen := secrets[c.Network]; seen {
			continue
		}
		own, err := c.NotifySecret(os.Getenv)
		if err != nil {
			return nil, err
		}
		if own != nil {
			secrets[c.Network] = own
		}
	}
	sums := newMerchantSums(s.Registry, s.Journal)
	s.Journal.OnVersion(sums.observe)
	d := &orderDesk{book: book, cfg: cfg, now: now, notified: notified, reg: s.Registry, hist: s.Journal, records: s.Journal, sums: sums,
		marks:  &orderMarks{db: s.db, persist: s.Journal.PutDurable},
		secret: secret, secrets: secrets, log: s.log.With().Str("component", "qr-orders").Logger()}
	d.refusedLog = d.log.Sample(&zerolog.BurstSampler{Burst: adminRefusedBurst, Period: time.Second})
	if s.cl != nil {
		// A merchant's notifications are checked one at a time across the nodes.
		d.locks = s.cl
	}
	return d, nil
}

// startOrders wires merchant-presented orders: the notification route, and where the
// demo wallet sends its notifications.
func (s *Server) startOrders() {
	if s.orders == nil {
		return
	}
	s.orders.pipe = s.Pipeline
	s.mux.HandleFunc("POST "+NotifyPath, s.orders.notify)
	if s.demoWallet != nil {
		s.demoWallet.SetNotify("http://"+s.adminLn.Addr().String()+NotifyPath, s.orders.secret)
	}
}

// offered reports whether merchant-presented codes offer connector c: a wallet API
// connector, through which a payment goes back to its network (a late one's refund,
// a void, a refund), the store-and-forward queue delivering its reversal to the
// connector by its ID. An ISO 8583 issuer link (issuer: UnionPay codes in DE 2) has
// no such API and no sender under the connector's ID: a payment notified through it
// could not be given back.
func offered(c config.QRConnector) bool { return c.Issuer == "" }

// NewOrder makes the order's code: a merchant account information template per
// wallet connector (offered; ID 26 on), the merchant's MCC, name and city, the amount when given, and
// the order's ID as ID 62's reference label.
func (d *orderDesk) NewOrder(ctx context.Context, o pipeline.OrderRequest) (pipeline.OrderStatus, error) {
	accounts := map[string][]qr.Object{}
	for _, c := range d.cfg.Connectors {
		if !offered(c) {
			continue
		}
		if len(accounts) == 26 {
			break // IDs 26 to 51
		}
		accounts[fmt.Sprintf("%02d", 26+len(accounts))] = []qr.Object{{ID: "00", Value: c.GUID}, {ID: "01", Value: o.MID}}
	}
	cur := o.Currency
	if cur == "" {
		cur = pipeline.DefaultOrderCurrency
	}
	name, alt, lang := qrNames(o.MerchantName, o.MerchantNameLatin, o.MerchantNameLanguage, o.MID)
	qo := qr.Order{Accounts: accounts, MCC: orDefault(o.MCC, "0000"), Currency: cur, Amount: o.Amount,
		Country: d.cfg.Orders.Country, Name: name, City: trim(orDefault(o.City, d.cfg.Orders.Country), 15),
		Reference: o.ID, AltLanguage: lang, AltName: alt}
	payload, err := qr.Encode(qo)
	if err != nil {
		return pipeline.OrderStatus{}, err
	}
	now := d.now()
	var key qrorder.RequestKey
	if o.Key != "" {
		key = qrorder.RequestKey{Key: o.Key, Until: now.Add(o.KeyWindow)}
	}
	first, dup, err := d.book.CreateKeyed(ctx, qrorder.Order{ID: o.ID, TID: o.TID, MID: o.MID, Currency: cur, Amount: o.Amount, Created: now,
		Expires: now.Add(d.cfg.Orders.TTL.D()), Payload: payload}, key)
	if err != nil {
		return pipeline.OrderStatus{}, err
	}
	if dup {
		return d.resentStatus(first), nil
	}
	return pipeline.OrderStatus{ID: o.ID, State: qrorder.Open, Payload: payload, Amount: o.Amount, Currency: cur}, nil
}

// Resent returns the order the terminal's request with the duplicate key key made,
// while a request made now is a resend of it.
func (d *orderDesk) Resent(_ context.Context, key string) (pipeline.OrderStatus, bool, error) {
	o, ok, err := d.book.ByKey(key)
	if err != nil || !ok {
		return pipeline.OrderStatus{}, false, err
	}
	return d.resentStatus(o), true, nil
}

// resentStatus is order o as a resend of the request that made it is answered: its
// code, its state as of now (paymentUndone: refunded once its payment was voided,
// reversed or refunded in full), the amount asked for (and, paid, the auth code).
func (d *orderDesk) resentStatus(o qrorder.Order) pipeline.OrderStatus {
	st := pipeline.OrderStatus{ID: o.ID, State: o.State, Payload: o.Payload, Amount: o.Amount, Currency: o.Currency, Resent: true}
	st.State, st.AuthCode = d.paidState(o)
	return st
}

// paidState is order o's state and auth code as the terminal reads them: a paid
// order whose payment was undone since (paymentUndone) reads refunded, without
// an auth code.
func (d *orderDesk) paidState(o qrorder.Order) (string, string) {
	if o.State != qrorder.Paid {
		return o.State, ""
	}
	if d.paymentUndone(o) {
		return qrorder.Refunded, ""
	}
	return o.State, authCode(o.TransactionID)
}

// Order answers terminal tid's (of merchant mid) inquiry of order id, waiting up
// to qr.orders.wait for the payment. Whose order it is is checked first, on the
// order as stored, without waiting and without settling it: another terminal's
// order (order IDs are sequential, easily named) is answered as an unknown one,
// at once, ok false. Before, a foreign inquiry was held until the order was paid
// (learning when) or expired, and settled its expiry, before it was refused.
func (d *orderDesk) Order(ctx context.Context, id, tid, mid string) (pipeline.OrderStatus, bool, error) {
	cur, err := d.book.Get(id)
	if errors.Is(err, qrorder.ErrNotFound) {
		return pipeline.OrderStatus{}, false, nil
	}
	if err != nil {
		return pipeline.OrderStatus{}, false, err
	}
	if cur.TID != tid || cur.MID != mid { // an order's terminal and merchant never change
		return pipeline.OrderStatus{}, false, nil
	}
	o, err := d.book.Wait(ctx, id, d.cfg.Orders.Wait.D())
	if errors.Is(err, qrorder.ErrNotFound) {
		return pipeline.OrderStatus{}, false, nil
	}
	if err != nil {
		return pipeline.OrderStatus{}, false, err
	}
	st := pipeline.OrderStatus{ID: o.ID, State: o.State, Amount: o.Amount}
	if o.State == qrorder.Paid {
		st.Amount = o.PaidAmount
	}
	st.State, st.AuthCode = d.paidState(o)
	return st, true, nil
}

// paymentUndone reports whether the payment of paid order o was voided or reversed,
// or refunded in full, since: its journal record says so (the book keeps the order
// paid: it is not told of a void or a refund). The terminal's inquiry then reads
// refunded, the money being the payer's again; until 8 December 2026 (fifteenth
// release) it read paid. A record not there yet (its write owed) or unreadable, or
// a partial refund, leaves the order paid.
func (d *orderDesk) paymentUndone(o qrorder.Order) bool {
	if d.records == nil {
		return false
	}
	rec, err := d.records.Get(o.ID)
	if err != nil {
		if !errors.Is(err, journal.ErrNotFound) {
			d.log.Warn().Err(err).Str("order", o.ID).Msg("qr order inquiry: the payment's record could not be read: answered paid")
		}
		return false
	}
	if rec.Listener != pipeline.OrderListener || rec.TID != o.TID {
		return false // another transaction's record under the order's RRN
	}
	return rec.Reversed() || (rec.Amount > 0 && rec.Refunded >= rec.Amount)
}

// notifyMaxAge is qr.notify_max_age (its default when unset).
func (d *orderDesk) notifyMaxAge() time.Duration {
	if m := d.cfg.NotifyMaxAge.D(); m > 0 {
		return m
	}
	return config.DefaultNotifyMaxAge
}

// requiresNotifyTime reports whether a network's notifications must carry
// notify_time: one of its connectors that orders offer sets require_notify_time.
func (d *orderDesk) requiresNotifyTime(network string) bool {
	for _, c := range d.cfg.Connectors {
		if c.Network == network && offered(c) && c.RequireNotifyTime {
			return true
		}
	}
	return false
}

// connectorOf returns the wallet connector of a network (the first configured that
// orders offer).
func (d *orderDesk) connectorOf(network string) (string, bool) {
	for _, c := range d.cfg.Connectors {
		if c.Network == network && offered(c) {
			return c.ID, true
		}
	}
	return "", false
}

// notify takes a network's payment notification: signed, of a known order; the
// order is paid (journaled as a QR purchase), or, paid too late or with another
// amount, the payment is journaled and refunded through the store-and-forward queue.
// The network is answered SUCCESS once that is durable, so that it repeats the
// notification until then; a repeat (the same network's transaction ID) changes
// nothing.
func (d *orderDesk) notify(w http.ResponseWriter, r *http.Request) {
	answer := func(code int, res wallet.Result) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(res)
	}
	if d.secret == nil && len(d.secrets) == 0 {
		d.count("", noteUnavailable)
		answer(http.StatusServiceUnavailable, wallet.Result{Result: wallet.Fail, ErrCode: "NOT_CONFIGURED", ErrMsg: "qr.notify_secret_env is not set: notifications are refused"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		d.count("", noteInvalid)
		answer(http.StatusBadRequest, wallet.Result{Result: wallet.Fail, ErrCode: "PARAM_ERROR", ErrMsg: err.Error()})
		return
	}
	// The secret is the one of the network the body names, when it has its own (the
	// body is read once, so the network checked is the network taken), else the
	// shared one: a network's own secret is the only one its notifications are
	// taken under.
	var n wallet.Notification
	perr := json.Unmarshal(body, &n)
	secret := d.secret
	if own, ok := d.secrets[n.Network]; ok && perr == nil {
		secret = own
	}
	if secret == nil || !hmac.Equal([]byte(r.Header.Get(wallet.NotifySignatureHeader)), []byte(wallet.Sign(secret, body))) {
		d.count("", noteBadSig)
		d.refusedLog.Warn().Str("remote", r.RemoteAddr).Msg("payment notification with a bad signature: refused (at most 10 such lines a second; switchyard_qr_notifications_total counts them all)")
		answer(http.StatusUnauthorized, wallet.Result{Result: wallet.Fail, ErrCode: "SIGN_ERROR"})
		return
	}
	if perr != nil || n.OrderID == "" || n.TransactionID == "" {
		d.count("", noteInvalid)
		answer(http.StatusBadRequest, wallet.Result{Result: wallet.Fail, ErrCode: "PARAM_ERROR", ErrMsg: "order_id and transaction_id are required"})
		return
	}
	conn, ok := d.connectorOf(n.Network)
	if !ok {
		d.count("", noteInvalid)
		d.refusedLog.Warn().Str("order", n.OrderID).Str("network", n.Network).Msg("payment notification of a network without a connector: refused (at most 10 such lines a second)")
		answer(http.StatusBadRequest, wallet.Result{Result: wallet.Fail, ErrCode: "PARAM_ERROR", ErrMsg: fmt.Sprintf("network %q has no wallet connector", n.Network)})
		return
	}
	// A payment is of 1 to 999,999,999,999 minor units (DE 4's twelve digits, the
	// most a terminal's order can say). Until the fifth release of 6 December 2026 a
	// larger total_fee overflowed the merchant's daily and monthly sums and passed
	// their limits, paying an order whose amount the payer enters; one of nothing or
	// less was journaled as a purchase of that amount, reversed, and left the order
	// refunded, unpayable.
	if n.TotalFee < 1 || n.TotalFee > maxNotifiedAmount {
		d.count(n.Network, noteInvalid)
		d.log.Warn().Str("order", n.OrderID).Str("network", n.Network).Str("transaction", n.TransactionID).Int64("amount", n.TotalFee).
			Msg("payment notification with an amount out of range: refused, the order left as it was")
		answer(http.StatusBadRequest, wallet.Result{Result: wallet.Fail, ErrCode: "PARAM_ERROR",
			ErrMsg: fmt.Sprintf("total_fee %d is not 1 to %d", n.TotalFee, int64(maxNotifiedAmount))})
		return
	}
	// A notification that says when the network sent it is taken only within
	// qr.notify_max_age of the switch's clock: a captured one replayed later is
	// refused, as a forged one is. One that says nothing is taken (networks that
	// do not send it), unless its network's connector requires it
	// (require_notify_time): a captured one without it could be replayed for ever.
	if n.NotifyTime == "" && d.requiresNotifyTime(n.Network) {
		d.count(n.Network, noteUndated)
		d.refusedLog.Warn().Str("order", n.OrderID).Str("network", n.Network).Str("transaction", n.TransactionID).
			Msg("payment notification without notify_time from a network whose connector sets require_notify_time (a replay, or a network that does not send it): refused (at most 10 such lines a second)")
		answer(http.StatusUnauthorized, wallet.Result{Result: wallet.Fail, ErrCode: "NOTIFY_TIME_REQUIRED",
			ErrMsg: fmt.Sprintf("network %s's notifications must carry notify_time", n.Network)})
		return
	}
	if n.NotifyTime != "" {
		sent, err := time.Parse(time.RFC3339Nano, n.NotifyTime)
		if err != nil {
			d.count(n.Network, noteInvalid)
			answer(http.StatusBadRequest, wallet.Result{Result: wallet.Fail, ErrCode: "PARAM_ERROR",
				ErrMsg: fmt.Sprintf("notify_time %q is not an RFC 3339 time", trim(n.NotifyTime, 40))})
			return
		}
		if age, limit := d.now().Sub(sent), d.notifyMaxAge(); age > limit || age < -limit {
			d.count(n.Network, noteStale)
			d.refusedLog.Warn().Str("order", n.OrderID).Str("network", n.Network).Str("transaction", n.TransactionID).
				Time("notify_time", sent).Dur("age", age).Dur("max_age", limit).
				Msg("payment notification sent further from this switch's clock than qr.notify_max_age (a replay, or a clock off): refused (at most 10 such lines a second)")
			answer(http.StatusUnauthorized, wallet.Result{Result: wallet.Fail, ErrCode: "NOTIFY_EXPIRED",
				ErrMsg: fmt.Sprintf("notify_time %s is %s from the switch's clock, more than %s", sent.UTC().Format(time.RFC3339), age.Round(time.Second), limit)})
			return
		}
	}
	ctx := r.Context()
	// The order is read before anything is checked or taken: the checks below (its
	// merchant, its merchant's limits) are made on it, and an order this node cannot
	// read (a cluster node that cannot catch up with the book for a moment) is not
	// taken unchecked. Until the fifth release of 6 December 2026 a read that failed
	// skipped the checks, and the book, caught up by the time it took the payment,
	// paid the order with a payment to another merchant or over the limits.
	cur, err := d.book.Get(n.OrderID)
	switch {
	case errors.Is(err, qrorder.ErrNotFound):
		d.notFound(n, answer)
		return
	case err != nil:
		d.count(n.Network, noteError)
		d.log.Error().Err(err).Str("order", n.OrderID).Msg("payment notification of an order this node cannot read: not taken, the network will repeat it")
		answer(http.StatusInternalServerError, wallet.Result{Result: wallet.Fail, ErrCode: "SYSTEMERROR"})
		return
	}
	// A payment the network made to another merchant (mch_id) than the order's is
	// not the order's: a code made up with that merchant's account template and
	// this order's reference (ID 62) would otherwise have the order paid, and the
	// terminal hand over the goods, with the money in the other merchant's account.
	// The order's merchant never changes, so this is checked before the book decides.
	if n.MchID != "" {
		if cur.MID != n.MchID {
			d.count(n.Network, noteOtherMch)
			d.log.Warn().Str("order", n.OrderID).Str("network", n.Network).Str("transaction", n.TransactionID).Str("mch_id", n.MchID).
				Str("order_mid", cur.MID).Int64("amount", n.TotalFee).
				Msg("payment notification to another merchant than the order's: answered MCH_ID_MISMATCH, the order not paid; the payment is the network's to give back")
			answer(http.StatusConflict, wallet.Result{Result: wallet.Fail, ErrCode: "MCH_ID_MISMATCH",
				ErrMsg: fmt.Sprintf("order %s is not merchant %s's", n.OrderID, n.MchID)})
			return
		}
	}
	// Before the book can take the payment: once it has, the payment is owed to the
	// journal, whether or not the network repeats a notification whose journal
	// write failed (orderowed.go).
	if d.marks != nil {
		if err := d.marks.owe(ctx, n.OrderID, d.now()); err != nil {
			d.count(n.Network, noteError)
			d.log.Error().Err(err).Str("order", n.OrderID).Msg("payment notification not marked as owed to the journal: not taken, the network will repeat it")
			answer(http.StatusInternalServerError, wallet.Result{Result: wallet.Fail, ErrCode: "SYSTEMERROR"})
			return
		}
	}
	pay := qrorder.Payment{Network: n.Network, Connector: conn, TransactionID: n.TransactionID, Amount: n.TotalFee, Currency: n.Currency}
	// The merchant's checks, now that the amount is known, on an order the payment
	// would pay (the book decides the rest: an expired order, another amount). A
	// merchant with a daily or monthly limit stays locked on this node, and in a
	// cluster on every node, until the decision is journaled, so that its next
	// notification's check sees this payment. Without the cluster-wide lock (no
	// quorum) the notification is answered 500 and repeated.
	var hold *limitHold
	defer func() { hold.release() }()
	// Read again (another node may have decided the order meanwhile); a read that
	// fails takes nothing unchecked.
	if cur, err = d.book.Get(n.OrderID); err != nil {
		d.count(n.Network, noteError)
		d.log.Error().Err(err).Str("order", n.OrderID).Msg("payment notification not checked: the order could not be read; the network will repeat it")
		answer(http.StatusInternalServerError, wallet.Result{Result: wallet.Fail, ErrCode: "SYSTEMERROR"})
		return
	}
	if cur.State == qrorder.Open {
		if pay.Refused, hold, err = d.refusal(ctx, cur, n.TotalFee, d.now); err != nil {
			d.count(n.Network, noteError)
			d.log.Error().Err(err).Str("order", n.OrderID).Msg("payment notification not checked: the network will repeat it")
			answer(http.StatusInternalServerError, wallet.Result{Result: wallet.Fail, ErrCode: "SYSTEMERROR"})
			return
		}
	}
	o, outcome, err := d.book.Pay(ctx, n.OrderID, pay)
	if err == nil && o.PaidBy(n.Network, n.TransactionID) && o.State == qrorder.Paid {
		// Counted before the journal write, which may fail (the network repeats
		// the notification, or the sweep journals the payment): the book has it.
		hold.paid(o.ID, o.PaidAt, o.PaidAmount)
	}
	switch {
	case errors.Is(err, qrorder.ErrNotFound):
		d.notFound(n, answer)
		return
	case err != nil:
		// The book may yet take the payment (a request whose acknowledgement was
		// lost): the merchant stays locked until the sweep settles the order.
		hold.keepFor(d, n.OrderID)
		d.count(n.Network, noteError)
		d.log.Error().Err(err).Str("order", n.OrderID).Msg("payment notification not recorded")
		answer(http.StatusInternalServerError, wallet.Result{Result: wallet.Fail, ErrCode: "SYSTEMERROR"})
		return
	case !o.PaidBy(n.Network, n.TransactionID):
		// The order was paid by another transaction (another ID, or the same ID
		// another network gave its payment: a transaction ID is its network's): this
		// one is the network's to give back (the order keeps its first payment).
		d.count(n.Network, noteOtherTxn)
		d.log.Warn().Str("order", o.ID).Str("network", n.Network).Str("transaction", n.TransactionID).Str("paid_by", o.TransactionID).
			Str("paid_by_network", o.Network).Int64("amount", n.TotalFee).Msg("payment notification of another transaction on a decided order: answered ORDERPAID, the payment is the network's to give back")
		answer(http.StatusOK, wallet.Result{Result: wallet.Fail, ErrCode: "ORDERPAID"})
		return
	}
	late := outcome == qrorder.Late || o.State == qrorder.Refunded
	// The payment as the book took it (the first notification of the transaction:
	// a repeat does not change what is journaled), in its own currency.
	rec, err := d.pipe.RecordOrderPayment(ctx, orderPayment(o))
	if err != nil {
		if o.State == qrorder.Paid {
			// Taken and not journaled: until it is, the other nodes would check the
			// merchant without it.
			hold.keepFor(d, o.ID)
		}
		d.count(n.Network, noteError)
		d.log.Error().Err(err).Str("order", n.OrderID).Msg("payment notification not journaled: the network will repeat it, or the sweep journals it")
		answer(http.StatusInternalServerError, wallet.Result{Result: wallet.Fail, ErrCode: "SYSTEMERROR"})
		return
	}
	d.releaseKept(o.ID)
	if d.marks != nil {
		if err := d.marks.clear(o.ID); err != nil {
			d.log.Warn().Err(err).Str("order", o.ID).Msg("payment journaled, its mark not cleared: the sweep clears it")
		}
	}
	ev := d.log.Info()
	if o.Refused != "" && outcome != qrorder.Again {
		ev = d.log.Warn()
	}
	ev.Str("order", o.ID).Str("tid", o.TID).Str("network", n.Network).Int64("amount", n.TotalFee).Bool("late", late).
		Str("refused", o.Refused).Str("reversed_by", rec.ReversedBy).Msg("merchant-presented payment notified")
	switch {
	case outcome == qrorder.Again:
		d.count(n.Network, noteRepeat)
	case o.Refused != "":
		d.count(n.Network, noteRefused)
	case late:
		d.count(n.Network, noteLate)
	default:
		d.count(n.Network, notePaid)
	}
	answer(http.StatusOK, wallet.Result{Result: wallet.Success, TransactionID: n.TransactionID})
}

// maxNotifiedAmount is the largest total_fee a notification may say: DE 4's twelve
// digits, the most an order's amount can be.
const maxNotifiedAmount = 999_999_999_999

// notFound answers a notification of an order the switch does not have: a payer
// paid it (or a code made up with a guessed order ID), the network holds the money,
// and the operator hears of it.
func (d *orderDesk) notFound(n wallet.Notification, answer func(int, wallet.Result)) {
	d.count(n.Network, noteNotFound)
	d.log.Warn().Str("order", n.OrderID).Str("network", n.Network).Str("transaction", n.TransactionID).Int64("amount", n.TotalFee).
		Msg("payment notification of an unknown order: answered ORDER_NOT_FOUND, the payment is the network's to give back")
	answer(http.StatusNotFound, wallet.Result{Result: wallet.Fail, ErrCode: "ORDER_NOT_FOUND"})
}

func authCode(txID string) string {
	if len(txID) >= 6 {
		return txID[len(txID)-6:]
	}
	return fmt.Sprintf("%06s", txID)
}

// qrNames returns the merchant's name for ID 59 (printable ASCII, at most 25
// characters) and, when its registered name is not printable ASCII, that name for
// the language template (ID 64, its ID 01, at most 25 characters, cut between
// characters, never inside one) with the template's language preference (its ID
// 00, ISO 639-1 in upper case).
//
// ID 59 carries the merchant's ASCII name (latin, the registry's name_latin) when
// it has one (also beside an ASCII name: a shorter one than the name cut to 25
// characters); else the registered name when it is printable ASCII; else the
// merchant ID (DE 42), the ASCII name the registry has for every merchant;
// "MERCHANT" when there is nothing. The language is the merchant's name_language
// when set, else the one the name's script implies (qr.NameLanguage: Han "ZH",
// kana "JA", Hangul "KO"...). A name whose language is neither given nor implied
// (Cyrillic, accented Latin) gets no template: a language preference that is not
// the name's would have a wallet show it to the wrong payers, or hide it from the
// right ones; ID 59 still names the merchant.
func qrNames(name, latin, lang, mid string) (id59, alt, altLang string) {
	name, latin, mid = strings.TrimSpace(name), strings.TrimSpace(latin), strings.TrimSpace(mid)
	if !qr.Common(latin) {
		latin = "" // not an ASCII name: the registry refuses it
	}
	if qr.Common(name) {
		return trim(orDefault(latin, orDefault(name, orDefault(mid, "MERCHANT"))), qr.MaxName), "", ""
	}
	id59 = trim(orDefault(latin, orDefault(mid, "MERCHANT")), qr.MaxName)
	altLang = strings.ToUpper(lang)
	if !qr.ValidLanguage(altLang) {
		altLang = qr.NameLanguage(name)
	}
	if altLang == "" {
		return id59, "", ""
	}
	return id59, trim(name, qr.MaxAltName), altLang
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// trim cuts s to its first n characters (runes).
func trim(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n])
	}
	return s
}
