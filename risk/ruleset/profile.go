package ruleset

// Profile is what the switch learned about a merchant's normal traffic from the
// journal (package risk/profile computes it daily over a rolling window), or its
// tier's defaults when the merchant has too little history (Learned false). Rules
// read it as merchant.profile.*; docs/rules.md defines every field.
//
// "Attempts" below are the purchases, pre-authorizations and balance inquiries
// the merchant's terminals sent, whatever their answer.
type Profile struct {
	// Learned is true when the profile comes from the merchant's own history,
	// false when it is its tier's defaults.
	Learned bool `json:"learned" yaml:"learned" expr:"learned"`
	// Days is the number of local days of the window with at least one transaction.
	Days int `json:"days" yaml:"days" expr:"days"`
	// Transactions is the number of attempts in the window.
	Transactions int `json:"transactions" yaml:"transactions" expr:"transactions"`
	// P50Amount, P90Amount and P99Amount are quantiles of the approved purchase
	// and pre-authorization amounts, minor units (within the sketch's 1%).
	P50Amount int `json:"p50_amount" yaml:"p50_amount" expr:"p50_amount"`
	P90Amount int `json:"p90_amount" yaml:"p90_amount" expr:"p90_amount"`
	P99Amount int `json:"p99_amount" yaml:"p99_amount" expr:"p99_amount"`
	// DailyAvg is the attempts per day with traffic.
	DailyAvg float64 `json:"daily_avg" yaml:"daily_avg" expr:"daily_avg"`
	// HourlyAvg is DailyAvg / 24.
	HourlyAvg float64 `json:"hourly_avg" yaml:"hourly_avg" expr:"hourly_avg"`
	// Hourly[h] is the attempts in local hour h (the acquirer's zone) per day
	// with traffic; read as merchant.profile.hourly[txn.local_hour].
	Hourly [24]float64 `json:"hourly" yaml:"hourly" expr:"hourly"`
	// NewCardShare is the share of attempts whose card made no transaction at this
	// merchant in the NewCardDays (default 7) days before.
	NewCardShare float64 `json:"new_card_share" yaml:"new_card_share" expr:"new_card_share"`
	// InquiryShare is the share of attempts that were balance inquiries.
	InquiryShare float64 `json:"inquiry_share" yaml:"inquiry_share" expr:"inquiry_share"`
	// DeclineShare is the share of answered attempts declined (by anyone); the four
	// classes below add up to it. Answers that only say the issuer or the switch
	// could not decide (68, 90, 91, 92, 96) are left out of every decline share.
	DeclineShare float64 `json:"decline_share" yaml:"decline_share" expr:"decline_share"`
	// CardDeclineShare: issuer declines about the card (04, 07, 14, 15, 33, 41,
	// 43, 54, 55, 56, 57, 62, 63, 75, 78, 82, N7).
	CardDeclineShare float64 `json:"card_decline_share" yaml:"card_decline_share" expr:"card_decline_share"`
	// FundsDeclineShare: insufficient funds (51).
	FundsDeclineShare float64 `json:"funds_decline_share" yaml:"funds_decline_share" expr:"funds_decline_share"`
	// RiskDeclineShare: declined by the switch's rules.
	RiskDeclineShare float64 `json:"risk_decline_share" yaml:"risk_decline_share" expr:"risk_decline_share"`
	// OtherDeclineShare: every other decline (05, 61, 65, the switch's own checks...).
	OtherDeclineShare float64 `json:"other_decline_share" yaml:"other_decline_share" expr:"other_decline_share"`
	// RefundShare is approved refunds per approved purchase.
	RefundShare float64 `json:"refund_share" yaml:"refund_share" expr:"refund_share"`
	// VoidShare is approved voids per approved purchase.
	VoidShare float64 `json:"void_share" yaml:"void_share" expr:"void_share"`
}
