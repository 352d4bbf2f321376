package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

const metricsText = `# HELP switchyard_stage_duration_seconds x
# TYPE switchyard_stage_duration_seconds histogram
switchyard_stage_duration_seconds_bucket{stage="issuer",le="0.001"} 50
switchyard_stage_duration_seconds_bucket{stage="issuer",le="0.002"} 90
switchyard_stage_duration_seconds_bucket{stage="issuer",le="0.004"} 100
switchyard_stage_duration_seconds_bucket{stage="issuer",le="+Inf"} 100
switchyard_stage_duration_seconds_sum{stage="issuer"} 0.1
switchyard_stage_duration_seconds_count{stage="issuer"} 100
switchyard_journal_unindexed 3
`

// TestStageDiff: the stages over a phase are the difference of two scrapes, with the
// quantiles interpolated in the buckets.
func TestStageDiff(t *testing.T) {
	samples, before, err := parseMetrics(strings.NewReader(metricsText))
	if err != nil || samples["switchyard_journal_unindexed"] != 3 {
		t.Fatalf("parse: %v %v", samples, err)
	}
	after := strings.NewReplacer(`le="0.001"} 50`, `le="0.001"} 150`, `le="0.002"} 90`, `le="0.002"} 190`, `le="0.004"} 100`, `le="0.004"} 300`,
		`"+Inf"} 100`, `"+Inf"} 300`, `{stage="issuer"} 0.1`, `{stage="issuer"} 0.4`).Replace(metricsText)
	_, a, err := parseMetrics(strings.NewReader(after))
	if err != nil {
		t.Fatal(err)
	}
	st := stageDiff(before, a)
	if len(st) != 1 || st[0].Stage != "issuer" || st[0].Count != 200 {
		t.Fatalf("stages %+v", st)
	}
	// Of the 200 new: 100 under 1 ms, none between 1 and 2 ms, 100 between 2 and 4 ms.
	if st[0].P50 != 1000 || st[0].P99 != 3960 || st[0].Mean < 1499.9 || st[0].Mean > 1500.1 {
		t.Errorf("quantiles %+v", st[0])
	}
}

