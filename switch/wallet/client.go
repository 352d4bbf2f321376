package wallet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/moov-io/iso8583"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/issuer"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/pipeline"
	"github.com/switchyard/switchyard/switch/qr"
	"github.com/switchyard/switchyard/switch/saf"
)

// Config configures the connector to one network.
type Config struct {
	ID      string // the connector's name (qr.routes' connector), the journal's issuer
	Network string // unionpay, wechat, alipay...
	URL     string // base URL of the API, http://host:port
	// Timeout bounds a payment from the first request to the last query (default
	// 30 s): when the payer has not confirmed by then, the payment is answered 91 and
	// cancelled through the store-and-forward queue.
	Timeout time.Duration
	// Poll is the wait between queries while the payer confirms (default 2 s).
	Poll time.Duration
	// RequestTimeout bounds one HTTP request (default 5 s, never past Timeout).
	RequestTimeout time.Duration
	// Client is the HTTP client (default: a client of its own with keep-alive).
	Client *http.Client
	// Logger receives the connector's warnings; the zero value logs nothing.
	Logger zerolog.Logger
}

// Connector is a pipeline.WalletLink over a network's HTTP JSON API.
type Connector struct {
	cfg  Config
	http *http.Client
	stan atomic.Uint32
}

var _ pipeline.WalletLink = (*Connector)(nil)

// ErrNotISO: a wallet connector takes no ISO 8583 messages; the store-and-forward
// queue reaches it through Reverse (AdviceSender).
var ErrNotISO = errors.New("wallet connector takes no ISO 8583 messages")

// New returns a connector; it dials nothing until the first request.
func New(cfg Config) (*Connector, error) {
	if cfg.ID == "" || cfg.URL == "" {
		return nil, fmt.Errorf("wallet connector: id and url are required (got id %q, url %q)", cfg.ID, cfg.URL)
	}
	if !strings.HasPrefix(cfg.URL, "http://") && !strings.HasPrefix(cfg.URL, "https://") {
		return nil, fmt.Errorf("wallet connector %s: url %q is not http:// or https://", cfg.ID, cfg.URL)
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 2 * time.Second
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	if cfg.Network == "" {
		cfg.Network = cfg.ID
	}
	c := &Connector{cfg: cfg}
	if cfg.Client != nil {
		cl := *cfg.Client // the caller's transport, with this connector's redirect policy
		c.http = &cl
	} else {
		c.http = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second}}
	}
	c.http.CheckRedirect = c.refuseRedirect
	return c, nil
}

// ErrRedirect is wrapped when the API answered a redirect: the connector does not
// follow it, since a followed pay would send the payer's code (and the merchant's
// request) to an address nobody configured.
var ErrRedirect = errors.New("wallet API answered a redirect: not followed")

// refuseRedirect is the HTTP client's CheckRedirect: no redirect is followed. The
// request's outcome is unknown to the connector (as for an HTTP error): a pay is
// queried, a refund is in doubt.
func (c *Connector) refuseRedirect(req *http.Request, via []*http.Request) error {
	from := ""
	if len(via) > 0 {
		from = via[len(via)-1].URL.Redacted()
	}
	return fmt.Errorf("%w: connector %s, %s redirected to %s (check qr.connectors[].url)", ErrRedirect, c.cfg.ID, from, req.URL.Redacted())
}

// ID returns the connector's name.
func (c *Connector) ID() string { return c.cfg.ID }

// Network returns the connector's network.
func (c *Connector) Network() string { return c.cfg.Network }

// NextSTAN numbers the requests (the API does not use it; the journal keeps it).
func (c *Connector) NextSTAN() string { return fmt.Sprintf("%06d", c.stan.Add(1)%999999+1) }

// AcquirerID is empty: the API names the merchant by mch_id.
func (c *Connector) AcquirerID() string { return "" }

// Up is true: an HTTP API has no session to keep; the pipeline's circuit breaker
// keeps requests away from a network that stopped answering.
func (c *Connector) Up() bool { return true }

// Send refuses: see ErrNotISO.
func (c *Connector) Send(context.Context, *iso8583.Message, time.Duration) (*iso8583.Message, error) {
	return nil, ErrNotISO
}

// SendPacked refuses: see ErrNotISO.
func (c *Connector) SendPacked(context.Context, string, string, string, []byte, time.Duration) (message.Answer, error) {
	return message.Answer{}, ErrNotISO
}

// errNotSent marks a request that never left (the connection was refused).
type errNotSent struct{ err error }

func (e errNotSent) Error() string { return e.err.Error() }
func (e errNotSent) Unwrap() error { return e.err }

// post sends one request and decodes its answer. A refused connection is
// errNotSent; any other failure leaves the outcome unknown.
func (c *Connector) post(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.URL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return errNotSent{fmt.Errorf("%s %s: %w", c.cfg.ID, path, err)}
		}
		return fmt.Errorf("%s %s: %w", c.cfg.ID, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", c.cfg.ID, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: HTTP %d: %.200s", c.cfg.ID, path, resp.StatusCode, maskDigits(b))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: answer is not JSON: %w", c.cfg.ID, path, err)
	}
	return nil
}

