package e2e

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
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
		// The journal's group-commit window as configured by default (1 ms once groups
		// average 4 writes), and none: what the window costs the tail at this rate.
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
	var p50, p99, p999, tps float64
	for i := 0; i < b.N; i++ {
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
	}
	n := float64(b.N)
	b.ReportMetric(p50/n, "p50-µs")
	b.ReportMetric(p99/n, "p99-µs")
	b.ReportMetric(p999/n, "p99.9-µs")
	b.ReportMetric(tps/n, "auth/s")
	b.ReportMetric(0, "ns/op") // the loop's time is the schedule's, not a cost
}
