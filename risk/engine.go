package risk

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/expr-lang/expr/vm"
	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"
)

// Hit is one rule (or score threshold) whose condition was true.
type Hit struct {
	Rule         string `json:"rule"`                    // rule (or thresholds) id
	Action       Action `json:"action"`                  // the rule's action
	Mode         Mode   `json:"mode"`                    // enforce or shadow
	Score        int    `json:"score,omitempty"`         // the hit's score (a threshold's: the summed score)
	Reason       string `json:"reason"`                  // the rule's reason
	ResponseCode string `json:"response_code,omitempty"` // DE 39 of a decline rule
}

// RuleError is a rule whose expression failed at run time (it counts as not hit).
type RuleError struct {
	Rule  string `json:"rule"`  // rule id, or "counter NAME"
	Error string `json:"error"` // the expr run-time error
}

// Decision is what the rules say about one transaction.
type Decision struct {
	// Action is the strongest action among the enforced hits; allow when none hit.
	Action Action `json:"action"`
	// ResponseCode is DE 39 for a decline, else "".
	ResponseCode string `json:"response_code,omitempty"`
	// Reason goes to DE 48 RS on a decline: the deciding rule's reason.
	Reason string `json:"reason,omitempty"`
	// Rule is the id of the deciding rule (or score threshold), "" when none.
	Rule string `json:"rule,omitempty"`
	// Score is the summed score of the enforced rules that hit.
	Score int `json:"score"`
	// Hits are all rules that hit, shadow ones included, in load order.
	Hits []Hit `json:"hits,omitempty"`
	// Errors are rules that failed at run time.
	Errors []RuleError `json:"errors,omitempty"`
	// Version is the content hash of the rule set that decided.
	Version string `json:"version"`
}

// Declined reports whether the decision is a decline.
func (d *Decision) Declined() bool { return d.Action == ActionDecline }

// Hit returns the hit of rule id and whether it hit.
func (d *Decision) Hit(id string) (Hit, bool) {
	for _, h := range d.Hits {
		if h.Rule == id {
			return h, true
		}
	}
	return Hit{}, false
}

// overrides replace derived values of the input: rule tests give counters and
// list flags directly.
type overrides struct {
	velocity map[int]int
	lists    bool // keep in.Lists as given instead of reading the lists
}

// prepare copies in into an evaluation environment: local time, counter
// values read from store (or given by ov), list flags.
func (rs *RuleSet) prepare(in *Input, store *velocityStore, lists *Lists, ov *overrides) Input {
	// The environment is a copy: expressions never read memory that another
	// goroutine writes (no maps, no shared state), a known expr hazard.
	env := *in
	if env.Txn.Time.IsZero() {
		env.Txn.Time = time.Now().UTC()
	}
	env.Txn.setLocal(rs.Location)
	env.Outcome = Outcome{}
	env.Velocity = [MaxCounters]int{}
	t := env.Txn.Time.UnixNano()
	if store != nil {
		for _, c := range rs.readCounters {
			if key, ok := c.spec.key(in); ok {
				env.Velocity[c.Index] = store.read(&c.spec, key, t)
			}
		}
	}
	if ov != nil {
		for i, v := range ov.velocity {
			env.Velocity[i] = v
		}
	}
	if ov == nil || !ov.lists {
		env.Lists = ListFlags{}
		if lists != nil && rs.usesLists {
			env.Lists = lists.flags(in, t)
		}
	}
	return env
}

// evaluate runs every rule of rs over in. store and lists may be nil.
func (rs *RuleSet) evaluate(in *Input, store *velocityStore, lists *Lists, ov *overrides) Decision {
	return rs.decide(rs.prepare(in, store, lists, ov))
}

