// Package merchantrisk keeps the merchants' risk ratings in force and reports on
// their traffic. The ratings (package risk/rating) are recomputed from the journal
// and the registry's incidents every day at a local time, and at once for a merchant
// on strong evidence (a review case confirmed as fraud); the grade in force and its
// limits are handed to the rules through a lock-free Book. Every change of a grade,
// and every pin and unpin, is an operation log entry stored with the state in one
// Badger transaction, with the figures behind it.
//
// The daily run is a plain function (Recompute) called by a simple loop (Run), so
// that a general scheduler can take it over later.
//
// In a cluster every node computes the ratings from its replica of the journal at
// the same scheduled time, so the nodes agree on the computed grades; the state
// records (and so pins) are written to the node's own Badger only. See
// docs/merchant-risk.md.
package merchantrisk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/risk/profile"
	"github.com/switchyard/switchyard/risk/rating"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/registry"
)

// Badger keys.
const (
	pfxState = "rating/m/" // + merchant ID -> rating.State
	keyLast  = "rating/last"
)

// Journal is what the ratings read of the journal (*journal.Store).
type Journal interface {
	Scan(ctx context.Context, q journal.Query, fn func(*journal.Record) bool) error
}

// Registry gives the merchants, their incidents, and the operation log
// (*registry.Registry).
type Registry interface {
	Merchants(f registry.MerchantFilter) []*registry.Merchant
	Merchant(id string) (*registry.Merchant, bool)
	Incidents(f registry.IncidentFilter) ([]*registry.Incident, error)
	LogOp(e registry.OpEntry, write func(txn *badger.Txn) error) (registry.OpEntry, error)
}

// Options configure Ratings.
type Options struct {
	Policy   *rating.Policy
	Location *time.Location // the acquirer's zone: night hours, the daily time
	Hour     int            // local time of the daily run
	Minute   int
	Poll     time.Duration                        // how often Run looks at the clock (default 1 min)
	Now      func() time.Time                     // default time.Now
	After    func(time.Duration) <-chan time.Time // Run's timer (default time.After)
	Logger   zerolog.Logger
}

// Ratings keeps the merchants' ratings. Its methods are safe for concurrent use.
type Ratings struct {
	db   *badger.DB
	j    Journal
	reg  Registry
	opts Options
	book rating.Book

	mu     sync.Mutex // one computation or pin at a time; guards states and last
	states map[string]*rating.State
	last   time.Time // the scheduled time of the last daily run

	nudge chan string
}

// New opens the ratings kept in db.
func New(db *badger.DB, j Journal, reg Registry, o Options) (*Ratings, error) {
	if o.Policy == nil {
		return nil, errors.New("merchantrisk: no rating policy")
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.Poll <= 0 {
		o.Poll = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	r := &Ratings{db: db, j: j, reg: reg, opts: o, states: map[string]*rating.State{}, nudge: make(chan string, 256)}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxState), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var s rating.State
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &s) }); err != nil {
				return fmt.Errorf("rating state %s: %w", it.Item().Key(), err)
			}
			r.states[s.Merchant] = &s
		}
		item, err := txn.Get([]byte(keyLast))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return r.last.UnmarshalText(v) })
	})
	if err != nil {
		return nil, fmt.Errorf("merchantrisk: load ratings: %w", err)
	}
	r.publish()
	return r, nil
}

func (r *Ratings) publish() {
	all := make([]rating.State, 0, len(r.states))
	for _, s := range r.states {
		all = append(all, *s)
	}
	r.book.Set(all)
}

// Book is the grades and limits in force, for the pipeline.
func (r *Ratings) Book() *rating.Book { return &r.book }

// Policy is the policy in force.
func (r *Ratings) Policy() *rating.Policy { return r.opts.Policy }

// Nudge asks for a merchant's rating to be recomputed at once (strong evidence).
// It never blocks: when the queue is full the daily run catches up.
func (r *Ratings) Nudge(merchant string) {
	select {
	case r.nudge <- merchant:
	default:
	}
}

