package pipeline

import (
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
)

// TxnPolicy is the void and refund policy for one terminal kind at merchants of one
// tier ("" matches any). UnionPay's phone POS allows a void only on the day of the
// purchase and a refund only from the next day, so that a phone cannot turn a stolen
// card's purchase into money back before the cardholder's bank has seen it settle.
type TxnPolicy struct {
	Kind string // terminal kind, or "" for any
	Tier string // merchant tier, or "" for any
	// NoVoid refuses voids (the default allows them on the local day of the purchase).
	NoVoid bool
	// RefundNextDay allows a refund only from the local day after the purchase.
	RefundNextDay bool
	// MaxRefundPercent caps all refunds of a purchase together, in percent of it
	// (0 means 100).
	MaxRefundPercent int
}

// DefaultTxnPolicies apply after the configured ones: SoftPOS voids the same day and
// refunds from the next day; every other terminal voids the same day and refunds at
// any time; never more than the original.
var DefaultTxnPolicies = []TxnPolicy{
	{Kind: string(registry.KindSoftPOS), RefundNextDay: true},
	{},
}

// txnPolicy returns the first policy matching the terminal kind and merchant tier.
func (p *Pipeline) txnPolicy(t *txn) TxnPolicy {
	kind, tier := t.kind, t.tier
	for _, list := range [][]TxnPolicy{p.cfg.TxnPolicies, DefaultTxnPolicies} {
		for _, x := range list {
			if (x.Kind == "" || x.Kind == kind) && (x.Tier == "" || x.Tier == tier) {
				return x
			}
		}
	}
	return TxnPolicy{}
}

// voidPolicy says why the policy refuses a void of orig ("" when it allows it).
func (p *Pipeline) voidPolicy(t *txn) string {
	if p.txnPolicy(t).NoVoid {
		return "void-not-allowed-for-terminal"
	}
	return ""
}

// refundPolicy says why the policy refuses a refund of amount against orig, and
// with which response code ("" when it allows it).
func (p *Pipeline) refundPolicy(t *txn, orig *journal.Record, amount int64) (string, string) {
	pol := p.txnPolicy(t)
	loc := p.cfg.Location
	if pol.RefundNextDay && orig.Received.In(loc).Format("2006-01-02") == t.start.In(loc).Format("2006-01-02") {
		return "refund-not-before-next-day", message.RCInvalidTransaction
	}
	if pct := pol.MaxRefundPercent; pct > 0 && pct < 100 && (orig.Refunded+amount)*100 > orig.Amount*int64(pct) {
		return "refund-exceeds-policy-share", message.RCInvalidAmount
	}
	return "", ""
}
