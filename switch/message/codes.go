package message

// Response codes (DE 39) that the switch itself sets. Issuer codes pass through unchanged.
const (
	RCApproved            = "00"
	RCInvalidMerchant     = "03"
	RCDoNotHonour         = "05"
	RCInvalidTransaction  = "12"
	RCInvalidAmount       = "13"
	RCInvalidCard         = "14"
	RCNoSuchIssuer        = "15"
	RCOriginalNotFound    = "25"
	RCFormatError         = "30"
	RCExpiredCard         = "54"
	RCIncorrectPIN        = "55"
	RCNotPermittedCard    = "57"
	RCNotPermittedTerm    = "58"
	RCSuspectedFraud      = "59"
	RCExceedsAmountLimit  = "61"
	RCSecurityViolation   = "63"
	RCExceedsFrequency    = "65"
	RCIssuerUnavailable   = "91"
	RCDuplicate           = "94"
	RCReconciliationError = "95"
	RCSystemMalfunction   = "96"
)

// Approved reports whether a response code approves the transaction. Besides 00,
// ISO 8583:1987 treats 08 (honour with identification), 10 (partial approval) and
// 11 (VIP) as approvals.
func Approved(rc string) bool {
	switch rc {
	case "00", "08", "10", "11":
		return true
	}
	return false
}

// Network management information codes (DE 70).
const (
	NMSignOn    = "001"
	NMSignOff   = "002"
	NMKeyChange = "161"
	NMEcho      = "301"
)

// Processing codes (DE 3) the terminal interface defines; the first two digits are the
// transaction type.
const (
	PCPurchase = "000000"
	PCVoid     = "020000"
	PCRefund   = "200000"
	PCBalance  = "310000"
	PCBatch    = "920000"
	// PCQROrder (in an 0100) asks for a merchant-presented dynamic code for an order
	// of DE 4 (zero: the payer enters the amount); PCQRInquiry (in an 0100) asks how
	// the order named by DE 48 QO stands. Neither carries a card (docs/qr.md).
	PCQROrder   = "390000"
	PCQRInquiry = "380000"
)

// ResponseMTI returns the response MTI for a request MTI (0200 -> 0210), or "" when
// mti is not a request.
func ResponseMTI(mti string) string {
	if len(mti) != 4 || mti[2]%2 != 0 || mti[2] < '0' || mti[2] > '8' {
		return ""
	}
	b := []byte(mti)
	b[2]++
	return string(b)
}