// Run recomputes every day at the configured local time (and at start when the
// last scheduled run was missed), and a nudged merchant at once, until ctx ends.
func (r *Ratings) Run(ctx context.Context) error {
	for {
		now := r.opts.Now()
		due := profile.LastRun(now, r.opts.Hour, r.opts.Minute, r.opts.Location)
		r.mu.Lock()
		last := r.last
		r.mu.Unlock()
		if due.After(last) {
			if _, err := r.Recompute(ctx, due, nil); err != nil && ctx.Err() == nil {
				r.opts.Logger.Error().Err(err).Msg("merchant ratings not recomputed; the previous ones stay in force")
			}
		}
		wait := profile.NextRun(now, r.opts.Hour, r.opts.Minute, r.opts.Location).Sub(now)
		if wait > r.opts.Poll {
			wait = r.opts.Poll
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.opts.After(wait):
		case m := <-r.nudge:
			if _, err := r.Recompute(ctx, r.opts.Now(), []string{m}); err != nil && ctx.Err() == nil {
				r.opts.Logger.Error().Err(err).Str("merchant", m).Msg("merchant rating not recomputed on evidence")
			}
		}
	}
}

// Summary is the outcome of a recomputation.
type Summary struct {
	End       time.Time `json:"window_end"`
	Merchants int       `json:"merchants"`
	Changed   []string  `json:"changed,omitempty"` // "ID B->E"
}

// Recompute computes the ratings of the window ending at end: every merchant's
// (only nil) as the daily run does, or only those named. Changes are stored and
// logged, and in force when it returns.
func (r *Ratings) Recompute(ctx context.Context, end time.Time, only []string) (Summary, error) {
	p := r.opts.Policy
	from := end.Add(-time.Duration(p.WindowDays) * 24 * time.Hour)
	want := map[string]bool{}
	for _, m := range only {
		want[m] = true
	}
	facts, err := r.collect(ctx, from, end, want)
	if err != nil {
		return Summary{}, err
	}
	merchants := r.reg.Merchants(registry.MerchantFilter{})
	sort.Slice(merchants, func(i, j int) bool { return merchants[i].ID < merchants[j].ID })
	r.mu.Lock()
	defer r.mu.Unlock()
	sum := Summary{End: end.UTC()}
	now := r.opts.Now()
	wb := r.db.NewWriteBatch()
	defer wb.Cancel()
	for _, m := range merchants {
		if len(want) > 0 && !want[m.ID] {
			continue
		}
		if m.Status == registry.MerchantClosed {
			continue
		}
		f := facts[m.ID]
		if f == nil {
			f = &acc{}
		}
		ff := f.facts()
		ff.AgeDays = int(math.Max(0, end.Sub(m.CreatedAt).Hours()/24))
		prev := r.states[m.ID]
		n, changed := p.Decide(prev, m.ID, ff, now)
		sum.Merchants++
		if changed {
			from := "-"
			if prev != nil {
				from = prev.Grade
			}
			sum.Changed = append(sum.Changed, m.ID+" "+from+"->"+n.Grade)
		}
		if changed {
			if err := r.store(&n, prev, true, "", ""); err != nil {
				return sum, err
			}
			continue
		}
		// Unchanged: the new figures, in one batch, published with the rest.
		b, err := json.Marshal(&n)
		if err != nil {
			return sum, err
		}
		if err := wb.Set([]byte(pfxState+n.Merchant), b); err != nil {
			return sum, fmt.Errorf("merchantrisk: store rating of %s: %w", n.Merchant, err)
		}
		r.states[m.ID] = &n
	}
	if err := wb.Flush(); err != nil {
		return sum, fmt.Errorf("merchantrisk: store ratings: %w", err)
	}
	r.publish()
	if len(want) == 0 {
		if err := r.db.Update(func(txn *badger.Txn) error {
			b, _ := end.UTC().MarshalText()
			return txn.Set([]byte(keyLast), b)
		}); err != nil {
			return sum, fmt.Errorf("merchantrisk: store the time of the run: %w", err)
		}
		r.last = end
	}
	r.opts.Logger.Info().Time("window_end", end).Int("merchants", sum.Merchants).Strs("changed", sum.Changed).Msg("merchant ratings recomputed")
	return sum, nil
}

