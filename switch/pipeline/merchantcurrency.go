package pipeline

import (
	"context"
	"fmt"

	"github.com/switchyard/switchyard/internal/currency"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
)

// ReasonMerchantCurrency is the reason of a transaction declined because its
// currency (DE 49) is not its merchant's (registry Merchant.Currency), or it names
// none at a merchant that has one: answered 58, "transaction not permitted to
// terminal" (ISO 8583:1987), the code of what the acquirer has not set the
// terminal up for, before the rules and the issuer are asked. Its merchant's
// limits are minor units of the merchant's currency and cannot be compared with
// another's (docs/merchant-risk.md, "Currency of the limits").
const ReasonMerchantCurrency = "merchant-currency-mismatch"

// ReasonCurrencyNotPayable is the reason of a request whose currency (DE 49) is
// three digits but no currency payments are made in (currency.Payable): 000, 999
// (XXX, no currency), 959 (gold), an unassigned code such as 123, a withdrawn one.
// Answered 12, "invalid transaction", as a cup listener answers a currency it does
// not take (currency-not-accepted), before the checks, the rules and the issuer:
// an amount in no currency cannot be limited, settled or paid out. Since 7 December
// 2026; before, such a purchase was approved and got its own settlement line.
const ReasonCurrencyNotPayable = "currency-not-payable"

// unpayable reports whether cur (DE 49, "" for none) names a currency no card
// payment is made in. A request without one is not: where DE 49 is required the
// decoder says so (30).
func unpayable(cur string) bool {
	return cur != "" && !currency.Payable(cur)
}

// declineUnpayable answers t, whose DE 49 is unpayable, 12 currency-not-payable,
// the journal's event saying which code (t's record made if it has none yet: an
// order request's).
func (p *Pipeline) declineUnpayable(ctx context.Context, t *txn) (frontend.Response, error) {
	if t.rec.RRN == "" {
		if err := p.newRecord(t); err != nil {
			return p.systemError(t, err)
		}
	}
	t.rec.AddEvent(journal.StateDeclined, p.now().UTC(),
		fmt.Sprintf("%s: DE 49 %s is not the ISO 4217 numeric code of a currency payments are made in", ReasonCurrencyNotPayable, t.req.Currency))
	return p.respond(ctx, t, message.RCInvalidTransaction, "", "switch", ReasonCurrencyNotPayable)
}

// checkedMerchant is the merchant of a terminal check's result, nil without one
// (no registry).
func checkedMerchant(res *registry.CheckResult) *registry.Merchant {
	if res == nil {
		return nil
	}
	return res.Merchant
}

// wrongCurrency reports whether a request in currency cur (DE 49, "" for none)
// may not be taken at merchant m: m has a currency and cur is not it. A string
// compare on the record the terminal check loaded; false without a merchant.
func wrongCurrency(m *registry.Merchant, cur string) bool {
	return m != nil && m.Currency != "" && cur != m.Currency
}

// currencyChecked reports whether financial request t is held to its merchant's
// currency: a purchase (an offline capture is one), a pre-authorization, and a
// refund but of an original journaled in the refund's currency (a sale taken
// before its merchant's currency was set, or changed, is refunded in its own). A
// void, a completion and a reversal follow their original; a balance inquiry
// moves no money.
func currencyChecked(t *txn, orig *journal.Record) bool {
	switch t.rec.Type {
	case "purchase", "preauth":
		return true
	case "refund":
		return orig == nil || orig.Currency == "" || orig.Currency != t.req.Currency
	}
	return false
}

// declineCurrency answers t, at merchant m in another currency than t's, 58
// merchant-currency-mismatch, the journal's event saying which currencies (t's
// record made if it has none yet: an order request's).
func (p *Pipeline) declineCurrency(ctx context.Context, t *txn, m *registry.Merchant) (frontend.Response, error) {
	if t.rec.RRN == "" {
		if err := p.newRecord(t); err != nil {
			return p.systemError(t, err)
		}
	}
	cur := t.req.Currency
	if cur == "" {
		cur = "none"
	}
	t.rec.AddEvent(journal.StateDeclined, p.now().UTC(),
		fmt.Sprintf("%s: DE 49 %s, merchant %s takes %s only", ReasonMerchantCurrency, cur, m.ID, m.Currency))
	return p.respond(ctx, t, message.RCNotPermittedTerm, "", "switch", ReasonMerchantCurrency)
}
