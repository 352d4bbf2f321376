package server

import (
	"context"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/qrorder"
	"github.com/switchyard/switchyard/switch/registry"
)

// The merchant's side of a merchant-presented payment. An order is made before its
// amount is known (the payer may enter it) and no rule sees its payment: the risk
// rules decide on a terminal's request (its card or code, device, location and
// velocity, journal.Record.Facts), and a notification has none of that (the payer
// is known to the network only, the terminal sent nothing). So the registry's own
// bars are checked here, once the amount is known, before the book decides the
// payment: the terminal and its merchant active, the merchant's per-transaction
// limit, and its daily limit over the journal's last 24 hours (the window of the
// rules' velocity.merchant_sum_24h). A payment that fails them is refused: the book
// takes it as late, and it is journaled and refunded like a payment of another
// amount.

// orderRegistry is the part of the registry the checks read.
type orderRegistry interface {
	Terminal(id string) (*registry.Terminal, bool)
	Merchant(id string) (*registry.Merchant, bool)
	Terminals(f registry.TerminalFilter) []*registry.Terminal
}

// orderHistory reads the journal's records of a terminal in time order.
type orderHistory interface {
	Scan(ctx context.Context, q journal.Query, fn func(*journal.Record) bool) error
}

// Reasons a notified payment is refused (qrorder.Order.Refused; the note of its
// journal record's reversal).
const (
	refuseTerminal    = "terminal-not-active"
	refuseMerchant    = "merchant-not-active"
	refuseUnknown     = "merchant-unknown"
	refuseSingleLimit = "merchant-single-limit"
	refuseDailyLimit  = "merchant-daily-limit"
)

// dailyLimitWindow is the window of a merchant's daily limit.
const dailyLimitWindow = 24 * time.Hour

// refusal says why the merchant of open order o cannot take a payment of amount at
// at ("": it can). Without a registry (tests of other parts) nothing is refused. An
// error (the journal could not be read) is not a refusal: the notification is
// answered 500 and repeated.
func (d *orderDesk) refusal(ctx context.Context, o qrorder.Order, amount int64, at time.Time) (string, error) {
	if d.reg == nil {
		return "", nil
	}
	t, ok := d.reg.Terminal(o.TID)
	if !ok {
		return refuseUnknown, nil
	}
	if t.Status != registry.TerminalActive {
		return refuseTerminal, nil
	}
	m, ok := d.reg.Merchant(t.MerchantID)
	if !ok {
		return refuseUnknown, nil
	}
	if m.Status != registry.MerchantActive {
		return refuseMerchant, nil
	}
	if m.Limits.PerTransaction > 0 && amount > m.Limits.PerTransaction {
		return refuseSingleLimit, nil
	}
	if m.Limits.Daily <= 0 || d.hist == nil {
		return "", nil
	}
	sum, err := d.merchantSum(ctx, m.ID, o.ID, at.Add(-dailyLimitWindow), at)
	if err != nil {
		return "", fmt.Errorf("qr order %s: the daily limit of merchant %s: %w", o.ID, m.ID, err)
	}
	if sum+amount > m.Limits.Daily {
		return refuseDailyLimit, nil
	}
	return "", nil
}

// merchantSum adds up the approved purchases and pre-authorizations, less what was
// reversed or refunded of them, of merchant mid's terminals received in [from, to),
// leaving out the record of order id (a repeat's).
func (d *orderDesk) merchantSum(ctx context.Context, mid, id string, from, to time.Time) (int64, error) {
	var sum int64
	for _, t := range d.reg.Terminals(registry.TerminalFilter{MerchantID: mid}) {
		err := d.hist.Scan(ctx, journal.Query{TID: t.ID, From: from, To: to}, func(r *journal.Record) bool {
			if r.RRN != id && (r.Type == "purchase" || r.Type == "preauth") && r.Approved() && !r.Reversed() {
				sum += r.Amount - r.Refunded
			}
			return true
		})
		if err != nil {
			return 0, fmt.Errorf("terminal %s: %w", t.ID, err)
		}
	}
	return sum, nil
}
