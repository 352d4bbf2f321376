package cluster

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/switch/cluster/ordered"
)

// Metrics are the cluster's Prometheus collectors (docs/cluster.md, "Metrics").
// The replicated journal, the state logs and the store-and-forward queue call
// its methods; a nil *Metrics takes every call and records nothing, so that a
// store built without metrics (a test) needs no check.
type Metrics struct {
	// PublishLatency is the time from a publish (or a group's first publish)
	// to JetStream's acknowledgement, by stream.
	PublishLatency *prometheus.HistogramVec
	// AcksPerGroup is how many acknowledgements one wait collected: the size
	// of an asynchronous publish group, by stream.
	AcksPerGroup *prometheus.HistogramVec
	// ReplicationLag is how many operations the most lagging replica of a
	// stream or bucket is behind its leader, by stream.
	ReplicationLag *prometheus.GaugeVec
	// ConsumerBacklog is a durable consumer's messages not yet delivered plus
	// delivered and not yet acknowledged, by stream and consumer.
	ConsumerBacklog *prometheus.GaugeVec
	// StateCommits is how many of a shared store's commits the STATE stream
	// held at this node's last look (every compaction check), by store.
	StateCommits *prometheus.GaugeVec
	// Compactions counts this node's compactions of the shared stores, by store
	// and result: compacted, waited (its snapshot is too young), conflict
	// (another node's won), blocked (a node of an older version), failed.
	Compactions *prometheus.CounterVec
	// RecordLocks counts the cluster-wide locks of records taken by this node
	// (refunds, voids, reversals and completions of an original), by result:
	// taken at once, waited (another node's change held it first), failed (held
	// too long, or no quorum: the change was not made).
	RecordLocks *prometheus.CounterVec

	// ConsumersReplaced counts the consumers this node's followers of a stream
	// replaced (switch/cluster/ordered), by stream and reason: stalled (it
	// delivered nothing while the stream's leader held messages for it),
	// heartbeat, gone, gap, other.
	ConsumersReplaced *prometheus.CounterVec
	// ReadsWithoutConsumer counts the messages followers read themselves while no
	// consumer could be created (ordered.Config.Bridged).
	ReadsWithoutConsumer *prometheus.CounterVec

	// Shed counts the requests this node refused at once (91, nothing published)
	// while its journal's applier was behind the stream; Shedding is 1 while it
	// does (cluster.shed_after).
	Shed     prometheus.Counter
	Shedding prometheus.Gauge

	backlogMu sync.Mutex
	backlogOf map[string]map[string]bool // stream -> its consumers in the last status
}

// NewMetrics creates the collectors and registers them on r.
func NewMetrics(r prometheus.Registerer) (*Metrics, error) {
	lat := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	m := &Metrics{
		PublishLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchyard_cluster_publish_seconds", Help: "Time from a JetStream publish (a group's first) to its acknowledgement, by stream.", Buckets: lat,
		}, []string{"stream"}),
		AcksPerGroup: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchyard_cluster_acks_per_group", Help: "JetStream acknowledgements collected by one wait (asynchronous publish group size), by stream.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
		}, []string{"stream"}),
		ReplicationLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_cluster_replication_lag", Help: "Operations the most lagging replica of a stream or KV bucket is behind its leader, by stream.",
		}, []string{"stream"}),
		ConsumerBacklog: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_cluster_consumer_backlog", Help: "A durable consumer's messages pending delivery or acknowledgement, by stream and consumer.",
		}, []string{"stream", "consumer"}),
		StateCommits: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_cluster_state_commits", Help: "A shared store's commits held by the STATE stream at this node's last look, by store.",
		}, []string{"store"}),
		Compactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_cluster_compactions_total", Help: "This node's compactions of the shared stores, by store and result (compacted, waited, conflict, blocked, failed).",
		}, []string{"store", "result"}),
		RecordLocks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_cluster_record_locks_total", Help: "Cluster-wide locks of records taken by this node to change an original, by result (taken, waited, failed).",
		}, []string{"result"}),
		ConsumersReplaced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_cluster_consumers_replaced_total", Help: "Consumers this node's stream followers replaced, by stream and reason (stalled, heartbeat, gone, gap, other).",
		}, []string{"stream", "reason"}),
		ReadsWithoutConsumer: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_cluster_reads_without_consumer_total", Help: "Messages this node's stream followers read themselves (direct or message gets) while no consumer could be created (no meta leader), by stream.",
		}, []string{"stream"}),
		Shed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_cluster_requests_shed_total", Help: "Requests this node answered 91 at once, publishing nothing, while its journal's applier was behind the stream (cluster.shed_after).",
		}),
		Shedding: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_cluster_shedding", Help: "1 while this node refuses new requests because its journal's applier is behind the stream, else 0.",
		}),
	}
	for _, result := range []string{"taken", "waited", "failed"} {
		m.RecordLocks.WithLabelValues(result) // at zero: the alert's increase() sees the first failure
	}
	for _, c := range []prometheus.Collector{m.PublishLatency, m.AcksPerGroup, m.ReplicationLag, m.ConsumerBacklog, m.StateCommits, m.Compactions, m.RecordLocks, m.ConsumersReplaced, m.ReadsWithoutConsumer, m.Shed, m.Shedding} {
		if err := r.Register(c); err != nil {
			return nil, fmt.Errorf("cluster: register metrics: %w", err)
		}
	}
	return m, nil
}

