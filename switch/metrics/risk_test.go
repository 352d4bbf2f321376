package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRiskCollector: a refused reload shows in the reload counts and the last-reload
// gauge; run-time errors by rule; the counter store's size, budget and evictions,
// the live ones apart.
func TestRiskCollector(t *testing.T) {
	counts := RiskCounts{Evaluations: 10, RuleErrors: map[string]int64{"amount-check": 2, "counter card_attempts_10m": 1},
		Reloads: 2, ReloadsRefused: 1, Series: 5, SeriesBytes: 130, MaxBytes: 1 << 20, MaxSeries: 100, Evicted: 7, EvictedLive: 4}
	reg := prometheus.NewRegistry()
	reg.MustRegister(RiskCollector(func() RiskCounts { return counts }))
	want := `
# HELP switchyard_risk_rules_last_reload_ok 1 when the last reload of the risk rules (or the initial load) took effect, 0 when it was refused and the previous rules run.
# TYPE switchyard_risk_rules_last_reload_ok gauge
switchyard_risk_rules_last_reload_ok 0
# HELP switchyard_risk_rules_reloads_total Risk rule reloads by result: ok (the new rules took effect) or refused (a problem in them: the previous rules stay).
# TYPE switchyard_risk_rules_reloads_total counter
switchyard_risk_rules_reloads_total{result="ok"} 2
switchyard_risk_rules_reloads_total{result="refused"} 1
# HELP switchyard_risk_run_errors_total Rule and counter expressions that failed at run time, by rule (a counter's filter: "counter NAME"); a rule that fails counts as not hit unless it declares on_error.
# TYPE switchyard_risk_run_errors_total counter
switchyard_risk_run_errors_total{rule="amount-check"} 2
switchyard_risk_run_errors_total{rule="counter card_attempts_10m"} 1
# HELP switchyard_risk_velocity_series Velocity counter series (keys) in memory.
# TYPE switchyard_risk_velocity_series gauge
switchyard_risk_velocity_series 5
# HELP switchyard_risk_velocity_bytes Heap the velocity counter series take, as the store estimates it (what its budget is held against).
# TYPE switchyard_risk_velocity_bytes gauge
switchyard_risk_velocity_bytes 130
# HELP switchyard_risk_velocity_budget_bytes Memory budget of the velocity counter series (risk.counter_memory_mb): at it, or at the cap on series, the store evicts.
# TYPE switchyard_risk_velocity_budget_bytes gauge
switchyard_risk_velocity_budget_bytes 1.048576e+06
# HELP switchyard_risk_velocity_evictions_total Velocity counter series evicted from a full store, by kind: expired (counted nothing any more) or live (counts lost: alert on it).
# TYPE switchyard_risk_velocity_evictions_total counter
switchyard_risk_velocity_evictions_total{kind="expired"} 3
switchyard_risk_velocity_evictions_total{kind="live"} 4
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "switchyard_risk_rules_last_reload_ok",
		"switchyard_risk_rules_reloads_total", "switchyard_risk_run_errors_total", "switchyard_risk_velocity_series",
		"switchyard_risk_velocity_bytes", "switchyard_risk_velocity_budget_bytes", "switchyard_risk_velocity_evictions_total"); err != nil {
		t.Error(err)
	}
	counts.LastReloadOK = true
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP switchyard_risk_rules_last_reload_ok 1 when the last reload of the risk rules (or the initial load) took effect, 0 when it was refused and the previous rules run.
# TYPE switchyard_risk_rules_last_reload_ok gauge
switchyard_risk_rules_last_reload_ok 1
`), "switchyard_risk_rules_last_reload_ok"); err != nil {
		t.Error(err)
	}
}
