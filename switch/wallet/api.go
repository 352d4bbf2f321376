// Package wallet connects the switch to QR payment networks that speak HTTP JSON
// rather than ISO 8583 (WeChat Pay's and Alipay's style, and UnionPay's QR API): the
// connector (Connector) pays with the payer's code, queries while the payer is still
// confirming (USERPAYING), cancels when no answer comes in time, and refunds; the
// simulator (Sim, `switchyard wallet-sim`) plays the network for tests, demo mode and
// the bench, with fault injection. docs/qr.md describes the API.
//
// The API is one JSON POST per operation, with the switch's RRN as the merchant's
// order number (out_trade_no): the networks' own APIs differ in names and signatures
// (WeChat Pay's micropay XML, Alipay's trade.pay), not in this sequence, which is what
// the switch's guarantees rest on.
package wallet

// Paths of the API.
const (
	PathPay     = "/v1/pay"
	PathQuery   = "/v1/query"
	PathReverse = "/v1/reverse"
	PathRefund  = "/v1/refund"
)

// Results and trade states.
const (
	Success    = "SUCCESS"
	Fail       = "FAIL"
	UserPaying = "USERPAYING" // the payer is confirming on the phone: query again
	NotPay     = "NOTPAY"     // the network does not know the order (yet)
	PayError   = "PAYERROR"   // the payer declined or the payment failed
	Revoked    = "REVOKED"    // cancelled (reversed)
	Refunded   = "REFUND"     // refunded, in part or in full
)

// PayRequest pays an order with the payer's code (auth_code, as the networks call it).
type PayRequest struct {
	Network    string `json:"network"`
	OutTradeNo string `json:"out_trade_no"`
	AuthCode   string `json:"auth_code"`
	TotalFee   int64  `json:"total_fee"` // minor units (fen)
	Currency   string `json:"fee_type"`  // ISO 4217 numeric
	MchID      string `json:"mch_id"`
	DeviceInfo string `json:"device_info"`
}

// Result answers pay, refund and reverse: Result is SUCCESS, FAIL or USERPAYING;
// ErrCode says why a FAIL failed (NOTENOUGH, AUTHCODEEXPIRE, USERCANCELLED,
// SYSTEMERROR...).
type Result struct {
	Result        string `json:"result"`
	ErrCode       string `json:"err_code,omitempty"`
	ErrMsg        string `json:"err_msg,omitempty"`
	TransactionID string `json:"transaction_id,omitempty"`
}

// QueryRequest asks for an order's state.
type QueryRequest struct {
	OutTradeNo string `json:"out_trade_no"`
}

// QueryResult is an order's state (TradeState: SUCCESS, USERPAYING, NOTPAY, PAYERROR,
// REVOKED, REFUND).
type QueryResult struct {
	TradeState    string `json:"trade_state"`
	TransactionID string `json:"transaction_id,omitempty"`
	TotalFee      int64  `json:"total_fee,omitempty"`
}

// ReverseRequest cancels an order (OutTradeNo: closed if unpaid, refunded in full if
// paid) or a refund (OutRefundNo: undone). Reversing what is unknown or already
// reversed succeeds: the switch's store-and-forward queue may send it more than once.
type ReverseRequest struct {
	OutTradeNo  string `json:"out_trade_no,omitempty"`
	OutRefundNo string `json:"out_refund_no,omitempty"`
}

// RefundRequest refunds part of a paid order; OutRefundNo makes it idempotent.
type RefundRequest struct {
	OutTradeNo  string `json:"out_trade_no"`
	OutRefundNo string `json:"out_refund_no"`
	RefundFee   int64  `json:"refund_fee"`
}

// Notification is what the network posts to the switch when a payer pays a
// merchant-presented order (the order's reference in ID 62 of the code).
type Notification struct {
	Network       string `json:"network"`
	OrderID       string `json:"order_id"`
	TransactionID string `json:"transaction_id"`
	TotalFee      int64  `json:"total_fee"`
	// Currency is the currency of TotalFee (ISO 4217 numeric, as a pay's fee_type);
	// absent: the order's. A payment in another currency is not the order's: it is
	// refunded.
	Currency string `json:"fee_type,omitempty"`
	// MchID is the merchant the network paid: the merchant ID of the code's merchant
	// account information template for the network (its ID 01, the switch's merchant
	// ID, DE 42). A payment to another merchant than the order's is not the order's
	// (a code made up with another merchant's account and this order's reference):
	// the switch refuses it. Absent: not checked (a network that does not send it).
	MchID string `json:"mch_id,omitempty"`
	// NotifyTime is when the network sent this notification (RFC 3339; each repeat
	// its own time, as Alipay's notify_time or the timestamp WeChat Pay signs each
	// delivery with; never the payment's time, which a repeat hours later still
	// carries). The switch refuses a notification whose time is more than
	// qr.notify_max_age from its clock: a captured notification replayed later. Absent:
	// not checked (a network that does not send it).
	NotifyTime string `json:"notify_time,omitempty"`
	PayerHash  string `json:"payer,omitempty"` // an opaque payer reference, never a code
}

// inDoubt reports whether a FAIL's err_code says that the network could not tell
// the outcome (WeChat Pay's SYSTEMERROR and BANKERROR, Alipay's ACQ.SYSTEM_ERROR and
// UNKNOWN: "query the order"): the payment or refund may have been made, so it is
// not a decline.
func inDoubt(errCode string) bool {
	switch errCode {
	case "SYSTEMERROR", "BANKERROR", "SYSTEM_ERROR", "ACQ.SYSTEM_ERROR", "UNKNOWN":
		return true
	}
	return false
}

// rcOf maps a FAIL's err_code to the response code the terminal gets.
func rcOf(errCode string) string {
	switch errCode {
	case "NOTENOUGH":
		return "51"
	case "AUTHCODEEXPIRE", "AUTH_CODE_INVALID", "AUTHCODE_INVALID":
		return "14" // the code is not valid (expired): the payer refreshes it
	case "ORDERREVERSED", "ORDERPAID", "OUT_TRADE_NO_USED":
		return "94"
	case "TRADE_OVERDRAFT", "REFUND_AMOUNT_EXCEED":
		return "13"
	}
	return "05"
}
