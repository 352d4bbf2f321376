package cluster

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/statelog"
)

// TestMetrics: the collectors register under their documented names, a nil
// *Metrics takes every call, and UpdateFromStatus sets a stream's lag to its
// most lagging peer's and a consumer's backlog to pending plus unacked.
func TestMetrics(t *testing.T) {
	var none *Metrics
	none.ObservePublish("JOURNAL", time.Millisecond)
	none.ObserveGroup("JOURNAL", 3)
	none.SetReplicationLag("JOURNAL", 1)
	none.SetConsumerBacklog("SAF", "visa", 1)
	none.UpdateFromStatus(&Status{})

	r := prometheus.NewRegistry()
	m, err := NewMetrics(r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(r); err == nil {
		t.Fatal("registered twice on one registry without an error")
	}
	m.ObservePublish("JOURNAL", 2*time.Millisecond)
	m.ObserveGroup("JOURNAL", 17)
	m.UpdateFromStatus(&Status{
		Streams: []Stream{{Name: "SAF", Peers: []Peer{{Name: "n2", Lag: 3}, {Name: "n3", Lag: 9}},
			Consumers: []Consumer{{Name: "visa", Pending: 4, AckPending: 2}}}},
		Buckets: []Stream{{Name: "leases", Peers: []Peer{{Name: "n2"}}}},
	})
	fams, err := r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			key := f.GetName() + labels(mt)
			switch {
			case mt.Gauge != nil:
				got[key] = mt.Gauge.GetValue()
			case mt.Histogram != nil:
				got[key+"_sum"] = mt.Histogram.GetSampleSum()
				got[key+"_count"] = float64(mt.Histogram.GetSampleCount())
			}
		}
	}
	for key, want := range map[string]float64{
		`switchyard_cluster_replication_lag{stream="SAF"}`:                  9,
		`switchyard_cluster_replication_lag{stream="KV_leases"}`:            0,
		`switchyard_cluster_consumer_backlog{consumer="visa",stream="SAF"}`: 6,
		`switchyard_cluster_acks_per_group{stream="JOURNAL"}_sum`:           17,
		`switchyard_cluster_publish_seconds{stream="JOURNAL"}_count`:        1,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v; gathered %v", key, v, ok, want, got)
		}
	}
	// A consumer gone from its stream (a failover's) loses its series; another
	// stream's, absent from this status, keeps its own (a trial found 93 series for
	// 28 live consumers, some frozen at thousands).
	m.UpdateFromStatus(&Status{Streams: []Stream{{Name: "JOURNAL", Consumers: []Consumer{{Name: "sy_old", Pending: 2956}}}}})
	m.UpdateFromStatus(&Status{Streams: []Stream{{Name: "JOURNAL", Consumers: []Consumer{{Name: "sy_new", Pending: 1}}}}})
	if n := testutil.CollectAndCount(m.ConsumerBacklog); n != 2 {
		t.Errorf("%d backlog series after JOURNAL's consumer changed, want 2 (SAF's visa, JOURNAL's sy_new)", n)
	}
	if v := testutil.ToFloat64(m.ConsumerBacklog.WithLabelValues("SAF", "visa")); v != 6 {
		t.Errorf("SAF's visa backlog %v after a status without SAF, want 6", v)
	}
}

