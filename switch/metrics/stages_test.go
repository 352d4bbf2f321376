package metrics

import (
	"testing"
	"time"
)

// TestStagesExported: observations land in the buckets whose bounds hold them, and
// the stage histogram is exported with its count and sum.
func TestStagesExported(t *testing.T) {
	m := New()
	for _, d := range []time.Duration{5 * time.Microsecond, 100 * time.Microsecond, 3 * time.Millisecond, time.Minute} {
		m.Stages.Observe(StageIssuer, d)
	}
	n, b := m.Stages.Snapshot(StageIssuer)
	if n != 4 {
		t.Fatalf("%d observations, want 4", n)
	}
	for _, c := range []struct {
		le   float64
		want uint64
	}{{0.000008192, 1}, {0.000131072, 2}, {0.004194304, 3}, {8.589934592, 3}} {
		if b[c.le] != c.want {
			t.Errorf("under %g s: %d, want %d", c.le, b[c.le], c.want)
		}
	}
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "switchyard_stage_duration_seconds" {
			continue
		}
		for _, mm := range mf.GetMetric() {
			if mm.GetLabel()[0].GetValue() == "issuer" {
				found = true
				h := mm.GetHistogram()
				if h.GetSampleCount() != 4 || h.GetSampleSum() < 60.003 {
					t.Errorf("exported count %d sum %g", h.GetSampleCount(), h.GetSampleSum())
				}
			}
		}
		if len(mf.GetMetric()) != int(NumStages) {
			t.Errorf("%d stages exported, want %d", len(mf.GetMetric()), NumStages)
		}
	}
	if !found {
		t.Fatal("switchyard_stage_duration_seconds{stage=\"issuer\"} not exported")
	}
}