// decide runs every rule over a prepared environment.
func (rs *RuleSet) decide(env Input) Decision {
	box := any(env)
	d := Decision{Action: ActionAllow, Version: rs.Version}
	m := vmPool.get()
	defer vmPool.put(m)
	best := -1
	fileEnforced, fileAll, cur := 0, 0, -1
	for _, r := range rs.Rules {
		if r.fileIdx != cur {
			if cur >= 0 {
				rs.applyThresholds(&d, cur, fileEnforced, fileAll, &best)
			}
			cur, fileEnforced, fileAll = r.fileIdx, 0, 0
		}
		out, err := m.Run(r.prog, box)
		if err != nil {
			d.Errors = append(d.Errors, RuleError{Rule: r.ID, Error: err.Error()})
			continue
		}
		if hit, _ := out.(bool); !hit {
			continue
		}
		score := r.Score
		if r.scoreProg != nil {
			v, err := m.Run(r.scoreProg, box)
			if err != nil {
				d.Errors = append(d.Errors, RuleError{Rule: r.ID, Error: "score: " + err.Error()})
			}
			score, _ = v.(int)
		}
		if d.Hits == nil {
			d.Hits = make([]Hit, 0, 4)
		}
		d.Hits = append(d.Hits, Hit{Rule: r.ID, Action: r.Action, Mode: r.Mode, Score: score, Reason: r.Reason, ResponseCode: r.ResponseCode})
		fileAll += score
		if r.Mode == ModeEnforce {
			fileEnforced += score
			d.Score += score
			if best < 0 || r.Action.Rank() > d.Hits[best].Action.Rank() {
				best = len(d.Hits) - 1
			}
		}
	}
	if cur >= 0 {
		rs.applyThresholds(&d, cur, fileEnforced, fileAll, &best)
	}
	if best >= 0 {
		h := d.Hits[best]
		d.Action, d.Rule, d.Reason = h.Action, h.Rule, h.Reason
		if h.Action == ActionDecline {
			d.ResponseCode = h.ResponseCode
		}
	}
	return d
}

// applyThresholds adds the hit of file fi's score thresholds, if crossed.
func (rs *RuleSet) applyThresholds(d *Decision, fi, enforced, all int, best *int) {
	if fi >= len(rs.Thresholds) || rs.Thresholds[fi] == nil {
		return
	}
	t := rs.Thresholds[fi]
	level := func(s int) Action {
		switch {
		case t.Decline > 0 && s >= t.Decline:
			return ActionDecline
		case t.Review > 0 && s >= t.Review:
			return ActionReview
		}
		return ""
	}
	add := func(a Action, mode Mode, score int) {
		h := Hit{Rule: t.ID, Action: a, Mode: mode, Score: score, Reason: t.Reason}
		if a == ActionDecline {
			h.ResponseCode = t.ResponseCode
		}
		d.Hits = append(d.Hits, h)
		if mode == ModeEnforce && (*best < 0 || a.Rank() > d.Hits[*best].Action.Rank()) {
			*best = len(d.Hits) - 1
		}
	}
	if t.Mode == ModeEnforce {
		if a := level(enforced); a != "" {
			add(a, ModeEnforce, enforced)
			return
		}
	}
	if a := level(all); a != "" {
		add(a, ModeShadow, all)
	}
}

// observe counts in (with its outcome) in every counter whose filter passes.
func (rs *RuleSet) observe(in *Input, out Outcome, store *velocityStore) []RuleError {
	if len(rs.Counters) == 0 || store == nil {
		return nil
	}
	out.Unavailable = UnavailableCode(out.ResponseCode)
	t := in.Txn.Time
	if t.IsZero() {
		t = time.Now().UTC()
	}
	var box any
	var m *vm.VM
	var errs []RuleError
	// Counters with the same filter share one evaluation: 0 unknown, 1 pass, 2 fail.
	var results [MaxCounters]uint8
	for _, c := range rs.Counters {
		key, ok := c.spec.key(in)
		if !ok {
			continue
		}
		if c.where != nil && results[c.whereID] == 2 {
			continue
		}
		if c.where != nil && results[c.whereID] == 0 {
			if box == nil {
				env := *in
				env.Txn.Time = t
				env.Txn.setLocal(rs.Location)
				env.Outcome = out
				env.Velocity = [MaxCounters]int{}
				env.Lists = ListFlags{}
				box = env
				m = vmPool.get()
				defer vmPool.put(m)
			}
			res, err := m.Run(c.where, box)
			if err != nil {
				errs = append(errs, RuleError{Rule: "counter " + c.Name, Error: err.Error()})
				continue
			}
			results[c.whereID] = 2
			if pass, _ := res.(bool); pass {
				results[c.whereID] = 1
			}
			if results[c.whereID] == 2 {
				continue
			}
		}
		store.observe(&c.spec, key, t.UnixNano(), in.Txn.Amount, in.Txn.CardHash)
	}
	return errs
}