func labels(m *dto.Metric) string {
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// TestReady: a standalone node is ready; a node of a three-node cluster that
// runs alone is not, and says JetStream has no quorum; a closed node says its
// connection is closed.
func TestReady(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := Config{Mode: ModeEmbedded, Node: 1, Embedded: Embedded{ServerName: "solo", ClientAddr: "127.0.0.1:0"}}
	cfg.ApplyDefaults(t.TempDir())
	n := startNode(t, ctx, cfg)
	if err := n.WaitJetStream(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.Ready(); err != nil {
		t.Fatalf("a standalone node with JetStream: %v", err)
	}
	n.Close()
	if err := n.Ready(); err == nil || !strings.Contains(err.Error(), "CLOSED") {
		t.Fatalf("closed node: %v", err)
	}

	ports := reservePorts(t, 3)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	alone, err := Start(ctx, Config{Mode: ModeEmbedded, Node: 1, Embedded: Embedded{ServerName: "alone", StoreDir: t.TempDir(),
		ClientAddr: "127.0.0.1:0", ClusterName: "sy", ClusterAddr: fmt.Sprintf("127.0.0.1:%d", ports[0]), Routes: routes}},
		Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer alone.Close()
	start := time.Now()
	err = alone.Ready()
	if err == nil || !strings.Contains(err.Error(), "JetStream not ready on alone") || time.Since(start) > 3*readyTimeout {
		t.Fatalf("alone of three: %v after %v; want a not-ready error within about %v", err, time.Since(start), readyTimeout)
	}
	t.Log(err)
}

// TestPublishMetrics: a node's state log reports its publishes (latency and group)
// to the Metrics set on the node.
func TestPublishMetrics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := Config{Mode: ModeEmbedded, Node: 1, Embedded: Embedded{ServerName: "metered", ClientAddr: "127.0.0.1:0"}}
	cfg.ApplyDefaults(t.TempDir())
	n := startNode(t, ctx, cfg)
	defer n.Close()
	if err := n.WaitJetStream(ctx); err != nil {
		t.Fatal(err)
	}
	r := prometheus.NewRegistry()
	m, err := NewMetrics(r)
	if err != nil {
		t.Fatal(err)
	}
	n.SetMetrics(m)
	sl, err := n.StateLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sl.Store("keys")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, statelog.Commit{Writes: []statelog.KV{{Key: []byte("k"), Value: []byte("v")}}}, 0); err != nil {
		t.Fatal(err)
	}
	fams, err := r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			if h := mt.GetHistogram(); h != nil {
				counts[f.GetName()] += h.GetSampleCount()
			}
		}
	}
	if counts["switchyard_cluster_publish_seconds"] != 1 || counts["switchyard_cluster_acks_per_group"] != 1 {
		t.Fatalf("after one append: %v; want one publish and one group observed", counts)
	}
}

// TestMetricsAtZero: the lock and compaction failure counters an alert reads with
// increase(), and the replaced consumers', exist at zero before their first count (a series that appears with
// its first count hides that count from increase()).
func TestMetricsAtZero(t *testing.T) {
	r := prometheus.NewRegistry()
	m, err := NewMetrics(r)
	if err != nil {
		t.Fatal(err)
	}
	var none *Metrics
	none.PrepareCompaction("registry", "failed")
	m.PrepareCompaction("registry", "failed")
	none.PrepareConsumersReplaced("JOURNAL")
	none.ObserveConsumerReplaced("JOURNAL", "stalled")
	none.ObserveReadsWithoutConsumer("JOURNAL", 3)
	none.ObserveShed()
	none.SetShedding(true)
	m.PrepareConsumersReplaced("JOURNAL")
	fams, err := r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{
		`switchyard_cluster_record_locks_total{result="failed"}`:                           false,
		`switchyard_cluster_compactions_total{result="failed",store="registry"}`:           false,
		`switchyard_cluster_consumers_replaced_total{reason="stalled",stream="JOURNAL"}`:   false,
		`switchyard_cluster_consumers_replaced_total{reason="heartbeat",stream="JOURNAL"}`: false,
		`switchyard_cluster_reads_without_consumer_total{stream="JOURNAL"}`:                false,
		`switchyard_cluster_requests_shed_total{}`:                                         false,
		`switchyard_cluster_shedding{}`:                                                    false,
	}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			var ls []string
			for _, lp := range mt.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			key := f.GetName() + "{" + strings.Join(ls, ",") + "}"
			if _, ok := want[key]; ok {
				want[key] = true
				if v := mt.GetCounter().GetValue(); v != 0 {
					t.Errorf("%s = %v at start, want 0", key, v)
				}
			}
		}
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("%s: no series before its first count", k)
		}
	}
}