// store writes n (under r.mu) and keeps it in states (the caller publishes it to
// the book); a change of grade (or a pin action, action set) goes
// to the operation log with the figures, in the same Badger transaction.
func (r *Ratings) store(n, prev *rating.State, changed bool, action, actor string) error {
	b, err := json.Marshal(n)
	if err != nil {
		return err
	}
	write := func(txn *badger.Txn) error { return txn.Set([]byte(pfxState+n.Merchant), b) }
	if changed || action != "" {
		if action == "" {
			action = "merchant.rating"
		}
		if actor == "" {
			actor = registry.SystemActor
		}
		e := registry.OpEntry{Time: n.At, Actor: actor, Action: action, TargetType: "merchant", Target: n.Merchant,
			Reason: n.Why, After: b}
		if prev != nil {
			e.Before, _ = json.Marshal(prev)
		}
		if _, err := r.reg.LogOp(e, write); err != nil {
			return err
		}
	} else if err := r.db.Update(write); err != nil {
		return fmt.Errorf("merchantrisk: store rating of %s: %w", n.Merchant, err)
	}
	r.states[n.Merchant] = n
	return nil
}

// acc adds up one merchant's journal facts.
type acc struct {
	n, declined, risk, night, cashout int
	bought, refunded                  int64
	incidents, confirmed              int
}

func (a *acc) facts() rating.Facts {
	f := rating.Facts{Transactions: a.n, Amount: a.bought, CashOutHits: a.cashout, Incidents: a.incidents, Confirmed: a.confirmed}
	if a.n > 0 {
		f.DeclineRatio = float64(a.declined) / float64(a.n)
		f.RiskHitRatio = float64(a.risk) / float64(a.n)
		f.NightShare = float64(a.night) / float64(a.n)
	}
	if a.bought > 0 {
		f.RefundRatio = float64(a.refunded) / float64(a.bought)
	} else if a.refunded > 0 {
		f.RefundRatio = 1
	}
	return f
}

