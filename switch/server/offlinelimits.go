package server

import (
	"context"
	"time"

	"github.com/switchyard/switchyard/switch/pipeline"
	"github.com/switchyard/switchyard/switch/registry"
)

// An offline approval (the cup dialect's upload, the pipeline's CaptureOffline) is
// decided by the card, not by the rules, as a merchant-presented QR payment is
// decided by its network: the registry's bars that bound what a merchant takes over
// a window, its daily and monthly amounts and its daily count, are checked for it
// here, by the desk's checks of those payments (orderDesk.holdLimits) over the same
// sums (ordersums.go) and under the same merchant lock, on this node and in a
// cluster across the nodes. A capture and a QR payment of one merchant are so
// checked one at a time, each seeing the other once journaled. The per-transaction
// limit is the pipeline's own (lowered by the merchant's rating, offlineLimit).

// offlineLimits is the pipeline's MerchantLimits over the QR desk's checks.
type offlineLimits struct{ d *orderDesk }

// offlineReasons maps the desk's refusals to the pipeline's reasons of an offline
// capture refused.
var offlineReasons = map[string]string{
	refuseDailyLimit:   pipeline.ReasonOfflineDailyLimit,
	refuseMonthlyLimit: pipeline.ReasonOfflineMonthlyLimit,
	refuseDailyCount:   pipeline.ReasonOfflineDailyCount,
}

// HoldLimits implements pipeline.MerchantLimits: a refusal releases the lock at
// once (a refused capture counts for nothing in the sums), a capture that passes
// keeps it until the pipeline's final write.
func (o offlineLimits) HoldLimits(ctx context.Context, m *registry.Merchant, rrn string, amount int64) (string, pipeline.LimitHold, error) {
	reason, hold, err := o.d.holdLimits(ctx, m, rrn, amount, o.d.now)
	if err != nil {
		return "", nil, err
	}
	if reason != "" {
		hold.release()
		if r, ok := offlineReasons[reason]; ok {
			return r, nil, nil
		}
		return reason, nil, nil
	}
	if hold == nil {
		return "", nil, nil // no such limit: nothing held
	}
	return "", offlineHold{hold}, nil
}

// offlineHold is the pipeline's LimitHold over a limitHold.
type offlineHold struct{ l *limitHold }

// Count implements pipeline.LimitHold.
func (h offlineHold) Count(rrn string, at time.Time, amount int64) { h.l.paid(rrn, at, amount) }

// Keep implements pipeline.LimitHold: the cluster-wide lock is kept (refreshed)
// until done is called (the capture's record written) or it lapses (cjournal's
// merchantKeep, 5 minutes); this node's sums counted the capture.
func (h offlineHold) Keep() (done func()) {
	if h.l.unlock == nil || h.l.keep == nil {
		return nil
	}
	h.l.keep()
	done, h.l.unlock = h.l.unlock, nil
	return done
}

// Release implements pipeline.LimitHold.
func (h offlineHold) Release() { h.l.release() }
