package e2e

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/bench"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/internal/testswitch"
	"github.com/switchyard/switchyard/switch/server"
)

// BenchmarkOpenLoopLatency is the benchmark of the latency target (p99 under 5 ms at
// ordinary load): the demo switch in this process, with its built-in issuer, takes the
// load terminals' purchases over 32 connections on a fixed schedule at each rate for
// 5 s, and the latency of each is measured from its scheduled send (no coordinated
// omission). It reports p50, p99 and p99.9 in µs as metrics of each sub-benchmark:
//
//	go test -run XXX -bench OpenLoopLatency -benchtime 1x ./switch/e2e/
//
// Each rate runs with the journal's default group-commit window and without one.
// Besides the latencies, it reports the process's goroutine scheduling per
// authorization (runtime/metrics, so the harness and the simulator in this process
// count too, the same in every build): runs/auth, how often a goroutine went from
// runnable to running (the runtime samples one in 8: the count is scaled), go/auth, the
// goroutines started, and sched-p99-µs, the 99th percentile of the time a runnable
// goroutine waited for a P. On a shared machine these counts are the steadier figure.
//
// It runs what `switchyard bench --rate` does without the processes, so that a change
// can be judged with benchstat over several -count runs; the figure that counts is the
// bench's, with the issuer simulator and the harness as processes of their own.
func BenchmarkOpenLoopLatency(b *testing.B) {
	// As `switchyard serve` runs (internal/cli/serve.go), unless GOGC is set.
	if os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(400))
	}
	for _, rate := range []float64{1000, 3000, 5000} {
		// The journal's group-commit window as configured by default (1 ms once the
		// writes arrive fast enough, wal.WindowFrom), and none: what the window costs
		// the tail at this rate.
		for _, window := range []time.Duration{config.DefaultJournalWindow, 0} {
			b.Run(fmt.Sprintf("rate=%.0f/window=%s", rate, window), func(b *testing.B) {
				benchOpenLoop(b, rate, window)
			})
		}
	}
}

func benchOpenLoop(b *testing.B, rate float64, window time.Duration) {
	c := testswitch.DemoConfig(b, b.TempDir(), "../../rules")
	c.Journal.Window = config.Duration(window)
	s, err := server.New(c, zerolog.Nop(), demoIssuer)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var p50, p99, p999, tps, runs, created, schedP99 float64
	for i := 0; i < b.N; i++ {
		before := readSched()
		res, err := bench.RunLoad(context.Background(), bench.LoadOptions{Addr: s.ListenerAddr("ascii"), Conns: 32,
			Rate: rate, Duration: 5 * time.Second, Warmup: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		if res.Errors > 0 {
			b.Fatalf("%d requests unanswered", res.Errors)
		}
		h := res.Hist
		p50 += float64(h.ValueAtQuantile(50))
		p99 += float64(h.ValueAtQuantile(99))
		p999 += float64(h.ValueAtQuantile(99.9))
		tps += res.TPS
		after := readSched()
		auths := float64(res.Answered)
		runs += 8 * float64(after.runs-before.runs) / auths
		created += float64(after.created-before.created) / auths
		schedP99 += after.p99Since(before) * 1e6
	}
	n := float64(b.N)
	b.ReportMetric(p50/n, "p50-µs")
	b.ReportMetric(p99/n, "p99-µs")
	b.ReportMetric(p999/n, "p99.9-µs")
	b.ReportMetric(tps/n, "auth/s")
	b.ReportMetric(runs/n, "runs/auth")
	b.ReportMetric(created/n, "go/auth")
	b.ReportMetric(schedP99/n, "sched-p99-µs")
	b.ReportMetric(0, "ns/op") // the loop's time is the schedule's, not a cost
}

// schedCounts are the runtime's scheduling counters at one moment.
type schedCounts struct {
	runs, created uint64
	lat           *metrics.Float64Histogram
}

func readSched() schedCounts {
	ss := []metrics.Sample{{Name: "/sched/latencies:seconds"}, {Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(ss)
	h := ss[0].Value.Float64Histogram()
	var c schedCounts
	c.lat = &metrics.Float64Histogram{Counts: append([]uint64(nil), h.Counts...), Buckets: h.Buckets}
	for _, n := range h.Counts {
		c.runs += n
	}
	c.created = ss[1].Value.Uint64()
	return c
}

// p99Since is the 99th percentile, in seconds, of the scheduling latencies recorded
// since before (the upper bound of its bucket).
func (c schedCounts) p99Since(before schedCounts) float64 {
	total := c.runs - before.runs
	if total == 0 {
		return 0
	}
	var seen uint64
	for i, n := range c.lat.Counts {
		seen += n - before.lat.Counts[i]
		if seen*100 >= total*99 {
			return c.lat.Buckets[i+1]
		}
	}
	return 0
}
