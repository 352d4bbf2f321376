package sched

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// maxWait bounds the Run loop's sleep, so that a changed clock or a definition
// changed on another node is seen within it.
const maxWait = time.Minute

// Run runs the due tasks until ctx ends: at every slot, and at once when a
// definition changes.
func (s *Scheduler) Run(ctx context.Context) error {
	for {
		// Definitions approved on another node of a cluster arrive through the
		// registry without a call here: read them again before every tick.
		if err := s.LoadApproved(); err != nil {
			s.log.Error().Err(err).Msg("sched: load approved tasks")
		}
		s.Tick(ctx)
		wait := maxWait
		if next, ok := s.nextDue(); ok {
			if d := next.Sub(s.opts.Now()); d < wait {
				wait = max(d, 0) + time.Millisecond
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-s.opts.After(wait):
		}
	}
}

// nextDue is the earliest next slot of the enabled tasks.
func (s *Scheduler) nextDue() (time.Time, bool) {
	var best time.Time
	for _, t := range s.tasks() {
		if v := s.view(t); !t.Disabled && !v.Next.IsZero() && (best.IsZero() || v.Next.Before(best)) {
			best = v.Next
		}
	}
	return best, !best.IsZero()
}

// Tick runs every task whose slot has come, each once, and returns when they have
// finished. A task seen for the first time starts with its next slot.
func (s *Scheduler) Tick(ctx context.Context) {
	now := s.opts.Now()
	var wg sync.WaitGroup
	for _, t := range s.tasks() {
		if t.Disabled {
			continue
		}
		sch, loc, err := ParseSchedule(t.Schedule, t.TimeZone, s.opts.Location)
		if err != nil {
			continue // shown by List
		}
		last, ok, err := s.lastSlot(t.Name)
		if err != nil {
			s.log.Error().Err(err).Str("task", t.Name).Msg("sched: read last slot")
			continue
		}
		if !ok {
			// New task: its schedule starts now (no run for slots before it existed).
			if err := s.setSlot(t.Name, now); err != nil {
				s.log.Error().Err(err).Str("task", t.Name).Msg("sched: store first slot")
			}
			continue
		}
		slot := sch.Next(last.In(loc))
		if slot.IsZero() || slot.After(now) { // zero: no time matches (ParseSchedule refuses it)
			continue
		}
		missed := 0
		for n := sch.Next(slot); !n.IsZero() && !n.After(now); n = sch.Next(n) {
			slot = n
			if missed++; missed > 100000 {
				break
			}
		}
		s.mu.Lock()
		busy := s.running[t.Name]
		s.mu.Unlock()
		if busy {
			continue
		}
		s.mu.Lock()
		local := s.local[t.Kind]
		s.mu.Unlock()
		if s.opts.Claim != nil && !local {
			won, err := s.opts.Claim(ctx, t.Name, slot)
			if err != nil {
				s.log.Error().Err(err).Str("task", t.Name).Time("slot", slot).Msg("sched: claim")
				continue
			}
			if !won { // another node runs it
				_ = s.setSlot(t.Name, slot)
				continue
			}
		}
		// The claim: written before the run, so that a restart never runs this slot again.
		if err := s.setSlot(t.Name, slot); err != nil {
			s.log.Error().Err(err).Str("task", t.Name).Msg("sched: store claimed slot: not run")
			continue
		}
		wg.Add(1)
		go func(t Task, slot time.Time, missed int) {
			defer wg.Done()
			s.exec(ctx, t, slot, missed, "")
		}(t, slot, missed)
	}
	wg.Wait()
}

// RunNow runs task name at once (outside its schedule) on behalf of by, and
// returns the run's record. Its schedule is unchanged.
func (s *Scheduler) RunNow(ctx context.Context, name, by string) (*Run, error) {
	t, ok := s.Task(name)
	if !ok {
		return nil, fmt.Errorf("%w: task %q does not exist", ErrNotFound, name)
	}
	r := s.exec(ctx, t, time.Time{}, 0, by)
	if r == nil {
		return nil, fmt.Errorf("%w: task %s is running", ErrBusy, name)
	}
	return r, nil
}

// exec runs t once and records the run; nil if t is already running.
func (s *Scheduler) exec(ctx context.Context, t Task, slot time.Time, missed int, by string) *Run {
	s.mu.Lock()
	fn := s.kinds[t.Kind]
	if s.running[t.Name] {
		s.mu.Unlock()
		return nil
	}
	s.running[t.Name] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.running, t.Name)
		s.mu.Unlock()
	}()
	r := &Run{Task: t.Name, Missed: missed, Start: s.opts.Now().UTC(), Outcome: OutcomeRunning, By: by, Node: s.opts.Node}
	if !slot.IsZero() {
		r.Slot = slot.UTC()
	}
	if err := s.putRun(r); err != nil {
		s.log.Error().Err(err).Str("task", t.Name).Msg("sched: record run start")
	}
	timeout := time.Hour
	if d, err := time.ParseDuration(t.Timeout); err == nil && d > 0 {
		timeout = d
	}
	rctx, cancel := context.WithTimeout(context.WithValue(ctx, slotKey{}, r.Slot), timeout)
	out, err := call(rctx, fn, t)
	cancel()
	r.End = s.opts.Now().UTC()
	if r.End.Before(r.Start) {
		r.End = r.Start
	}
	if len(out) > 4000 {
		out = out[:4000] + "..."
	}
	r.Output, r.Outcome = out, OutcomeOK
	if err != nil {
		r.Outcome, r.Error = OutcomeFailed, err.Error()
		if ctx.Err() != nil { // the switch is stopping, not the task failing
			r.Outcome = OutcomeInterrupted
		}
	}
	if perr := s.putRun(r); perr != nil {
		s.log.Error().Err(perr).Str("task", t.Name).Msg("sched: record run end")
	}
	s.prune(t.Name)
	s.runs.WithLabelValues(t.Name, r.Outcome).Inc()
	ev := s.log.Info()
	if err != nil {
		ev = s.log.Error().Str("error", r.Error)
	}
	ev.Str("task", t.Name).Str("kind", t.Kind).Time("slot", r.Slot).Int("missed", missed).Str("outcome", r.Outcome).
		Dur("took", r.End.Sub(r.Start)).Str("output", out).Msg("task run")
	if err != nil {
		s.fail(*r)
	} else {
		s.mu.Lock()
		delete(s.failing, t.Name)
		s.mu.Unlock()
		s.failGge.WithLabelValues(t.Name).Set(0)
	}
	return r
}

