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
// the same scheduled time, so the nodes agree on the computed grades, and keeps them
// in its own Badger; the analysts' pins are shared through the cluster's state log
// (kvsync). See docs/merchant-risk.md.
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

	"github.com/switchyard/switchyard/internal/carddata"
	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/internal/statelog/kvsync"
	"github.com/switchyard/switchyard/risk/profile"
	"github.com/switchyard/switchyard/risk/rating"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/registry"
)

// Badger keys.
const (
	pfxState = "rating/m/"   // + merchant ID -> rating.State (this node's computation)
	pfxPin   = "rating/pin/" // + merchant ID -> rating.Pin (shared in a cluster)
	keyLast  = "rating/last"
	keyRev   = "rating/rev" // the pins' statelog revision (cluster only)
)

// PinsRevisionKey is the Badger key of the pins' statelog revision, for a restore
// of their snapshot before the ratings open (its value: kvsync.EncodeRevision).
const PinsRevisionKey = keyRev

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
	// Log, when set, shares the analysts' pins with the other nodes of a cluster
	// (they arrive through the statelog.Replica methods); nil is a single node.
	Log statelog.Log
	// CatchUp, with Log, waits after a conflict until the pins have applied every
	// commit the Log held.
	CatchUp func(ctx context.Context, r statelog.Replica) error
}

