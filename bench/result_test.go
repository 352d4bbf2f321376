package bench

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// TestResultStartedIsTheRunsStart: the result's start is when the run began, not a
// guess from its end (it was the end less three times the measured window, whatever
// the warm-up, settling, open loops, curve and relay took).
func TestResultStartedIsTheRunsStart(t *testing.T) {
	load := func() *LoadResult {
		h := hdrhistogram.New(1, 60_000_000, 3)
		_ = h.RecordValue(1000)
		return &LoadResult{Hist: h, Elapsed: time.Second, TPS: 1, Codes: map[string]int64{"00": 1}}
	}
	began := time.Date(2026, 12, 6, 14, 5, 36, 0, time.FixedZone("CET", 3600))
	rep := &Report{started: began, Switch: load(), Relay: load()}
	r := rep.result(Options{Duration: 2 * time.Second, Warmup: time.Second})
	if !r.Started.Equal(began) || r.Started.Location() != time.UTC {
		t.Fatalf("Started %v: want the run's start %v, in UTC", r.Started, began.UTC())
	}
}

// TestWriteReportsNeverReplaces: reports are named by the run's start in UTC, and a
// second result of the same second (two runs started together, a clock set back) gets
// names of its own: the first run's files are left as they were.
func TestWriteReportsNeverReplaces(t *testing.T) {
	dir := t.TempDir()
	r := sampleResult()
	r.Started = time.Date(2026, 12, 6, 15, 5, 36, 0, time.FixedZone("CET", 3600))
	j1, h1, err := r.WriteReports(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "bench-20261206-140536.json"); j1 != want {
		t.Errorf("first report %s: want %s (the start in UTC)", j1, want)
	}
	first, err := os.ReadFile(j1)
	if err != nil {
		t.Fatal(err)
	}
	r.Scenario = "second"
	j2, h2, err := r.WriteReports(dir)
	if err != nil {
		t.Fatal(err)
	}
	if j2 == j1 || h2 == h1 || j2 != filepath.Join(dir, "bench-20261206-140536-2.json") || h2 != filepath.Join(dir, "bench-20261206-140536-2.html") {
		t.Fatalf("second report %s %s: want names of its own beside %s %s", j2, h2, j1, h1)
	}
	if again, err := os.ReadFile(j1); err != nil || string(again) != string(first) {
		t.Fatalf("the first report was changed by the second (%v)", err)
	}
	got, err := os.Open(j2)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if rr, err := ReadResult(got); err != nil || rr.Scenario != "second" {
		t.Fatalf("second report: %v %+v", err, rr)
	}
}

// TestTimelineLastSecond: the window ends a few milliseconds after its last whole
// second (the harness stops on a timer); that sliver is no second of the timeline
// (it read as a drop to nearly nothing at the end of every chart), and a last part of
// half a second or more has its throughput over its own length.
func TestTimelineLastSecond(t *testing.T) {
	var samples []Sample
	for sec, n := range []int{100, 100, 100} {
		for range n {
			samples = append(samples, Sample{Second: uint16(sec), LatencyUS: 500})
		}
	}
	samples = samples[:250] // the third second holds 50: half a second's worth
	pts := timeline(samples[:201], 2*time.Second+3*time.Millisecond)
	if len(pts) != 2 || pts[0].TPS != 100 || pts[1].TPS != 100 {
		t.Fatalf("a 2.003 s window: %+v, want two seconds at 100/s", pts)
	}
	pts = timeline(samples, 2*time.Second+500*time.Millisecond)
	if len(pts) != 3 || pts[2].TPS != 100 {
		t.Fatalf("a 2.5 s window with 50 answers in its last half second: %+v, want a third point at 100/s", pts)
	}
	if pts := timeline(samples[:30], 300*time.Millisecond); len(pts) != 1 || pts[0].TPS != 100 {
		t.Fatalf("a 0.3 s window with 30 answers: %+v, want one point at 100/s", pts)
	}
}