// call runs fn, turning a panic into an error.
func call(ctx context.Context, fn Func, t Task) (out string, err error) {
	if fn == nil {
		return "", fmt.Errorf("task kind %q is not registered on this switch", t.Kind)
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return fn(ctx, t.Params)
}

// fail raises a failed run's alert.
func (s *Scheduler) fail(r Run) {
	s.mu.Lock()
	s.failing[r.Task] = true
	s.mu.Unlock()
	s.failGge.WithLabelValues(r.Task).Set(1)
	if s.opts.OnFailure != nil {
		s.opts.OnFailure(r)
	}
}

// List returns every task with its next slot and last run, by name.
func (s *Scheduler) List() []View {
	var out []View
	for _, t := range s.tasks() {
		out = append(out, s.view(t))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *Scheduler) view(t Task) View {
	v := View{Task: t}
	sch, loc, err := ParseSchedule(t.Schedule, t.TimeZone, s.opts.Location)
	if err != nil {
		v.Error = err.Error()
		return v
	}
	s.mu.Lock()
	_, known := s.kinds[t.Kind]
	v.Failing = s.failing[t.Name]
	s.mu.Unlock()
	if !known {
		v.Error = fmt.Sprintf("task kind %q is not registered on this switch", t.Kind)
	}
	if last, ok, _ := s.lastSlot(t.Name); ok {
		v.Next = sch.Next(last.In(loc))
		if now := s.opts.Now(); !v.Next.IsZero() && v.Next.Before(now) {
			v.Next = now // due
		}
	} else {
		v.Next = sch.Next(s.opts.Now().In(loc))
	}
	if rs, _ := s.History(t.Name, 1); len(rs) == 1 {
		v.LastRun = &rs[0]
	}
	return v
}

type slotKey struct{}

// Slot returns the scheduled time of the run whose context ctx is (zero for a
// run-now): a task whose result depends on when it was due, not on when it ran
// (a window that ends at the scheduled time), reads it here.
func Slot(ctx context.Context) time.Time {
	t, _ := ctx.Value(slotKey{}).(time.Time)
	return t
}
