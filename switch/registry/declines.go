package registry

import (
	dto "github.com/prometheus/client_model/go"
)

// DeclineCounts returns the binding checks' declines by reason since the start
// (what switchyard_registry_declines_total exports), for the console's
// dashboard, which reads them each second without gathering the whole metrics
// registry (whose gauges ask the cluster's JetStream).
func (r *store) DeclineCounts() map[Reason]float64 {
	out := map[Reason]float64{}
	if r.m == nil {
		return out
	}
	for reason, c := range r.m.declines {
		var m dto.Metric
		if err := c.Write(&m); err == nil && m.GetCounter().GetValue() > 0 {
			out[reason] = m.GetCounter().GetValue()
		}
	}
	return out
}