// Ratings keeps the merchants' ratings. Its methods are safe for concurrent use.
type Ratings struct {
	db   *badger.DB
	j    Journal
	reg  Registry
	opts Options
	book rating.Book

	mu     sync.Mutex // one computation or pin at a time; guards states, pins and last
	states map[string]*rating.State
	pins   map[string]*rating.Pin
	last   time.Time // the scheduled time of the last daily run
	sync   *kvsync.Sync

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
	r := &Ratings{db: db, j: j, reg: reg, opts: o, states: map[string]*rating.State{}, pins: map[string]*rating.Pin{}, nudge: make(chan string, 256)}
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
		pit := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxPin), PrefetchValues: true})
		defer pit.Close()
		for pit.Rewind(); pit.Valid(); pit.Next() {
			var p rating.Pin
			if err := pit.Item().Value(func(v []byte) error { return json.Unmarshal(v, &p) }); err != nil {
				return fmt.Errorf("rating pin %s: %w", pit.Item().Key(), err)
			}
			r.pins[strings.TrimPrefix(string(pit.Item().Key()), pfxPin)] = &p
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
	if r.sync, err = kvsync.New(db, kvsync.Config{Name: "merchant rating pins", RevKey: keyRev, Log: o.Log, CatchUp: o.CatchUp,
		Conflict: ErrConflict, Applied: r.applied}); err != nil {
		return nil, err
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
		if pin := r.pins[m.ID]; prev != nil || pin != nil {
			// The shared pin is the truth; a lapsed one is reported once.
			cp := rating.State{Merchant: m.ID}
			if prev != nil {
				cp = *prev
			}
			switch {
			case pin != nil && !now.Before(pin.Until) && cp.Pin == nil:
				cp.Pin = nil
			default:
				cp.Pin = pin
			}
			if prev != nil || pin != nil {
				prev = &cp
			}
		}
		n, changed := p.Decide(prev, m.ID, ff, now)
		if prev != nil && prev.Grade == "" {
			changed = true
		}
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
	ErrConflict = errors.New("pin changed concurrently on another node")
)

// Explanation is a merchant's rating as `switchyard merchant rating ID` shows it.
type Explanation struct {
	rating.State
	Policy     string            `json:"policy"`
	Thresholds map[string]string `json:"thresholds"`
	// Currency is the currency the grade's limits (minor units) are in: the
	// merchant's (registry currency), or the acquirer's (currency.Acquirer) for a
	// merchant that takes any.
	Currency string `json:"currency"`
}

// Explain returns a merchant's rating and what it rests on.
func (r *Ratings) Explain(merchant string) (*Explanation, error) {
	m, ok := r.reg.Merchant(merchant)
	if !ok {
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
	return &Explanation{State: *s, Policy: p.File(), Thresholds: th, Currency: m.LimitsCurrency()}, nil
}

// Pin sets a merchant's grade by an analyst, with a reason, until a review date
// (days, default the policy's pin_review_days). In a cluster every node has the pin
// once this returns.
func (r *Ratings) Pin(merchant, grade, reason, by string, days int) (*rating.State, error) {
	if pr := registry.NoteProblem(reason); pr != "" {
		return nil, fmt.Errorf("pin of %s: reason: %w: %s; free text takes any script, tabs and line breaks, "+
			"not characters that reorder or hide text", merchant, ErrInvalid, pr)
	}
	reason = r.maskText(merchant, by, reason)
	if _, ok := r.reg.Merchant(merchant); !ok {
		return nil, fmt.Errorf("merchant %s: %w", merchant, ErrNotFound)
	}
	if !validGrade(grade) {
		return nil, fmt.Errorf("grade %q: %w: want A, B, C, D or E", grade, ErrInvalid)
	}
	if strings.TrimSpace(reason) == "" {
		return nil, fmt.Errorf("pin of %s: %w: a reason is required", merchant, ErrInvalid)
	}
	if days <= 0 {
		days = r.opts.Policy.PinDays
	}
	if days > 365 {
		return nil, fmt.Errorf("pin of %s for %d days: %w: at most 365", merchant, days, ErrInvalid)
	}
	now := r.opts.Now().UTC()
	pin := &rating.Pin{Grade: grade, Reason: reason, By: by, At: now, Until: now.Add(time.Duration(days) * 24 * time.Hour)}
	return r.setPin(merchant, pin, "merchant.rating.pin", by, "pinned by "+by+": "+reason)
}

// maskText masks the card numbers in reason, the free text by typed to pin or
// unpin merchant's rating (carddata.MaskText), so that a pasted PAN is not stored
// in clear (the pins, the operation log, in a cluster the STATE stream). It logs
// that it did, never the number; the reason is kept, masked.
func (r *Ratings) maskText(merchant, by, reason string) string {
	m, n := carddata.MaskText(reason)
	if n > 0 {
		r.opts.Logger.Info().Str("object", "merchant rating "+merchant).Str("field", "reason").Str("by", by).
			Int("card_numbers", n).Msg("card number masked in free text")
	}
	return m
}

// Unpin removes a merchant's pin; the grade stays until the next computation
// decides (a downgrade at once, an upgrade after the clean period).
func (r *Ratings) Unpin(merchant, reason, by string) (*rating.State, error) {
	if pr := registry.NoteProblem(reason); pr != "" {
		return nil, fmt.Errorf("unpin of %s: reason: %w: %s; free text takes any script, tabs and line breaks, "+
			"not characters that reorder or hide text", merchant, ErrInvalid, pr)
	}
	reason = r.maskText(merchant, by, reason)
	r.mu.Lock()
	_, pinned := r.pins[merchant]
	r.mu.Unlock()
	if !pinned {
		return nil, fmt.Errorf("merchant %s: %w: no pinned rating", merchant, ErrNotFound)
	}
	return r.setPin(merchant, nil, "merchant.rating.unpin", by, "unpinned by "+by+": "+reason)
}

// setPin orders the pin (nil: its removal) through the shared log with its
// operation log entry, then puts it in force here. It does not hold r.mu while the
// sync runs (the sync's lock is taken before r.mu when other nodes' pins arrive).
func (r *Ratings) setPin(merchant string, pin *rating.Pin, action, by, why string) (*rating.State, error) {
	key := []byte(pfxPin + merchant)
	var kc kvsync.Commit
	var after json.RawMessage
	if pin == nil {
		kc.Delete(key)
	} else {
		v, err := json.Marshal(pin)
		if err != nil {
			return nil, err
		}
		kc.Set(key, v)
		after = v
	}
	via := func(write func(txn *badger.Txn) error) error {
		_, err := r.reg.LogOp(registry.OpEntry{Actor: by, Action: action, TargetType: "merchant", Target: merchant, Reason: why, After: after}, write)
		return err
	}
	if err := r.sync.Do(context.Background(), func() (statelog.Commit, func(), error) { return kc.Commit, nil, nil }, via); err != nil {
		return nil, fmt.Errorf("merchantrisk: %s of %s: %w", action, merchant, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.putPin(merchant, pin, why)
}

// putPin puts a pin (nil: none) in force: the state's grade and the book. r.mu held.
func (r *Ratings) putPin(merchant string, pin *rating.Pin, why string) (*rating.State, error) {
	if pin == nil {
		delete(r.pins, merchant)
	} else {
		r.pins[merchant] = pin
	}
	now := r.opts.Now().UTC()
	n := rating.State{Merchant: merchant}
	if prev := r.states[merchant]; prev != nil {
		n = *prev
	}
	n.Pin, n.Why = pin, why
	if pin != nil {
		if n.Grade != pin.Grade {
			n.Since = now
		}
		n.Grade, n.Limits = pin.Grade, r.opts.Policy.Grades[pin.Grade].Limits
	}
	if err := r.store(&n, nil, false, "", ""); err != nil {
		return nil, err
	}
	if n.Grade != "" {
		r.book.Put(n) // copies the map: fine for a pin
	}
	return &n, nil
}

// applied puts another node's pins in force (the sync's lock held).
func (r *Ratings) applied(c statelog.Commit) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, kv := range c.Writes {
		k := string(kv.Key)
		if !strings.HasPrefix(k, pfxPin) {
			continue
		}
		m := strings.TrimPrefix(k, pfxPin)
		var pin *rating.Pin
		why := "unpinned on another node"
		if len(kv.Value) > 0 {
			pin = new(rating.Pin)
			if json.Unmarshal(kv.Value, pin) != nil {
				continue
			}
			why = "pinned by " + pin.By + ": " + pin.Reason
		}
		if _, err := r.putPin(m, pin, why); err != nil {
			r.opts.Logger.Error().Err(err).Str("merchant", m).Msg("another node's rating pin not stored here")
		}
	}
}

// ApplyRemote implements statelog.Replica: another node's pin or unpin.
func (r *Ratings) ApplyRemote(rev uint64, c statelog.Commit) error { return r.sync.ApplyRemote(rev, c) }

// Revision implements statelog.Replica.
func (r *Ratings) Revision() uint64 { return r.sync.Revision() }

func validGrade(g string) bool {
	for _, x := range rating.Grades {
		if x == g {
			return true
		}
	}
	return false
}

// MaskStoredText rewrites masked (carddata.MaskText) the card numbers in the pin
// reasons that a version before masking (5 December 2026) stored in clear: the
// pins (one commit per chunk, shared with the other nodes like a pin, so safe on
// every node at once; each node puts a rewritten pin in force as it would
// another node's) and this node's rating states (their pin's reason and why). A
// record without a card number is not written, so a second run writes nothing.
// The reasons' copies in the operation log are the registry's
// (registry.MaskStoredText).
func (r *Ratings) MaskStoredText(ctx context.Context) (carddata.Tally, error) {
	var t carddata.Tally
	n, c, err := r.sync.Rewrite(ctx, []byte(pfxPin), 256, func(_, v []byte) ([]byte, int, error) {
		m, c, err := carddata.MaskJSON(v, "reason")
		if err != nil || c == 0 {
			return nil, 0, err
		}
		return m, c, nil
	}, r.applied)
	t.Records, t.CardNumbers = n, c
	if err != nil {
		return t, fmt.Errorf("merchantrisk: mask the card numbers in stored pin reasons: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var changed [][2][]byte
	err = r.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxState), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			m, c, err := carddata.MaskJSON(v, "why", "pin.reason")
			if err != nil {
				return fmt.Errorf("%s: %w", it.Item().Key(), err)
			}
			if c > 0 {
				changed = append(changed, [2][]byte{it.Item().KeyCopy(nil), m})
				t.Records, t.CardNumbers = t.Records+1, t.CardNumbers+c
			}
		}
		return nil
	})
	if err == nil && len(changed) > 0 {
		err = r.db.Update(func(txn *badger.Txn) error {
			for _, kv := range changed {
				if err := txn.Set(kv[0], kv[1]); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		return t, fmt.Errorf("merchantrisk: mask the card numbers in stored rating states: %w", err)
	}
	for _, kv := range changed {
		s := new(rating.State)
		if err := json.Unmarshal(kv[1], s); err != nil {
			return t, fmt.Errorf("merchantrisk: decode %s: %w", kv[0], err)
		}
		r.states[s.Merchant] = s
	}
	if len(changed) > 0 {
		r.publish()
	}
	return t, nil
}
