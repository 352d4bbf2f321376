package payshield

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the client's Prometheus metrics.
type Metrics struct {
	// Latency is the round trip of each command, by command code.
	Latency *prometheus.HistogramVec
	// Errors counts failed commands by command code and error code ("timeout" and
	// "unavailable" when no answer came).
	Errors *prometheus.CounterVec
	// Up is 1 for an HSM address that answers its health checks, 0 otherwise.
	Up *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchyard_hsm_command_seconds", Help: "Round trip of payShield host commands, by command.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"command"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_hsm_errors_total", Help: "payShield host commands that failed, by command and error code (timeout, unavailable).",
		}, []string{"command", "code"}),
		Up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_hsm_up", Help: "1 when the HSM at addr answers its NC health check.",
		}, []string{"addr"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.Latency, m.Errors, m.Up} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
