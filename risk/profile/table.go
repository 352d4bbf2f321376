package profile

import (
	"encoding/json"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/risk/ruleset"
)

// Table is the profiles of one Build: immutable once built.
type Table struct {
	// ComputedAt is when the build finished (the refresher sets it).
	ComputedAt time.Time `json:"computed_at"`
	// From and To bound the window: From <= Time < To.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Records counts the journal records read, the look-back before From included.
	Records int `json:"records"`
	// Options are the build's.
	Options Options `json:"options"`
	// Merchants holds every merchant with traffic in the window, learned or not
	// (Learned false: too little history, the rules see the tier's defaults).
	Merchants map[string]ruleset.Profile `json:"merchants"`
}

// WriteTo writes t as JSON (the copy a restart loads).
func (t *Table) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	err := json.NewEncoder(cw).Encode(t)
	return cw.n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadTable reads what WriteTo wrote.
func ReadTable(r io.Reader) (*Table, error) {
	var t Table
	if err := json.NewDecoder(r).Decode(&t); err != nil {
		return nil, fmt.Errorf("merchant profiles: %w", err)
	}
	if t.Merchants == nil {
		t.Merchants = map[string]ruleset.Profile{}
	}
	return &t, nil
}

// TierDefaults are the built-in profiles of the registry's conventional tiers
// (and "small", which the default rule pack knows),
// for a merchant with too little history (amounts in fen). They are deliberately
// generous: a new merchant should not be declined for being new. A tier not
// listed gets "standard"'s.
var TierDefaults = map[string]ruleset.Profile{
	"micro": {P50Amount: 2500, P90Amount: 8000, P99Amount: 30000, DailyAvg: 60, HourlyAvg: 2.5, Hourly: flat(2.5),
		NewCardShare: 0.6, InquiryShare: 0.02, DeclineShare: 0.06, CardDeclineShare: 0.015, FundsDeclineShare: 0.025,
		RiskDeclineShare: 0.005, OtherDeclineShare: 0.015, RefundShare: 0.01, VoidShare: 0.02},
	"small": {P50Amount: 5000, P90Amount: 15000, P99Amount: 60000, DailyAvg: 150, HourlyAvg: 150.0 / 24, Hourly: flat(150.0 / 24),
		NewCardShare: 0.5, InquiryShare: 0.02, DeclineShare: 0.06, CardDeclineShare: 0.015, FundsDeclineShare: 0.025,
		RiskDeclineShare: 0.005, OtherDeclineShare: 0.015, RefundShare: 0.02, VoidShare: 0.02},
	"standard": {P50Amount: 8000, P90Amount: 30000, P99Amount: 150000, DailyAvg: 400, HourlyAvg: 400.0 / 24, Hourly: flat(400.0 / 24),
		NewCardShare: 0.5, InquiryShare: 0.02, DeclineShare: 0.06, CardDeclineShare: 0.015, FundsDeclineShare: 0.025,
		RiskDeclineShare: 0.005, OtherDeclineShare: 0.015, RefundShare: 0.02, VoidShare: 0.02},
	"enterprise": {P50Amount: 15000, P90Amount: 80000, P99Amount: 500000, DailyAvg: 5000, HourlyAvg: 5000.0 / 24, Hourly: flat(5000.0 / 24),
		NewCardShare: 0.5, InquiryShare: 0.02, DeclineShare: 0.06, CardDeclineShare: 0.015, FundsDeclineShare: 0.025,
		RiskDeclineShare: 0.005, OtherDeclineShare: 0.015, RefundShare: 0.03, VoidShare: 0.02},
}

// DefaultTier is the tier whose defaults a merchant of an unknown tier gets.
const DefaultTier = "standard"

func flat(v float64) (a [24]float64) {
	for i := range a {
		a[i] = v
	}
	return a
}

// Set is the profiles the switch uses: the current Table behind an atomic
// pointer (Swap on refresh; readers take no lock) and the tiers' defaults.
type Set struct {
	cur      atomic.Pointer[indexed]
	defaults map[string]*ruleset.Profile
	fallback *ruleset.Profile // DefaultTier's
}

// indexed is a Table with its profiles by pointer: the lookup map stays small
// (pointers, not 340-byte values), which is what the hot path reads.
type indexed struct {
	t  *Table
	by map[string]*ruleset.Profile
}

