// Package sched is the switch's one scheduler of timed work: key rotations, the
// daily batch cut-off and settlement file, the merchant profile refresh, the
// offline terminal check, journal retention. Each task has a cron expression
// (github.com/robfig/cron/v3's standard parser: five fields or a descriptor such
// as @daily) read in its own time zone, and every run is recorded (start, end,
// outcome, output) in Badger under "sched/".
//
// # Once per schedule
//
// A task's schedule is a sequence of slots (the times its expression names). The
// scheduler claims a slot before running it: the claim (the task's last slot) is
// written first, so that a switch restarted in the middle never runs that slot
// again; a run that was in progress when the switch stopped is marked interrupted
// at the next start, and raises an alert like a failure (run it again with
// `switchyard task run-now` if it must complete). After a stop that spanned
// several slots, the task runs once, for the latest missed slot, and the run
// records how many slots it stands for (missed). A new task starts with the next
// slot after it is first seen.
//
// In a cluster the claim goes through Options.Claim (the switch uses a
// create-only key in the cluster's KV store): exactly one node wins a slot and
// runs it; the others record nothing.
//
// # Failures
//
// A run that returns an error (or panics, or times out) is recorded as failed and
// raises an alert: Options.OnFailure is called, the task shows "failing" in the
// list until a run succeeds, and switchyard_task_failing{task} is 1.
//
// # Tasks
//
// A task is a kind (a function registered in code with Register: one line per
// kind) plus its schedule, time zone and parameters, defined in the configuration
// (tasks:) or through the API under the registry's two-person review (task.put,
// see PutRequest); an approved definition replaces the configured one of the same
// name.
package sched

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/carddata"
	"github.com/switchyard/switchyard/switch/registry"
)

// Func is the work of a task kind. params are the task's parameters; the output
// (a short summary) is recorded with the run.
type Func func(ctx context.Context, params map[string]string) (output string, err error)

// Task is a scheduled task's definition.
type Task struct {
	Name     string            `json:"name"`
	Kind     string            `json:"kind"`
	Schedule string            `json:"schedule"`           // cron: "30 23 * * *", "@daily", "@every 1h"
	TimeZone string            `json:"timezone,omitempty"` // IANA zone; default the switch's timezone
	Params   map[string]string `json:"params,omitempty"`
	Timeout  string            `json:"timeout,omitempty"` // Go duration; default 1h
	Disabled bool              `json:"disabled,omitempty"`
	Source   string            `json:"source,omitempty"` // config, builtin or the change that set it
}

// Outcomes of a run.
const (
	OutcomeRunning     = "running"
	OutcomeOK          = "ok"
	OutcomeFailed      = "failed"
	OutcomeInterrupted = "interrupted" // the switch stopped during the run
)

// Run is the record of one run of a task.
type Run struct {
	Task    string    `json:"task"`
	Slot    time.Time `json:"slot,omitzero"` // the scheduled time (zero: run-now)
	Missed  int       `json:"missed,omitempty"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end,omitzero"`
	Outcome string    `json:"outcome"`
	Output  string    `json:"output,omitempty"`
	Error   string    `json:"error,omitempty"`
	By      string    `json:"by,omitempty"` // who asked for a run-now
	Node    string    `json:"node,omitempty"`
}

// View is a task as listed: its definition, next slot and last run.
type View struct {
	Task
	Next    time.Time `json:"next,omitzero"`
	LastRun *Run      `json:"last_run,omitempty"`
	Failing bool      `json:"failing"`
	Error   string    `json:"error,omitempty"` // why the definition cannot be scheduled
}

// Options tune a Scheduler.
type Options struct {
	// Location is the default time zone of the tasks (the switch's timezone).
	Location *time.Location
	// Now is the clock (default time.Now); After the timer of Run (default
	// time.After). Tests inject both.
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
	// Claim, when set, decides which node runs a slot (cluster mode): it returns
	// true on exactly one node per (task, slot). Nil: this node runs every slot.
	Claim func(ctx context.Context, task string, slot time.Time) (bool, error)
	// Node names this node in the run records.
	Node string
	// OnFailure is called after a run fails (or is found interrupted).
	OnFailure func(r Run)
	// History is how many runs of each task are kept (default 200).
	History int
	// Logger receives the runs (tag it component=sched).
	Logger zerolog.Logger
	// Metrics, when set, receives switchyard_task_runs_total and switchyard_task_failing.
	Metrics prometheus.Registerer
}

const (
	pfxSlot = "sched/slot/" // + task -> last claimed slot (RFC 3339 nanos)
	pfxRun  = "sched/run/"  // + task + "/" + 20-digit start unix nanos -> Run JSON
)

// Scheduler runs the tasks. Register the kinds, Set the definitions, then Run.
type Scheduler struct {
	db   *badger.DB
	opts Options
	log  zerolog.Logger

	mu      sync.Mutex
	kinds   map[string]Func
	local   map[string]bool                          // kinds every node of a cluster runs (RegisterLocal)
	checks  map[string]func(map[string]string) error // CheckParams
	base    map[string]Task                          // from the configuration and the code
	put     map[string]Task                          // approved through the API (replace base)
	running map[string]bool
	failing map[string]bool
	wake    chan struct{}
	reg     Registry // reviewed definitions (UseReview); nil: configuration only

	runs    *prometheus.CounterVec
	failGge *prometheus.GaugeVec
}

