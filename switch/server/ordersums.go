package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/registry"
)

// A merchant's daily and monthly limits are checked against what its terminals took
// in the window (counts' terms: approved purchases and pre-authorizations, less
// what was reversed or refunded of them), its daily count limit against how many of
// them it took (the reversed ones not, the refunded ones still). Scanning the
// journal for that at every notification read every record of the merchant's last
// 24 hours (30 days for the monthly limit); instead the desk keeps, for each
// merchant a notification checked, the amount and the count each record counts
// for: read from the journal once (the merchant's first check, or its first after
// it was idle for sumsIdle), then kept by every record version the journal writes
// (journal.Store.OnVersion: observe), a card's, a refund's change of its original,
// another node's as this node's journal applies it. A check then adds up an hour's
// sum and count for each whole hour of the window and the records of the hours at
// its two ends.
//
// Each merchant also has the lock that serialises its notifications on this node,
// from the check to the decision's journal write (merchantHold).

// sumHour is the width of the sums' buckets.
const sumHour = time.Hour

// sumsIdle is how long a merchant's sums are kept after its last check; sumsSweep
// how often the idle ones are looked for.
const (
	sumsIdle  = time.Hour
	sumsSweep = 10 * time.Minute
)

// merchantSums keeps the merchants' sums and locks.
type merchantSums struct {
	reg  orderRegistry
	hist orderHistory

	mu        sync.RWMutex
	m         map[string]*merchantHold
	lastSweep time.Time
}

// newMerchantSums returns the sums of reg's merchants, read from hist.
func newMerchantSums(reg orderRegistry, hist orderHistory) *merchantSums {
	return &merchantSums{reg: reg, hist: hist, m: map[string]*merchantHold{}}
}

// sumEntry is what one record counts for: its receive time (Unix ns), amount c and
// count n (1 for an approved payment not reversed, refunded or not; else 0).
type sumEntry struct{ at, c, n int64 }

// counted reports whether e counts for anything (a record that does not is not kept).
func (e sumEntry) counted() bool { return e.c != 0 || e.n != 0 }

// hourSum is the sum and count of one hour's records, and which records they are.
type hourSum struct {
	sum, n int64
	rrns   map[string]struct{}
}

// merchantHold is one merchant's lock and sums.
type merchantHold struct {
	// serial is held from a notification's check until its decision is journaled
	// or noted (paid): the next check of the merchant sees it.
	serial sync.Mutex
	// refs counts the holders between acquire and release (merchantSums.mu): a
	// hold that has some is not dropped.
	refs int
	used time.Time

	mu sync.Mutex // guards what follows
	// seeded: recs holds every record received from from on; seeding, while the
	// journal is read, takes the versions told meanwhile (nil otherwise).
	seeded  bool
	from    time.Time
	seeding map[string]sumEntry
	recs    map[string]sumEntry // RRN -> what it counts for, counted ones only
	hours   map[int64]*hourSum  // by Unix ns / sumHour
}

// counts is what a record version counts for in its merchant's sums: an approved
// purchase or pre-authorization not reversed counts its amount less what was
// refunded of it, and one in the count (a refund, even of all of it, does not take
// it out of the count: it was taken, as the rules' merchant_count_24h keeps it).
func counts(typ string, approved, reversed bool, amount, refunded int64) (c, n int64) {
	if (typ == "purchase" || typ == "preauth") && approved && !reversed {
		return amount - refunded, 1
	}
	return 0, 0
}

// observe takes a record version the journal wrote (journal.Store.OnVersion): the
// sums of its terminal's merchant, if kept, count it as it now stands. It runs on
// the journal's committer: a map look-up or two, and nothing at all for a merchant
// whose sums are not kept.
func (ms *merchantSums) observe(v journal.Version) {
	if v.Type != "purchase" && v.Type != "preauth" {
		return
	}
	ms.mu.RLock()
	n := len(ms.m)
	ms.mu.RUnlock()
	if n == 0 {
		return
	}
	t, ok := ms.reg.Terminal(v.TID)
	if !ok {
		return
	}
	ms.mu.RLock()
	h := ms.m[t.MerchantID]
	ms.mu.RUnlock()
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	e := sumEntry{at: v.Received.UnixNano()}
	e.c, e.n = counts(v.Type, v.Approved, v.Reversed, v.Amount, v.Refunded)
	if h.seeding != nil {
		h.seeding[v.RRN] = e
	}
	if h.seeded {
		h.set(v.RRN, e)
	}
}

// acquire takes merchant mid's lock (waiting for the notification that holds it)
// and returns its hold; release gives it back.
func (ms *merchantSums) acquire(mid string, now time.Time) *merchantHold {
	ms.mu.Lock()
	if now.Sub(ms.lastSweep) >= sumsSweep {
		ms.lastSweep = now
		for id, h := range ms.m {
			if h.refs == 0 && now.Sub(h.used) >= sumsIdle {
				delete(ms.m, id)
			}
		}
	}
	h := ms.m[mid]
	if h == nil {
		h = &merchantHold{}
		ms.m[mid] = h
	}
	h.refs++
	h.used = now
	ms.mu.Unlock()
	h.serial.Lock()
	return h
}

