package wallet

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/currency"
	"github.com/switchyard/switchyard/switch/qr"
)

// SimConfig tunes the simulator. Besides the probabilities, the amount's last two
// digits (minor units) script a payment, as the demo issuer's do:
//
//	51  FAIL NOTENOUGH (51)        05  FAIL USERCANCELLED (05)
//	14  FAIL AUTHCODEEXPIRE (14)   62  USERPAYING, then SUCCESS after ConfirmAfter queries
//	63  USERPAYING, then the payer cancels (PAYERROR) after ConfirmAfter queries
//	64  USERPAYING for ever (the payer walked away)
//	91  silent: the order is taken (paid) but neither pay nor query is ever answered
//	96  HTTP 500 on pay (the order is taken and paid: the connector learns it by query)
type SimConfig struct {
	// Latency is added before every answer.
	Latency time.Duration
	// ConfirmAfter is how many queries a USERPAYING payment takes to be decided
	// (default 2).
	ConfirmAfter int
	// UserPaying, Silent, Error and Decline are the probabilities (0 to 1) that a pay
	// whose amount scripts nothing asks the payer to confirm (then succeeds), goes
	// silent, fails with HTTP 500 (taken, paid) or is declined (NOTENOUGH).
	UserPaying, Silent, Error, Decline float64
	// NotifyURL receives the notifications of merchant-presented payments
	// (PayOrder); "" sends none.
	NotifyURL string
	// NotifySecret signs the notifications (NotifySignatureHeader).
	NotifySecret []byte
	// Logger receives a line per request; the zero value logs nothing.
	Logger zerolog.Logger
}

// Trade is one order as the simulated network keeps it.
type Trade struct {
	OutTradeNo    string    `json:"out_trade_no"`
	TransactionID string    `json:"transaction_id"`
	State         string    `json:"trade_state"`
	TotalFee      int64     `json:"total_fee"`
	Refunded      int64     `json:"refunded,omitempty"`
	CodeMasked    string    `json:"code,omitempty"`
	Queries       int       `json:"queries"`
	Reversed      bool      `json:"reversed,omitempty"`
	At            time.Time `json:"at"`
	script        string
	code          [32]byte // SHA-256 of the payer's code: a resend must carry the same
}

// refund is one refund the simulator took.
type refund struct {
	trade  string
	amount int64
	undone bool
}

// Sim is a simulated QR payment network over HTTP.
type Sim struct {
	cfg     SimConfig
	ln      net.Listener
	srv     *http.Server
	mu      sync.Mutex
	trades  map[string]*Trade
	refunds map[string]*refund
	seq     int
	hold    chan struct{} // closed by Close: releases silent requests
	closed  sync.Once
	done    chan struct{}
}

