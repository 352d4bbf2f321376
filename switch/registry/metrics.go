package registry

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	incidents   *prometheus.CounterVec
	waiting     *prometheus.GaugeVec // incidents not ordered yet (cluster)
	alerts      *prometheus.CounterVec
	suspensions *prometheus.CounterVec
	webhooks    *prometheus.CounterVec        // alert webhook actions by result
	withheld    *prometheus.CounterVec        // suspend actions not carried out, by reason
	declines    map[Reason]prometheus.Counter // resolved once, so Check does no label lookup
	// flagged counts what bound terminals of policy flag left out, by bit of the
	// missing mask (device, sim, imei, location), resolved once like declines.
	flagged [4]prometheus.Counter
}

// newMetrics creates the registry's counters and registers them on reg (if not nil).
//
//	switchyard_registry_declines_total{reason}          binding/integrity declines by Check
//	switchyard_registry_flagged_total{missing}          requests accepted under policy flag without device, sim, imei or location
//	switchyard_registry_incidents_total{reason}         incidents created
//	switchyard_registry_alerts_total{rule}              offline alerts raised
//	switchyard_registry_auto_suspensions_total{cause}   terminals suspended by the switch
//	switchyard_registry_incidents_waiting{where}        incidents not yet ordered in a cluster (memory, disk)
//	switchyard_registry_alert_webhooks_total{result}    alert webhook posts: posted, failed, not-posted, deferred, held
//	switchyard_registry_suspensions_withheld_total{reason} suspend actions not carried out: mass-silence, wave-limit
func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	m := &metrics{
		incidents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_registry_incidents_total",
			Help: "Binding and device-integrity incidents created, by reason.",
		}, []string{"reason"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_registry_alerts_total",
			Help: "Offline alerts raised, by alert rule.",
		}, []string{"rule"}),
		suspensions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_registry_auto_suspensions_total",
			Help: "Terminals suspended automatically, by cause (device-compromised, offline-alert).",
		}, []string{"cause"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_registry_alert_webhooks_total",
			Help: "Alert webhook actions by result: posted; failed (every attempt); not-posted (their target failed earlier in the monitor's run); deferred (the run made its alerts.webhook_max_per_run posts to the target); held (the target answered 429 or 503 with a Retry-After not passed yet). All but posted are tried again by later runs.",
		}, []string{"result"}),
		withheld: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_registry_suspensions_withheld_total",
			Help: "Suspend actions of alert rules not carried out, by reason: mass-silence (too many terminals went offline within the window: a common cause assumed, not suspended), wave-limit (held as a change for a reviewer).",
		}, []string{"reason"}),
		waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_registry_incidents_waiting",
			Help: "Incidents recorded on this node and not yet ordered through the cluster (no quorum), in the writer's memory or kept on disk.",
		}, []string{"where"}),
		declines: map[Reason]prometheus.Counter{},
	}
	for _, r := range []string{"posted", "failed", "not-posted", "deferred", "held"} {
		m.webhooks.WithLabelValues(r) // export zeros
	}
	for _, c := range []string{"device-compromised", "offline-alert"} {
		m.suspensions.WithLabelValues(c) // export zeros: an alert's increase() sees the first one
	}
	for _, r := range []string{"mass-silence", "wave-limit"} {
		m.withheld.WithLabelValues(r)
	}
	m.waiting.WithLabelValues("memory")
	m.waiting.WithLabelValues("disk")
	declines := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_registry_declines_total",
		Help: "Requests declined by the terminal binding and integrity checks, by reason.",
	}, []string{"reason"})
	for _, x := range Reasons {
		m.declines[x.Reason] = declines.WithLabelValues(string(x.Reason))
		if x.Incident {
			m.incidents.WithLabelValues(string(x.Reason)) // export zeros
		}
	}
	flagged := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_registry_flagged_total",
		Help: "Requests of bound terminals of missing-identity policy flag accepted without a bound identity or their location, by what was missing (device, sim, imei, location; one request may count under several).",
	}, []string{"missing"})
	for i, what := range []string{"device", "sim", "imei", "location"} {
		m.flagged[i] = flagged.WithLabelValues(what)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.incidents, m.alerts, m.suspensions, declines, flagged, m.waiting, m.webhooks, m.withheld} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("registry: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

// flag counts a request accepted under policy flag with the missing mask missing
// (bit 0 device, 1 sim, 2 imei, 3 location).
func (m *metrics) flag(missing int) {
	for b := range m.flagged {
		if missing&(1<<b) != 0 {
			m.flagged[b].Inc()
		}
	}
}

func (m *metrics) decline(r Reason) {
	if c := m.declines[r]; c != nil {
		c.Inc()
	}
}