// release gives back a hold acquire returned.
func (ms *merchantSums) release(h *merchantHold) {
	h.serial.Unlock()
	ms.mu.Lock()
	h.refs--
	ms.mu.Unlock()
}

// sum returns what the records of merchant mid's terminals received in [from, to)
// count for, their amount and their count, leaving out record except (a repeat's);
// the caller holds h (acquire).
// The sums keep the records from keep on (keep <= from: the widest window the
// merchant's checks need) and are read from the journal first if they do not reach
// back to keep (its first check; a monthly limit set since; a clock set back).
func (ms *merchantSums) sum(ctx context.Context, h *merchantHold, mid, except string, keep, from, to time.Time) (sum, n int64, err error) {
	if err := ms.seed(ctx, h, mid, keep); err != nil {
		return 0, 0, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.prune(keep)
	lo, hi := from.UnixNano(), to.UnixNano()
	for k, hs := range h.hours {
		start, end := k*int64(sumHour), (k+1)*int64(sumHour)
		switch {
		case end <= lo || start >= hi:
		case start >= lo && end <= hi:
			sum += hs.sum
			n += hs.n
		default:
			for rrn := range hs.rrns {
				if e := h.recs[rrn]; e.at >= lo && e.at < hi {
					sum += e.c
					n += e.n
				}
			}
		}
	}
	if e, ok := h.recs[except]; ok && e.at >= lo && e.at < hi {
		sum -= e.c
		n -= e.n
	}
	return sum, n, nil
}

// seed reads merchant mid's records received from from on into h, unless h has
// them; the versions the journal writes meanwhile win over what the read found
// (a version told during the read is as new as what it read, or newer).
func (ms *merchantSums) seed(ctx context.Context, h *merchantHold, mid string, from time.Time) error {
	h.mu.Lock()
	if h.seeded && !from.Before(h.from) {
		h.mu.Unlock()
		return nil
	}
	h.seeding = map[string]sumEntry{}
	h.mu.Unlock()
	recs := map[string]sumEntry{}
	var err error
	for _, t := range ms.reg.Terminals(registry.TerminalFilter{MerchantID: mid}) {
		err = ms.hist.Scan(ctx, journal.Query{TID: t.ID, From: from}, func(r *journal.Record) bool {
			e := sumEntry{at: r.Received.UnixNano()}
			if e.c, e.n = counts(r.Type, r.Approved(), r.Reversed(), r.Amount, r.Refunded); e.counted() {
				recs[r.RRN] = e
			}
			return true
		})
		if err != nil {
			err = fmt.Errorf("terminal %s: %w", t.ID, err)
			break
		}
	}
	// Built apart, so that the journal's committer (observe) does not wait for it.
	built := &merchantHold{from: from, recs: map[string]sumEntry{}, hours: map[int64]*hourSum{}}
	if err == nil {
		for rrn, e := range recs {
			built.set(rrn, e)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	told := h.seeding
	h.seeding = nil
	if err != nil {
		return err
	}
	h.recs, h.hours, h.from, h.seeded = built.recs, built.hours, from, true
	for rrn, e := range told {
		h.set(rrn, e)
	}
	return nil
}

// note counts a payment the desk decided (paid) in h before its journal record is
// known to be there (a cluster node's journal may apply it later; its version then
// replaces this).
func (h *merchantHold) note(rrn string, at time.Time, amount int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seeded {
		h.set(rrn, sumEntry{at: at.UnixNano(), c: amount, n: 1})
	}
}

// set makes record rrn count for e; the caller holds h.mu.
func (h *merchantHold) set(rrn string, e sumEntry) {
	if old, ok := h.recs[rrn]; ok {
		k := old.at / int64(sumHour)
		if hs := h.hours[k]; hs != nil {
			hs.sum -= old.c
			hs.n -= old.n
			delete(hs.rrns, rrn)
			if len(hs.rrns) == 0 {
				delete(h.hours, k)
			}
		}
		delete(h.recs, rrn)
	}
	if !e.counted() || e.at < h.from.UnixNano() {
		return
	}
	h.recs[rrn] = e
	k := e.at / int64(sumHour)
	hs := h.hours[k]
	if hs == nil {
		hs = &hourSum{rrns: map[string]struct{}{}}
		h.hours[k] = hs
	}
	hs.sum += e.c
	hs.n += e.n
	hs.rrns[rrn] = struct{}{}
}

// prune drops the hours that end before from, which no check reaching back to
// from or later needs; h then holds the records from the start of from's hour.
// The caller holds h.mu.
func (h *merchantHold) prune(from time.Time) {
	k := from.UnixNano() / int64(sumHour)
	for hk, hs := range h.hours {
		if hk < k {
			for rrn := range hs.rrns {
				delete(h.recs, rrn)
			}
			delete(h.hours, hk)
		}
	}
	if start := time.Unix(0, k*int64(sumHour)); start.After(h.from) {
		h.from = start
	}
}
