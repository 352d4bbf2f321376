package ruleset

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/switchyard/switchyard/internal/carddata"
	"github.com/switchyard/switchyard/risk/state"
	"go.yaml.in/yaml/v3"
)

var (
	idPattern     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$`)
	reasonPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$`)
	namePattern   = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	codePattern   = regexp.MustCompile(`^[0-9A-Z]{2}$`)
)

// compiler collects problems while compiling a set of files.
type compiler struct {
	problems []Problem
	warnings []Problem
	opts     LoadOptions
	// costs are the cost bounds of the expressions compiled (exprCost), for
	// the rule set's total (MaxSetCost).
	costs []exprCostEntry
	// laterWheres are the where filters that read counters: compiled once every
	// file's counters are declared (a filter may read a counter of a later file).
	laterWheres []laterWhere
}

// laterWhere is a counter's where filter whose compilation waits for every
// counter to be declared.
type laterWhere struct {
	pf   *parsedFile
	node *yaml.Node
	ctr  *Counter
}

func (c *compiler) errorf(file string, line int, format string, a ...any) {
	c.problems = append(c.problems, Problem{File: file, Line: line, Message: fmt.Sprintf(format, a...)})
}

func (c *compiler) warnf(file string, line int, format string, a ...any) {
	c.warnings = append(c.warnings, Problem{File: file, Line: line, Message: fmt.Sprintf(format, a...)})
}

// Compile compiles rule files given in load order. On any problem it returns a
// *LoadError listing them all with file:line.
func Compile(files []SourceFile, opts LoadOptions) (*RuleSet, error) {
	c := &compiler{opts: opts}
	rs := &RuleSet{
		Version:       Version(files),
		counterByName: map[string]*Counter{},
		lists:         opts.Lists,
		LoadedAt:      time.Now().UTC(),
	}
	var parsed []*parsedFile
	for _, f := range files {
		rs.Files = append(rs.Files, f.Name)
		if pf := c.parseFile(f); pf != nil {
			parsed = append(parsed, pf)
		}
	}
	if len(files) == 0 {
		c.warnf("", 0, "no rule files (*.yaml, *.yml): the rule set is empty")
	}
	// Time zone.
	rs.Location = opts.Location
	if rs.Location == nil {
		rs.Location = time.UTC
	}
	tzFrom := ""
	for _, pf := range parsed {
		if pf.doc.Timezone == "" {
			continue
		}
		line := keyLine(pf.root, "timezone")
		loc, err := time.LoadLocation(pf.doc.Timezone)
		if err != nil {
			c.errorf(pf.name, line, "timezone %q: %v", pf.doc.Timezone, err)
			continue
		}
		if tzFrom != "" && loc.String() != rs.Location.String() {
			c.errorf(pf.name, line, "timezone %q differs from %q declared in %s", pf.doc.Timezone, rs.Location, tzFrom)
			continue
		}
		rs.Location, tzFrom = loc, pf.name
	}
	rs.TimeZone = rs.Location.String()
	// Counters first: rules refer to them.
	for _, pf := range parsed {
		c.compileCounters(rs, pf)
	}
	c.compileLaterWheres(rs)
	index := map[string]int{}
	for _, ctr := range rs.Counters {
		index[ctr.Name] = ctr.Index
	}
	seen := map[string]string{}
	for fi, pf := range parsed {
		rs.Thresholds = append(rs.Thresholds, c.compileThresholds(pf, seen))
		for i := range pf.doc.Rules {
			if r := c.compileRule(rs, pf, i, fi, index, seen); r != nil {
				rs.Rules = append(rs.Rules, r)
			}
		}
	}
	for _, ctr := range rs.Counters {
		if !ctr.used && !ctr.readByWhere {
			c.warnf(ctr.File, ctr.Line, "counter %s is declared but no rule reads it", ctr.Name)
		}
	}
	c.checkSetCost(rs)
	// Tests need the whole set (counters, other rules) to be compiled.
	if len(c.problems) == 0 {
		for _, pf := range parsed {
			c.compileTests(rs, pf)
		}
	}
	if len(c.problems) > 0 {
		return nil, &LoadError{Problems: c.problems, Warnings: c.warnings}
	}
	rs.Warnings = c.warnings
	for _, ctr := range rs.Counters {
		if ctr.used {
			rs.readCounters = append(rs.readCounters, ctr)
		}
		// A counter reads NB buckets of its resolution: its window rounded up.
		if span := time.Duration(ctr.spec.NB) * ctr.Resolution; span > rs.maxWindow {
			rs.maxWindow = span
		}
	}
	return rs, nil
}