var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule checks a cron expression and time zone; the error names what is wrong.
func ParseSchedule(spec, tz string, def *time.Location) (cron.Schedule, *time.Location, error) {
	if strings.Contains(spec, "TZ=") {
		return nil, nil, fmt.Errorf("schedule %q: give the time zone in timezone, not in the expression", spec)
	}
	s, err := parser.Parse(spec)
	if err != nil {
		return nil, nil, fmt.Errorf("schedule %q: %w", spec, err)
	}
	loc := def
	if tz != "" {
		if loc, err = time.LoadLocation(tz); err != nil {
			return nil, nil, fmt.Errorf("timezone %q: %w", tz, err)
		}
	}
	if loc == nil {
		loc = time.UTC
	}
	// A schedule no time matches ("0 0 30 2 *", 30 February: a way of writing
	// "never") has no next time: Next is zero, which the scheduler read as due, and
	// the task ran about once a second (found by a trial, 8 December 2026). Disable
	// a task instead.
	if s.Next(time.Now().In(loc)).IsZero() {
		return nil, nil, fmt.Errorf("schedule %q never fires: no time matches it within five years (to stop a task, disable it)", spec)
	}
	return s, loc, nil
}

// New returns a scheduler storing its runs in db.
func New(db *badger.DB, opts Options) (*Scheduler, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.After == nil {
		opts.After = time.After
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.History <= 0 {
		opts.History = 200
	}
	s := &Scheduler{db: db, opts: opts, log: opts.Logger, kinds: map[string]Func{}, local: map[string]bool{}, checks: map[string]func(map[string]string) error{}, base: map[string]Task{}, put: map[string]Task{},
		running: map[string]bool{}, failing: map[string]bool{}, wake: make(chan struct{}, 1),
		runs:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_task_runs_total", Help: "Runs of scheduled tasks by outcome."}, []string{"task", "outcome"}),
		failGge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "switchyard_task_failing", Help: "1 while the last run of a scheduled task failed."}, []string{"task"})}
	if opts.Metrics != nil {
		for _, c := range []prometheus.Collector{s.runs, s.failGge} {
			if err := opts.Metrics.Register(c); err != nil {
				return nil, fmt.Errorf("sched: metrics: %w", err)
			}
		}
	}
	if err := s.recoverInterrupted(); err != nil {
		return nil, err
	}
	return s, nil
}

// Register adds a task kind. Moving a loop onto the scheduler is one line:
//
//	s.Register("ratings.recompute", ratings.Recompute)
//
// and a task of that kind in the configuration (or Default for one that runs
// without configuration).
func (s *Scheduler) Register(kind string, fn Func) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.kinds[kind]; dup {
		panic("sched: task kind " + kind + " registered twice")
	}
	s.kinds[kind] = fn
}

// RegisterLocal adds a task kind whose work is this node's own (the journal's
// retention: every node keeps its own copy): in a cluster every node runs each slot,
// without the claim (Options.Claim) that gives a slot to one node.
func (s *Scheduler) RegisterLocal(kind string, fn Func) {
	s.Register(kind, fn)
	s.mu.Lock()
	s.local[kind] = true
	s.mu.Unlock()
}

// CheckParams sets the check of the parameters of kind's tasks: Validate (a task in
// the configuration, a put requested or approved) refuses a task whose params check
// refuses, naming the task. A kind without a check takes any parameters. Until 7
// December 2026 none had one: a put with a date of 2026-13-45 or a misspelt
// parameter (dirr) was requested and approved, and failed at its first run or did
// what the parameter was meant to change nothing of.
func (s *Scheduler) CheckParams(kind string, check func(params map[string]string) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[kind] = check
}

// Kinds returns the registered kinds, sorted.
func (s *Scheduler) Kinds() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.kinds))
	for k := range s.kinds {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Default defines task t unless the configuration defines one of that name: the
// built-in schedule of a kind the switch always runs (the profile refresh).
func (s *Scheduler) Default(t Task) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.base[t.Name]; !ok {
		if t.Source == "" {
			t.Source = "builtin"
		}
		s.base[t.Name] = t
	}
	s.poke()
}

// Define adds or replaces the configured task t (validated by Validate).
func (s *Scheduler) Define(t Task) error {
	if err := s.Validate(t); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.Source == "" {
		t.Source = "config"
	}
	s.base[t.Name] = t
	s.poke()
	return nil
}