// specs maps the fingerprints of rs's counters to their specs.
func (rs *RuleSet) specs() map[uint64]*counterSpec {
	m := make(map[uint64]*counterSpec, len(rs.Counters))
	for _, c := range rs.Counters {
		m[c.spec.fp] = &c.spec
	}
	return m
}

func (rs *RuleSet) specList() []*counterSpec {
	l := make([]*counterSpec, 0, len(rs.Counters))
	for _, c := range rs.Counters {
		l = append(l, &c.spec)
	}
	return l
}

// Options configure an Engine.
type Options struct {
	// DB is the switch's open Badger DB; the engine keeps its state under
	// "risk/". Nil keeps velocity counters and lists in memory only.
	DB *badger.DB
	// Lists are the deny and allow lists; nil opens them from DB.
	Lists *Lists
	// Location is the local time zone when no rule file declares one (nil = UTC).
	Location *time.Location
	// FlushInterval is how often changed counters go to Badger (default 1 s).
	FlushInterval time.Duration
	// Debounce is how long Watch waits for more file events before it
	// reloads (default 250 ms).
	Debounce time.Duration
	// Logger receives reload and persistence messages (default: none).
	Logger *zerolog.Logger
	// OnReload, when set, is called after every reload attempt: with the new
	// rule set, or with the error that kept the old one.
	OnReload func(rs *RuleSet, err error)
	// MaxSeries bounds the counter series in memory (default DefaultMaxSeries).
	MaxSeries int
	// MaxDistinct bounds the cards one distinct_cards series remembers (default DefaultMaxDistinct).
	MaxDistinct int
	// Fallback, when set, is the rule pack used while the rules directory does not
	// exist (the default pack built into the binary, so that a switch started away
	// from a checkout has its rules). A directory that exists always wins, even with
	// a problem in it; creating the directory and reloading switches over to it.
	Fallback fs.FS
}

// FallbackLabel stands for the directory in RuleSet.Dir and in problems when the
// rules come from Options.Fallback.
const FallbackLabel = "embedded:rules"

// ReloadStatus describes the last reload attempt.
type ReloadStatus struct {
	Time    time.Time `json:"time"`            // when
	Version string    `json:"version"`         // in force afterwards
	Error   string    `json:"error,omitempty"` // why it was refused, "" when it was not
}