// MaxWindow is the longest counter window: a year and a day.
const MaxWindow = 366 * 24 * time.Hour

// maxWindowName is MaxWindow as rule files write it.
const maxWindowName = "366d"

// MaxBuckets is the most buckets (window / resolution) a counter may have.
const MaxBuckets = 10000

// ParseWindow reads a counter window or a list entry's ttl: a Go duration
// ("10m", "36h") or a number of days ("1d", "7d").
func ParseWindow(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("missing")
	}
	mult := time.Duration(0)
	switch {
	case strings.HasSuffix(s, "d"):
		mult = 24 * time.Hour
	case strings.HasSuffix(s, "w"):
		mult = 7 * 24 * time.Hour
	}
	if mult > 0 {
		n, err := strconv.Atoi(strings.TrimSpace(s[:len(s)-1]))
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("%q: want a positive whole number of days or weeks, like 30d or 2w", s)
		}
		if int64(n) > math.MaxInt64/int64(mult) {
			// n*mult would wrap around to a negative or a short duration.
			return 0, fmt.Errorf("%q: too long (at most %d days)", s, math.MaxInt64/int64(24*time.Hour))
		}
		return time.Duration(n) * mult, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q: want a duration like 10m, 1h, 24h or 30d", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q: must be positive", s)
	}
	return d, nil
}

