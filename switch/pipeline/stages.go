package pipeline

import (
	"time"

	"github.com/switchyard/switchyard/switch/metrics"
)

// stageTimes are one transaction's stage durations (metrics.Stage); set says which
// stages it went through. Each is a measurement the pipeline takes anyway for the
// record's timings; they go to the stage histograms once the answer is ready, the
// answer's writing once it is written.
type stageTimes struct {
	d   [metrics.NumStages]time.Duration
	set uint16
}

func (s *stageTimes) add(st metrics.Stage, d time.Duration) {
	s.d[st] += d
	s.set |= 1 << st
}

// observeStages records the stages t went through up to its answer.
func (p *Pipeline) observeStages(t *txn) {
	for st := range metrics.StageAnswer {
		if t.stages.set&(1<<st) != 0 {
			p.metrics.Stages.Observe(st, t.stages.d[st])
		}
	}
}