// digitRun is a run of digits as long as the shortest payment code or longer.
var digitRun = regexp.MustCompile(`[0-9]{8,}`)

// maskDigits masks every run of 8 or more digits in an answer quoted in an error (it
// is logged) as a payment code is masked: an error answer may quote the request, and
// with it the payer's code.
func maskDigits(b []byte) string { return digitRun.ReplaceAllStringFunc(string(b), qr.Mask) }

// Pay pays p with the payer's code. SUCCESS approves (the network's transaction ID,
// last six characters, is the auth code), FAIL declines by its err_code; a query's
// SUCCESS of another amount (total_fee, when the network says it) is another payment
// under the order number, declined 94; USERPAYING,
// a FAIL whose err_code says the outcome is unknown (SYSTEMERROR, BANKERROR: inDoubt),
// a result it does not know, or an answer that did not come, is followed by queries every Poll until the payment
// is decided or Timeout has passed since the first request, when it returns
// issuer.ErrTimeout (the pipeline answers 91 and queues its cancellation). A
// connection refused before anything was sent is issuer.ErrUnavailable.
func (c *Connector) Pay(ctx context.Context, p pipeline.WalletPayment) (rc, auth string, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var res Result
	err = c.post(ctx, PathPay, PayRequest{Network: c.cfg.Network, OutTradeNo: p.RRN, AuthCode: p.Code, TotalFee: p.Amount,
		Currency: p.Currency, MchID: p.MID, DeviceInfo: p.TID}, &res)
	var ns errNotSent
	switch {
	case errors.As(err, &ns):
		return "", "", fmt.Errorf("%w: %v", issuer.ErrUnavailable, err)
	case err != nil:
		// Unknown: the network may have taken it. Ask.
	case res.Result == Success:
		return "00", authOf(res.TransactionID), nil
	case res.Result == Fail && res.ErrCode != UserPaying && !inDoubt(res.ErrCode):
		return rcOf(res.ErrCode), "", nil
	}
	// USERPAYING, no answer, a FAIL whose code says the outcome is unknown, or a
	// result this connector does not know: the payer may be charged. Ask.
	last := "no answer to pay"
	switch {
	case err == nil && res.Result == Fail:
		last = fmt.Sprintf("pay FAIL %.40s", maskDigits([]byte(res.ErrCode)))
	case err == nil && res.Result != UserPaying:
		last = fmt.Sprintf("pay result %.40q", maskDigits([]byte(res.Result)))
	}
	if err != nil {
		last = err.Error()
		c.cfg.Logger.Warn().Err(err).Str("connector", c.cfg.ID).Str("rrn", p.RRN).Msg("pay without an answer: querying the payment until it is decided or the timeout")
	}
	// waiting: the network said that the payer has not confirmed (USERPAYING, then
	// perhaps NOTPAY), and it has not failed to answer since. A payment that
	// times out so is the payer's walk-away (pipeline.ErrPayerNotConfirmed), which
	// the circuit breaker does not count against the network.
	waiting := err == nil && res.Result == UserPaying
	tick := time.NewTicker(c.cfg.Poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			if waiting {
				return "", "", fmt.Errorf("%w: %w: %s: payment %s not confirmed in %s (%s)", issuer.ErrTimeout, pipeline.ErrPayerNotConfirmed,
					c.cfg.ID, p.RRN, c.cfg.Timeout, last)
			}
			return "", "", fmt.Errorf("%w: %s: payment %s not decided in %s (%s)", issuer.ErrTimeout, c.cfg.ID, p.RRN, c.cfg.Timeout, last)
		case <-tick.C:
		}
		var q QueryResult
		if err := c.post(ctx, PathQuery, QueryRequest{OutTradeNo: p.RRN}, &q); err != nil {
			if ctx.Err() == nil {
				// The network failed to answer (a query cut by the payment's own
				// deadline says nothing of it).
				waiting, last = false, err.Error()
			}
			continue
		}
		switch {
		case q.TradeState == Success && q.TotalFee != 0 && q.TotalFee != p.Amount:
			// Another payment under this order number (an RRN handed out again,
			// after the journal was lost or restored: the network refused this pay
			// as OUT_TRADE_NO_USED, and that answer was lost). Not this payment's
			// approval, and nothing of it to cancel: a cancel under the number
			// would give that other payment back. Until the fifth release of 6
			// December 2026 it was approved.
			c.cfg.Logger.Error().Str("connector", c.cfg.ID).Str("rrn", p.RRN).Int64("amount", p.Amount).Int64("network_amount", q.TotalFee).
				Msg("pay queried: the network holds another payment under this order number (an RRN used twice?): declined 94")
			return "94", "", nil
		}
		switch q.TradeState {
		case Success:
			return "00", authOf(q.TransactionID), nil
		case PayError, Revoked:
			return "05", "", nil
		case UserPaying:
			waiting, last = true, "trade state "+q.TradeState
		case NotPay:
			// Pending then closed when the network had said USERPAYING (still the
			// payer's); without that, the pay may not have reached it (the
			// network's).
			last = "trade state " + q.TradeState
		default: // a state this connector does not know
			waiting, last = false, fmt.Sprintf("trade state %.40q", maskDigits([]byte(q.TradeState)))
		}
	}
}