func (c *compiler) compileCounters(rs *RuleSet, pf *parsedFile) {
	for i, d := range pf.doc.Counters {
		node := item(pf.root, "counters", i)
		line := node.Line
		if !namePattern.MatchString(d.Name) {
			c.errorf(pf.name, line, "counter name %q: want lower-case letters, digits and _ starting with a letter", d.Name)
			continue
		}
		if prev := rs.counterByName[d.Name]; prev != nil {
			c.errorf(pf.name, line, "counter %s is declared twice (first at %s:%d)", d.Name, prev.File, prev.Line)
			continue
		}
		ctr := &Counter{Name: d.Name, Description: d.Description, Measure: d.Measure, Where: strings.TrimSpace(d.Where), File: pf.name, Line: line}
		ok := true
		switch d.Dimension.Kind {
		case yaml.ScalarNode:
			ctr.Dimensions = []string{d.Dimension.Value}
		case yaml.SequenceNode:
			for _, e := range d.Dimension.Content {
				ctr.Dimensions = append(ctr.Dimensions, e.Value)
			}
		}
		if len(ctr.Dimensions) == 0 {
			c.errorf(pf.name, line, "counter %s: dimension missing (%s, or a list of them)", d.Name, dimensionNames)
			ok = false
		}
		seenDim := map[string]bool{}
		for _, dim := range ctr.Dimensions {
			if _, known := dimSalt[dim]; !known {
				c.errorf(pf.name, line, "counter %s: unknown dimension %q (want %s)", d.Name, dim, dimensionNames)
				ok = false
			} else if seenDim[dim] {
				c.errorf(pf.name, line, "counter %s: dimension %s given twice", d.Name, dim)
				ok = false
			}
			seenDim[dim] = true
		}
		if seenDim[state.DimAcquirer] && len(ctr.Dimensions) > 1 {
			c.errorf(pf.name, line, "counter %s: dimension acquirer is the whole switch: it cannot be combined with %s (use those alone)",
				d.Name, strings.Join(slices.DeleteFunc(slices.Clone(ctr.Dimensions), func(s string) bool { return s == state.DimAcquirer }), ", "))
			ok = false
		}
		switch d.Measure {
		case state.MeasureCount, state.MeasureSum, state.MeasureDistinctCards:
		case "":
			ctr.Measure = state.MeasureCount
		default:
			c.errorf(pf.name, line, "counter %s: unknown measure %q (want count, sum or distinct_cards)", d.Name, d.Measure)
			ok = false
		}
		if ctr.Measure == state.MeasureDistinctCards && seenDim[state.DimAcquirer] {
			c.errorf(pf.name, line, "counter %s: measure distinct_cards with dimension acquirer: the whole switch's cards would overflow the %d a series remembers; count or sum only",
				d.Name, state.DefaultMaxDistinct)
			ok = false
		}
		w, err := ParseWindow(d.Window)
		switch {
		case err != nil:
			c.errorf(pf.name, keyLine(node, "window"), "counter %s: window %v", d.Name, err)
			ok = false
		case w < time.Second:
			c.errorf(pf.name, keyLine(node, "window"), "counter %s: window %s is shorter than 1s, the finest resolution", d.Name, d.Window)
			ok = false
		case w > MaxWindow:
			c.errorf(pf.name, keyLine(node, "window"), "counter %s: window %s is longer than %s, the longest a counter keeps", d.Name, d.Window, maxWindowName)
			ok = false
		}
		ctr.Window = w
		ctr.Resolution = max(w/30, time.Second)
		if d.Resolution != "" {
			r, err := ParseWindow(d.Resolution)
			switch {
			case err != nil:
				c.errorf(pf.name, keyLine(node, "resolution"), "counter %s: resolution %v", d.Name, err)
				ok = false
			case r < time.Second:
				c.errorf(pf.name, keyLine(node, "resolution"), "counter %s: resolution %s is shorter than 1s", d.Name, d.Resolution)
				ok = false
			case ok && r > w:
				c.errorf(pf.name, keyLine(node, "resolution"), "counter %s: resolution %s is longer than the window %s", d.Name, d.Resolution, d.Window)
				ok = false
			}
			ctr.Resolution = r
		}
		if ok {
			// Each read sums the key's buckets in the window (in the
			// authorization path), and each key's buckets are one Badger value.
			if nb := (w + ctr.Resolution - 1) / ctr.Resolution; nb > MaxBuckets {
				c.errorf(pf.name, keyLine(node, "resolution"), "counter %s: window %s at resolution %s is %d buckets, more than %d: use a resolution of at least %s",
					d.Name, d.Window, ctr.Resolution, nb, MaxBuckets, ((w+MaxBuckets-1)/MaxBuckets + time.Second - 1).Truncate(time.Second))
				ok = false
			}
		}
		if ctr.Where != "" && readsVelocity(ctr.Where) {
			ctr.whereVelocity = true
			c.laterWheres = append(c.laterWheres, laterWhere{pf: pf, node: node, ctr: ctr})
		} else if ctr.Where != "" {
			prog, cost, problems := compileExpr(ctr.Where, exprWhere, pf.name, keyNode(node, "where"), pf.lines, nil, c.opts.Lists, fmt.Sprintf("counter %s: where", d.Name))
			c.problems = append(c.problems, problems...)
			c.addCost(pf.name, keyLine(node, "where"), "counter "+d.Name, cost)
			ctr.where = prog
			ok = ok && prog != nil
		}
		ok = c.compileRetract(pf, node, ctr, &d) && ok
		if a, good := c.onError(pf, node, "counter "+d.Name, d.OnError, "a transaction its where fails on is not counted"); good {
			ctr.OnError = a
		} else {
			ok = false
		}
		if ctr.whereVelocity && ctr.retract != 0 {
			// Retract judges the original by its where filter again, later: the
			// counters it reads have other values then (the original itself among
			// them), so the filter could not say what it said when it counted.
			c.errorf(pf.name, keyLine(node, "where"), "counter %s: a where filter that reads velocity cannot retract (%s): the counters it reads have other values by the time of a void or refund; give retract: []",
				d.Name, strings.Join(ctr.Retract, ", "))
			ok = false
		}
		if !ok {
			if rs.badCounters == nil {
				rs.badCounters = map[string]bool{}
			}
			rs.badCounters[d.Name] = true
			continue
		}
		if len(rs.Counters) >= MaxCounters {
			c.errorf(pf.name, line, "counter %s: a rule set may declare at most %d counters", d.Name, MaxCounters)
			continue
		}
		ctr.Index = len(rs.Counters)
		nb := int64((ctr.Window + ctr.Resolution - 1) / ctr.Resolution)
		fp := xxhash.Sum64String(strings.Join([]string{ctr.Name, strings.Join(ctr.Dimensions, "+"), ctr.Measure,
			ctr.Window.String(), ctr.Resolution.String(), ctr.Where}, "\x00"))
		ctr.spec = state.CounterSpec{FP: fp, Measure: ctr.Measure, Dims: ctr.Dimensions, Window: ctr.Window, Width: int64(ctr.Resolution), NB: nb}
		if len(ctr.Dimensions) == 1 && ctr.Dimensions[0] == state.DimAcquirer {
			ctr.spec.Stripes = state.AcquirerStripes
		}
		ctr.dims = dimKeysOf(ctr.Dimensions)
		if ctr.Where != "" { // its program may come later (compileLaterWheres)
			src := strings.Join(strings.Fields(ctr.Where), " ")
			id, seen := rs.whereIDs[src]
			if !seen {
				if rs.whereIDs == nil {
					rs.whereIDs = map[string]int{}
				}
				id = len(rs.whereIDs)
				rs.whereIDs[src] = id
			}
			ctr.whereID = id
		}
		rs.Counters = append(rs.Counters, ctr)
		rs.counterByName[ctr.Name] = ctr
		rs.retracts |= ctr.retract
	}
}