// TestParseCurve reads from:to:step and refuses nonsense.
func TestParseCurve(t *testing.T) {
	r, err := ParseCurve("1000:5000:1000")
	if err != nil || len(r) != 5 || r[0] != 1000 || r[4] != 5000 {
		t.Fatalf("%v %v", r, err)
	}
	for _, bad := range []string{"1000", "a:b:c", "5000:1000:1000", "1:1000000:1", "0:10:1"} {
		if _, err := ParseCurve(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestCurveReported: the curve, the stages and the cards run are in the JSON, the
// table and the HTML (with its chart), and the targets judge them.
func TestCurveReported(t *testing.T) {
	r := &Result{Scenario: "curve", Switch: &Phase{Name: "switch", TPS: 10000}, Settings: Settings{JournalWindow: time.Millisecond, JournalWindowCPU: 0.7},
		Curve: []CurvePoint{
			{Rate: 1000, TPS: 1000, Latency: Quantiles{P50: 900, P90: 1500, P99: 3000, P999: 7000, Max: 9000},
				Stages: []StageQuantiles{{Stage: "issuer", Count: 1000, P50: 500, P99: 2500, P999: 4000}}},
			{Rate: 5000, TPS: 4990, Latency: Quantiles{P50: 1200, P90: 2500, P99: 6000, P999: 19000, Max: 30000},
				CPU: &ProcessCPU{SwitchCores: 0.61, SwitchUS: 122}, SyncsPerS: 560, RecordsPerSync: 26.9},
			{Rate: 8000, TPS: 7000, Latency: Quantiles{P50: 20000, P90: 90000, P99: 400000, P999: 600000, Max: 700000}},
		},
		Stages: []StageQuantiles{{Stage: "journal_final", Count: 5000, P50: 400, P99: 1800, P999: 3000, Mean: 500}},
		Settle: &SettleInfo{Waited: 1500 * time.Millisecond, Settled: true},
		Cards:  &CardsResult{Cards: 100000, RiskHeapBefore: 5e6, RiskHeapAfter: 15e6, HeapBefore: 50e6, HeapAfter: 60e6, BytesPerCard: 100, MBPerMillion: 100, SeriesPerCard: 2}}
	r.Targets = latencyTargets(r)
	if len(r.Targets) != 2 || r.Targets[0].Met || r.Targets[0].Measured != 6 || !r.Targets[1].Met {
		t.Fatalf("targets %+v", r.Targets)
	}
	var js, tab, page bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	back, err := ReadResult(&js)
	if err != nil || len(back.Curve) != 3 || back.Curve[0].Stages[0].P99 != 2500 || back.Cards.Cards != 100000 ||
		back.Curve[1].CPU == nil || back.Curve[1].CPU.SwitchUS != 122 || back.Curve[1].RecordsPerSync != 26.9 {
		t.Fatalf("JSON round trip: %+v %v", back, err)
	}
	r.WriteTable(&tab)
	for _, want := range []string{"latency versus rate", "issuer 2.50 ms", "journal_final", "100 MB (100 bytes a card)", "settled in 1.5s",
		"122 µs/auth, 0.61 cores", "560/s of 26.9 records", "switch journal window 1ms, window_cpu 0.7"} {
		if !strings.Contains(tab.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tab.String())
		}
	}
	if err := r.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`id="sy-curve-title"`, "Latency versus rate", "<path d=\"M", "stages in the switch"} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

// TestGroupCommits: the group commits a second and their records between two
// scrapes of the switch's metrics.
func TestGroupCommits(t *testing.T) {
	before := map[string]float64{metricBatchCount: 1000, metricBatchSum: 5000}
	after := map[string]float64{metricBatchCount: 3000, metricBatchSum: 45000}
	if n, rec := groupCommits(before, after, 2*time.Second); n != 1000 || rec != 20 {
		t.Errorf("groupCommits = %v/s of %v records, want 1000/s of 20", n, rec)
	}
	if n, rec := groupCommits(nil, after, time.Second); n != 0 || rec != 0 {
		t.Errorf("groupCommits without the first scrape = %v, %v; want 0, 0", n, rec)
	}
	if n, _ := groupCommits(after, after, time.Second); n != 0 {
		t.Errorf("groupCommits without a commit = %v/s", n)
	}
}

// TestJournalYAML: the journal settings given to the bench reach the switch's
// configuration as the switch reads it, and what is not given keeps its default.
func TestJournalYAML(t *testing.T) {
	base := "demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nsecurity: {card_hash_key_hex: " + config.DemoCardHashKey + "}\n"
	for _, tc := range []struct {
		window time.Duration
		cpu    float64
	}{{-1, -1}, {0, -1}, {-1, 0}, {500 * time.Microsecond, 0.85}} {
		y := journalYAML(tc.window, tc.cpu)
		if tc.window < 0 && tc.cpu < 0 && y != "" {
			t.Errorf("journalYAML(defaults) = %q, want nothing", y)
		}
		c, err := config.Parse([]byte(base+y), "switch.yaml")
		if err != nil {
			t.Fatalf("%q: %v", y, err)
		}
		w, cpu := journalSettings(tc.window, tc.cpu)
		if c.Journal.Window.D() != w || c.Journal.WindowCPU != cpu {
			t.Errorf("%q: the switch reads window %s, window_cpu %v; the report says %s, %v", y, c.Journal.Window.D(), c.Journal.WindowCPU, w, cpu)
		}
	}
}

const heapText = `heap profile: 3: 3145728 [9: 9437184] @ heap/1048576
1: 1048576 [1: 1048576] @ 0x1 0x2
#	0x1	github.com/switchyard/switchyard/risk/state.(*slotTable).resize+0x5c	/src/risk/state/slots.go:120
#	0x2	github.com/switchyard/switchyard/risk/ruleset.(*RuleSet).Observe+0x10	/src/risk/ruleset/eval.go:262

2: 64 [2: 64] @ 0x3
#	0x3	github.com/switchyard/switchyard/risk/state.(*shard).toArena+0x5	/src/risk/state/velocity.go:200

1: 2097152 [1: 2097152] @ 0x4
#	0x4	github.com/switchyard/switchyard/switch/journal.(*Store).publish+0x5	/src/switch/journal/write.go:200

1: 2097152 [1: 2097152] @ 0x5 0x6
#	0x5	github.com/dgraph-io/badger/v4.NewEntry+0x671	/src/badger/entry.go:20
#	0x6	github.com/switchyard/switchyard/risk/state.(*Velocity).Flush+0x63c	/src/risk/state/velocity.go:700

`

// TestParseHeapProfile: the risk state's heap is the scaled in-use bytes of the
// records with a risk/state frame, not the journal's nor the counters' write to
// Badger in flight.
func TestParseHeapProfile(t *testing.T) {
	got, err := parseHeapProfile(strings.NewReader(heapText), "/risk/state.", "(*Velocity).Flush")
	if err != nil {
		t.Fatal(err)
	}
	// 1 MiB sampled once: scaled by 1/(1-e^-2); 64 bytes in 2 objects: by about 16385.
	if got < 1_200_000 || got > 2_300_000 {
		t.Errorf("risk state heap %d", got)
	}
}

// echoSwitch answers every request at once with an approval: its identifying fields
// echoed (the harness matches answers by DE 41 + DE 11) and DE 39 00 (an answer
// without DE 39 is malformed, no authorization).
func echoSwitch(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br, bw := bufio.NewReader(c), bufio.NewWriter(c)
				for {
					body, err := frontend.ReadFrame(br, nil, 0xFFFF)
					if err != nil {
						return
					}
					req, err := message.Decode(body, message.DialectASCII)
					if err != nil {
						t.Errorf("echoSwitch: %v", err)
						return
					}
					raw, err := message.NewResponseBuilder(req).Set(39, "00").Bytes(nil)
					if err != nil {
						t.Errorf("echoSwitch: %v", err)
						return
					}
					bw.Write(frontend.AppendFrame(nil, raw))
					if br.Buffered() == 0 {
						if bw.Flush() != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestOpenLoopFromSchedule: an open loop at a rate the harness cannot send at (one
// connection, 400,000/s) falls behind its schedule; the latency of each request counts
// from when it was due, so the backlog shows (hundreds of milliseconds by the end of
// the second), where latency from the actual send stayed at the echo's round trip
// (coordinated omission: the load generator's own delay hid the queue).
func TestOpenLoopFromSchedule(t *testing.T) {
	res, err := RunLoad(t.Context(), LoadOptions{Addr: echoSwitch(t), Conns: 1, Terminals: 50, Rate: 400_000,
		Duration: time.Second, Warmup: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.TPS > 300_000 {
		t.Skipf("the harness kept up with 400,000/s (%.0f/s): nothing to fall behind", res.TPS)
	}
	if p99 := res.Hist.ValueAtQuantile(99); p99 < 100_000 {
		t.Fatalf("p99 %d µs at %.0f/s done of 400,000/s scheduled: the wait behind the schedule is not counted", p99, res.TPS)
	}
}

// TestSettleWaitsForBacklog: the open loops wait until the journal's index backlog and
// Badger's compactions are gone (three quiet scrapes), and give up at the limit.
func TestSettleWaitsForBacklog(t *testing.T) {
	var scrapes atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := scrapes.Add(1)
		fmt.Fprintf(w, "switchyard_journal_unindexed %d\nswitchyard_store_compacting_tables %d\n", max(0, 3-n), max(0, 4-n))
	}))
	defer srv.Close()
	s := settle(t.Context(), srv.URL, time.Minute)
	if !s.Settled || scrapes.Load() != 6 {
		t.Fatalf("settled %v after %d scrapes, want after 6 (3 busy, 3 quiet)", s.Settled, scrapes.Load())
	}
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "switchyard_journal_unindexed 7\n")
	}))
	defer busy.Close()
	if s := settle(t.Context(), busy.URL, 500*time.Millisecond); s.Settled || s.Waited < 500*time.Millisecond {
		t.Fatalf("a switch that stays busy: %+v", s)
	}
}

// processCPU: CPU over a window in cores and per authorization; nothing without a
// window or an authorization.
func TestProcessCPU(t *testing.T) {
	start := [3]time.Duration{10 * time.Second, 2 * time.Second, 5 * time.Second}
	end := [3]time.Duration{14400 * time.Millisecond, 3300 * time.Millisecond, 6700 * time.Millisecond}
	c := processCPU(start, end, 5*time.Second, 25000)
	if c == nil || math.Abs(c.SwitchCores-0.88) > 1e-9 || math.Abs(c.SimCores-0.26) > 1e-9 || math.Abs(c.HarnessCores-0.34) > 1e-9 ||
		c.SwitchUS != 176 || c.SimUS != 52 || c.HarnessUS != 68 {
		t.Fatalf("processCPU = %+v", c)
	}
	if processCPU(start, end, 0, 25000) != nil || processCPU(start, end, time.Second, 0) != nil {
		t.Fatal("a figure without a window or an authorization")
	}
}
