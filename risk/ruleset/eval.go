package ruleset

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"
	"github.com/switchyard/switchyard/risk/state"
)

// Hit is one rule (or score threshold) whose condition was true.
type Hit struct {
	Rule         string `json:"rule"`                    // rule (or thresholds) id
	Action       Action `json:"action"`                  // the rule's action
	Mode         Mode   `json:"mode"`                    // enforce or shadow
	Score        int    `json:"score,omitempty"`         // the hit's score (a threshold's: the summed score)
	Reason       string `json:"reason"`                  // the rule's reason
	ResponseCode string `json:"response_code,omitempty"` // DE 39 of a decline rule
	// OnError is true for the hit of a rule whose condition failed at run time
	// and that declares on_error: review or decline (Action is that).
	OnError bool `json:"on_error,omitempty"`
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

// doubtSet is, by counter index, the counters whose value a preparation read in
// doubt (state.Doubt): evicted holds those whose key was evicted, filtered those
// whose filter failed for the key. Both are 0 on the usual path.
type doubtSet struct{ evicted, filtered uint64 }

// any is the counters in doubt for either reason.
func (d doubtSet) any() uint64 { return d.evicted | d.filtered }

// doubtProbe is the value a counter in doubt is given to learn whether what the
// store lost could change a rule: above any count or sum a window holds.
const doubtProbe = 1 << 40

// prepare copies in into an evaluation environment: local time, counter
// values read from store (or given by ov), list flags; and the counters read in doubt.
func (rs *RuleSet) prepare(in *Input, store *state.Velocity, lists *state.Lists, ov *overrides) (Input, doubtSet) {
	var env Input
	dbt := rs.prepareInto(&env, in, store, lists, ov)
	return env, dbt
}

// prepareInto is prepare writing into env.
func (rs *RuleSet) prepareInto(env, in *Input, store *state.Velocity, lists *state.Lists, ov *overrides) doubtSet {
	// The environment is a copy: expressions never read memory that another
	// goroutine writes (no maps, no shared state), a known expr hazard.
	*env = *in
	env.bound()
	if env.Txn.Time.IsZero() {
		env.Txn.Time = time.Now().UTC()
	}
	env.Txn.setLocal(rs.Location)
	env.Outcome = Outcome{}
	env.Velocity = [MaxCounters]int{}
	t := env.Txn.Time.UnixNano()
	var dbt doubtSet
	if store != nil {
		for _, c := range rs.readCounters {
			if key, ok := counterKey(c.dims, in); ok {
				v, d := store.ReadDoubt(&c.spec, key, t)
				env.Velocity[c.Index] = v
				switch d {
				case state.DoubtEvicted:
					dbt.evicted |= 1 << c.Index
				case state.DoubtFiltered:
					dbt.filtered |= 1 << c.Index
				}
			}
		}
	}
	if ov != nil {
		for i, v := range ov.velocity {
			env.Velocity[i] = v
			dbt.evicted &^= 1 << i // given, not read
			dbt.filtered &^= 1 << i
		}
	}
	if ov == nil || !ov.lists {
		env.Lists = state.ListFlags{}
		if lists != nil && rs.usesLists {
			env.Lists = lists.Flags(in.Txn.BIN, in.Txn.CardHash, in.Terminal.ID, in.Merchant.ID, in.Txn.Country, t)
		}
	}
	return dbt
}

// Evaluate runs every rule of rs over in, with the counter values read from
// store and the list flags from lists at in's time. store and lists may be nil
// (no counters, empty lists). It is the engine's hot path (Engine.Evaluate).
func (rs *RuleSet) Evaluate(in *Input, store *state.Velocity, lists *state.Lists) Decision {
	return rs.evaluate(in, store, lists, nil)
}

// Prepare is the environment Evaluate runs the rules over: a copy of in with
// its local time, counter values (from store) and list flags (from lists).
func (rs *RuleSet) Prepare(in *Input, store *state.Velocity, lists *state.Lists) Input {
	env, _ := rs.prepare(in, store, lists, nil)
	return env
}

// Lists is the lists the set was compiled with (LoadOptions.Lists), nil when none.
func (rs *RuleSet) Lists() *state.Lists { return rs.lists }

// evaluate runs every rule of rs over in. store and lists may be nil.
func (rs *RuleSet) evaluate(in *Input, store *state.Velocity, lists *state.Lists, ov *overrides) Decision {
	b := getEnvBox()
	defer b.put()
	dbt := rs.prepareInto(&b.in, in, store, lists, ov)
	return rs.decideBox(b, dbt)
}

// decide runs every rule over a prepared environment, with the counters dbt
// says were read in doubt.
func (rs *RuleSet) decide(env Input, dbt doubtSet) Decision {
	b := getEnvBox()
	defer b.put()
	b.in = env
	return rs.decideBox(b, dbt)
}

// decideBox is decide over the environment in b; it reads each program's result
// before it returns. A rule that reads a counter in doubt (dbt) is checked for
// whether what the store lost could change its result (doubtError): when it
// could, a rule that missed fails at run time instead (its on_error), and a rule
// that hit is listed under the errors and takes the stronger of its hit and its
// on_error. A score expression that reads a counter in doubt is checked the same
// way (scoreDoubt). Without a counter in doubt, which is the usual path, none of
// this runs.
func (rs *RuleSet) decideBox(b *envBox, dbt doubtSet) Decision {
	box := b.any()
	doubted := dbt.any() // 0 but for a store that evicted or a filter that failed
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
		onError, onErrorCode := r.OnError, r.onErrorCode
		if r.velMask&doubted != 0 && err == nil {
			hit := out == true
			if msg, oe, code := rs.doubtError(m, b, r, dbt, hit); msg != "" {
				switch {
				case !hit:
					err, onError, onErrorCode = errors.New(msg), oe, code
				case oe.Rank() > r.Action.Rank():
					// Hit on the value read, maybe not on the true one, and
					// its on_error is stronger: that.
					err, onError, onErrorCode = errors.New(msg), oe, code
				default:
					// The hit stands (the stronger), the doubt is listed.
					d.Errors = append(d.Errors, RuleError{Rule: r.ID, Error: msg})
				}
			}
		}
		if err != nil {
			d.Errors = append(d.Errors, RuleError{Rule: r.ID, Error: err.Error()})
			if onError != "" { // fails closed: a hit with its on_error action, no score
				d.Hits = append(d.Hits, Hit{Rule: r.ID, Action: onError, Mode: r.Mode, Reason: r.Reason, ResponseCode: onErrorCode, OnError: true})
				if r.Mode == ModeEnforce && (best < 0 || onError.Rank() > d.Hits[best].Action.Rank()) {
					best = len(d.Hits) - 1
				}
			}
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
			if err == nil && r.scoreMask&doubted != 0 {
				if msg, oe, code := rs.scoreDoubt(m, b, r, dbt, score); msg != "" {
					d.Errors = append(d.Errors, RuleError{Rule: r.ID, Error: "score: " + msg})
					if oe.Rank() > r.Action.Rank() {
						// The file's sum may be short of a threshold: the
						// rule's (or the counter's) on_error, with the score read.
						d.Hits = append(d.Hits, Hit{Rule: r.ID, Action: oe, Mode: r.Mode, Score: max(score, 0), Reason: r.Reason, ResponseCode: code, OnError: true})
						addScore(&d, r, oe, max(score, 0), &fileEnforced, &fileAll, &best)
						continue
					}
				}
			}
			if err == nil && score < 0 {
				// A negative score would lower the file's sum under its
				// thresholds and let the other hits through.
				d.Errors = append(d.Errors, RuleError{Rule: r.ID, Error: fmt.Sprintf("score: %d is negative: counted as 0", score)})
				score = 0
			}
		}
		if d.Hits == nil {
			d.Hits = make([]Hit, 0, 4)
		}
		d.Hits = append(d.Hits, Hit{Rule: r.ID, Action: r.Action, Mode: r.Mode, Score: score, Reason: r.Reason, ResponseCode: r.ResponseCode})
		fileAll = addScores(fileAll, score)
		if r.Mode == ModeEnforce {
			fileEnforced = addScores(fileEnforced, score)
			d.Score = addScores(d.Score, score)
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

// addScore adds the hit just appended to d (rule r's, with action a and score)
// to the sums of r's file and of the decision, and makes it the deciding hit
// (best) when it is the strongest enforced one: decideBox's own code for a hit,
// for the rare hit of a score in doubt (the usual one keeps it inline).
func addScore(d *Decision, r *Rule, a Action, score int, fileEnforced, fileAll, best *int) {
	*fileAll = addScores(*fileAll, score)
	if r.Mode == ModeEnforce {
		*fileEnforced = addScores(*fileEnforced, score)
		d.Score = addScores(d.Score, score)
		if *best < 0 || a.Rank() > d.Hits[*best].Action.Rank() {
			*best = len(d.Hits) - 1
		}
	}
}

// addScores is the sum of two scores, neither negative (a negative score counts
// as 0), held at math.MaxInt where it would overflow: until 7 December 2026 a
// score of 9223372036854775800 and one of 70 wrapped to a negative sum and hid
// the file's decline threshold. A compare and an add: it is on the
// transaction's path.
func addScores(a, b int) int {
	if s := a + b; s >= a {
		return s
	}
	return math.MaxInt
}

// doubtError tells whether what the store lost could change the result (hit)
// rule r gave over b, for the counters it reads in doubt (dbt). The true count
// of such a counter lies between the value read and doubtProbe. A condition
// that moves one way with each of them (Rule.velInc, velDec) takes at most one
// more run, with them at the end of that range that could turn its result over
// (doubtProbe for the counters it grows with when it missed, for those it
// shrinks with when it hit; none, and no run, when none could), after which b
// is restored. One that moves both ways with one of them (a band) could change
// whatever it gave, and is not run again. When the result could change, it
// returns the run error that names those counters and why they are in doubt,
// and the on_error that applies: the stronger of the rule's and those
// counters' (Counter.OnError), with its DE 39; else "".
func (rs *RuleSet) doubtError(m *vm.VM, b *envBox, r *Rule, dbt doubtSet, hit bool) (string, Action, string) {
	in := r.velMask & dbt.any()
	what := "the rule, not hit on it, could hit on what is missing"
	if hit {
		what = "the rule, hit on it, could miss with what is missing"
	}
	if in&^(r.velInc|r.velDec) != 0 {
		what += " (its condition does not only grow or only shrink with the count: a band, a comparison with ==)"
	} else {
		probe := in & r.velInc &^ r.velDec
		if hit {
			probe = in & r.velDec &^ r.velInc
		}
		if probe == 0 {
			return "", r.OnError, r.onErrorCode
		}
		out, err := rs.runProbe(m, b, r.prog, probe)
		if o, _ := out.(bool); err == nil && o == hit {
			return "", r.OnError, r.onErrorCode
		}
	}
	onError, code := rs.doubtOnError(r, in)
	return rs.doubtMessage(in, dbt, what), onError, code
}

// scoreDoubt tells whether what the store lost could change the score (read:
// the score given over b) of rule r, which hit, for the counters its score
// expression reads in doubt (dbt), as doubtError does for the condition: a score
// that moves one way with each of them is run at the two ends of their range
// (at most two runs, none for a counter it does not read), and could change when
// they differ or one fails; one that moves both ways could change whatever it
// gave. It returns the error and the on_error that apply, or "".
func (rs *RuleSet) scoreDoubt(m *vm.VM, b *envBox, r *Rule, dbt doubtSet, read int) (string, Action, string) {
	in := r.scoreMask & dbt.any()
	what := "the score, given on it, could be another with what is missing"
	if in&^(r.scoreInc|r.scoreDec) != 0 {
		what += " (it does not only grow or only shrink with the count)"
	} else {
		hi, lo := in&r.scoreInc&^r.scoreDec, in&r.scoreDec&^r.scoreInc
		if hi == 0 && lo == 0 {
			return "", r.OnError, r.onErrorCode
		}
		ends := [2]int{read, read}
		ok := true
		for i, probe := range [2]uint64{hi, lo} {
			if probe != 0 {
				v, err := rs.runProbe(m, b, r.scoreProg, probe)
				ends[i], _ = v.(int)
				ok = ok && err == nil
			}
		}
		if ok && ends[0] == ends[1] {
			return "", r.OnError, r.onErrorCode
		}
	}
	onError, code := rs.doubtOnError(r, in)
	return rs.doubtMessage(in, dbt, what), onError, code
}

// runProbe runs prog over b with the counters of probe at doubtProbe, and
// restores them.
func (rs *RuleSet) runProbe(m *vm.VM, b *envBox, prog *vm.Program, probe uint64) (any, error) {
	saved := b.in.Velocity
	for i := range MaxCounters {
		if probe&(1<<i) != 0 {
			b.in.Velocity[i] = doubtProbe
		}
	}
	out, err := m.Run(prog, b.any())
	b.in.Velocity = saved
	return out, err
}

// doubtOnError is the on_error of rule r when counters in (a mask) are read in
// doubt: the stronger of the rule's and those counters', with its DE 39.
func (rs *RuleSet) doubtOnError(r *Rule, in uint64) (Action, string) {
	onError, code := r.OnError, r.onErrorCode
	for _, c := range rs.Counters {
		if in&(1<<c.Index) != 0 && c.OnError.Rank() > onError.Rank() {
			onError, code = c.OnError, onErrorCodeOf(c.OnError, r)
		}
	}
	return onError, code
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

// Observe counts in (with its outcome) in every counter whose filter passes.
func (rs *RuleSet) Observe(in *Input, out Outcome, store *state.Velocity) []RuleError {
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
	var b *envBox
	// The counters where filters read (velocity.NAME), as a rule evaluating this
	// transaction would have read them: before any counter counts it.
	var vel [MaxCounters]int
	var dbt doubtSet
	for _, rc := range rs.whereReads {
		if k, ok := counterKey(rc.dims, in); ok {
			v, d := store.ReadDoubt(&rc.spec, k, t.UnixNano())
			vel[rc.Index] = v
			switch d {
			case state.DoubtEvicted:
				dbt.evicted |= 1 << rc.Index
			case state.DoubtFiltered:
				dbt.filtered |= 1 << rc.Index
			}
		}
	}
	for _, c := range rs.Counters {
		key, ok := writeKey(c, in)
		if !ok {
			continue
		}
		if c.where != nil && results[c.whereID] == 2 {
			continue
		}
		if c.where != nil && results[c.whereID] == 0 {
			if box == nil {
				b = getEnvBox()
				defer b.put()
				env := &b.in
				*env = *in
				env.bound()
				env.Txn.Time = t
				env.Txn.setLocal(rs.Location)
				env.Outcome = out
				env.Velocity = vel
				env.Lists = state.ListFlags{}
				box = b.any()
				m = vmPool.get()
				defer vmPool.put(m)
			}
			res, err := m.Run(c.where, box)
			if pass, _ := res.(bool); err == nil && !pass && c.whereMask&dbt.any() != 0 {
				err = rs.whereDoubt(m, b, c, dbt)
			}
			if err != nil {
				errs = append(errs, RuleError{Rule: "counter " + c.Name, Error: err.Error()})
				if c.OnError != "" {
					// Not counted, and not known not to count: the key's count
					// is in doubt for the rules that read it.
					if k, ok := counterKey(c.dims, in); ok {
						store.MarkFiltered(&c.spec, k, t.UnixNano())
					}
				}
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
		store.Observe(&c.spec, key, t.UnixNano(), in.Txn.Amount, in.Txn.CardHash)
	}
	return errs
}

// whereDoubt tells whether counter c's where filter, which did not pass over b,
// could pass with what the store lost of the counters it reads in doubt (dbt),
// as doubtError does for a rule that missed: a filter that moves one way with
// each of them runs again at most once (the counters it grows with at
// doubtProbe), one that moves both ways (a band) could pass whatever it gave.
// When it could, the filter fails (an error naming the counters); else nil.
func (rs *RuleSet) whereDoubt(m *vm.VM, b *envBox, c *Counter, dbt doubtSet) error {
	in := c.whereMask & dbt.any()
	what := "the filter, not passed on it, could pass on what is missing"
	if in&^(c.whereInc|c.whereDec) != 0 {
		what += " (it does not only grow or only shrink with the count)"
	} else {
		probe := in & c.whereInc &^ c.whereDec
		if probe == 0 {
			return nil
		}
		out, err := rs.runProbe(m, b, c.where, probe)
		if pass, _ := out.(bool); err == nil && !pass {
			return nil
		}
	}
	return errors.New(rs.doubtMessage(in, dbt, what))
}

// doubtMessage names the counters of mask in doubt (dbt) and why, then says what.
func (rs *RuleSet) doubtMessage(mask uint64, dbt doubtSet, what string) string {
	var parts []string
	for _, c := range rs.Counters {
		bit := uint64(1) << c.Index
		switch {
		case mask&bit == 0:
		case dbt.evicted&bit != 0:
			parts = append(parts, "velocity."+c.Name+" evicted (pushed out of the full store within its window)")
		default:
			parts = append(parts, "velocity."+c.Name+" filter failed (its where failed for a transaction of this key within its window)")
		}
	}
	return strings.Join(parts, ", ") + ": the count read may be short, and " + what
}

// Specs maps the fingerprints of rs's counters to their specs.
func (rs *RuleSet) Specs() map[uint64]*state.CounterSpec {
	m := make(map[uint64]*state.CounterSpec, len(rs.Counters))
	for _, c := range rs.Counters {
		m[c.spec.FP] = &c.spec
	}
	return m
}

// SpecList lists the specs of rs's counters, in declaration order.
func (rs *RuleSet) SpecList() []*state.CounterSpec {
	l := make([]*state.CounterSpec, 0, len(rs.Counters))
	for _, c := range rs.Counters {
		l = append(l, &c.spec)
	}
	return l
}

// Read returns counter name's value for in at in's time, as Evaluate gives it to
// the rules (velocity.NAME): false when rs has no such counter or in lacks one of
// its dimensions (a merchant counter and no merchant). store may be nil (0). It
// reads one series and allocates nothing: the pipeline reads a merchant's usage
// with it before it decides whether a purchase needs its merchant's lock.
func (rs *RuleSet) Read(name string, in *Input, store *state.Velocity) (int, bool) {
	c := rs.counterByName[name]
	if c == nil {
		return 0, false
	}
	key, ok := counterKey(c.dims, in)
	if !ok {
		return 0, false
	}
	if store == nil {
		return 0, true
	}
	t := in.Txn.Time
	if t.IsZero() {
		t = time.Now()
	}
	return store.Read(&c.spec, key, t.UnixNano()), true
}