func (c *compiler) compileThresholds(pf *parsedFile, seen map[string]string) *Thresholds {
	d := pf.doc.Thresholds
	if d == nil {
		return nil
	}
	line := keyLine(pf.root, "thresholds")
	base := strings.TrimSuffix(filepath.Base(pf.name), filepath.Ext(pf.name))
	t := &Thresholds{ID: d.ID, Review: d.Review, Decline: d.Decline, ResponseCode: d.ResponseCode, Reason: d.Reason, Mode: Mode(d.Mode), File: pf.name, Line: line}
	if t.ID == "" {
		t.ID = "score:" + base
	}
	if !idPattern.MatchString(t.ID) || carddata.InID(t.ID) {
		c.errorf(pf.name, line, "thresholds id %q: want letters, digits and _ . : - (at most 64), and no card number", carddata.MaskID(t.ID))
	}
	if prev, dup := seen[t.ID]; dup {
		c.errorf(pf.name, line, "thresholds id %s is used twice (first at %s)", t.ID, prev)
	}
	seen[t.ID] = fmt.Sprintf("%s:%d", pf.name, line)
	if t.Review < 0 || t.Decline < 0 || (t.Review == 0 && t.Decline == 0) {
		c.errorf(pf.name, line, "thresholds: give review and/or decline as positive scores")
	}
	if t.Review > 0 && t.Decline > 0 && t.Review >= t.Decline {
		c.errorf(pf.name, line, "thresholds: review (%d) must be below decline (%d)", t.Review, t.Decline)
	}
	if t.ResponseCode == "" {
		t.ResponseCode = "05"
	} else if !codePattern.MatchString(t.ResponseCode) || t.ResponseCode == "00" {
		c.errorf(pf.name, line, "thresholds: response_code %q: want two characters like \"05\" or \"59\", not 00", t.ResponseCode)
	}
	if t.Reason == "" {
		t.Reason = t.ID
	} else if !reasonPattern.MatchString(t.Reason) || carddata.InID(t.Reason) {
		c.errorf(pf.name, line, "thresholds: reason %q: want letters, digits and _ . : / - (at most 64), no spaces, no card number", carddata.MaskID(t.Reason))
	}
	switch t.Mode {
	case "":
		t.Mode = ModeEnforce
	case ModeEnforce, ModeShadow:
	default:
		c.errorf(pf.name, line, "thresholds: mode %q: want enforce or shadow", d.Mode)
	}
	return t
}

