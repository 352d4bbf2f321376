package metrics

import "github.com/prometheus/client_golang/prometheus"

// RiskCounts are the risk engine's figures a scrape reads (risk.Engine.Stats and
// LastReload).
type RiskCounts struct {
	Evaluations    int64 // rule-set evaluations
	RunErrors      int64 // rule and counter expressions that failed at run time
	Reloads        int64 // reloads that took effect
	ReloadsRefused int64 // reloads refused for a problem (the previous rules stayed)
	LastReloadOK   bool  // the last reload attempt (or the initial load) took effect
}

// RiskCollector exports the risk engine's figures, read from the engine at each
// scrape: alert on switchyard_risk_rules_last_reload_ok == 0 (an analyst's change
// was refused and the switch still runs the rules before it).
func RiskCollector(read func() RiskCounts) prometheus.Collector { return riskCollector{read} }

type riskCollector struct{ read func() RiskCounts }

var (
	riskEvaluations = prometheus.NewDesc("switchyard_risk_evaluations_total",
		"Transactions evaluated by the risk rules.", nil, nil)
	riskRunErrors = prometheus.NewDesc("switchyard_risk_run_errors_total",
		"Rule and counter expressions that failed at run time (a rule that fails counts as not hit).", nil, nil)
	riskReloads = prometheus.NewDesc("switchyard_risk_rules_reloads_total",
		"Risk rule reloads by result: ok (the new rules took effect) or refused (a problem in them: the previous rules stay).", []string{"result"}, nil)
	riskLastReloadOK = prometheus.NewDesc("switchyard_risk_rules_last_reload_ok",
		"1 when the last reload of the risk rules (or the initial load) took effect, 0 when it was refused and the previous rules run.", nil, nil)
)

func (c riskCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{riskEvaluations, riskRunErrors, riskReloads, riskLastReloadOK} {
		ch <- d
	}
}

func (c riskCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.read()
	ch <- prometheus.MustNewConstMetric(riskEvaluations, prometheus.CounterValue, float64(r.Evaluations))
	ch <- prometheus.MustNewConstMetric(riskRunErrors, prometheus.CounterValue, float64(r.RunErrors))
	ch <- prometheus.MustNewConstMetric(riskReloads, prometheus.CounterValue, float64(r.Reloads), "ok")
	ch <- prometheus.MustNewConstMetric(riskReloads, prometheus.CounterValue, float64(r.ReloadsRefused), "refused")
	ok := 0.0
	if r.LastReloadOK {
		ok = 1
	}
	ch <- prometheus.MustNewConstMetric(riskLastReloadOK, prometheus.GaugeValue, ok)
}
