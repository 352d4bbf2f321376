package metrics

import "github.com/prometheus/client_golang/prometheus"

// RiskCounts are the risk engine's figures a scrape reads (risk.Engine.Stats and
// LastReload).
type RiskCounts struct {
	Evaluations int64 // rule-set evaluations
	// RuleErrors are the rule and counter expressions that failed at run time, by
	// rule id (a counter's filter: "counter NAME"; risk.Engine.RuleErrors).
	RuleErrors     map[string]int64
	Series         int64 // velocity counter series in memory
	SeriesBytes    int64 // their heap, as the store estimates it
	MaxBytes       int64 // the store's memory budget
	MaxSeries      int64 // the store's cap on series
	Evicted        int64 // series evicted from a full store
	EvictedLive    int64 // of which still counted something (counts lost)
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
		"Rule and counter expressions that failed at run time, by rule (a counter's filter: \"counter NAME\"); a rule that fails counts as not hit unless it declares on_error.", []string{"rule"}, nil)
	riskSeries = prometheus.NewDesc("switchyard_risk_velocity_series",
		"Velocity counter series (keys) in memory.", nil, nil)
	riskSeriesBytes = prometheus.NewDesc("switchyard_risk_velocity_bytes",
		"Heap the velocity counter series take, as the store estimates it (what its budget is held against).", nil, nil)
	riskSeriesBudget = prometheus.NewDesc("switchyard_risk_velocity_budget_bytes",
		"Memory budget of the velocity counter series (risk.counter_memory_mb): at it, or at the cap on series, the store evicts.", nil, nil)
	riskSeriesCap = prometheus.NewDesc("switchyard_risk_velocity_max_series",
		"Cap on the velocity counter series in memory.", nil, nil)
	riskEvictions = prometheus.NewDesc("switchyard_risk_velocity_evictions_total",
		"Velocity counter series evicted from a full store, by kind: expired (counted nothing any more) or live (counts lost: alert on it).", []string{"kind"}, nil)
	riskReloads = prometheus.NewDesc("switchyard_risk_rules_reloads_total",
		"Risk rule reloads by result: ok (the new rules took effect) or refused (a problem in them: the previous rules stay).", []string{"result"}, nil)
	riskLastReloadOK = prometheus.NewDesc("switchyard_risk_rules_last_reload_ok",
		"1 when the last reload of the risk rules (or the initial load) took effect, 0 when it was refused and the previous rules run.", nil, nil)
)

func (c riskCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{riskEvaluations, riskRunErrors, riskReloads, riskLastReloadOK,
		riskSeries, riskSeriesBytes, riskSeriesBudget, riskSeriesCap, riskEvictions} {
		ch <- d
	}
}

func (c riskCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.read()
	ch <- prometheus.MustNewConstMetric(riskEvaluations, prometheus.CounterValue, float64(r.Evaluations))
	for rule, n := range r.RuleErrors {
		ch <- prometheus.MustNewConstMetric(riskRunErrors, prometheus.CounterValue, float64(n), rule)
	}
	ch <- prometheus.MustNewConstMetric(riskSeries, prometheus.GaugeValue, float64(r.Series))
	ch <- prometheus.MustNewConstMetric(riskSeriesBytes, prometheus.GaugeValue, float64(r.SeriesBytes))
	ch <- prometheus.MustNewConstMetric(riskSeriesBudget, prometheus.GaugeValue, float64(r.MaxBytes))
	ch <- prometheus.MustNewConstMetric(riskSeriesCap, prometheus.GaugeValue, float64(r.MaxSeries))
	ch <- prometheus.MustNewConstMetric(riskEvictions, prometheus.CounterValue, float64(r.Evicted-r.EvictedLive), "expired")
	ch <- prometheus.MustNewConstMetric(riskEvictions, prometheus.CounterValue, float64(r.EvictedLive), "live")
	ch <- prometheus.MustNewConstMetric(riskReloads, prometheus.CounterValue, float64(r.Reloads), "ok")
	ch <- prometheus.MustNewConstMetric(riskReloads, prometheus.CounterValue, float64(r.ReloadsRefused), "refused")
	ok := 0.0
	if r.LastReloadOK {
		ok = 1
	}
	ch <- prometheus.MustNewConstMetric(riskLastReloadOK, prometheus.GaugeValue, ok)
}