// NewSet returns an empty Set (every merchant gets its tier's defaults until the
// first Swap). defaults replace the built-in TierDefaults tier by tier.
func NewSet(defaults map[string]ruleset.Profile) *Set {
	d := make(map[string]*ruleset.Profile, len(TierDefaults)+len(defaults))
	for k, v := range TierDefaults {
		d[k] = &v
	}
	for k, v := range defaults {
		v.Learned = false
		d[k] = &v
	}
	return &Set{defaults: d, fallback: d[DefaultTier]}
}

// Swap makes t the current table. t must not change afterwards.
func (s *Set) Swap(t *Table) {
	ix := &indexed{t: t, by: make(map[string]*ruleset.Profile, len(t.Merchants))}
	for id, p := range t.Merchants {
		ix.by[id] = &p
	}
	s.cur.Store(ix)
}

// Table returns the current table (nil before the first Swap).
func (s *Set) Table() *Table {
	if ix := s.cur.Load(); ix != nil {
		return ix.t
	}
	return nil
}

// Lookup returns the profile the rules see for merchant id of tier: the learned
// one, or the tier's defaults (Learned false) carrying the merchant's own Days
// and Transactions, so that a rule can tell a new merchant from a quiet one.
func (s *Set) Lookup(id, tier string) ruleset.Profile {
	var p ruleset.Profile
	s.fill(&p, id, tier)
	return p
}

// Fill sets m.Profile from m.ID and m.Tier: the pipeline's hot path (one atomic
// load, one or two map lookups, one copy).
func (s *Set) Fill(m *ruleset.Merchant) { s.fill(&m.Profile, m.ID, m.Tier) }

func (s *Set) fill(dst *ruleset.Profile, id, tier string) {
	var own *ruleset.Profile
	if ix := s.cur.Load(); ix != nil {
		own = ix.by[id]
		if own != nil && own.Learned {
			*dst = *own
			return
		}
	}
	d := s.defaults[tier]
	if d == nil {
		d = s.fallback
	}
	*dst = *d
	if own != nil {
		dst.Days, dst.Transactions = own.Days, own.Transactions
	}
}

// NextRun is the first time after now at local time at (hour, minute) in loc.
func NextRun(now time.Time, hour, minute int, loc *time.Location) time.Time {
	lt := now.In(loc)
	next := time.Date(lt.Year(), lt.Month(), lt.Day(), hour, minute, 0, 0, loc)
	if !next.After(now) {
		next = time.Date(lt.Year(), lt.Month(), lt.Day()+1, hour, minute, 0, 0, loc)
	}
	return next
}

// LastRun is the last time at or before now at local time (hour, minute) in loc:
// a table computed before it is stale.
func LastRun(now time.Time, hour, minute int, loc *time.Location) time.Time {
	lt := now.In(loc)
	last := time.Date(lt.Year(), lt.Month(), lt.Day(), hour, minute, 0, 0, loc)
	if last.After(now) {
		last = time.Date(lt.Year(), lt.Month(), lt.Day()-1, hour, minute, 0, 0, loc)
	}
	return last
}

// View is one merchant's profile as the admin API and `switchyard merchant
// profile` show it: what the rules see now, and where it comes from.
type View struct {
	Merchant string `json:"merchant"` // DE 42
	Tier     string `json:"tier"`     // the registry's tier
	// Source is "learned", or "tier defaults" when the merchant has too little
	// history (Profile.Days and Profile.Transactions still say how much).
	Source string `json:"source"`
	// ComputedAt is when the table was computed (zero: never since this node's
	// data directory was made, every merchant gets its tier's defaults).
	ComputedAt time.Time `json:"computed_at"`
	// From and To bound the window the table learned from.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// MinDays and MinTransactions are the history a merchant needs to be learned.
	MinDays         int `json:"min_days"`
	MinTransactions int `json:"min_transactions"`
	// Profile is what the rules see as merchant.profile.
	Profile ruleset.Profile `json:"profile"`
}

// View returns what the rules see for merchant id of tier and where it comes from.
func (s *Set) View(id, tier string) View {
	v := View{Merchant: id, Tier: tier, Source: "tier defaults", Profile: s.Lookup(id, tier)}
	if v.Profile.Learned {
		v.Source = "learned"
	}
	if t := s.Table(); t != nil {
		v.ComputedAt, v.From, v.To = t.ComputedAt, t.From, t.To
		v.MinDays, v.MinTransactions = t.Options.MinDays, t.Options.MinTransactions
	}
	return v
}