// ObservePublish records one publish's (or group's) wait for its acknowledgement.
func (m *Metrics) ObservePublish(stream string, d time.Duration) {
	if m != nil {
		m.PublishLatency.WithLabelValues(stream).Observe(d.Seconds())
	}
}

// ObserveGroup records the number of acknowledgements one group wait collected.
func (m *Metrics) ObserveGroup(stream string, acks int) {
	if m != nil {
		m.AcksPerGroup.WithLabelValues(stream).Observe(float64(acks))
	}
}

// ObserveShed counts one request refused while the journal's applier is behind.
func (m *Metrics) ObserveShed() {
	if m != nil {
		m.Shed.Inc()
	}
}

// SetShedding sets whether this node refuses new requests (its applier behind).
func (m *Metrics) SetShedding(on bool) {
	if m != nil {
		v := 0.0
		if on {
			v = 1
		}
		m.Shedding.Set(v)
	}
}

// ObserveRecordLock counts one record lock by its result: taken, waited or failed.
func (m *Metrics) ObserveRecordLock(result string) {
	if m != nil {
		m.RecordLocks.WithLabelValues(result).Inc()
	}
}

// SetReplicationLag sets how many operations stream's most lagging replica is behind.
func (m *Metrics) SetReplicationLag(stream string, behind uint64) {
	if m != nil {
		m.ReplicationLag.WithLabelValues(stream).Set(float64(behind))
	}
}

// SetConsumerBacklog sets a consumer's messages pending delivery or acknowledgement.
func (m *Metrics) SetConsumerBacklog(stream, consumer string, pending uint64) {
	if m != nil {
		m.ConsumerBacklog.WithLabelValues(stream, consumer).Set(float64(pending))
	}
}

// UpdateFromStatus sets the lag and backlog gauges from a Status (the lead's
// periodic poll, or each `cluster status` answer): a stream's (or bucket's,
// named KV_<bucket>) lag is its most lagging peer's; a consumer's backlog is
// its pending plus its unacknowledged messages. The backlog series of a consumer
// that a stream in st no longer has is deleted: consumers come and go with
// failovers (each node's ephemeral names), and a series frozen at its last backlog
// would keep an alert firing for good.
func (m *Metrics) UpdateFromStatus(st *Status) {
	if m == nil || st == nil {
		return
	}
	m.backlogMu.Lock()
	defer m.backlogMu.Unlock()
	if m.backlogOf == nil {
		m.backlogOf = map[string]map[string]bool{}
	}
	set := func(name string, s Stream) {
		var lag uint64
		for _, p := range s.Peers {
			lag = max(lag, p.Lag)
		}
		m.SetReplicationLag(name, lag)
		seen := make(map[string]bool, len(s.Consumers))
		for _, c := range s.Consumers {
			m.SetConsumerBacklog(name, c.Name, c.Pending+uint64(max(c.AckPending, 0)))
			seen[c.Name] = true
		}
		for c := range m.backlogOf[name] {
			if !seen[c] {
				m.ConsumerBacklog.DeleteLabelValues(name, c)
			}
		}
		m.backlogOf[name] = seen
	}
	for _, s := range st.Streams {
		set(s.Name, s)
	}
	for _, b := range st.Buckets {
		set("KV_"+b.Name, b)
	}
}

// SetStateCommits sets how many of store's commits the STATE stream holds.
func (m *Metrics) SetStateCommits(store string, held uint64) {
	if m != nil {
		m.StateCommits.WithLabelValues(store).Set(float64(held))
	}
}

// PrepareCompaction creates store's count of compactions with result at zero,
// so that increase() over it sees the first one.
func (m *Metrics) PrepareCompaction(store, result string) {
	if m != nil {
		m.Compactions.WithLabelValues(store, result)
	}
}

// ObserveCompaction counts one compaction of store with its result.
func (m *Metrics) ObserveCompaction(store, result string) {
	if m != nil {
		m.Compactions.WithLabelValues(store, result).Inc()
	}
}

// PrepareConsumersReplaced creates stream's counts of replaced consumers, one
// per reason, and of messages read from its leader, at zero, so that
// increase() over them sees the first one.
func (m *Metrics) PrepareConsumersReplaced(stream string) {
	if m != nil {
		m.ReadsWithoutConsumer.WithLabelValues(stream)
		for _, reason := range ordered.Reasons {
			m.ConsumersReplaced.WithLabelValues(stream, reason)
		}
	}
}

// ObserveReadsWithoutConsumer counts n messages of stream a follower read itself while
// it had no consumer (ordered.Config.Bridged).
func (m *Metrics) ObserveReadsWithoutConsumer(stream string, n int) {
	if m != nil {
		m.ReadsWithoutConsumer.WithLabelValues(stream).Add(float64(n))
	}
}

// ObserveConsumerReplaced counts one consumer of stream replaced for reason
// (ordered.Config.Replaced).
func (m *Metrics) ObserveConsumerReplaced(stream, reason string) {
	if m != nil {
		m.ConsumersReplaced.WithLabelValues(stream, reason).Inc()
	}
}