func (c *compiler) compileRule(rs *RuleSet, pf *parsedFile, i, fi int, index map[string]int, seen map[string]string) *Rule {
	d := pf.doc.Rules[i]
	node := item(pf.root, "rules", i)
	line := node.Line
	n0 := len(c.problems)
	r := &Rule{ID: d.ID, Description: strings.TrimSpace(d.Description), Condition: strings.TrimSpace(d.Condition),
		Action: Action(d.Action), ResponseCode: d.ResponseCode, Reason: d.Reason, Mode: Mode(d.Mode),
		Owner: d.Owner, File: pf.name, Line: line, fileIdx: fi}
	what := "rule " + d.ID
	switch {
	case d.ID == "":
		c.errorf(pf.name, line, "rule #%d: id missing", i+1)
		what = fmt.Sprintf("rule #%d", i+1)
	case !idPattern.MatchString(d.ID) || carddata.InID(d.ID):
		// A rule's id is a metric label and is journaled with every hit.
		c.errorf(pf.name, line, "rule id %q: want letters, digits and _ . : - (at most 64), and no card number", carddata.MaskID(d.ID))
	default:
		if prev, dup := seen[d.ID]; dup {
			c.errorf(pf.name, line, "rule id %s is used twice (first at %s)", d.ID, prev)
		}
		seen[d.ID] = fmt.Sprintf("%s:%d", pf.name, line)
	}
	switch r.Action {
	case ActionDecline, ActionReview, ActionAlert, ActionAllow:
	case "":
		c.errorf(pf.name, line, "%s: action missing (decline, review, alert or allow)", what)
	default:
		c.errorf(pf.name, keyLine(node, "action"), "%s: unknown action %q (want decline, review, alert or allow)", what, d.Action)
	}
	switch {
	case r.Action == ActionDecline && r.ResponseCode == "":
		r.ResponseCode = "05"
	case r.Action == ActionDecline && (!codePattern.MatchString(r.ResponseCode) || r.ResponseCode == "00"):
		c.errorf(pf.name, keyLine(node, "response_code"), "%s: response_code %q: want two characters like \"05\" or \"61\", not 00", what, r.ResponseCode)
	case r.Action != ActionDecline && r.ResponseCode != "" && r.Action.Rank() > 0:
		c.errorf(pf.name, keyLine(node, "response_code"), "%s: response_code applies only to action decline, not %s", what, r.Action)
	}
	if r.Reason == "" {
		r.Reason = r.ID
	} else if !reasonPattern.MatchString(r.Reason) || carddata.InID(r.Reason) {
		c.errorf(pf.name, keyLine(node, "reason"), "%s: reason %q: want letters, digits and _ . : / - (at most 64), no spaces, no card number: it goes to DE 48 RS and the journal", what, carddata.MaskID(r.Reason))
	}
	switch r.Mode {
	case "":
		r.Mode = ModeEnforce
	case ModeEnforce, ModeShadow:
	default:
		c.errorf(pf.name, keyLine(node, "mode"), "%s: mode %q: want enforce or shadow", what, d.Mode)
	}
	if a, ok := c.onError(pf, node, what, d.OnError, "a rule that fails is not hit"); ok {
		r.OnError = a
		r.onErrorCode = onErrorCodeOf(a, r)
	}
	if r.Owner == "" {
		r.Owner = pf.doc.Owner
	}
	if r.Condition == "" {
		c.errorf(pf.name, line, "%s: condition missing", what)
	} else {
		prog, cost, problems := compileExpr(r.Condition, exprCondition, pf.name, keyNode(node, "condition"), pf.lines, rs, c.opts.Lists, what+": condition")
		c.problems = append(c.problems, problems...)
		c.addCost(pf.name, line, what, cost)
		r.prog = prog
		r.Refs = refsOf(r.Condition)
	}
	if sn := keyNode(node, "score"); sn != nil {
		if sn.Kind != yaml.ScalarNode {
			c.errorf(pf.name, sn.Line, "%s: score: want a whole number or an expression", what)
		} else if v, err := strconv.Atoi(sn.Value); err == nil {
			r.Score = v
		} else {
			r.ScoreExpr = strings.TrimSpace(sn.Value)
			prog, cost, problems := compileExpr(r.ScoreExpr, exprScore, pf.name, sn, pf.lines, rs, c.opts.Lists, what+": score")
			c.problems = append(c.problems, problems...)
			c.addCost(pf.name, line, what+" score", cost)
			r.scoreProg = prog
			r.Refs = mergeRefs(r.Refs, refsOf(r.ScoreExpr))
		}
	}
	if r.Score < 0 {
		c.errorf(pf.name, keyLine(node, "score"), "%s: score %d is negative", what, r.Score)
	}
	for _, ref := range r.Refs {
		if name, ok := strings.CutPrefix(ref, "velocity."); ok {
			if ctr := rs.counterByName[name]; ctr != nil {
				ctr.used = true
				if r.Condition != "" && slices.Contains(refsOf(r.Condition), ref) {
					r.velMask |= 1 << ctr.Index
				}
				if r.ScoreExpr != "" && slices.Contains(refsOf(r.ScoreExpr), ref) {
					r.scoreMask |= 1 << ctr.Index
				}
			}
		}
		if strings.HasPrefix(ref, "lists.") {
			rs.usesLists = true
		}
	}
	r.velInc, r.velDec = monotone(r.Condition, rs, r.velMask)
	r.scoreInc, r.scoreDec = monotone(r.ScoreExpr, rs, r.scoreMask)
	if strings.Contains(r.Condition, "in_list") || strings.Contains(r.ScoreExpr, "in_list") {
		rs.usesLists = true
	}
	if len(d.Tests) == 0 && len(c.problems) == n0 {
		c.warnf(pf.name, line, "%s has no tests", what)
	}
	if r.prog != nil {
		c.lintConstant(pf, node, r, what)
	}
	if len(d.Tests) > 0 && len(c.problems) == n0 && (r.Action == ActionDecline || r.Action == ActionReview) {
		misses := 0
		for _, td := range d.Tests {
			if td.Expect == "miss" {
				misses++
			}
		}
		if misses == 0 {
			c.warnf(pf.name, line, "%s: no test expects a miss: nothing shows which transactions it lets through (a condition that is always true would %s every one)", what, r.Action)
		}
	}
	if len(c.problems) > n0 {
		return nil
	}
	return r
}

