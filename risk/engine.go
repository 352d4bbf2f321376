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
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"
	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"
	"github.com/switchyard/switchyard/internal/carddata"
	"github.com/switchyard/switchyard/internal/lograte"
	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/risk/ruleset"
	"github.com/switchyard/switchyard/risk/state"
)

// Options configure an Engine.
type Options struct {
	// DB is the switch's open Badger DB; the engine keeps its state under
	// "risk/". Nil keeps velocity counters and lists in memory only.
	DB *badger.DB
	// Lists are the deny and allow lists; nil opens them from DB.
	Lists *Lists
	// ListsLog, when set and Lists is nil, shares the lists opened from DB with the
	// other nodes of a cluster (ListsOptions.Log); Engine.Lists is then the replica
	// to follow. Velocity counters are not shared this way.
	ListsLog statelog.Log
	// Location is the local time zone when no rule file declares one (nil = UTC).
	Location *time.Location
	// FlushInterval is how often changed counters go to Badger (default 1 s).
	FlushInterval time.Duration
	// Debounce is how long Watch waits for more file events before it
	// reloads (default 250 ms).
	Debounce time.Duration
	// Logger receives reload and persistence messages, tagged by the wiring
	// (component=risk); the zero value logs nothing.
	Logger zerolog.Logger
	// OnReload, when set, is called after every reload attempt: with the new
	// rule set, or with the error that kept the old one.
	OnReload func(rs *RuleSet, err error)
	// MaxSeries bounds the counter series in memory (default DefaultMaxSeries).
	MaxSeries int
	// MaxBytes is the memory budget of the counter series, in bytes as the store
	// estimates them (default DefaultMaxBytes): a store at its budget, or at
	// MaxSeries, evicts (docs/rules.md, "Where counts live").
	MaxBytes int64
	// MaxDistinct bounds the cards one distinct_cards series remembers (default DefaultMaxDistinct).
	MaxDistinct int
	// Fallback, when set, is the rule pack used while the rules directory does not
	// exist (the default pack built into the binary, so that a switch started away
	// from a checkout has its rules). A directory that exists always wins, even with
	// a problem in it; creating the directory and reloading switches over to it.
	Fallback fs.FS
	// RequireRules refuses a rule set without a rule (RuleSet.EmptyError): New
	// fails, and a reload to one is refused (counted in ReloadsRefused) while the
	// rules in force stay. The switch sets it unless risk.allow_empty_rules is true:
	// an empty set approves everything with no fraud check at all.
	RequireRules bool
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
	store *state.Velocity
	lists *Lists

	reloadMu   sync.Mutex
	lastReload atomic.Pointer[ReloadStatus]

	evaluations atomic.Int64
	runErrors   atomic.Int64
	// ruleErrs holds, by rule id (or "counter NAME"), a *ruleErrStat: the run-time
	// errors of each rule and counter filter of the loaded files, so at most their
	// number of entries.
	ruleErrs sync.Map
	// evictGate limits the warning of live counter series evicted to one a
	// minute; evictLogged is the EvictedLive count the last warning covered.
	evictGate      lograte.Gate
	evictLogged    int64
	reloads        atomic.Int64 // reloads that took effect
	reloadsRefused atomic.Int64 // reloads refused: the previous rules stayed

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New loads the rule files of dir and returns an engine over them, with its
// velocity counters restored from opts.DB. It refuses a directory with any
// problem in its rules (the error lists them with file:line).
func New(dir string, opts Options) (*Engine, error) {
	e := &Engine{dir: dir, opts: opts, log: opts.Logger, stop: make(chan struct{}), evictGate: lograte.Gate{Every: time.Minute}}
	if e.opts.FlushInterval <= 0 {
		e.opts.FlushInterval = time.Second
	}
	if e.opts.Debounce <= 0 {
		e.opts.Debounce = 250 * time.Millisecond
	}
	e.lists = opts.Lists
	if e.lists == nil {
		l, err := OpenLists(opts.DB, ListsOptions{Log: opts.ListsLog})
		if err != nil {
			return nil, err
		}
		e.lists = l
	}
	rs, err := e.load()
	if err != nil {
		return nil, err
	}
	e.store = state.NewVelocity(opts.DB, opts.MaxSeries, opts.MaxDistinct)
	e.store.SetMaxBytes(opts.MaxBytes)
	n, err := e.store.Restore(rs.SpecList())
	if err != nil {
		return nil, err
	}
	e.rs.Store(rs)
	e.knowRules(rs)
	e.lastReload.Store(&ReloadStatus{Time: rs.LoadedAt, Version: rs.Version})
	if rs.Dir == FallbackLabel {
		e.log.Warn().Str("dir", dir).Msg("rules directory " + dir + " does not exist: using the default rule pack built into the binary")
	}
	e.log.Info().Str("dir", rs.Dir).Str("version", rs.Version).Int("rules", len(rs.Rules)).
		Int("counters", len(rs.Counters)).Int("restored_series", n).Msg("risk rules loaded")
	for _, w := range rs.Warnings {
		e.log.Warn().Msg("risk rules: " + w.String())
	}
	e.warnEmpty(rs)
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

// load reads the rules directory, or Options.Fallback while the directory does not
// exist, and refuses a set without a rule when Options.RequireRules is set.
func (e *Engine) load() (*RuleSet, error) {
	lo := LoadOptions{Location: e.opts.Location, Lists: e.lists}
	var rs *RuleSet
	var err error
	if e.opts.Fallback != nil {
		if _, serr := os.Stat(e.dir); errors.Is(serr, fs.ErrNotExist) {
			rs, err = LoadFS(e.opts.Fallback, FallbackLabel, lo)
		}
	}
	if rs == nil && err == nil {
		rs, err = Load(e.dir, lo)
	}
	if err == nil && e.opts.RequireRules {
		if eerr := rs.EmptyError(); eerr != nil {
			return nil, fmt.Errorf("%w (a switch without risk rules approves everything; set risk.allow_empty_rules: true if that is meant)", eerr)
		}
	}
	return rs, err
}

// warnEmpty logs, when rs has no rule (allowed: Options.RequireRules not set), that
// every transaction passes the risk engine unchecked.
func (e *Engine) warnEmpty(rs *RuleSet) {
	if err := rs.EmptyError(); err != nil {
		e.log.Warn().Str("dir", rs.Dir).Msg("risk rules: " + err.Error() + ": allowed (risk.allow_empty_rules), every transaction passes the risk engine with no rule")
	}
}

// LastReload describes the last reload attempt (or the initial load).
func (e *Engine) LastReload() ReloadStatus { return *e.lastReload.Load() }

// Evaluate runs the rules over in and returns their decision. It reads the
// velocity counters as they were before this transaction and does not
// modify in.
//
// The run-time errors of the decision are as RuleErrorText keeps them: card
// numbers masked, cut to MaxRuleErrorText. Only a decision with errors pays for
// that; one without allocates no more than the rule set's Evaluate.
func (e *Engine) Evaluate(in *Input) Decision {
	e.evaluations.Add(1)
	d := e.rs.Load().Evaluate(in, e.store, e.lists)
	if len(d.Errors) > 0 {
		for i := range d.Errors {
			d.Errors[i].Error = RuleErrorText(d.Errors[i].Error)
		}
		e.noteErrors(d.Errors, d.Version)
	}
	return d
}

// MaxRuleErrorText is the longest, in bytes, a rule's run-time error is kept in
// a decision, the log and the journal (RuleErrorText): an expr error quotes the
// values it failed on, and some are a terminal's free text.
const MaxRuleErrorText = 256

// RuleErrorText is s, a rule's run-time error, as the decision, the log and the
// journal keep it: its card numbers masked first 6 / last 4 (carddata.MaskField:
// those MaskText finds and those glued to letters; int(device.id) quotes what
// the terminal sent), then cut to MaxRuleErrorText bytes at a character, ending
// with "…". It returns s itself, without allocating, when there is nothing to
// mask or cut. It masks before it cuts: a cut through a card number would leave
// digits of it that no longer read as one.
func RuleErrorText(s string) string {
	s = carddata.MaskField(s)
	if len(s) <= MaxRuleErrorText {
		return s
	}
	const more = "…"
	cut := MaxRuleErrorText - len(more)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + more
}

// Velocity returns counter name's value for in at in.Txn.Time, as Evaluate
// would give it to the rules (velocity.NAME); false when the rule set in force
// has no such counter or in lacks its dimension. The pipeline reads a
// merchant's usage (merchant_sum_24h, merchant_count_24h, merchant_sum_30d) with
// it to decide whether a purchase is near the merchant's limits.
func (e *Engine) Velocity(in *Input, name string) (int, bool) {
	return e.rs.Load().Read(name, in, e.store)
}

// ruleErrStat is one rule's (or counter filter's) run-time errors: their count
// and the gate of their log line.
type ruleErrStat struct {
	n    atomic.Int64
	gate lograte.Gate
}

// ruleErrLogEvery is the shortest time between two log lines of one rule's
// run-time errors.
const ruleErrLogEvery = time.Minute

// noteErrors counts run-time errors, by rule, and logs each rule's at most once
// a minute (ruleErrLogEvery) with the rule, the error (RuleErrorText: card
// numbers masked, cut; an error may quote a value, and device.id is a
// terminal's free text) and how many of its errors the log left out since its
// last line. A rule that fails counts
// as not hit unless it declares on_error.
func (e *Engine) noteErrors(errs []RuleError, version string) {
	e.runErrors.Add(int64(len(errs)))
	now := time.Now()
	for _, re := range errs {
		v, ok := e.ruleErrs.Load(re.Rule)
		if !ok {
			v, _ = e.ruleErrs.LoadOrStore(re.Rule, &ruleErrStat{gate: lograte.Gate{Every: ruleErrLogEvery}})
		}
		st := v.(*ruleErrStat)
		st.n.Add(1)
		if held, ok := st.gate.Allow(now); ok {
			msg := RuleErrorText(re.Error)
			e.log.Warn().Str("rule", re.Rule).Str("version", version).Int64("left_out", held).Str("error", msg).
				Msg("risk rule failed at run time: " + re.Rule)
		}
	}
}

// knowRules counts no run-time error yet for every rule and counter of rs that
// has none counted, so that RuleErrors lists them at 0: an alert that reads the
// metric with increase() sees a rule's first error (a series that appears at 1
// does not increase).
func (e *Engine) knowRules(rs *RuleSet) {
	for _, r := range rs.Rules {
		e.ruleErrs.LoadOrStore(r.ID, &ruleErrStat{gate: lograte.Gate{Every: ruleErrLogEvery}})
	}
	for _, c := range rs.Counters {
		e.ruleErrs.LoadOrStore("counter "+c.Name, &ruleErrStat{gate: lograte.Gate{Every: ruleErrLogEvery}})
	}
}

// RuleErrors returns the run-time errors counted so far by rule id (a counter's
// filter as "counter NAME"), for the metric's rule label: every rule and counter
// of the files loaded since the start appears, at 0 until its first error.
func (e *Engine) RuleErrors() map[string]int64 {
	m := map[string]int64{}
	e.ruleErrs.Range(func(k, v any) bool {
		m[k.(string)] = v.(*ruleErrStat).n.Load()
		return true
	})
	return m
}

// Observe counts a transaction that has its final answer in the velocity
// counters whose where filter it passes. Call it once per purchase,
// pre-authorization, balance inquiry, refund and void, after the response
// (approved or not), with the same Input given to Evaluate; call it too for
// requests the switch declined before the rules ran (invalid card, no route,
// expired card...), with what the Input could be filled with: card-testing
// counters live on those declines. Use OutcomeOf to build out.
func (e *Engine) Observe(in *Input, out Outcome) {
	rs := e.rs.Load()
	if errs := rs.Observe(in, out, e.store); len(errs) > 0 {
		e.noteErrors(errs, rs.Version)
	}
}

// Retract takes orig, observed earlier with outcome out (what Observe was given),
// back out of the velocity counters that retract r.Kind: a void, a reversal (the
// terminal's or the switch's own) or a refund of it. Call it once per retraction,
// when the void, reversal or refund has its final answer; counters never go below
// zero. Counters that retract nothing cost nothing here.
func (e *Engine) Retract(orig *Input, out Outcome, r Retraction) {
	rs := e.rs.Load()
	if errs := rs.Retract(orig, out, r, e.store); len(errs) > 0 {
		e.noteErrors(errs, rs.Version)
	}
}

// Stats are the engine's running totals.
type Stats struct {
	Evaluations int64 `json:"evaluations"`    // Evaluate calls
	RunErrors   int64 `json:"run_errors"`     // expressions that failed at run time
	Series      int64 `json:"series"`         // counter keys in memory
	Evicted     int64 `json:"evicted_series"` // counter keys pushed out of a full store
	// EvictedLive counts the evicted keys that still counted something in their
	// window: counts lost (the others had expired).
	EvictedLive int64 `json:"evicted_live_series"`
	// SeriesBytes is the store's estimate of the heap its series take, MaxBytes
	// its budget and MaxSeries its cap on keys.
	SeriesBytes int64 `json:"series_bytes"`
	MaxBytes    int64 `json:"max_series_bytes"`
	MaxSeries   int64 `json:"max_series"`
	// DoubtBytes is the heap the store's record of keys in doubt (evicted, filter
	// failed) takes, outside MaxBytes (docs/rules.md, "Counts in doubt").
	DoubtBytes int64 `json:"doubt_record_bytes"`
	// Reloads counts the reloads that took effect (not the initial load).
	Reloads int64 `json:"reloads"`
	// ReloadsRefused counts the reloads refused for a problem: the previous rules stayed.
	ReloadsRefused int64 `json:"reloads_refused"`
}

// Stats returns the engine's running totals.
func (e *Engine) Stats() Stats {
	return Stats{Evaluations: e.evaluations.Load(), RunErrors: e.runErrors.Load(),
		Series: e.store.Series(), Evicted: e.store.Evicted(), EvictedLive: e.store.EvictedLive(),
		SeriesBytes: e.store.Bytes(), MaxBytes: e.store.MaxBytes(), MaxSeries: e.store.MaxSeries(), DoubtBytes: e.store.DoubtBytes(),
		Reloads: e.reloads.Load(), ReloadsRefused: e.reloadsRefused.Load()}
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
		_, err = e.store.Restore(rs.SpecList())
	}
	if err != nil {
		e.reloadsRefused.Add(1)
		e.lastReload.Store(&ReloadStatus{Time: time.Now().UTC(), Version: old.Version, Error: err.Error()})
		e.log.Error().Str("dir", e.dir).Str("kept_version", old.Version).Msg("risk rules reload refused, previous rules stay: " + err.Error())
		if e.opts.OnReload != nil {
			e.opts.OnReload(nil, err)
		}
		return nil, err
	}
	if e.opts.DB != nil {
		if ferr := e.store.Flush(old.Specs()); ferr != nil {
			e.log.Error().Err(ferr).Msg("risk velocity flush before reload")
		}
	}
	e.rs.Store(rs)
	e.knowRules(rs)
	e.reloads.Add(1)
	e.lastReload.Store(&ReloadStatus{Time: rs.LoadedAt, Version: rs.Version})
	e.log.Info().Str("dir", rs.Dir).Str("version", rs.Version).Str("previous", old.Version).
		Int("rules", len(rs.Rules)).Msg("risk rules reloaded")
	for _, w := range rs.Warnings {
		e.log.Warn().Msg("risk rules: " + w.String())
	}
	e.warnEmpty(rs)
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
		e.log.Info().Str("dir", e.dir).Msg("rules directory not watched: it does not exist; create it and reload (SIGHUP or POST /api/v1/risk/rules/reload) to use it")
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
			if !ruleset.IsRuleFile(filepath.Base(ev.Name)) || ev.Op == fsnotify.Chmod {
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

// flushFailureLevel is the level a failed periodic flush is logged at: Info when
// Badger refused the write for a moment (a DropPrefix flushing its memtables: the
// server's clean-up of stored text at a start), Error otherwise. The changes stay
// marked either way, and the next flush writes them.
func flushFailureLevel(err error) zerolog.Level {
	if errors.Is(err, badger.ErrBlockedWrites) {
		return zerolog.InfoLevel
	}
	return zerolog.ErrorLevel
}

// flushLoop writes the changed counters to Badger every FlushInterval. What
// changed since the last write is only in memory: a process killed without
// Close (kill -9, a crash) restarts without it, about one interval of
// counts, and nothing marks those counters in doubt (docs/rules.md, "What a
// crash loses"). Close and Reload write them first.
func (e *Engine) flushLoop() {
	defer e.wg.Done()
	t := time.NewTicker(e.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			specs := e.rs.Load().Specs()
			if err := e.store.Flush(specs); err != nil {
				e.log.WithLevel(flushFailureLevel(err)).Err(err).Msg("risk velocity flush (the changed counters stay marked and go with the next flush)")
			}
			e.store.Sweep(specs, 4)
			e.warnEvictions(time.Now())
		}
	}
}

// warnEvictions logs, at most once a minute (evictGate), that the counter store
// is full and evicting series that still counted something: counts are being
// lost, by a traffic peak, a budget too small for the rules' counters, or a
// flood of new keys (card testing with random card numbers, a new device ID on
// every request). The metric switchyard_risk_velocity_evictions_total{kind="live"}
// counts every one.
func (e *Engine) warnEvictions(now time.Time) {
	n := e.store.EvictedLive()
	if n == e.evictLogged {
		return
	}
	if _, ok := e.evictGate.Allow(now); !ok {
		return
	}
	e.log.Warn().Int64("evicted", n-e.evictLogged).Int64("series", e.store.Series()).
		Int64("max_series", e.store.MaxSeries()).Int64("bytes", e.store.Bytes()).Int64("max_bytes", e.store.MaxBytes()).
		Msg("risk velocity store full: counter series still counting were evicted (their counts are lost; keys seen least go first)")
	e.evictLogged = n
}

// Flush writes the changed velocity counters to Badger now.
func (e *Engine) Flush() error {
	return e.store.Flush(e.rs.Load().Specs())
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
