package merchantrisk

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/switchyard/switchyard/switch/journal"
)

// Report is a merchant's traffic over the last days, as `switchyard merchant report`
// and GET /api/v1/merchants/{id}/report show it. Amounts are minor units.
type Report struct {
	Merchant     string            `json:"merchant"`
	Days         int               `json:"days"`
	From         time.Time         `json:"from"`
	To           time.Time         `json:"to"`
	TimeZone     string            `json:"time_zone"`
	Transactions int               `json:"transactions"` // purchases, pre-authorizations, refunds, voids answered
	Approved     int               `json:"approved"`
	ApprovalRate float64           `json:"approval_rate"` // approved / transactions
	ByType       map[string]*Count `json:"by_type"`
	Declines     map[string]int    `json:"declines_by_reason,omitempty"` // "RC reason"
	Hourly       [24]Count         `json:"hourly"`                       // by local hour of the day; its amounts are approved purchases' only
	Rating       string            `json:"rating,omitempty"`
}

// Count is a number of transactions and the amount of those approved and not
// reversed or voided since: ApprovedAmount adds every currency (a figure only
// for a merchant paid in one), ApprovedAmounts has each currency's (DE 49, ""
// unknown). Until the third release of 6 December 2026 only the sum was
// reported, yuan added to Hong Kong dollars.
type Count struct {
	Count           int              `json:"count"`
	Approved        int              `json:"approved"`
	ApprovedAmount  int64            `json:"approved_amount"`
	ApprovedAmounts map[string]int64 `json:"approved_amounts,omitempty"`
}

// add counts an approved amount of currency cur.
func (c *Count) add(amount int64, cur string) {
	c.ApprovedAmount += amount
	if c.ApprovedAmounts == nil {
		c.ApprovedAmounts = map[string]int64{}
	}
	c.ApprovedAmounts[cur] += amount
}

// MerchantReport reads the journal of the last days (1 to 90) for merchant.
func MerchantReport(ctx context.Context, j Journal, reg Registry, merchant string, days int, now time.Time, loc *time.Location) (*Report, error) {
	if days < 1 || days > 90 {
		return nil, fmt.Errorf("days %d: %w: want 1 to 90 (1, 7 or 30 are usual)", days, ErrInvalid)
	}
	if _, ok := reg.Merchant(merchant); !ok {
		return nil, fmt.Errorf("merchant %s: %w", merchant, ErrNotFound)
	}
	if loc == nil {
		loc = time.UTC
	}
	rep := &Report{Merchant: merchant, Days: days, To: now.UTC(), From: now.Add(-time.Duration(days) * 24 * time.Hour).UTC(),
		TimeZone: loc.String(), ByType: map[string]*Count{}, Declines: map[string]int{}}
	err := j.Scan(ctx, journal.Query{MID: merchant, From: rep.From, To: rep.To}, func(r *journal.Record) bool {
		if strings.TrimRight(r.MID, " ") != merchant || r.RC == "" {
			return true
		}
		switch r.Type {
		case "purchase", "preauth", "refund", "void":
		default:
			return true
		}
		c := rep.ByType[r.Type]
		if c == nil {
			c = &Count{}
			rep.ByType[r.Type] = c
		}
		h := &rep.Hourly[r.Received.In(loc).Hour()]
		rep.Transactions++
		c.Count++
		h.Count++
		if r.Approved() {
			rep.Approved++
			c.Approved++
			h.Approved++
			if !r.Reversed() { // approved, then reversed or voided: no money moved
				c.add(r.Amount, r.Currency)
				if r.Type == "purchase" {
					// An hour's amount is its sales: a refund or a void moves
					// money back, and adding it would count it as takings.
					h.add(r.Amount, r.Currency)
				}
			}
		} else {
			rep.Declines[strings.TrimSpace(r.RC+" "+r.Reason)]++
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("merchant report %s: %w", merchant, err)
	}
	if rep.Transactions > 0 {
		rep.ApprovalRate = float64(rep.Approved) / float64(rep.Transactions)
	}
	return rep, nil
}
