package ruleset

import (
	"errors"
	"math"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"github.com/switchyard/switchyard/risk/state"
)

// exprOptions are the compile options every rule, score and where expression
// shares: the typed environment (Input) and the helper functions.
func exprOptions(lists *state.Lists) []expr.Option {
	return []expr.Option{
		expr.Env(Input{}),
		// now() would make a rule depend on when it runs, not on the
		// transaction: backtests could not reproduce it. Use txn.time.
		expr.DisableBuiltin("now"),
		// x / 0 is +Inf (or NaN) in expr, which compares greater than any limit:
		// a rule like txn.amount / merchant.single_limit > 2 would then decline
		// every transaction of a merchant with no limit set (0). Division goes
		// through divide, which makes a zero divisor a run-time error instead:
		// the rule counts as not hit and the decision lists the error.
		expr.Function(divideFunc, func(p ...any) (any, error) {
			return Divide(toFloat(p[0]), toFloat(p[1]))
		}, new(func(int, int) float64), new(func(int, float64) float64),
			new(func(float64, int) float64), new(func(float64, float64) float64)),
		expr.Operator("/", divideFunc),
		expr.Function("geo_distance", func(p ...any) (any, error) {
			return GeoDistance(p[0].(float64), p[1].(float64), p[2].(float64), p[3].(float64)), nil
		}, new(func(float64, float64, float64, float64) float64)),
		expr.Function("in_list", func(p ...any) (any, error) {
			return lists.Contains(p[0].(string), p[1].(string), p[2].(string), time.Now()), nil
		}, new(func(string, string, string) bool)),
		expr.Function("hour_between", func(p ...any) (any, error) {
			return HourBetween(p[0].(int), p[1].(int), p[2].(int)), nil
		}, new(func(int, int, int) bool)),
		expr.Function("time_between", func(p ...any) (any, error) {
			return TimeBetween(p[0].(string), p[1].(string), p[2].(string)), nil
		}, new(func(string, string, string) bool)),
		expr.Function("just_under", func(p ...any) (any, error) {
			return JustUnder(p[0].(int), p[1].(int), p[2].(int)), nil
		}, new(func(int, int, int) bool)),
		expr.Function("round_amount", func(p ...any) (any, error) {
			return RoundAmount(p[0].(int), p[1].(int)), nil
		}, new(func(int, int) bool)),
	}
}

// divideFunc is the function the / operator of numbers compiles to.
const divideFunc = "divide"

// ErrDivisionByZero is the run-time error of a division by zero in an expression.
var ErrDivisionByZero = errors.New("division by zero")

// Divide is a / b, or ErrDivisionByZero when b is 0 (expr: the / operator, and divide).
func Divide(a, b float64) (float64, error) {
	if b == 0 {
		return 0, ErrDivisionByZero
	}
	return a / b, nil
}

// toFloat converts an int or float64 operand of / to float64.
func toFloat(v any) float64 {
	switch x := v.(type) {
	case int:
		return float64(x)
	case float64:
		return x
	}
	return math.NaN()
}

// GeoDistance is the great-circle distance in metres between two WGS84
// points given in decimal degrees (expr: geo_distance).
func GeoDistance(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371008.8 // mean Earth radius, metres
	rad := math.Pi / 180
	dLat := (lat2 - lat1) * rad
	dLon := (lon2 - lon1) * rad
	a := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(a)))
}

// HourBetween reports whether hour h lies in [from, to), wrapping past
// midnight when from > to: HourBetween(23, 22, 6) is true (expr: hour_between).
func HourBetween(h, from, to int) bool {
	if from <= to {
		return h >= from && h < to
	}
	return h >= from || h < to
}

// TimeBetween reports whether the "HH:MM" time t lies in [from, to), wrapping
// past midnight when from > to (expr: time_between).
func TimeBetween(t, from, to string) bool {
	if from <= to {
		return t >= from && t < to
	}
	return t >= from || t < to
}

// JustUnder reports whether amount is below limit by at most pct percent of
// it: JustUnder(99000, 100000, 5) is true (expr: just_under). A limit of 0
// (no limit) gives false.
func JustUnder(amount, limit, pct int) bool {
	if limit <= 0 || amount >= limit {
		return false
	}
	return amount*100 >= limit*(100-pct)
}

// RoundAmount reports whether amount is a positive multiple of unit
// (expr: round_amount; round_amount(txn.amount, 10000) for whole 100.00s).
func RoundAmount(amount, unit int) bool {
	return unit > 0 && amount > 0 && amount%unit == 0
}

// vmPoolT hands out expr VMs: a VM is reused across evaluations but never
// shared between goroutines.
type vmPoolT struct{ p sync.Pool }

func newVMPool() *vmPoolT {
	return &vmPoolT{p: sync.Pool{New: func() any { return new(vm.VM) }}}
}

func (p *vmPoolT) get() *vm.VM  { return p.p.Get().(*vm.VM) }
func (p *vmPoolT) put(v *vm.VM) { p.p.Put(v) }
