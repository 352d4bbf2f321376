package pipeline

import (
	"context"
	"time"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// A merchant's limits over a window (its daily amount, daily count and monthly
// amount: merchant.daily_limit, daily_count and monthly_limit as the rules see
// them) are checked for a card purchase by the rules, against the velocity counters
// of the node that takes it. In a cluster those counters hold another node's
// approvals only once this node's journal has applied (folded) their records:
// milliseconds, more under load or after a partition, and never the approvals still
// at their issuer. Two nodes could so each approve a purchase that together pass a
// limit. Taking the merchant's cluster-wide lock for every purchase (a compare-and-
// set round trip and a catch-up wait, as merchant-presented QR payments and offline
// captures do) would cost every transaction; the check need be exact only where the
// merchant is near a limit. So a card purchase or pre-authorization whose merchant's
// known usage plus its amount comes within a margin of a limit (nearLimits) takes the
// merchant's lock (Config.MerchantLocks: cjournal.Journal.LockMerchant, shared with
// the QR desk and the offline captures), which returns once this node's journal has
// applied every record the stream held, so every approval journaled under the lock
// before; only then do the rules decide, and the lock is held until the purchase's
// final record is durable and counted (financial). One far from every limit takes no
// lock, as before. A lock not taken (held elsewhere for 5 s, no quorum) answers 91
// merchant-limits-unavailable, as an offline capture: the terminal may try again.
// A single switch (no locker) is unchanged: its counters see every approval.
//
// The margin of a limit L, for a purchase of amount a, is the greater of
// Config.MerchantLockWithin × L (cluster.merchant_lock_within, default 10%) and a
// itself (1 for the count limit). The own-amount term makes two purchases of one
// merchant on two nodes, each unseen by the other, exact: if neither locks, each saw
// used + 2a ≤ L, so both together fit; if either comes near, it locks. The fraction
// covers what the other nodes may approve unseen meanwhile (their rate of approvals
// times the replication lag, and the approvals at their issuers): a merchant whose
// other nodes approve more than a tenth of a limit within that lag needs a larger
// one. A purchase already over a limit on the known usage takes no lock: the rules
// decline it whatever the other nodes approved.

// MerchantLocker takes a merchant's cluster-wide lock (cjournal.Journal.LockMerchant,
// through the server's cluster node). It returns once this node's journal holds every
// record version the stream held then; unlock gives it up (keep is not used for card
// purchases: their approval is taken back when its final write fails). An error means
// the purchase is not to be checked now.
type MerchantLocker interface {
	LockMerchant(ctx context.Context, mid string) (unlock, keep func(), err error)
}

// VelocityReader reads a velocity counter's value for a transaction as the rules
// would see it (risk.Engine.Velocity); a Risk that is one lets the pipeline tell a
// purchase near its merchant's limits.
type VelocityReader interface {
	Velocity(in *risk.Input, name string) (int, bool)
}

// The rule pack's counters of a merchant's usage (rules/10-limits.yaml), which the
// limits' rules read: a rule set without one never finds a purchase near the limit
// it measures.
const (
	counterMerchantSum24h   = "merchant_sum_24h"
	counterMerchantCount24h = "merchant_count_24h"
	counterMerchantSum30d   = "merchant_sum_30d"
)

// reasonMerchantLimitsUnavailable is the reason of a purchase near its merchant's
// limits whose merchant's cluster-wide lock could not be taken (answered 91): the
// offline captures' reason of the same case.
const reasonMerchantLimitsUnavailable = reasonOfflineLimitsUnchecked

// nearLimits says whether the purchase in (its merchant's limits as the rules see
// them) could pass one of its merchant's daily, daily count or monthly limits given
// what other nodes may have approved unseen: its merchant's known usage plus its
// amount within the margin of the limit (see above), and not over it already.
func (p *Pipeline) nearLimits(in *risk.Input) bool {
	m := &in.Merchant
	if m.ID == "" {
		return false
	}
	near := func(limit int, counter string, this int) bool {
		if limit <= 0 {
			return false
		}
		used, ok := p.velocity.Velocity(in, counter)
		if !ok || used+this > limit {
			return false // unmeasured, or declined by the rules whatever the others did
		}
		margin := max(int(float64(limit)*p.lockWithin), this)
		return used+this+margin > limit
	}
	a := in.Txn.Amount
	return near(m.DailyLimit, counterMerchantSum24h, a) || near(m.DailyCount, counterMerchantCount24h, 1) ||
		near(m.MonthlyLimit, counterMerchantSum30d, a)
}

// purchaseLock is the merchant's lock a card purchase holds (txn.hold) from before
// its rules run to the end of financial, its final record written and counted.
type purchaseLock struct{ unlock func() }

// Count implements LimitHold: the purchase counts in the velocity counters (observe).
func (purchaseLock) Count(string, time.Time, int64) {}

// Keep implements LimitHold: nothing is kept (an approval whose final write fails
// is taken back).
func (purchaseLock) Keep() func() { return nil }

// Release implements LimitHold.
func (l purchaseLock) Release() { l.unlock() }

// lockNearLimits takes the merchant's cluster-wide lock for purchase t, whose rules'
// input in is filled, when it is near its merchant's limits (nearLimits), before the
// rules read the counters: held in t.hold until financial ends. Without a locker (a
// single switch), a reader of the counters, or for anything but a card purchase or
// pre-authorization, it does nothing. A lock not taken is answered 91
// merchant-limits-unavailable (the response returned).
func (p *Pipeline) lockNearLimits(ctx context.Context, t *txn, in *risk.Input) *frontend.Response {
	if p.mlocks == nil || p.velocity == nil || t.req.QR || t.offline || t.hold != nil ||
		(in.Txn.Type != "purchase" && in.Txn.Type != "preauth") || !p.nearLimits(in) {
		return nil
	}
	start := p.now()
	unlock, _, err := p.mlocks.LockMerchant(ctx, in.Merchant.ID)
	took := p.now().Sub(start)
	if err != nil {
		p.metrics.MerchantLocks.WithLabelValues("unavailable").Inc()
		p.unavailLog.Warn().Err(err).Str("rrn", t.rec.RRN).Str("tid", t.rec.TID).Str("mid", in.Merchant.ID).Dur("waited", took).
			Msg("purchase near its merchant's limits: the merchant's cluster-wide lock not taken; answered 91 merchant-limits-unavailable")
		// The counters see the attempt as they see any decline (probe's way).
		t.risk, t.decision = in, risk.Decision{Action: risk.ActionAllow}
		t.rec.Facts = journalFacts(in)
		resp, err := p.decline(ctx, t, message.RCIssuerUnavailable, "switch", reasonMerchantLimitsUnavailable)
		if err != nil {
			return &frontend.Response{}
		}
		return &resp
	}
	p.metrics.MerchantLocks.WithLabelValues("taken").Inc()
	t.hold = purchaseLock{unlock}
	return nil
}

// releaseHold gives up the merchant's lock t holds (t.hold: a purchase's near its
// limits, an offline capture's), if any, before its caller's deferred release: a
// request whose first write found its key journaled first elsewhere (journalFailed)
// takes nothing under it.
func releaseHold(t *txn) {
	if h := t.hold; h != nil {
		t.hold = nil
		h.Release()
	}
}

// unlockMerchant gives up the merchant's lock purchase t holds (lockNearLimits), if
// any: its final record is durable and counted, or none will be.
func unlockMerchant(t *txn) {
	if l, ok := t.hold.(purchaseLock); ok {
		t.hold = nil
		l.Release()
	}
}