// Engine evaluates transactions against the current rule set, which it swaps
// atomically on reload. Evaluate and Observe are safe for many goroutines.
type Engine struct {
	dir   string
	opts  Options
	log   zerolog.Logger
	rs    atomic.Pointer[RuleSet]
	store *velocityStore
	lists *Lists

	reloadMu   sync.Mutex
	lastReload atomic.Pointer[ReloadStatus]

	evaluations atomic.Int64
	runErrors   atomic.Int64

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New loads the rule files of dir and returns an engine over them, with its
// velocity counters restored from opts.DB. It refuses a directory with any
// problem in its rules (the error lists them with file:line).
func New(dir string, opts Options) (*Engine, error) {
	e := &Engine{dir: dir, opts: opts, stop: make(chan struct{})}
	if opts.Logger != nil {
		e.log = *opts.Logger
	} else {
		e.log = zerolog.Nop()
	}
	if e.opts.FlushInterval <= 0 {
		e.opts.FlushInterval = time.Second
	}
	if e.opts.Debounce <= 0 {
		e.opts.Debounce = 250 * time.Millisecond
	}
	e.lists = opts.Lists
	if e.lists == nil {
		l, err := NewLists(opts.DB)
		if err != nil {
			return nil, err
		}
		e.lists = l
	}
	rs, err := e.load()
	if err != nil {
		return nil, err
	}
	e.store = newVelocityStore(opts.DB, opts.MaxSeries, opts.MaxDistinct)
	n, err := e.store.restore(rs.specList())
	if err != nil {
		return nil, err
	}
	e.rs.Store(rs)
	e.lastReload.Store(&ReloadStatus{Time: rs.LoadedAt, Version: rs.Version})
	if rs.Dir == FallbackLabel {
		e.log.Warn().Str("dir", dir).Msg("rules directory " + dir + " does not exist: using the default rule pack built into the binary")
	}
	e.log.Info().Str("dir", rs.Dir).Str("version", rs.Version).Int("rules", len(rs.Rules)).
		Int("counters", len(rs.Counters)).Int("restored_series", n).Msg("risk rules loaded")
	for _, w := range rs.Warnings {
		e.log.Warn().Msg("risk rules: " + w.String())
	}
	if opts.DB != nil {
		e.wg.Add(1)
		go e.flushLoop()
	}
	return e, nil
}

// RuleSet returns the rule set in force.
func (e *Engine) RuleSet() *RuleSet { return e.rs.Load() }

// Lists returns the engine's deny and allow lists.
func (e *Engine) Lists() *Lists { return e.lists }

// Dir returns the rules directory.
func (e *Engine) Dir() string { return e.dir }

// load reads the rules directory, or Options.Fallback while the directory does not exist.
func (e *Engine) load() (*RuleSet, error) {
	lo := LoadOptions{Location: e.opts.Location, Lists: e.lists}
	if e.opts.Fallback != nil {
		if _, err := os.Stat(e.dir); errors.Is(err, fs.ErrNotExist) {
			return LoadFS(e.opts.Fallback, FallbackLabel, lo)
		}
	}
	return Load(e.dir, lo)
}

// LastReload describes the last reload attempt (or the initial load).
func (e *Engine) LastReload() ReloadStatus { return *e.lastReload.Load() }

// Evaluate runs the rules over in and returns their decision. It reads the
// velocity counters as they were before this transaction and does not
// modify in.
func (e *Engine) Evaluate(in *Input) Decision {
	e.evaluations.Add(1)
	d := e.rs.Load().evaluate(in, e.store, e.lists, nil)
	if len(d.Errors) > 0 {
		e.runErrors.Add(int64(len(d.Errors)))
	}
	return d
}

// Observe counts a transaction that has its final answer in the velocity
// counters whose where filter it passes. Call it once per purchase,
// pre-authorization, balance inquiry, refund and void, after the response
// (approved or not), with the same Input given to Evaluate; call it too for
// requests the switch declined before the rules ran (invalid card, no route,
// expired card...), with what the Input could be filled with: card-testing
// counters live on those declines. Use OutcomeOf to build out.
func (e *Engine) Observe(in *Input, out Outcome) {
	if errs := e.rs.Load().observe(in, out, e.store); len(errs) > 0 {
		e.runErrors.Add(int64(len(errs)))
	}
}

// Stats are the engine's running totals.
type Stats struct {
	Evaluations int64 `json:"evaluations"`    // Evaluate calls
	RunErrors   int64 `json:"run_errors"`     // expressions that failed at run time
	Series      int64 `json:"series"`         // counter keys in memory
	Evicted     int64 `json:"evicted_series"` // counter keys pushed out of a full store
}

// Stats returns the engine's running totals.
func (e *Engine) Stats() Stats {
	return Stats{Evaluations: e.evaluations.Load(), RunErrors: e.runErrors.Load(),
		Series: e.store.series.Load(), Evicted: e.store.evicted.Load()}
}

// Reload reads the rule files again. On any problem it keeps the rule set in
// force and returns the problems (with file:line); otherwise the new set takes
// over for every later Evaluate.
func (e *Engine) Reload() (*RuleSet, error) {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	old := e.rs.Load()
	rs, err := e.load()
	if err == nil {
		_, err = e.store.restore(rs.specList())
	}
	if err != nil {
		e.lastReload.Store(&ReloadStatus{Time: time.Now().UTC(), Version: old.Version, Error: err.Error()})
		e.log.Error().Str("dir", e.dir).Str("kept_version", old.Version).Msg("risk rules reload refused, previous rules stay: " + err.Error())
		if e.opts.OnReload != nil {
			e.opts.OnReload(nil, err)
		}
		return nil, err
	}
	if e.opts.DB != nil {
		if ferr := e.store.flush(old.specs()); ferr != nil {
			e.log.Error().Err(ferr).Msg("risk velocity flush before reload")
		}
	}
	e.rs.Store(rs)
	e.lastReload.Store(&ReloadStatus{Time: rs.LoadedAt, Version: rs.Version})
	e.log.Info().Str("dir", rs.Dir).Str("version", rs.Version).Str("previous", old.Version).
		Int("rules", len(rs.Rules)).Msg("risk rules reloaded")
	for _, w := range rs.Warnings {
		e.log.Warn().Msg("risk rules: " + w.String())
	}
	if e.opts.OnReload != nil {
		e.opts.OnReload(rs, nil)
	}
	return rs, nil
}

// watchingMsg is logged once Watch sees the changes to the rules directory.
const watchingMsg = "rules directory watched"

// Watch reloads the rules whenever a rule file in the directory is created,
// written, renamed or removed, once the events have settled (Options.Debounce).
// A bad file is reported through the logger and OnReload and the previous
// rules stay. Watch returns when ctx is done. While the rules come from
// Options.Fallback (no directory to watch) it watches nothing and returns nil at once:
// SIGHUP and the admin reload pick up a directory created later.
func (e *Engine) Watch(ctx context.Context) error {
	if e.rs.Load().Dir == FallbackLabel {
		e.log.Info().Str("dir", e.dir).Msg("rules directory not watched: it does not exist; create it and reload (SIGHUP or POST /risk/rules/reload) to use it")
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch rules directory %s: %w", e.dir, err)
	}
	defer w.Close()
	if err := w.Add(e.dir); err != nil {
		return fmt.Errorf("watch rules directory %s: %w", e.dir, err)
	}
	// From here on a change is seen: tests wait for this line before they write.
	e.log.Info().Str("dir", e.dir).Msg(watchingMsg)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("rules directory watcher closed")
			}
			if !isRuleFile(filepath.Base(ev.Name)) || ev.Op == fsnotify.Chmod {
				continue
			}
			timer.Reset(e.opts.Debounce)
		case werr, ok := <-w.Errors:
			if !ok {
				return errors.New("rules directory watcher closed")
			}
			e.log.Error().Err(werr).Str("dir", e.dir).Msg("risk rules watcher")
		case <-timer.C:
			_, _ = e.Reload() // errors are logged and reported by Reload
		}
	}
}

func (e *Engine) flushLoop() {
	defer e.wg.Done()
	t := time.NewTicker(e.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			specs := e.rs.Load().specs()
			if err := e.store.flush(specs); err != nil {
				e.log.Error().Err(err).Msg("risk velocity flush")
			}
			e.store.sweep(specs, 4)
		}
	}
}

// Flush writes the changed velocity counters to Badger now.
func (e *Engine) Flush() error {
	return e.store.flush(e.rs.Load().specs())
}

// Close stops the background flusher and writes the counters a last time.
// It does not close the Badger DB, which belongs to the caller.
func (e *Engine) Close() error {
	var err error
	e.closeOnce.Do(func() {
		close(e.stop)
		e.wg.Wait()
		err = e.Flush()
	})
	return err
}
