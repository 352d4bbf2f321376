// Package profile learns each merchant's normal traffic from the journal: ticket
// sizes, volume by hour of the day, the share of new cards, of balance inquiries,
// of declines by reason class, of refunds and of voids, over a rolling window
// (30 days by default). The risk rules read the result as merchant.profile.*
// (ruleset.Profile), so that a rule can say "far more new cards than usual at
// this merchant" instead of a fixed cut-off that is wrong for most merchants.
//
// Build streams the window once through a Source (the switch's journal, read by
// time) and keeps only per-merchant aggregates: counters, a DDSketch of the
// approved amounts, and for the new-card test the cards each merchant saw in the
// last NewCardDays days. It knows nothing of Badger or the cluster: the switch
// adapts its journal to Source, and every node of a cluster, holding the whole
// replicated journal, computes the same profiles.
//
// A Set holds the profiles the switch uses (an atomic pointer to an immutable
// Table, swapped on refresh) and answers the tier's defaults for a merchant with
// too little history.
package profile

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/switchyard/switchyard/risk/ruleset"
)

// Txn is one journaled transaction as a profile reads it.
type Txn struct {
	// Time is when the switch received it.
	Time time.Time
	// Merchant is DE 42; records without one are skipped.
	Merchant string
	// Type is the transaction type (ruleset.TxnPurchase ...).
	Type string
	// Amount is DE 4, minor units.
	Amount int64
	// CardHash is the switch's keyed hash of the PAN ("" when none).
	CardHash string
	// RC is the final response code ("" while the transaction is open).
	RC string
	// Approved is true for an approval.
	Approved bool
	// RiskDeclined is true when the switch's rules declined it.
	RiskDeclined bool
}

// Source streams the journal: Scan calls fn for every transaction with
// from <= Time < to, in time order, and stops at fn's first error. fn must not
// keep the *Txn, which Scan may reuse.
type Source interface {
	Scan(ctx context.Context, from, to time.Time, fn func(*Txn) error) error
}

// Defaults of Options.
const (
	DefaultWindow          = 30 * 24 * time.Hour
	DefaultNewCardDays     = 7
	DefaultMinDays         = 7
	DefaultMinTransactions = 100
)

// Options configure Build.
type Options struct {
	// Window is how far back the profile looks, in whole local days (default 30
	// days): from local midnight that many days before the day of the window's
	// end, to the end (30 days and 3 hours for a refresh at 03:00). Whole days let
	// a refresh drop the days that leave the window (Incremental).
	Window time.Duration `json:"window"`
	// NewCardDays: an attempt's card is new when it made no transaction at the
	// merchant in the NewCardDays days before (default 7). Build reads that much
	// journal before the window, so that the window's first days are measured
	// like the others.
	NewCardDays int `json:"new_card_days"`
	// MinDays and MinTransactions: a merchant with fewer days with traffic or
	// fewer attempts in the window gets its tier's defaults (default 7 and 100).
	MinDays         int `json:"min_days"`
	MinTransactions int `json:"min_transactions"`
	// Location is the acquirer's zone, for local days and hours (nil: UTC).
	Location *time.Location `json:"-"`
}

