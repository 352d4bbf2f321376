package pipeline

import (
	"testing"
	"time"

	"github.com/moov-io/iso8583"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/switch/metrics"
)

// stageCounts gathers the stage histogram: observations and sum of seconds by stage.
func stageCounts(t *testing.T, m *metrics.Metrics) (map[string]uint64, map[string]float64) {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n, sum := map[string]uint64{}, map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "switchyard_stage_duration_seconds" {
			continue
		}
		for _, mm := range mf.GetMetric() {
			st := mm.GetLabel()[0].GetValue()
			n[st] = mm.GetHistogram().GetSampleCount()
			sum[st] = mm.GetHistogram().GetSampleSum()
		}
	}
	return n, sum
}

// TestStageHistogramsAndTotal: an approved purchase is counted once in each stage it
// went through (decode, the two journal writes, the issuer, the answer's writing; not
// the rules or the HSM, which this pipeline has not), with the issuer's time; and its
// record carries total_us (it was always 0: set after the final write).
func TestStageHistogramsAndTotal(t *testing.T) {
	h := newHarness(t)
	h.bank.script(func(sent) (*iso8583.Message, error) {
		h.clock.Advance(3 * time.Millisecond)
		return issuerAnswer("00", "123456"), nil
	})
	a := h.do(h.purchase(1000))
	if a.RC != "00" {
		t.Fatalf("rc %s", a.RC)
	}
	n, sum := stageCounts(t, h.p.metrics)
	for _, st := range []string{"decode", "journal_ahead", "issuer", "journal_final", "answer_written"} {
		if n[st] != 1 {
			t.Errorf("stage %s: %d observations, want 1", st, n[st])
		}
	}
	for _, st := range []string{"checks", "rules", "pin_mac"} {
		if n[st] != 0 {
			t.Errorf("stage %s: %d observations of a stage not gone through", st, n[st])
		}
	}
	if sum["issuer"] < 0.003 {
		t.Errorf("issuer stage %.6f s, want the 3 ms the issuer took", sum["issuer"])
	}
	if rec := h.record(a.RRN); rec.Timings.Total < 3000 {
		t.Errorf("record total_us %d, want at least the issuer's 3000", rec.Timings.Total)
	}
}

// BenchmarkStageObserve is the cost the stage histograms add to a transaction: the
// observation of the seven stages an approval goes through.
func BenchmarkStageObserve(b *testing.B) {
	m := metrics.New()
	p := &Pipeline{metrics: m}
	t := &txn{}
	for _, st := range []metrics.Stage{metrics.StageDecode, metrics.StageChecks, metrics.StageRules, metrics.StageAhead, metrics.StageIssuer, metrics.StageFinal} {
		t.stages.add(st, 300*time.Microsecond)
	}
	b.ReportAllocs()
	for b.Loop() {
		p.observeStages(t)
		m.Stages.Observe(metrics.StageAnswer, 50*time.Microsecond)
	}
}

// BenchmarkPrometheusHistogram is what the same seven observations cost with a
// prometheus.HistogramVec's children (the choice not taken).
func BenchmarkPrometheusHistogram(b *testing.B) {
	hv := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "x", Buckets: prometheus.ExponentialBuckets(8e-6, 2, 22)}, []string{"stage"})
	var hs [7]prometheus.Observer
	for i := range hs {
		hs[i] = hv.WithLabelValues(metrics.StageNames[i])
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, h := range hs {
			h.Observe(0.0003)
		}
	}
}
