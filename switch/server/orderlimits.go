package server

import (
	"context"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/pipeline"
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
// limit, its daily and monthly limits over the last 24 hours and 30 days (the
// windows of the rules' velocity.merchant_sum_24h and merchant_sum_30d), and its
// daily count limit over the last 24 hours (the window of the rules'
// merchant_count_24h: the approved purchases and pre-authorizations of every
// terminal of the merchant, cards' and QR payments', the reversed ones not, the
// refunded ones still), summed and counted as ordersums.go keeps them. A payment that fails
// them is refused: the book takes it as late, and it is journaled and refunded like
// a payment of another amount. A merchant's notifications are checked one at a
// time on a node (refusal's hold) and, in a cluster, one at a time across the
// nodes: the hold also takes the merchant's cluster-wide lock (merchantLocker) and
// checks only once this node's journal holds every payment journaled under it
// before.

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

// merchantLocker takes a merchant's cluster-wide lock (cjournal.Journal.LockMerchant,
// through the cluster node); a single switch has none. It returns once this node's
// journal holds every payment journaled under the lock before. unlock gives it up;
// keep, called instead when the journal write of a payment taken under it failed,
// holds it (refreshed) until unlock is called or a few minutes pass. An error (a lock
// held elsewhere for long, no quorum) means the payment is not to be taken now.
type merchantLocker interface {
	LockMerchant(ctx context.Context, mid string) (unlock, keep func(), err error)
}

// Reasons a notified payment is refused (qrorder.Order.Refused; the note of its
// journal record's reversal).
const (
	refuseTerminal     = "terminal-not-active"
	refuseMerchant     = "merchant-not-active"
	refuseUnknown      = "merchant-unknown"
	refuseSingleLimit  = "merchant-single-limit"
	refuseDailyLimit   = "merchant-daily-limit"
	refuseDailyCount   = "merchant-daily-count"
	refuseMonthlyLimit = "merchant-monthly-limit"
	// refuseCurrency: the order is in another currency than its merchant's
	// (registry currency, set or changed after the order was made; an order
	// request in another is declined, pipeline.ReasonMerchantCurrency).
	refuseCurrency = pipeline.ReasonMerchantCurrency
)

// dailyLimitWindow and monthlyLimitWindow are the windows of a merchant's daily
// (amount and count) and monthly limits: rolling 24 hours and 30 days, as the rules'
// merchant_sum_24h, merchant_count_24h and merchant_sum_30d (rules/10-limits.yaml).
const (
	dailyLimitWindow   = 24 * time.Hour
	monthlyLimitWindow = 30 * 24 * time.Hour
)

// orderHooks are called by a notification, for tests: locking before it takes its
// merchant's lock, checked once it holds it and its checks passed.
type orderHooks struct {
	locking, checked func(orderID string)
}

// limitHold is a merchant's lock as refusal leaves it held: until the
// notification's decision is journaled, so that the merchant's next check sees it.
// A nil hold holds nothing.
type limitHold struct {
	sums *merchantSums
	h    *merchantHold
	// unlock and keep are the merchant's cluster-wide lock's (merchantLocker); nil
	// on a single switch, unlock nil too once kept.
	unlock, keep func()
}

// paid counts the payment of order id, paid at at, in the merchant's sums (before
// its journal record is written: a check after release sees it either way).
func (l *limitHold) paid(id string, at time.Time, amount int64) {
	if l != nil {
		l.h.note(id, at, amount)
	}
}

// release gives the merchant's lock back, on this node and across the cluster
// (unless kept).
func (l *limitHold) release() {
	if l != nil {
		if l.unlock != nil {
			l.unlock()
			l.unlock = nil
		}
		l.sums.release(l.h)
	}
}

// keepFor keeps the merchant's cluster-wide lock, after the journal write of the
// payment of order id failed (or the book's answer to it was lost), until the desk
// journals that payment or clears the order's mark (releaseKept): another node
// checking the merchant meanwhile would not see it. A hold without such a lock (a
// single switch) keeps nothing: the sums of this node counted the payment (paid).
func (l *limitHold) keepFor(d *orderDesk, id string) {
	if l == nil || l.unlock == nil || l.keep == nil {
		return
	}
	l.keep()
	d.keptMu.Lock()
	if old := d.kept[id]; old != nil {
		defer old()
	}
	if d.kept == nil {
		d.kept = map[string]func(){}
	}
	d.kept[id] = l.unlock
	d.keptMu.Unlock()
	l.unlock = nil
}

// releaseKept gives up the merchant's lock kept for order id (keepFor), if any: its
// payment is journaled, or the order's mark cleared.
func (d *orderDesk) releaseKept(id string) {
	d.keptMu.Lock()
	unlock := d.kept[id]
	delete(d.kept, id)
	d.keptMu.Unlock()
	if unlock != nil {
		unlock()
	}
}

// merchantSums returns the desk's sums, made on first use if the desk was made
// without (tests of the checks alone).
func (d *orderDesk) merchantSums() *merchantSums {
	d.sumsOnce.Do(func() {
		if d.sums == nil {
			d.sums = newMerchantSums(d.reg, d.hist)
		}
	})
	return d.sums
}

// refusal says why the merchant of open order o cannot take a payment of amount
// now ("": it can; the time is read once the merchant's lock is held). Without a
// registry (tests of other parts) nothing is refused. An error (the journal could
// not be read) is not a refusal: the notification is answered 500 and repeated.
// When the merchant has a daily, monthly or daily count limit, the returned hold
// keeps its lock (other merchants' notifications go on): the caller releases it
// once the payment is journaled (paid or refunded), so that two notifications of
// the merchant on this node cannot both pass a limit only one of them fits.
func (d *orderDesk) refusal(ctx context.Context, o qrorder.Order, amount int64, now func() time.Time) (string, *limitHold, error) {
	if d.reg == nil {
		return "", nil, nil
	}
	t, ok := d.reg.Terminal(o.TID)
	if !ok {
		return refuseUnknown, nil, nil
	}
	if t.Status != registry.TerminalActive {
		return refuseTerminal, nil, nil
	}
	m, ok := d.reg.Merchant(t.MerchantID)
	if !ok {
		return refuseUnknown, nil, nil
	}
	if m.Status != registry.MerchantActive {
		return refuseMerchant, nil, nil
	}
	if m.Currency != "" && o.Currency != m.Currency {
		return refuseCurrency, nil, nil
	}
	if m.Limits.PerTransaction > 0 && amount > m.Limits.PerTransaction {
		return refuseSingleLimit, nil, nil
	}
	reason, hold, err := d.holdLimits(ctx, m, o.ID, amount, now)
	if err != nil {
		return "", nil, fmt.Errorf("qr order %s: %w", o.ID, err)
	}
	return reason, hold, nil
}

// holdLimits says which of merchant m's daily, daily count and monthly limits a
// payment or capture of amount, whose record is id, would pass now ("": none), the
// part of the checks that a merchant-presented payment (refusal) and an offline
// capture (offlineLimits) share. When m has such a limit it takes the merchant's
// lock first, on this node and in a cluster across the nodes, and returns it held
// (the time read once it is): the caller releases it once its decision is
// journaled. Without such a limit, or without a journal to sum, it checks nothing
// and holds nothing. An error holds nothing either.
func (d *orderDesk) holdLimits(ctx context.Context, m *registry.Merchant, id string, amount int64, now func() time.Time) (string, *limitHold, error) {
	if (m.Limits.Daily <= 0 && m.Limits.Monthly <= 0 && m.Limits.DailyCount <= 0) || d.hist == nil {
		return "", nil, nil
	}
	if d.hooks.locking != nil {
		d.hooks.locking(id)
	}
	sums := d.merchantSums()
	hold := &limitHold{sums: sums, h: sums.acquire(m.ID, now())}
	if d.locks != nil {
		// Across the cluster: another node's payment or capture of the merchant
		// holds the lock until it is journaled, and once this node holds it, its
		// journal (so the sums) has that payment.
		unlock, keep, err := d.locks.LockMerchant(ctx, m.ID)
		if err != nil {
			hold.release()
			return "", nil, fmt.Errorf("the cluster-wide lock of merchant %s: %w", m.ID, err)
		}
		hold.unlock, hold.keep = unlock, keep
	}
	// The window ends once the lock is held: a payment of the merchant paid while
	// this one waited for it is in.
	at := now()
	reason, err := d.overLimits(ctx, hold.h, m, id, amount, at)
	if err != nil {
		hold.release()
		return "", nil, fmt.Errorf("the limits of merchant %s: %w", m.ID, err)
	}
	if reason == "" && d.hooks.checked != nil {
		d.hooks.checked(id)
	}
	return reason, hold, nil
}

// overLimits says which of merchant m's daily, daily count and monthly limits a
// payment of amount at at would pass (its sums leaving out order id's record): ""
// for none. The caller holds h.
func (d *orderDesk) overLimits(ctx context.Context, h *merchantHold, m *registry.Merchant, id string, amount int64, at time.Time) (string, error) {
	keep := at.Add(-dailyLimitWindow)
	if m.Limits.Monthly > 0 {
		keep = at.Add(-monthlyLimitWindow)
	}
	sums := d.merchantSums()
	if m.Limits.Daily > 0 || m.Limits.DailyCount > 0 {
		sum, n, err := sums.sum(ctx, h, m.ID, id, keep, at.Add(-dailyLimitWindow), at)
		if err != nil {
			return "", fmt.Errorf("daily: %w", err)
		}
		if m.Limits.Daily > 0 && sum+amount > m.Limits.Daily {
			return refuseDailyLimit, nil
		}
		if m.Limits.DailyCount > 0 && n+1 > m.Limits.DailyCount {
			return refuseDailyCount, nil
		}
	}
	if m.Limits.Monthly > 0 {
		sum, _, err := sums.sum(ctx, h, m.ID, id, keep, at.Add(-monthlyLimitWindow), at)
		if err != nil {
			return "", fmt.Errorf("monthly: %w", err)
		}
		if sum+amount > m.Limits.Monthly {
			return refuseMonthlyLimit, nil
		}
	}
	return "", nil
}
