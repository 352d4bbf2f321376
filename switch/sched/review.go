package sched

import (
	"encoding/json"
	"fmt"

	"github.com/switchyard/switchyard/switch/registry"
)

// OpTaskPut defines (or replaces, or with Disabled switches off) a scheduled task
// through the admin API: a registry change under two-person review, like every
// change of what the switch does on its own.
const OpTaskPut registry.Op = "task.put"

// PutRequest is the body of PUT /api/v1/tasks/{name}.
type PutRequest struct {
	Task
	Reason string `json:"reason,omitempty"`
}

// Registry is what the scheduler needs of the registry for its reviewed changes.
type Registry interface {
	RegisterOp(op registry.Op, h registry.ExtOp)
	RequestChange(p registry.Actor, c registry.Change) (*registry.Change, error)
	ApprovedChanges(ops ...registry.Op) ([]*registry.Change, error)
}

// UseReview registers task.put with reg and loads the approved definitions.
func (s *Scheduler) UseReview(reg Registry) error {
	s.mu.Lock()
	s.reg = reg
	s.mu.Unlock()
	reg.RegisterOp(OpTaskPut, registry.ExtOp{
		Check: func(c *registry.Change) (registry.ChangeEffect, error) {
			var t Task
			if err := json.Unmarshal(c.Ext, &t); err != nil {
				return registry.ChangeEffect{}, fmt.Errorf("%w: %s: payload: %v", registry.ErrInvalid, c.Op, err)
			}
			if t.Name != c.Target {
				return registry.ChangeEffect{}, fmt.Errorf("%w: %s: target %q is not the task %q", registry.ErrInvalid, c.Op, c.Target, t.Name)
			}
			if err := s.Validate(t); err != nil {
				return registry.ChangeEffect{}, fmt.Errorf("%w: %v", registry.ErrInvalid, err)
			}
			t.Source = c.ID
			ce := registry.ChangeEffect{Type: "task", ID: t.Name}
			ce.After, _ = json.Marshal(t)
			if old, ok := s.Task(t.Name); ok {
				ce.Before, _ = json.Marshal(old)
			}
			return ce, nil
		},
		Apply: func(*registry.Change) {
			if err := s.LoadApproved(); err != nil {
				s.log.Error().Err(err).Msg("sched: load approved tasks")
			}
		},
	})
	return s.LoadApproved()
}

// LoadApproved reads the approved task.put changes (in their order, the last per
// name winning) into the definitions.
func (s *Scheduler) LoadApproved() error {
	s.mu.Lock()
	reg := s.reg
	s.mu.Unlock()
	if reg == nil {
		return nil
	}
	cs, err := reg.ApprovedChanges(OpTaskPut)
	if err != nil {
		return fmt.Errorf("sched: read approved tasks: %w", err)
	}
	byName := map[string]Task{}
	for _, c := range cs {
		var t Task
		if json.Unmarshal(c.Ext, &t) == nil {
			t.Source = c.ID
			byName[t.Name] = t
		}
	}
	ts := make([]Task, 0, len(byName))
	for _, t := range byName {
		ts = append(ts, t)
	}
	s.SetApproved(ts)
	return nil
}

// RequestPut requests a task definition for review.
func (s *Scheduler) RequestPut(p registry.Actor, r PutRequest) (*registry.Change, error) {
	s.mu.Lock()
	reg := s.reg
	s.mu.Unlock()
	if reg == nil {
		return nil, fmt.Errorf("%w: tasks are defined in the configuration on this switch", registry.ErrConflict)
	}
	if err := s.Validate(r.Task); err != nil {
		return nil, fmt.Errorf("%w: %v", registry.ErrInvalid, err)
	}
	t := r.Task
	t.Source = ""
	if err := s.changesSomething(t); err != nil {
		return nil, err
	}
	b, _ := json.Marshal(t)
	return reg.RequestChange(p, registry.Change{Op: OpTaskPut, Target: t.Name, Reason: r.Reason, Ext: b})
}

// changesSomething refuses (registry.NothingToChange, ErrInvalid) a put of task t
// whose every field is what the definition approved through review already has:
// a reviewer would approve a change of nothing. A put over a task of the
// configuration or a built-in one is a change even with the same fields: it puts
// the task under review, where the configuration no longer decides it.
func (s *Scheduler) changesSomething(t Task) error {
	old, ok := s.Task(t.Name)
	if !ok || old.Source == "config" || old.Source == "builtin" {
		return nil
	}
	params := func(p map[string]string) map[string]string {
		if len(p) == 0 {
			return nil
		}
		return p
	}
	return registry.NothingToChange("task "+t.Name, []registry.Field{
		{Name: "kind", Before: old.Kind, After: t.Kind},
		{Name: "schedule", Before: old.Schedule, After: t.Schedule},
		{Name: "timezone", Before: old.TimeZone, After: t.TimeZone},
		{Name: "params", Before: params(old.Params), After: params(t.Params)},
		{Name: "timeout", Before: old.Timeout, After: t.Timeout},
		{Name: "disabled", Before: old.Disabled, After: t.Disabled},
	})
}