// Refund refunds r against its original payment. An answer that does not come, a
// FAIL whose code says the outcome is unknown (SYSTEMERROR...) or a result that is
// neither SUCCESS nor FAIL leaves the refund in doubt: issuer.ErrTimeout, and the
// pipeline reverses the refund (Reverse with its number) rather than release its
// amount on the original for another refund while the payer may have it back.
func (c *Connector) Refund(ctx context.Context, r pipeline.WalletRefund) (rc, auth string, err error) {
	var res Result
	err = c.post(ctx, PathRefund, RefundRequest{OutTradeNo: r.OriginalRRN, OutRefundNo: r.RRN, RefundFee: r.Amount}, &res)
	var ns errNotSent
	switch {
	case errors.As(err, &ns):
		return "", "", fmt.Errorf("%w: %v", issuer.ErrUnavailable, err)
	case err != nil:
		return "", "", fmt.Errorf("%w: %v", issuer.ErrTimeout, err)
	case res.Result == Success:
		return "00", authOf(res.TransactionID), nil
	case res.Result != Fail || inDoubt(res.ErrCode):
		return "", "", fmt.Errorf("%w: %s refund %s of %s: outcome unknown (result %.40q, err_code %.40q)",
			issuer.ErrTimeout, c.cfg.ID, r.RRN, r.OriginalRRN, maskDigits([]byte(res.Result)), maskDigits([]byte(res.ErrCode)))
	}
	return rcOf(res.ErrCode), "", nil
}

// ErrNotReversible is wrapped by Reverse's error when the network refused the
// reverse for good (notReversible: past the order's cancel window): no repeat can
// change it. It wraps saf.ErrRefused, so that the store-and-forward queue parks the
// reversal at once, for an operator to refund the payment out of band, instead of
// repeating it for ever.
var ErrNotReversible = fmt.Errorf("the network will not reverse it (%w)", saf.ErrRefused)

// notReversible reports whether a reverse's FAIL err_code refuses it for good:
// REVERSE_EXPIRE, the order past its cancel window (WeChat Pay's code; a gateway
// maps its network's equivalent to it). Every other FAIL (SYSTEMERROR, a code the
// switch does not know) may pass, and the reverse is repeated.
func notReversible(errCode string) bool { return errCode == "REVERSE_EXPIRE" }

// Reverse cancels a payment (refund false) or undoes a refund, named by the switch's
// RRN. It succeeds when the network confirms, also for what it does not know or has
// reversed already. A refusal for good wraps ErrNotReversible.
func (c *Connector) Reverse(ctx context.Context, rrn string, refund bool) error {
	req := ReverseRequest{OutTradeNo: rrn}
	if refund {
		req = ReverseRequest{OutRefundNo: rrn}
	}
	var res Result
	if err := c.post(ctx, PathReverse, req, &res); err != nil {
		return err
	}
	switch {
	case res.Result == Fail && notReversible(res.ErrCode):
		return fmt.Errorf("%s reverse %s: %s %s: %w", c.cfg.ID, rrn, res.ErrCode, res.ErrMsg, ErrNotReversible)
	case res.Result != Success:
		return fmt.Errorf("%s reverse %s: %s %s", c.cfg.ID, rrn, res.ErrCode, res.ErrMsg)
	}
	return nil
}

// AdviceSender is the store-and-forward queue's sender of this connector's advices:
// a reversal advice (0420) becomes the network's cancel of a payment, or the undoing
// of a refund (DE 3 a refund's), tried until the network confirms; a refusal for
// good (ErrNotReversible, wrapping saf.ErrRefused) parks it. Nothing else is queued
// for a wallet (the switch never stands in for a QR payment): anything else is
// acknowledged, so that it does not block the queue, and logged.
func (c *Connector) AdviceSender() saf.Sender {
	return func(ctx context.Context, it *saf.Item, _ bool) error {
		if !strings.HasPrefix(it.MTI, "042") {
			c.cfg.Logger.Error().Str("connector", c.cfg.ID).Str("mti", it.MTI).Str("rrn", it.RRN).Msg("advice a wallet connector cannot carry: dropped")
			return nil
		}
		return c.Reverse(ctx, it.RRN, strings.HasPrefix(it.Fields[3], message.PCRefund[:2]))
	}
}

// authOf makes an auth code (DE 38, 6 characters) of a network's transaction ID.
func authOf(txID string) string {
	if len(txID) >= 6 {
		return txID[len(txID)-6:]
	}
	return fmt.Sprintf("%06s", txID)
}