// collect reads the journal and the incidents of [from, to).
func (r *Ratings) collect(ctx context.Context, from, to time.Time, want map[string]bool) (map[string]*acc, error) {
	out := map[string]*acc{}
	get := func(mid string) *acc {
		a := out[mid]
		if a == nil {
			a = &acc{}
			out[mid] = a
		}
		return a
	}
	prefix := r.opts.Policy.CashOutRule
	loc := r.opts.Location
	err := r.j.Scan(ctx, journal.Query{From: from, To: to}, func(rec *journal.Record) bool {
		mid := strings.TrimRight(rec.MID, " ")
		if len(want) > 0 && !want[mid] {
			return true
		}
		switch rec.Type {
		case "purchase", "preauth", "refund":
		default:
			return true
		}
		if rec.RC == "" {
			return true // not answered (yet)
		}
		a := get(mid)
		a.n++
		approved := rec.Approved()
		if !approved {
			a.declined++
		}
		if rec.DecidedBy == "risk" {
			a.risk++
		}
		if h := rec.Received.In(loc).Hour(); h >= 23 || h < 5 {
			a.night++
		}
		for _, h := range rec.RuleHits {
			if strings.HasPrefix(h.ID, prefix) {
				a.cashout++
				break
			}
		}
		if approved {
			if rec.Type == "refund" {
				a.refunded += rec.Amount
			} else {
				a.bought += rec.Amount
			}
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("merchantrisk: read the journal: %w", err)
	}
	incs, err := r.reg.Incidents(registry.IncidentFilter{Since: from, Limit: 1_000_000})
	if err != nil {
		return nil, fmt.Errorf("merchantrisk: read the incidents: %w", err)
	}
	for _, inc := range incs {
		if inc.Time.After(to) || (len(want) > 0 && !want[inc.MerchantID]) {
			continue
		}
		if inc.Reason == registry.ReasonConfirmedFraud {
			get(inc.MerchantID).confirmed++
		} else {
			get(inc.MerchantID).incidents++
		}
	}
	return out, nil
}

// Errors of the admin actions.
var (
	ErrNotFound = errors.New("not found")
	ErrInvalid  = errors.New("invalid")
)

// Explanation is a merchant's rating as `switchyard merchant rating ID` shows it.
type Explanation struct {
	rating.State
	Policy     string            `json:"policy"`
	Thresholds map[string]string `json:"thresholds"`
}

// Explain returns a merchant's rating and what it rests on.
func (r *Ratings) Explain(merchant string) (*Explanation, error) {
	if _, ok := r.reg.Merchant(merchant); !ok {
		return nil, fmt.Errorf("merchant %s: %w", merchant, ErrNotFound)
	}
	r.mu.Lock()
	s := r.states[merchant]
	r.mu.Unlock()
	if s == nil {
		return nil, fmt.Errorf("merchant %s: %w: %w (the daily run rates it)", merchant, ErrNotFound, rating.ErrNotRated)
	}
	p := r.opts.Policy
	th := map[string]string{}
	for _, g := range rating.Grades[:4] {
		th[g] = fmt.Sprintf("score <= %v", p.Grades[g].MaxScore)
	}
	th["E"] = fmt.Sprintf("score > %v", p.Grades["D"].MaxScore)
	return &Explanation{State: *s, Policy: p.File(), Thresholds: th}, nil
}

// Pin sets a merchant's grade by an analyst, with a reason, until a review date
// (days, default the policy's pin_review_days).
func (r *Ratings) Pin(merchant, grade, reason, by string, days int) (*rating.State, error) {
	if _, ok := r.reg.Merchant(merchant); !ok {
		return nil, fmt.Errorf("merchant %s: %w", merchant, ErrNotFound)
	}
	if !validGrade(grade) {
		return nil, fmt.Errorf("grade %q: %w: want A, B, C, D or E", grade, ErrInvalid)
	}
	if strings.TrimSpace(reason) == "" {
		return nil, fmt.Errorf("pin of %s: %w: a reason is required", merchant, ErrInvalid)
	}
	p := r.opts.Policy
	if days <= 0 {
		days = p.PinDays
	}
	if days > 365 {
		return nil, fmt.Errorf("pin of %s for %d days: %w: at most 365", merchant, days, ErrInvalid)
	}
	now := r.opts.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	prev := r.states[merchant]
	n := rating.State{Merchant: merchant, At: now.UTC()}
	if prev != nil {
		n = *prev
		n.At = now.UTC()
	}
	n.Pin = &rating.Pin{Grade: grade, Reason: reason, By: by, At: now.UTC(), Until: now.Add(time.Duration(days) * 24 * time.Hour).UTC()}
	if n.Grade != grade {
		n.Since = now.UTC()
	}
	n.Grade, n.Limits, n.Why = grade, p.Grades[grade].Limits, "pinned by "+by+": "+reason
	if err := r.store(&n, prev, false, "merchant.rating.pin", by); err != nil {
		return nil, err
	}
	r.book.Put(n) // copies the map: fine for a pin
	return &n, nil
}

// Unpin removes a merchant's pin; the grade stays until the next computation
// decides (a downgrade at once, an upgrade after the clean period).
func (r *Ratings) Unpin(merchant, reason, by string) (*rating.State, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev := r.states[merchant]
	if prev == nil || prev.Pin == nil {
		return nil, fmt.Errorf("merchant %s: %w: no pinned rating", merchant, ErrNotFound)
	}
	n := *prev
	n.Pin, n.At, n.Why = nil, r.opts.Now().UTC(), "unpinned by "+by+": "+reason
	if err := r.store(&n, prev, false, "merchant.rating.unpin", by); err != nil {
		return nil, err
	}
	return &n, nil
}

func validGrade(g string) bool {
	for _, x := range rating.Grades {
		if x == g {
			return true
		}
	}
	return false
}