func (o *Options) defaults() {
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.NewCardDays <= 0 {
		o.NewCardDays = DefaultNewCardDays
	}
	if o.MinDays <= 0 {
		o.MinDays = DefaultMinDays
	}
	if o.MinTransactions <= 0 {
		o.MinTransactions = DefaultMinTransactions
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
}

// cardDecline lists the issuer response codes that say something about the card
// itself: what card testing collects (invalid number, expired, wrong PIN, not
// permitted, lost or stolen, restricted, CVV).
var cardDecline = map[string]bool{"04": true, "07": true, "14": true, "15": true, "33": true, "41": true, "43": true,
	"54": true, "55": true, "56": true, "57": true, "62": true, "63": true, "75": true, "78": true, "82": true, "N7": true}

// CardDeclineCode reports whether rc is a card-related decline (the
// card_decline_share class).
func CardDeclineCode(rc string) bool { return cardDecline[rc] }

// agg is one merchant's running aggregates.
type agg struct {
	id       uint32
	amounts  sketch
	hourly   [24]uint64
	attempts uint64
	newCards uint64
	inquiry  uint64
	answered uint64
	declined uint64
	card     uint64
	funds    uint64
	risk     uint64
	approved uint64 // approved purchases and pre-authorizations
	refunds  uint64
	voids    uint64
	// days are the local days with traffic in the window, oldest first, with the
	// attempts with a new card of each: a day that leaves the window takes its new
	// cards along (whether a card was new is not recomputable from that day alone).
	days []dayCount
}

type dayCount struct {
	day      int64
	newCards uint64
}

// cardKey is a card at a merchant: the merchant's number in the build and 64
// bits of the card hash (a collision among a week's cards of one merchant has a
// probability below 1e-9 for 10^5 cards).
type cardKey struct {
	merchant uint32
	card     uint64
}

// builder is one Build's state.
type builder struct {
	o           Options
	from        time.Time // the window's start; earlier records only seed the cards
	merchants   map[string]*agg
	seen        map[cardKey]int64 // last transaction of the card at the merchant, unix seconds
	zone        zoneCache
	sweptDay    int64
	newCardSecs int64
	records     int
}

// windowDays is o.Window in whole days (at least 1).
func (o *Options) windowDays() int { return max(1, int(o.Window/(24*time.Hour))) }

// windowStart is the window's start for a window ending at end: local midnight
// windowDays days before end's local date.
func (o *Options) windowStart(end time.Time) time.Time {
	lt := end.In(o.Location)
	return time.Date(lt.Year(), lt.Month(), lt.Day()-o.windowDays(), 0, 0, 0, 0, o.Location)
}

func newBuilder(o Options, from time.Time) *builder {
	return &builder{o: o, from: from, merchants: map[string]*agg{}, seen: map[cardKey]int64{},
		zone: zoneCache{loc: o.Location}, sweptDay: math.MinInt64, newCardSecs: int64(o.NewCardDays) * 86400}
}

// Build computes the profiles of the window that ends at end (exclusive) from src.
// Memory is per merchant (about 3 kB) plus the cards seen in the last
// NewCardDays days (about 40 bytes each).
func Build(ctx context.Context, src Source, end time.Time, o Options) (*Table, error) {
	o.defaults()
	b, err := fullBuild(ctx, src, end, o)
	if err != nil {
		return nil, err
	}
	return b.table(end), nil
}

func fullBuild(ctx context.Context, src Source, end time.Time, o Options) (*builder, error) {
	b := newBuilder(o, o.windowStart(end))
	scanFrom := b.from.Add(-time.Duration(o.NewCardDays) * 24 * time.Hour)
	if err := src.Scan(ctx, scanFrom, end, b.add); err != nil {
		return nil, fmt.Errorf("merchant profiles: read the journal from %s to %s: %w", scanFrom.Format(time.RFC3339), end.Format(time.RFC3339), err)
	}
	return b, nil
}

var errUnordered = errors.New("the journal's records are not in time order")

func (b *builder) add(t *Txn) error {
	if t.Merchant == "" {
		return nil
	}
	b.records++
	a := b.merchants[t.Merchant]
	if a == nil {
		a = &agg{id: uint32(len(b.merchants))}
		b.merchants[t.Merchant] = a
	}
	secs := t.Time.Unix()
	local := b.zone.local(t.Time, secs)
	day := floorDiv(local, 86400)
	if day != b.sweptDay {
		if day < b.sweptDay {
			return fmt.Errorf("%w: %s after a later day", errUnordered, t.Time.Format(time.RFC3339))
		}
		b.sweep(secs)
		b.sweptDay = day
	}
	var key cardKey
	if t.CardHash != "" {
		key = cardKey{a.id, cardBits(t.CardHash)}
	}
	if t.Time.Before(b.from) {
		if t.CardHash != "" {
			b.seen[key] = secs
		}
		return nil
	}
	attempt := false
	switch t.Type {
	case ruleset.TxnPurchase, ruleset.TxnPreauth:
		attempt = true
		if t.Approved {
			a.approved++
			a.amounts.add(t.Amount)
		}
	case ruleset.TxnBalance:
		attempt = true
		a.inquiry++
	case ruleset.TxnRefund:
		if t.Approved {
			a.refunds++
		}
	case ruleset.TxnVoid:
		if t.Approved {
			a.voids++
		}
	case ruleset.TxnReversal:
	default:
		return nil // batch totals, network messages: not traffic
	}
	if n := len(a.days); n == 0 || a.days[n-1].day != day {
		a.days = append(a.days, dayCount{day: day})
	}
	if attempt {
		a.attempts++
		a.hourly[floorDiv(local, 3600)%24]++
		if t.CardHash != "" {
			if last, ok := b.seen[key]; !ok || last < secs-b.newCardSecs {
				a.newCards++
				a.days[len(a.days)-1].newCards++
			}
		}
		if t.RC != "" && !ruleset.UnavailableCode(t.RC) {
			a.answered++
			if !t.Approved {
				a.declined++
				switch {
				case t.RiskDeclined:
					a.risk++
				case t.RC == "51":
					a.funds++
				case cardDecline[t.RC]:
					a.card++
				}
			}
		}
	}
	if t.CardHash != "" {
		b.seen[key] = secs
	}
	return nil
}

// sweep forgets the cards last seen more than NewCardDays before now: they are
// new again, and the map holds only the last NewCardDays days' cards.
func (b *builder) sweep(now int64) {
	cut := now - b.newCardSecs
	for k, last := range b.seen {
		if last < cut {
			delete(b.seen, k)
		}
	}
}

func (b *builder) table(end time.Time) *Table {
	t := &Table{From: b.from, To: end, Records: b.records, Options: b.o, Merchants: make(map[string]ruleset.Profile, len(b.merchants))}
	share := func(n, d uint64) float64 {
		if d == 0 {
			return 0
		}
		return float64(n) / float64(d)
	}
	for id, a := range b.merchants {
		days := len(a.days)
		if days == 0 {
			continue // seen only before the window
		}
		p := ruleset.Profile{Days: days, Transactions: int(a.attempts),
			P50Amount: a.amounts.quantile(0.50), P90Amount: a.amounts.quantile(0.90), P99Amount: a.amounts.quantile(0.99),
			NewCardShare: share(a.newCards, a.attempts), InquiryShare: share(a.inquiry, a.attempts),
			DeclineShare: share(a.declined, a.answered), CardDeclineShare: share(a.card, a.answered),
			FundsDeclineShare: share(a.funds, a.answered), RiskDeclineShare: share(a.risk, a.answered),
			OtherDeclineShare: share(a.declined-a.card-a.funds-a.risk, a.answered),
			RefundShare:       share(a.refunds, a.approved), VoidShare: share(a.voids, a.approved)}
		p.DailyAvg = float64(a.attempts) / float64(days)
		p.HourlyAvg = p.DailyAvg / 24
		for h, n := range a.hourly {
			p.Hourly[h] = float64(n) / float64(days)
		}
		p.Learned = days >= b.o.MinDays && int(a.attempts) >= b.o.MinTransactions
		t.Merchants[id] = p
	}
	return t
}

// cardBits is 64 bits of a card hash: the first 16 hex digits of the switch's
// HMAC (32 lower-case hex digits), or FNV-1a of anything else.
func cardBits(h string) uint64 {
	if len(h) == 32 {
		var v, bad uint64
		for i := 0; i < 16; i++ {
			d := hexValue[h[i]]
			v = v<<4 | uint64(d&0xf)
			bad |= uint64(d & 0x10)
		}
		if bad == 0 {
			return v
		}
	}
	v := uint64(14695981039346656037)
	for i := 0; i < len(h); i++ {
		v = (v ^ uint64(h[i])) * 1099511628211
	}
	return v
}

// hexValue maps a lower-case hex digit to its value, anything else to 0x10.
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0x10
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c - 'a' + 10)
	}
	return t
}()

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// zoneCache turns a time into seconds of local wall clock without time.In per
// record: the zone's offset holds between two transitions.
type zoneCache struct {
	loc        *time.Location
	start, end int64 // the cached offset holds for start <= unix < end
	offset     int64
	valid      bool
}

func (z *zoneCache) local(t time.Time, unix int64) int64 {
	if !z.valid || unix < z.start || unix >= z.end {
		lt := t.In(z.loc)
		_, off := lt.Zone()
		s, e := lt.ZoneBounds()
		z.start, z.end, z.offset, z.valid = math.MinInt64, math.MaxInt64, int64(off), true
		if !s.IsZero() {
			z.start = s.Unix()
		}
		if !e.IsZero() {
			z.end = e.Unix()
		}
	}
	return unix + z.offset
}