// onError reads an on_error value (of the rule or counter what, at node): "" for
// miss (the default: what says what that does), ActionReview or ActionDecline;
// false with a problem for anything else.
func (c *compiler) onError(pf *parsedFile, node *yaml.Node, what, v, miss string) (Action, bool) {
	switch v {
	case "", "miss":
		return "", true
	case string(ActionReview), string(ActionDecline):
		return Action(v), true
	}
	c.errorf(pf.name, keyLine(node, "on_error"), "%s: on_error %q: want miss (the default: %s), review or decline", what, v, miss)
	return "", false
}

// lintConstant reports a condition that reads nothing that changes per
// transaction (the compiler folded it to true or false). An enforced decline
// that is always true would decline every transaction: that is refused; the
// rest is a warning. One that fails when run fails on every transaction: that
// is refused whatever its on_error (with review or decline it would review or
// decline every transaction, with miss it never hits).
func (c *compiler) lintConstant(pf *parsedFile, node *yaml.Node, r *Rule, what string) {
	var value bool
	line := keyLine(node, "condition")
	if b, ok := r.prog.Node().(*ast.BoolNode); ok {
		value = b.Value
	} else {
		tree, err := parseExpr(r.Condition)
		if err != nil {
			return
		}
		v := &inputReader{}
		ast.Walk(&tree.Node, v)
		if v.reads {
			return
		}
		out, err := expr.Run(r.prog, Input{})
		if err != nil {
			// Until 7 December 2026 this was let through: int("abc") > 0 with
			// on_error: decline declined every transaction.
			msg := err.Error()
			if fe := (*file.Error)(nil); errors.As(err, &fe) {
				msg = fe.Message // without the snippet: the condition is quoted
			}
			c.errorf(pf.name, line, "%s: condition %q reads nothing of the transaction and fails on every transaction: %s",
				what, r.Condition, cleanExprMessage(msg))
			return
		}
		value, _ = out.(bool)
	}
	switch {
	case !value:
		c.warnf(pf.name, line, "%s: condition %q is always false: the rule never hits", what, r.Condition)
	case r.Action == ActionDecline && r.Mode == ModeEnforce:
		c.errorf(pf.name, line, "%s: condition %q is always true: the rule would decline every transaction (use mode: shadow to try it)", what, r.Condition)
	default:
		c.warnf(pf.name, line, "%s: condition %q is always true: the rule hits every transaction", what, r.Condition)
	}
}