// StartSim listens on addr and serves the API (docs/qr.md) and GET /ledger.
func StartSim(addr string, cfg SimConfig) (*Sim, error) {
	if cfg.ConfirmAfter <= 0 {
		cfg.ConfirmAfter = 2
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("wallet simulator: %w", err)
	}
	s := &Sim{cfg: cfg, ln: ln, trades: map[string]*Trade{}, refunds: map[string]*refund{}, hold: make(chan struct{}), done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathPay, s.pay)
	mux.HandleFunc("POST "+PathQuery, s.query)
	mux.HandleFunc("POST "+PathReverse, s.reverse)
	mux.HandleFunc("POST "+PathRefund, s.refund)
	mux.HandleFunc("GET /ledger", s.ledger)
	mux.HandleFunc("POST /v1/mpm/pay", s.mpmPay)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// SetNotify says where notifications of merchant-presented payments go and the
// secret that signs them.
func (s *Sim) SetNotify(url string, secret []byte) {
	s.mu.Lock()
	s.cfg.NotifyURL, s.cfg.NotifySecret = url, secret
	s.mu.Unlock()
}

// Addr is where the simulator listens.
func (s *Sim) Addr() string { return s.ln.Addr().String() }

// URL is the simulator's base URL.
func (s *Sim) URL() string { return "http://" + s.Addr() }

// Close stops the simulator (silent requests are released unanswered).
func (s *Sim) Close() error {
	s.closed.Do(func() { close(s.hold) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	<-s.done
	return err
}

// Trade returns a copy of the order out (false when unknown).
func (s *Sim) Trade(out string) (Trade, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.trades[out]
	if !ok {
		return Trade{}, false
	}
	return *t, true
}

// Trades returns copies of every order, oldest first.
func (s *Sim) Trades() []Trade {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Trade, 0, len(s.trades))
	for _, t := range s.trades {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

func (s *Sim) answer(w http.ResponseWriter, v any) {
	if s.cfg.Latency > 0 {
		select {
		case <-time.After(s.cfg.Latency):
		case <-s.hold:
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// silent holds a request unanswered until the client gives up or the simulator
// closes.
func (s *Sim) silent(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-s.hold:
	}
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(v); err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

// script chooses what a pay does: by the amount's last two digits, else at random.
func (s *Sim) script(amount int64) string {
	switch amount % 100 {
	case 51, 5, 14, 62, 63, 64, 91, 96:
		return strconv.FormatInt(amount%100, 10)
	}
	x := rand.Float64()
	switch {
	case x < s.cfg.Silent:
		return "91"
	case x < s.cfg.Silent+s.cfg.Error:
		return "96"
	case x < s.cfg.Silent+s.cfg.Error+s.cfg.UserPaying:
		return "62"
	case x < s.cfg.Silent+s.cfg.Error+s.cfg.UserPaying+s.cfg.Decline:
		return "51"
	}
	return ""
}

func (s *Sim) pay(w http.ResponseWriter, r *http.Request) {
	var req PayRequest
	if !decode(w, r, &req) {
		return
	}
	if req.OutTradeNo == "" || req.AuthCode == "" || req.TotalFee <= 0 {
		s.answer(w, Result{Result: Fail, ErrCode: "PARAM_ERROR", ErrMsg: "out_trade_no, auth_code and total_fee are required"})
		return
	}
	code := sha256.Sum256([]byte(req.AuthCode))
	s.mu.Lock()
	if t, ok := s.trades[req.OutTradeNo]; ok {
		if t.TotalFee != 0 && (t.TotalFee != req.TotalFee || t.code != code) {
			// Another payment under a used number (another amount or payer): refused,
			// as the networks do, never answered with the first one's state.
			s.mu.Unlock()
			s.answer(w, Result{Result: Fail, ErrCode: "OUT_TRADE_NO_USED", ErrMsg: "out_trade_no was used by another payment"})
			return
		}
		// A resend of the same order: its state, never a second payment.
		st := t.State
		id := t.TransactionID
		s.mu.Unlock()
		switch st {
		case Success:
			s.answer(w, Result{Result: Success, TransactionID: id})
		case UserPaying:
			s.answer(w, Result{Result: UserPaying})
		default:
			s.answer(w, Result{Result: Fail, ErrCode: "ORDERREVERSED"})
		}
		return
	}
	s.seq++
	t := &Trade{OutTradeNo: req.OutTradeNo, TransactionID: fmt.Sprintf("%s%014d", prefixOf(req.Network), s.seq), TotalFee: req.TotalFee,
		CodeMasked: maskCode(req.AuthCode), At: time.Now(), script: s.script(req.TotalFee), code: code}
	s.trades[t.OutTradeNo] = t
	var res Result
	switch t.script {
	case "51":
		t.State, res = PayError, Result{Result: Fail, ErrCode: "NOTENOUGH", ErrMsg: "balance not enough"}
	case "5":
		t.State, res = PayError, Result{Result: Fail, ErrCode: "USERCANCELLED"}
	case "14":
		t.State, res = PayError, Result{Result: Fail, ErrCode: "AUTHCODEEXPIRE", ErrMsg: "payment code expired: refresh it"}
	case "62", "63", "64":
		t.State, res = UserPaying, Result{Result: UserPaying}
	default:
		t.State, res = Success, Result{Result: Success, TransactionID: t.TransactionID}
	}
	script := t.script
	s.mu.Unlock()
	s.cfg.Logger.Info().Str("out_trade_no", req.OutTradeNo).Str("code", maskCode(req.AuthCode)).Int64("total_fee", req.TotalFee).Str("script", script).Msg("pay")
	switch script {
	case "91":
		s.silent(r)
		return
	case "96":
		http.Error(w, `{"result":"FAIL","err_code":"SYSTEMERROR"}`, http.StatusInternalServerError)
		return
	}
	s.answer(w, res)
}

func (s *Sim) query(w http.ResponseWriter, r *http.Request) {
	var req QueryRequest
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	t, ok := s.trades[req.OutTradeNo]
	if !ok {
		s.mu.Unlock()
		s.answer(w, QueryResult{TradeState: NotPay})
		return
	}
	t.Queries++
	if t.State == UserPaying && t.Queries >= s.cfg.ConfirmAfter {
		switch t.script {
		case "63":
			t.State = PayError
		case "64":
		default:
			t.State = Success
		}
	}
	res := QueryResult{TradeState: t.State, TotalFee: t.TotalFee}
	if t.State == Success || t.State == Refunded {
		res.TransactionID = t.TransactionID
	}
	script := t.script
	s.mu.Unlock()
	if script == "91" {
		s.silent(r)
		return
	}
	s.answer(w, res)
}

func (s *Sim) reverse(w http.ResponseWriter, r *http.Request) {
	var req ReverseRequest
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	if req.OutRefundNo != "" {
		rf, ok := s.refunds[req.OutRefundNo]
		switch {
		case !ok:
			// Unknown: an undoing that overtook its refund. Remember it, so that the
			// refund, if it comes, is refused.
			s.refunds[req.OutRefundNo] = &refund{undone: true}
		case !rf.undone:
			rf.undone = true
			if t, ok := s.trades[rf.trade]; ok {
				t.Refunded -= rf.amount
				if t.Refunded == 0 && t.State == Refunded {
					t.State = Success
				}
			}
		}
	} else if t, ok := s.trades[req.OutTradeNo]; ok {
		t.State, t.Reversed = Revoked, true
	} else {
		// Unknown: a cancel that overtook its pay. Remember it, so that the pay, if it
		// comes, finds the order reversed.
		s.trades[req.OutTradeNo] = &Trade{OutTradeNo: req.OutTradeNo, State: Revoked, Reversed: true, At: time.Now()}
	}
	s.mu.Unlock()
	s.cfg.Logger.Info().Str("out_trade_no", req.OutTradeNo).Str("out_refund_no", req.OutRefundNo).Msg("reverse")
	s.answer(w, Result{Result: Success})
}

func (s *Sim) refund(w http.ResponseWriter, r *http.Request) {
	var req RefundRequest
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	if rf, ok := s.refunds[req.OutRefundNo]; ok {
		// A resend: the first one's answer when it is the same refund; a refund
		// undone (or whose undoing came first), or another refund under the number,
		// is refused, never made or answered SUCCESS unmade.
		s.mu.Unlock()
		switch {
		case rf.undone:
			s.answer(w, Result{Result: Fail, ErrCode: "REFUND_REVERSED", ErrMsg: "out_refund_no was reversed"})
		case rf.trade != req.OutTradeNo || rf.amount != req.RefundFee:
			s.answer(w, Result{Result: Fail, ErrCode: "OUT_REFUND_NO_USED", ErrMsg: "out_refund_no was used by another refund"})
		default:
			s.answer(w, Result{Result: Success, TransactionID: "RF" + req.OutRefundNo})
		}
		return
	}
	t, ok := s.trades[req.OutTradeNo]
	var res Result
	switch {
	case !ok || (t.State != Success && t.State != Refunded):
		res = Result{Result: Fail, ErrCode: "TRADE_STATE_ERROR", ErrMsg: "order not paid"}
	case req.RefundFee <= 0 || t.Refunded+req.RefundFee > t.TotalFee:
		res = Result{Result: Fail, ErrCode: "REFUND_AMOUNT_EXCEED"}
	default:
		t.Refunded += req.RefundFee
		t.State = Refunded
		s.refunds[req.OutRefundNo] = &refund{trade: t.OutTradeNo, amount: req.RefundFee}
		res = Result{Result: Success, TransactionID: "RF" + req.OutRefundNo}
	}
	s.mu.Unlock()
	s.answer(w, res)
}

func (s *Sim) ledger(w http.ResponseWriter, _ *http.Request) {
	s.answer(w, s.Trades())
}

func prefixOf(network string) string {
	switch network {
	case "wechat":
		return "42"
	case "alipay":
		return "20"
	case "unionpay":
		return "62"
	}
	return "99"
}

// maskCode masks a payment code as a PAN (first 6, last 4): not even the simulator
// logs one in clear.
func maskCode(c string) string { return qr.Mask(c) }

// NotifySignatureHeader carries the HMAC-SHA256 (hex) of a notification's body under
// the secret the network shares with the switch (qr.notify_secret_env).
const NotifySignatureHeader = "X-Wallet-Signature"

// Sign returns the signature of body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// MPMPayRequest is a payer paying a merchant-presented code (the simulator's stand-in
// for the payer's phone): the payload scanned, the network paid with, and the amount
// entered when the code carries none.
type MPMPayRequest struct {
	Payload string `json:"payload"`
	Network string `json:"network"`
	Amount  int64  `json:"amount,omitempty"`
}

// PayOrder plays a payer who scans payload and pays with network: the order (ID 62's
// reference label) is paid at the network at once, to the merchant of the network's
// merchant account template (mch_id), and the switch is notified. It returns the
// notification sent and the switch's answer.
func (s *Sim) PayOrder(ctx context.Context, req MPMPayRequest) (Notification, Result, error) {
	p, err := qr.Decode(req.Payload)
	if err != nil {
		return Notification{}, Result{}, fmt.Errorf("payload: %w", err)
	}
	ref := p.Sub(qr.IDAdditional, "05")
	if ref == "" {
		return Notification{}, Result{}, errors.New("payload has no order reference (ID 62, 05)")
	}
	amount := req.Amount
	cur := p.Get(qr.IDCurrency)
	if a := p.Get(qr.IDAmount); a != "" {
		// In major units with the currency's decimals (ISO 4217), read exactly.
		n, err := currency.Parse(a, cur)
		if err != nil {
			return Notification{}, Result{}, fmt.Errorf("payload amount: %w", err)
		}
		amount = n
	}
	if amount <= 0 {
		return Notification{}, Result{}, errors.New("the code carries no amount: give one")
	}
	// The network pays the merchant of its own template (by its default GUID), else,
	// for a connector configured with another GUID, the first template's.
	mch, ok := p.MerchantAccount(qr.DefaultGUID(req.Network))
	if !ok {
		mch = firstMerchantAccount(p)
	}
	s.mu.Lock()
	s.seq++
	t := &Trade{OutTradeNo: ref, TransactionID: fmt.Sprintf("%s%014d", prefixOf(req.Network), s.seq), State: Success, TotalFee: amount, At: time.Now()}
	if old, ok := s.trades[ref]; ok && old.State == Success {
		t.OutTradeNo = ref + "-" + strconv.Itoa(s.seq) // a second payer of one order: its own trade
	}
	s.trades[t.OutTradeNo] = t
	notifyURL, secret := s.cfg.NotifyURL, s.cfg.NotifySecret
	s.mu.Unlock()
	n := Notification{Network: req.Network, OrderID: ref, TransactionID: t.TransactionID, TotalFee: amount, Currency: cur, MchID: mch,
		NotifyTime: time.Now().UTC().Format(time.RFC3339Nano)}
	if notifyURL == "" {
		return n, Result{}, errors.New("no notification URL: the switch is not told")
	}
	body, _ := json.Marshal(n)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, notifyURL, bytes.NewReader(body))
	if err != nil {
		return n, Result{}, err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set(NotifySignatureHeader, Sign(secret, body))
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return n, Result{}, fmt.Errorf("notify %s: %w", notifyURL, err)
	}
	defer resp.Body.Close()
	var res Result
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err := json.Unmarshal(b, &res); err != nil {
		return n, Result{}, fmt.Errorf("notify %s: HTTP %d: %.200s", notifyURL, resp.StatusCode, b)
	}
	return n, res, nil
}

// firstMerchantAccount returns the merchant ID (ID 01) of the first merchant account
// information template (IDs 26-51) that has one, "" when none does.
func firstMerchantAccount(p *qr.Payload) string {
	for _, o := range p.Objects {
		if o.ID >= "26" && o.ID <= "51" {
			for _, sub := range o.Objects {
				if sub.ID == "01" {
					return sub.Value
				}
			}
		}
	}
	return ""
}

func (s *Sim) mpmPay(w http.ResponseWriter, r *http.Request) {
	var req MPMPayRequest
	if !decode(w, r, &req) {
		return
	}
	n, res, err := s.PayOrder(r.Context(), req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.answer(w, map[string]any{"notification": n, "switch": res})
}
