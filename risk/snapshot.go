package risk

import "slices"

// Snapshot is a transaction as the rules saw it when they decided: the input with
// its local time, counter values and list flags filled in, and the rule set that
// decided. It lets a review case show the values the rules saw (what `rules
// explain` shows) without replaying the journal, and without holding up the
// transaction: taking it costs one copy of the input and one read of the counters;
// HitValues, which runs the small programs, can run later on another goroutine.
type Snapshot struct {
	rs  *RuleSet
	env Input
}

// Snapshot captures in as the rules see it now. Call it right after Evaluate and
// before Observe, so that the counters do not yet count the transaction itself. in
// may be reused afterwards: the snapshot keeps nothing of it.
func (e *Engine) Snapshot(in *Input) *Snapshot {
	rs := e.rs.Load()
	env := rs.Prepare(in, e.store, e.lists)
	env.Device.Findings = slices.Clone(in.Device.Findings)
	return &Snapshot{rs: rs, env: env}
}

// HitValues returns, for every rule of d that hit (shadow ones included; score
// thresholds read no names and are left out), the names the rule reads with their
// values in the snapshot. A nil snapshot gives nil.
func (s *Snapshot) HitValues(d *Decision) []RuleTrace {
	if s == nil {
		return nil
	}
	var out []RuleTrace
	for _, r := range s.rs.Rules {
		h, ok := d.Hit(r.ID)
		if !ok {
			continue
		}
		out = append(out, RuleTrace{Rule: r.ID, File: r.File, Line: r.Line, Mode: r.Mode, Action: r.Action, Hit: true,
			Score: h.Score, Reason: h.Reason, Values: s.rs.RefValues(r, s.env)})
	}
	return out
}