// inputReader finds whether an expression reads anything that changes per
// transaction: a name of the environment ($env, the whole of it, too), or in_list.
type inputReader struct{ reads bool }

// Visit implements ast.Visitor.
func (v *inputReader) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		if envRoots[n.Value] || n.Value == "in_list" || n.Value == "$env" {
			v.reads = true
		}
	case *ast.CallNode:
		if id, ok := n.Callee.(*ast.IdentifierNode); ok && id.Value == "in_list" {
			v.reads = true
		}
	}
}

// compileLaterWheres compiles the where filters that read counters, now that every
// counter is declared, and notes the counters they read (rs.whereReads).
func (c *compiler) compileLaterWheres(rs *RuleSet) {
	for _, lw := range c.laterWheres {
		ctr := lw.ctr
		prog, cost, problems := compileExpr(ctr.Where, exprWhere, lw.pf.name, keyNode(lw.node, "where"), lw.pf.lines, rs, c.opts.Lists, fmt.Sprintf("counter %s: where", ctr.Name))
		c.problems = append(c.problems, problems...)
		c.addCost(lw.pf.name, keyLine(lw.node, "where"), "counter "+ctr.Name, cost)
		ctr.where = prog
		for _, ref := range refsOf(ctr.Where) {
			name, ok := strings.CutPrefix(ref, "velocity.")
			if !ok {
				continue
			}
			read := rs.counterByName[name]
			if read == nil {
				continue
			}
			ctr.whereMask |= 1 << read.Index
			if !read.readByWhere {
				read.readByWhere = true
				rs.whereReads = append(rs.whereReads, read)
			}
		}
		ctr.whereInc, ctr.whereDec = monotone(ctr.Where, rs, ctr.whereMask)
	}
}

// readsVelocity reports whether an expression reads velocity (a counter); false
// when it does not parse (its compilation reports that).
func readsVelocity(src string) bool {
	if !strings.Contains(src, "velocity") {
		return false
	}
	tree, err := parseExpr(src)
	if err != nil {
		return false
	}
	v := &velocityReader{}
	ast.Walk(&tree.Node, v)
	return v.reads
}

// velocityReader finds the name velocity in an expression.
type velocityReader struct{ reads bool }

// Visit implements ast.Visitor.
func (v *velocityReader) Visit(node *ast.Node) {
	if id, ok := (*node).(*ast.IdentifierNode); ok && id.Value == "velocity" {
		v.reads = true
	}
}