// SetApproved replaces the tasks approved through the API (switch/sched's
// task.put changes, folded by the caller).
func (s *Scheduler) SetApproved(ts []Task) {
	put := map[string]Task{}
	for _, t := range ts {
		put[t.Name] = t
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if reflect.DeepEqual(put, s.put) {
		return // unchanged: Run reads them before every tick, and must not wake itself
	}
	s.put = put
	s.poke()
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Validate checks a task definition: name, registered kind, schedule, zone, timeout;
// the name and the parameters, shown to operators and reviewers, may have no control,
// bidi or invisible character (registry.NoteProblem).
func (s *Scheduler) Validate(t Task) error {
	if t.Name == "" || len(t.Name) > 64 || strings.ContainsAny(t.Name, "/ \t\n") {
		return fmt.Errorf("task name %q: want 1 to 64 characters without '/' or spaces", carddata.MaskField(t.Name))
	}
	if pr := registry.NoteProblem(t.Name); pr != "" || strings.ContainsRune(t.Name, '\r') {
		return fmt.Errorf("task name %q: %s: want 1 to 64 characters without '/', spaces, control, bidi or invisible characters",
			carddata.MaskField(t.Name), cmp.Or(pr, "a carriage return"))
	}
	if carddata.InID(t.Name) {
		return fmt.Errorf("task name %q: holds a card number: a task's name and parameters are shown, logged and kept as they are", carddata.MaskID(t.Name))
	}
	for k, v := range t.Params {
		if pr := cmp.Or(registry.NoteProblem(k), registry.NoteProblem(v)); pr != "" {
			return fmt.Errorf("task %s: parameter %q: %s; parameters take any script, not characters that reorder or hide text", t.Name, k, pr)
		}
		if shown := carddata.MaskField(v); shown != v || carddata.InID(k) {
			return fmt.Errorf("task %s: parameter %q: holds a card number (%s): a task's name and parameters are shown, logged and kept as they are", t.Name, carddata.MaskID(k), shown)
		}
	}
	s.mu.Lock()
	_, ok := s.kinds[t.Kind]
	check := s.checks[t.Kind]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("task %s: kind %q: want one of %s", t.Name, t.Kind, strings.Join(s.Kinds(), ", "))
	}
	if check != nil {
		if err := check(t.Params); err != nil {
			return fmt.Errorf("task %s (%s): %w", t.Name, t.Kind, err)
		}
	}
	if _, _, err := ParseSchedule(t.Schedule, t.TimeZone, s.opts.Location); err != nil {
		return fmt.Errorf("task %s: %w", t.Name, err)
	}
	if t.Timeout != "" {
		if d, err := time.ParseDuration(t.Timeout); err != nil || d <= 0 {
			return fmt.Errorf("task %s: timeout %q: want a positive Go duration like 30m", t.Name, t.Timeout)
		}
	}
	return nil
}

// tasks returns the effective definitions by name.
func (s *Scheduler) tasks() map[string]Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]Task, len(s.base)+len(s.put))
	for n, t := range s.base {
		out[n] = t
	}
	for n, t := range s.put {
		out[n] = t
	}
	return out
}

// Task returns the effective definition of name.
func (s *Scheduler) Task(name string) (Task, bool) {
	t, ok := s.tasks()[name]
	return t, ok
}

// --- storage ---

func (s *Scheduler) lastSlot(name string) (time.Time, bool, error) {
	var t time.Time
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte(pfxSlot + name))
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error { return t.UnmarshalText(v) })
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return time.Time{}, false, nil
	}
	return t, err == nil, err
}

func (s *Scheduler) setSlot(name string, slot time.Time) error {
	b, _ := slot.UTC().MarshalText()
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(pfxSlot+name), b) })
}

func runKey(r *Run) []byte {
	return []byte(fmt.Sprintf("%s%s/%020d", pfxRun, r.Task, r.Start.UnixNano()))
}

func (s *Scheduler) putRun(r *Run) error {
	b, _ := json.Marshal(r)
	err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(runKey(r), b) })
	if err == nil {
		err = s.db.Sync()
	}
	return err
}

// History returns the newest runs of task (all tasks if ""), newest first, at most limit (default 50).
func (s *Scheduler) History(task string, limit int) ([]Run, error) {
	if limit <= 0 {
		limit = 50
	}
	prefix := pfxRun
	if task != "" {
		prefix += task + "/"
	}
	var out []Run
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var r Run
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &r) }); err != nil {
				return fmt.Errorf("sched: decode %s: %w", it.Item().Key(), err)
			}
			out = append(out, r)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Start.After(out[j].Start) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, err
}

// prune keeps the newest Options.History runs of task.
func (s *Scheduler) prune(task string) {
	var keys [][]byte
	_ = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxRun + task + "/")})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	if n := len(keys) - s.opts.History; n > 0 {
		_ = s.db.Update(func(txn *badger.Txn) error {
			for _, k := range keys[:n] {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
	}
}

// recoverInterrupted marks the runs left "running" by a stopped switch interrupted
// and raises their alert.
func (s *Scheduler) recoverInterrupted() error {
	runs, err := s.History("", 1<<30)
	if err != nil {
		return err
	}
	for _, r := range runs {
		if r.Outcome != OutcomeRunning || (s.opts.Node != "" && r.Node != s.opts.Node) {
			continue
		}
		r.Outcome, r.End, r.Error = OutcomeInterrupted, s.opts.Now().UTC(), "the switch stopped during the run"
		if err := s.putRun(&r); err != nil {
			return fmt.Errorf("sched: mark interrupted run of %s: %w", r.Task, err)
		}
		s.fail(r)
	}
	return nil
}
