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
	b, _ := json.Marshal(t)
	return reg.RequestChange(p, registry.Change{Op: OpTaskPut, Target: t.Name, Reason: r.Reason, Ext: b})
}
