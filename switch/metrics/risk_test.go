package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRiskCollector: a refused reload shows in the reload counts and the last-reload gauge.
func TestRiskCollector(t *testing.T) {
	counts := RiskCounts{Evaluations: 10, RunErrors: 3, Reloads: 2, ReloadsRefused: 1}
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
# HELP switchyard_risk_run_errors_total Rule and counter expressions that failed at run time (a rule that fails counts as not hit).
# TYPE switchyard_risk_run_errors_total counter
switchyard_risk_run_errors_total 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "switchyard_risk_rules_last_reload_ok",
		"switchyard_risk_rules_reloads_total", "switchyard_risk_run_errors_total"); err != nil {
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
