package console

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// The summary's figures come from the switch's own counters: rates, approval
// share, response codes, declines by who declined, p50/p99 from the histogram
// and the breaker states.
func TestSummaryFromMetrics(t *testing.T) {
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	txns := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_transactions_total"}, []string{"mti", "rc", "issuer", "decided_by"})
	lat := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "switchyard_transaction_duration_seconds", Buckets: []float64{0.001, 0.002, 0.005, 0.01}}, []string{"mti", "issuer"})
	br := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "switchyard_issuer_breaker_state"}, []string{"issuer"})
	reg.MustRegister(txns, lat, br)
	c, err := New(Options{Registry: f.reg, Metrics: reg, Now: f.clock.Now, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	c.stats.sample(f.clock.Now())
	for i := 0; i < 90; i++ {
		txns.WithLabelValues("0200", "00", "visa", "issuer").Inc()
		lat.WithLabelValues("0200", "visa").Observe(0.0015)
	}
	for i := 0; i < 10; i++ {
		txns.WithLabelValues("0200", "65", "", "risk").Inc()
		lat.WithLabelValues("0200", "").Observe(0.008)
	}
	br.WithLabelValues("visa").Set(2)
	f.clock.Advance(10 * time.Second)
	c.stats.sample(f.clock.Now())
	s := c.summary()
	if s.AuthPerSec != 10 || s.ApprovalRate != 0.9 || s.Total != 100 {
		t.Fatalf("rate %v approval %v total %v, want 10/s, 0.9, 100", s.AuthPerSec, s.ApprovalRate, s.Total)
	}
	if s.P50 < 1 || s.P50 > 2 || s.P99 < 5 || s.P99 > 10 {
		t.Fatalf("p50 %v ms p99 %v ms: want within (1,2] and (5,10]", s.P50, s.P99)
	}
	if len(s.Declines) != 3 || s.Declines[1].By != "risk" || len(s.Declines[1].Top) != 1 || s.Declines[1].Top[0] != (Count{"65", 10}) {
		t.Fatalf("declines: %+v", s.Declines)
	}
	if len(s.Breakers) != 1 || s.Breakers[0] != (Breaker{"visa", "open"}) {
		t.Fatalf("breakers: %+v", s.Breakers)
	}
}

// A decline reason that jumps against its own history is flagged (and logged
// once an hour); one at its usual rate is not; without an hour of baseline
// nothing is.
func TestTrendWarning(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	sp := newSampler(Options{})
	add := func(at time.Time, jump, steady float64) {
		s := sample{t: at, declines: map[string]float64{"binding:location-out-of-range": jump, "risk:65": steady, "rule:card-testing-tiny": jump / 2}}
		sp.minutes = append(sp.minutes, s)
		sp.seconds = []sample{s}
	}
	// 6 hours: 2 relocations an hour, 30 risk declines an hour.
	for m := 0; m <= 6*60; m++ {
		add(t0.Add(time.Duration(m)*time.Minute), float64(m)/30, float64(m)/2)
	}
	if ws := sp.trends(t0.Add(6 * time.Hour)); len(ws) != 0 {
		t.Fatalf("steady traffic flagged: %+v", ws)
	}
	// The next hour: 40 relocations, risk as usual.
	base := sp.minutes[len(sp.minutes)-1].declines
	for m := 1; m <= 60; m++ {
		add(t0.Add(6*time.Hour+time.Duration(m)*time.Minute), base["binding:location-out-of-range"]+float64(m)*40/60, base["risk:65"]+float64(m)/2)
	}
	ws := sp.trends(t0.Add(7 * time.Hour))
	if len(ws) != 2 || ws[0].Key != "binding:location-out-of-range" || math.Abs(ws[0].LastHour-40) > 0.01 || math.Abs(ws[0].Baseline-2) > 0.01 {
		t.Fatalf("warnings: %+v, want location-out-of-range 40/h against 2/h", ws)
	}
	// A rule's hits too (the sample's "rule:" keys come from switchyard_risk_rule_hits_total).
	if ws[1].Key != "rule:card-testing-tiny" || math.Abs(ws[1].LastHour-20) > 0.01 || math.Abs(ws[1].Baseline-1) > 0.01 {
		t.Fatalf("rule warning: %+v, want card-testing-tiny 20/h against 1/h", ws[1])
	}
	short := newSampler(Options{})
	short.minutes = sp.minutes[len(sp.minutes)-90:]
	short.seconds = sp.seconds
	if ws := short.trends(t0.Add(7 * time.Hour)); len(ws) != 0 {
		t.Fatalf("flagged with half an hour of baseline: %+v", ws)
	}
}

// The sampler's memory is bounded: after 8 days of samples it holds 6 minutes
// of seconds, 25 hours of minutes and 7 days of hours.
func TestSamplerBounded(t *testing.T) {
	sp := newSampler(Options{})
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 8*24*120; i++ { // every 30 s
		sp.sample(t0.Add(time.Duration(i) * 30 * time.Second))
	}
	if len(sp.seconds) > 13 || len(sp.minutes) > 25*60+1 || len(sp.hours) > 7*24+2 {
		t.Fatalf("kept %d, %d, %d samples", len(sp.seconds), len(sp.minutes), len(sp.hours))
	}
	if first := sp.hours[0].t; t0.Add(8*24*time.Hour).Sub(first) < 7*24*time.Hour {
		t.Fatalf("the hourly samples reach back to %v only", first)
	}
}
