package metrics

import (
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Stage is a stage of a transaction whose time goes to
// switchyard_stage_duration_seconds, so that a tail of the end-to-end latency can be
// put down to a stage.
type Stage uint8

// The stages, in the order a transaction goes through them.
const (
	StageDecode Stage = iota // the request parsed
	StageChecks              // terminal binding and integrity checks
	StageRules               // the risk engine's rules
	StagePINMAC              // the HSM: MAC verified and generated, PIN translated
	StageAhead               // the journal's write-ahead record (before the issuer), durable
	StageIssuer              // the issuer's round trip
	StageFinal               // the journal's final record (the outcome), durable
	StageAnswer              // from the answer ready to it written to the socket
	NumStages
)

// StageNames are the stage label's values, by Stage.
var StageNames = [NumStages]string{"decode", "checks", "rules", "pin_mac", "journal_ahead", "issuer", "journal_final", "answer_written"}

// stageBuckets: bucket i counts times under 8.192 µs << i; the last one is +Inf
// (past 8.192 µs << 21, 17.2 s).
const stageBuckets = 23

// Stages are the stage histograms. An observation is two atomic adds (its bucket and
// the sum): the transaction path pays a few nanoseconds a stage, where a
// prometheus.Histogram's Observe costs several times that. They are exported as
// ordinary Prometheus histograms at each scrape.
type Stages struct {
	h    [NumStages]stageHist
	desc *prometheus.Desc
}

type stageHist struct {
	n   [stageBuckets]atomic.Uint64
	sum atomic.Int64 // ns
}

func newStages() *Stages {
	return &Stages{desc: prometheus.NewDesc("switchyard_stage_duration_seconds",
		"Time a transaction spent in each stage: decode, checks (terminal binding), rules, pin_mac (HSM), journal_ahead (the write-ahead record, durable), issuer (round trip), journal_final (the outcome, durable), answer_written (answer ready to written to the socket).",
		[]string{"stage"}, nil)}
}

// Observe counts one transaction's time in stage st.
func (s *Stages) Observe(st Stage, d time.Duration) {
	if s == nil {
		return
	}
	i := min(bits.Len64(uint64(max(d, 0))>>13), stageBuckets-1)
	h := &s.h[st]
	h.n[i].Add(1)
	h.sum.Add(int64(d))
}

// Describe implements prometheus.Collector.
func (s *Stages) Describe(ch chan<- *prometheus.Desc) { ch <- s.desc }

// Collect implements prometheus.Collector.
func (s *Stages) Collect(ch chan<- prometheus.Metric) {
	for st := range NumStages {
		count, buckets := s.Snapshot(st)
		ch <- prometheus.MustNewConstHistogram(s.desc, count, time.Duration(s.h[st].sum.Load()).Seconds(), buckets, StageNames[st])
	}
}

// Snapshot returns the observations of stage st and the cumulative count under each
// bucket's upper bound (in seconds).
func (s *Stages) Snapshot(st Stage) (uint64, map[float64]uint64) {
	buckets := make(map[float64]uint64, stageBuckets-1)
	var cum uint64
	h := &s.h[st]
	for i := range stageBuckets {
		cum += h.n[i].Load()
		if i < stageBuckets-1 {
			buckets[float64(uint64(8192)<<i)/1e9] = cum
		}
	}
	return cum, buckets
}
