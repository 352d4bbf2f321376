package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/switch/message"
)

// This file holds the latency side of the bench: the switch's stage histograms read
// from its /metrics around a phase, the wait for a settled switch before the open
// loop, the latency-versus-rate curve, and the distinct-cards run that reports the
// heap a card costs.

// CurvePoint is one rate of the latency-versus-rate curve: an open loop at Rate, with
// the latency from each request's scheduled send, and the switch's stages over it.
type CurvePoint struct {
	Rate    float64          `json:"rate"`
	TPS     float64          `json:"tps"`
	Count   int64            `json:"count"`
	Errors  int64            `json:"errors"`
	Latency Quantiles        `json:"latency_us"`
	Stages  []StageQuantiles `json:"stages,omitempty"`
	// CPU is what the switch, the simulator and the harness used over the step
	// (nil when not measured), and SyncsPerS and RecordsPerSync the journal's group
	// commits over it (switchyard_journal_batch_records): where the group commit's
	// window engaged, fewer syncs of more records each.
	CPU            *ProcessCPU `json:"cpu,omitempty"`
	SyncsPerS      float64     `json:"syncs_per_s,omitempty"`
	RecordsPerSync float64     `json:"records_per_sync,omitempty"`
}

// StageQuantiles are one stage's times in the switch over a phase (from
// switchyard_stage_duration_seconds), in microseconds, interpolated within the
// histogram's power-of-two buckets.
type StageQuantiles struct {
	Stage string  `json:"stage"`
	Count uint64  `json:"count"`
	P50   int64   `json:"p50_us"`
	P99   int64   `json:"p99_us"`
	P999  int64   `json:"p999_us"`
	Mean  float64 `json:"mean_us"`
}

// SettleInfo says how the open-loop runs started: on the switch the closed loop left
// (after waiting for its journal index backlog and Badger compactions to end), or on
// a fresh switch.
type SettleInfo struct {
	Fresh   bool          `json:"fresh"`
	Waited  time.Duration `json:"waited_ns"`
	Settled bool          `json:"settled"` // false: still busy when the wait ended
}

// CardsResult is the distinct-cards run: purchases each with a card not seen before,
// and what the switch's heap and the risk engine's counter series grew by.
type CardsResult struct {
	Cards    int   `json:"cards"`
	Answered int64 `json:"answered"`
	// RiskHeapBefore and RiskHeapAfter are the live heap allocated in the risk
	// state (package risk/state: the counters and lists), from the switch's heap
	// profile after a collection; BytesPerCard and MBPerMillion are their growth
	// per card sent.
	RiskHeapBefore uint64  `json:"risk_heap_before_bytes"`
	RiskHeapAfter  uint64  `json:"risk_heap_after_bytes"`
	BytesPerCard   float64 `json:"heap_bytes_per_card"`
	MBPerMillion   float64 `json:"heap_mb_per_million_cards"`
	// HeapBefore and HeapAfter are the switch's whole live heap (journal, Badger's
	// tables and the rest besides): a coarse cross-check.
	HeapBefore     uint64  `json:"heap_before_bytes"`
	HeapAfter      uint64  `json:"heap_after_bytes"`
	SeriesAdded    int64   `json:"series_added"`
	SeriesPerCard  float64 `json:"series_per_card"`
	ElapsedSeconds float64 `json:"elapsed_s"`
}

// stageSnap is one stage's histogram as scraped: cumulative counts by upper bound
// (seconds), and the sum.
type stageSnap struct {
	les    []float64
	counts []float64
	sum    float64
}

// scrapeMetrics reads the admin /metrics text: every sample by its full name with
// labels (as written), and the stage histograms.
func scrapeMetrics(ctx context.Context, adminURL string) (map[string]float64, map[string]*stageSnap, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, adminURL+"/metrics", nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("scrape %s/metrics: %w", adminURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("scrape %s/metrics: %s", adminURL, resp.Status)
	}
	return parseMetrics(resp.Body)
}

func parseMetrics(r io.Reader) (map[string]float64, map[string]*stageSnap, error) {
	samples := map[string]float64{}
	stages := map[string]*stageSnap{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		name := line[:sp]
		samples[name] = v
		const stagePrefix = "switchyard_stage_duration_seconds"
		if !strings.HasPrefix(name, stagePrefix) {
			continue
		}
		st := labelValue(name, "stage")
		s := stages[st]
		if s == nil {
			s = &stageSnap{}
			stages[st] = s
		}
		switch {
		case strings.HasPrefix(name, stagePrefix+"_bucket"):
			le := labelValue(name, "le")
			b, err := strconv.ParseFloat(le, 64)
			if le == "+Inf" {
				b, err = math.Inf(1), nil
			}
			if err == nil {
				s.les = append(s.les, b)
				s.counts = append(s.counts, v)
			}
		case strings.HasPrefix(name, stagePrefix+"_sum"):
			s.sum = v
		}
	}
	return samples, stages, sc.Err()
}

// labelValue returns the value of label in a sample name like a{b="c",d="e"}.
func labelValue(name, label string) string {
	i := strings.Index(name, label+`="`)
	if i < 0 {
		return ""
	}
	rest := name[i+len(label)+2:]
	j := strings.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return rest[:j]
}

// stageDiff returns the stages' quantiles over what was observed between two scrapes,
// in the order of the stages' names in the switch.
func stageDiff(before, after map[string]*stageSnap) []StageQuantiles {
	var out []StageQuantiles
	for _, name := range []string{"decode", "checks", "rules", "pin_mac", "journal_ahead", "issuer", "journal_final", "answer_written"} {
		a := after[name]
		if a == nil || len(a.counts) == 0 {
			continue
		}
		b := before[name]
		counts := make([]float64, len(a.counts))
		sum := a.sum
		copy(counts, a.counts)
		if b != nil && len(b.counts) == len(a.counts) {
			for i := range counts {
				counts[i] -= b.counts[i]
			}
			sum -= b.sum
		}
		n := counts[len(counts)-1]
		if n <= 0 {
			continue
		}
		q := func(p float64) int64 { return int64(math.Round(bucketQuantile(a.les, counts, p) * 1e6)) }
		out = append(out, StageQuantiles{Stage: name, Count: uint64(n), P50: q(0.5), P99: q(0.99), P999: q(0.999), Mean: sum / n * 1e6})
	}
	return out
}

// bucketQuantile interpolates quantile p in cumulative histogram buckets (upper bounds
// les, counts cum), as Prometheus' histogram_quantile does.
func bucketQuantile(les, cum []float64, p float64) float64 {
	n := cum[len(cum)-1]
	rank := p * n
	i := sort.Search(len(cum), func(i int) bool { return cum[i] >= rank })
	if i >= len(les) {
		return 0
	}
	if math.IsInf(les[i], 1) {
		if i == 0 {
			return 0
		}
		return les[i-1]
	}
	lo, below := 0.0, 0.0
	if i > 0 {
		lo, below = les[i-1], cum[i-1]
	}
	in := cum[i] - below
	if in <= 0 {
		return les[i]
	}
	return lo + (les[i]-lo)*(rank-below)/in
}

// settle waits, up to limit, until the switch has nothing left from the load before:
// no journal frames waiting for the index and no Badger compaction running, three
// scrapes in a row 200 ms apart.
func settle(ctx context.Context, adminURL string, limit time.Duration) SettleInfo {
	start := time.Now()
	quiet := 0
	for time.Since(start) < limit && ctx.Err() == nil {
		samples, _, err := scrapeMetrics(ctx, adminURL)
		busy := err != nil
		for name, v := range samples {
			if (name == "switchyard_journal_unindexed" || strings.HasPrefix(name, metricCompacting)) && v > 0 {
				busy = true
			}
		}
		if busy {
			quiet = 0
		} else if quiet++; quiet >= 3 {
			return SettleInfo{Waited: time.Since(start), Settled: true}
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	return SettleInfo{Waited: time.Since(start)}
}

// ParseCurve reads a curve flag "from:to:step" (authorizations per second) into its
// rates.
func ParseCurve(s string) ([]float64, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return nil, fmt.Errorf("curve %q: want from:to:step, like 1000:10000:1000", s)
	}
	var v [3]float64
	for i, p := range parts {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || !(f > 0) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("curve %q: %q is not a rate above zero", s, p)
		}
		v[i] = f
	}
	if v[1] < v[0] {
		return nil, fmt.Errorf("curve %q: the last rate is below the first", s)
	}
	if (v[1]-v[0])/v[2] > 100 {
		return nil, fmt.Errorf("curve %q: more than 100 steps", s)
	}
	var rates []float64
	for r := v[0]; r <= v[1]*(1+1e-9); r += v[2] {
		rates = append(rates, r)
	}
	return rates, nil
}

// runCurve runs an open loop at each rate for step, and returns the curve.
// cpuOf, when not nil, reads the CPU time of the switch, the simulator and the
// harness.
func runCurve(ctx context.Context, o Options, lo LoadOptions, adminURL string, cpuOf func() (sw, sim, self time.Duration)) ([]CurvePoint, error) {
	var out []CurvePoint
	for _, rate := range o.Curve {
		fmt.Fprintf(o.Out, "curve: open loop at %.0f/s, %s measured\n", rate, o.CurveStep)
		po := lo
		po.Rate, po.Duration, po.Warmup = rate, o.CurveStep, min(o.Warmup, time.Second)
		var before, after map[string]*stageSnap
		var m0, m1 map[string]float64
		span := cpuSpan{of: cpuOf}
		po.onStart = func() {
			m0, before, _ = scrapeMetrics(ctx, adminURL)
			span.start()
		}
		po.onEnd = func() {
			span.end()
			m1, after, _ = scrapeMetrics(ctx, adminURL)
		}
		res, err := RunLoad(ctx, po)
		if err != nil {
			return out, fmt.Errorf("curve at %.0f/s: %w", rate, err)
		}
		if err := res.Measured(); err != nil && ctx.Err() == nil {
			return out, fmt.Errorf("curve at %.0f/s: %w", rate, err) // its p99 would read 0, the target met
		}
		h := res.Hist
		p := CurvePoint{Rate: rate, TPS: res.TPS, Count: h.TotalCount(), Errors: res.Errors,
			Latency: Quantiles{P50: h.ValueAtQuantile(50), P90: h.ValueAtQuantile(90), P99: h.ValueAtQuantile(99), P999: h.ValueAtQuantile(99.9), Max: h.Max()},
			Stages:  stageDiff(before, after)}
		p.CPU = span.figures(h.TotalCount())
		p.SyncsPerS, p.RecordsPerSync = groupCommits(m0, m1, span.elapsed())
		out = append(out, p)
	}
	return out, nil
}

// The journal's group commits in the switch's metrics: a histogram of the records of
// each.
const (
	metricBatchCount = "switchyard_journal_batch_records_count"
	metricBatchSum   = "switchyard_journal_batch_records_sum"
)

// groupCommits returns the journal's group commits a second between two scrapes d
// apart, and the records each held on average (0, 0 when a scrape is missing).
func groupCommits(before, after map[string]float64, d time.Duration) (perS, records float64) {
	if before == nil || after == nil || d <= 0 {
		return 0, 0
	}
	n := after[metricBatchCount] - before[metricBatchCount]
	if n <= 0 {
		return 0, 0
	}
	return n / d.Seconds(), (after[metricBatchSum] - before[metricBatchSum]) / n
}

// heapAfterGC makes the switch collect its garbage (its heap profile with gc=1) and
// returns its live heap (go_memstats_heap_alloc_bytes).
func heapAfterGC(ctx context.Context, adminURL string) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, adminURL+"/debug/pprof/heap?gc=1", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	samples, _, err := scrapeMetrics(ctx, adminURL)
	if err != nil {
		return 0, err
	}
	v, ok := samples["go_memstats_heap_alloc_bytes"]
	if !ok {
		return 0, fmt.Errorf("%s/metrics has no go_memstats_heap_alloc_bytes", adminURL)
	}
	return uint64(v), nil
}

// riskHeap makes the switch collect its garbage and returns the live heap allocated
// in package risk/state, estimated from its heap profile (the text form, debug=1):
// the in-use bytes of every sampled allocation with a risk/state frame, scaled up
// for the sampling as pprof does.
func riskHeap(ctx context.Context, adminURL, save string) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, adminURL+"/debug/pprof/heap?gc=1&debug=1", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("heap profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("heap profile: %s", resp.Status)
	}
	var r io.Reader = resp.Body
	if save != "" {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return 0, fmt.Errorf("heap profile: %w", err)
		}
		if err := os.WriteFile(save, b, 0o644); err != nil {
			return 0, err
		}
		r = bytes.NewReader(b)
	}
	return parseHeapProfile(r, "/risk/state.", "/risk/state.(*Velocity).Flush")
}

// parseHeapProfile sums the scaled in-use bytes of the records of a text heap
// profile that have a frame containing frame and none containing except (the
// counters' once-a-second write to Badger, whose buffers are in flight, not kept).
func parseHeapProfile(r io.Reader, frame, except string) (uint64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	rate := 512.0 * 1024
	var total float64
	var objs, bytes float64
	match, excluded := false, false
	flush := func() {
		if match && !excluded && objs > 0 && bytes > 0 {
			total += bytes / (1 - math.Exp(-bytes/objs/rate))
		}
		match, excluded, objs, bytes = false, false, 0, 0
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "heap profile:"):
			if i := strings.LastIndex(line, "heap/"); i >= 0 {
				if v, err := strconv.ParseFloat(line[i+5:], 64); err == nil && v > 0 {
					rate = v / 2 // the header gives twice the sampling rate
				}
			}
		case strings.HasPrefix(line, "#"):
			if strings.Contains(line, frame) {
				match = true
			}
			if except != "" && strings.Contains(line, except) {
				excluded = true
			}
		case strings.Contains(line, " @ "):
			flush()
			var n1, b1, n2, b2 float64
			if _, err := fmt.Sscanf(line, "%g: %g [%g: %g]", &n1, &b1, &n2, &b2); err == nil {
				objs, bytes = n1, b1
			}
		case line == "":
			flush()
		}
	}
	flush()
	return uint64(total), sc.Err()
}

// riskSeries reads the risk engine's counter series in memory.
func riskSeries(ctx context.Context, adminURL string) (int64, error) {
	op := &apiclient.Client{BaseURL: adminURL, Token: "demo-operator-7Kq2"}
	var info struct {
		Stats struct {
			Series int64 `json:"series"`
		} `json:"stats"`
	}
	if err := op.Do(ctx, http.MethodGet, "/api/v1/risk/rules", nil, &info); err != nil {
		return 0, fmt.Errorf("risk engine stats: %w", err)
	}
	return info.Stats.Series, nil
}

// runCards sends purchases each with a new card (the bench merchants' tills, where
// the card counters count) until n cards were sent, and reports what the switch's
// heap (after a collection, before and after) and the counter series grew by per
// card.
func runCards(ctx context.Context, o Options, lo LoadOptions, adminURL string) (*CardsResult, error) {
	risk0, err := riskHeap(ctx, adminURL, filepath.Join(o.WorkDir, "heap-before-cards.txt"))
	if err != nil {
		return nil, err
	}
	heap0, err := heapAfterGC(ctx, adminURL)
	if err != nil {
		return nil, err
	}
	series0, err := riskSeries(ctx, adminURL)
	if err != nil {
		return nil, err
	}
	f, err := NewFleet(orDefault(o.Terminals, 2000), 1)
	if err != nil {
		return nil, err
	}
	if lo.Fleet != nil {
		f.plan = lo.Fleet.plan // registered already
	} else if err := registerFleet(ctx, adminURL, f.plan); err != nil {
		return nil, err
	}
	f.newCards = int64(o.Cards)
	co := lo
	co.Fleet, co.Rate, co.Warmup, co.Duration, co.Progress = f, 0, 0, 24*time.Hour, o.Out
	start := time.Now()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	var res *LoadResult
	var lerr error
	go func() {
		defer close(done)
		res, lerr = RunLoad(cctx, co)
	}()
	fmt.Fprintf(o.Out, "cards: %d purchases, each with a new card, at the bench merchants' tills\n", o.Cards)
wait:
	for f.cardsLeft() > 0 {
		select {
		case <-done:
			break wait
		case <-ctx.Done():
			break wait
		case <-time.After(100 * time.Millisecond):
		}
	}
	cancel()
	<-done
	if lerr != nil {
		return nil, lerr
	}
	risk1, err := riskHeap(ctx, adminURL, filepath.Join(o.WorkDir, "heap-after-cards.txt"))
	if err != nil {
		return nil, err
	}
	heap1, err := heapAfterGC(ctx, adminURL)
	if err != nil {
		return nil, err
	}
	series1, err := riskSeries(ctx, adminURL)
	if err != nil {
		return nil, err
	}
	sent := o.Cards - int(max(f.cardsLeft(), 0))
	c := &CardsResult{Cards: sent, Answered: res.Answered, RiskHeapBefore: risk0, RiskHeapAfter: risk1, HeapBefore: heap0, HeapAfter: heap1, SeriesAdded: series1 - series0,
		ElapsedSeconds: time.Since(start).Seconds()}
	if sent > 0 {
		c.BytesPerCard = (float64(risk1) - float64(risk0)) / float64(sent)
		c.MBPerMillion = c.BytesPerCard // bytes per card = MB (10^6 bytes) per million cards
		c.SeriesPerCard = float64(c.SeriesAdded) / float64(sent)
	}
	return c, nil
}

// newCardRequest is a purchase at a bench merchant's till (POS or SoftPOS) with the
// next card never used before; past newCards, the cards come round again.
func (f *Fleet) newCardRequest(rng *rand.Rand, now time.Time) (request, error) {
	i := (f.cardSeq.Add(1) - 1) % f.newCards
	base := fmt.Sprintf("4761738%08d", i)
	pan := ""
	for d := byte('0'); d <= '9'; d++ {
		if message.Luhn(base + string(d)) {
			pan = base + string(d)
			break
		}
	}
	return f.benchLegitCard(rng, now, pan)
}

// cardsLeft is how many new cards the distinct-cards run has still to send.
func (f *Fleet) cardsLeft() int64 { return f.newCards - f.cardSeq.Load() }

// runOpenLoops runs the open loop at Rate and the curve, after waiting for the switch
// to settle unless it is fresh.
func (rep *Report) runOpenLoops(ctx context.Context, o Options, lo LoadOptions, adminURL string) error {
	if o.Rate <= 0 && len(o.Curve) == 0 {
		return nil
	}
	if o.Fresh {
		rep.Settle = &SettleInfo{Fresh: true, Settled: true}
	} else {
		limit := o.SettleTimeout
		if limit <= 0 {
			limit = 60 * time.Second
		}
		s := settle(ctx, adminURL, limit)
		rep.Settle = &s
		fmt.Fprintf(o.Out, "settle: waited %s for the journal index and compactions (settled: %v)\n", s.Waited.Round(time.Millisecond), s.Settled)
	}
	if o.Rate > 0 {
		rep.Rate = o.Rate
		fmt.Fprintf(o.Out, "switch, open loop: %.0f authorizations/s on a fixed schedule, %s measured\n", o.Rate, o.Duration)
		po := lo
		po.Rate, po.Warmup = o.Rate, min(o.Warmup, 2*time.Second)
		var before, after map[string]*stageSnap
		span := cpuSpan{of: rep.cpuOf}
		var watch *storeWatch
		po.onStart = func() {
			_, before, _ = scrapeMetrics(ctx, adminURL)
			span.start()
			watch = startStoreWatch(ctx, adminURL)
		}
		po.onEnd = func() {
			span.end()
			rep.pacedStore = watch.stop(ctx, adminURL)
			_, after, _ = scrapeMetrics(ctx, adminURL)
		}
		var err error
		if rep.Paced, err = RunLoad(ctx, po); err != nil {
			return fmt.Errorf("paced load: %w", err)
		}
		if err := rep.Paced.Measured(); err != nil && ctx.Err() == nil {
			return fmt.Errorf("paced load: %w", err) // its p99 would read 0
		}
		rep.Stages = stageDiff(before, after)
		rep.PacedCPU = span.figures(rep.Paced.Hist.TotalCount())
		if c := rep.PacedCPU; c != nil {
			fmt.Fprintf(o.Out, "open loop CPU: switch %.2f, issuer simulator %.2f, harness %.2f cores (%.0f / %.0f / %.0f µs per authorization)\n",
				c.SwitchCores, c.SimCores, c.HarnessCores, c.SwitchUS, c.SimUS, c.HarnessUS)
		}
	}
	if len(o.Curve) > 0 {
		if o.CurveStep <= 0 {
			o.CurveStep = 10 * time.Second
		}
		var err error
		if rep.Curve, err = runCurve(ctx, o, lo, adminURL, rep.cpuOf); err != nil {
			return err
		}
	}
	return nil
}

// cpuSpan reads the CPU times of the three processes (of: the switch or the relay,
// the simulator, the harness) at the start and the end of a measured window.
type cpuSpan struct {
	of       func() (mid, sim, self time.Duration)
	from, to [3]time.Duration
	t0, t1   time.Time
}

func (s *cpuSpan) start() { s.from = s.read(); s.t0 = time.Now() }
func (s *cpuSpan) end()   { s.t1 = time.Now(); s.to = s.read() }

func (s *cpuSpan) read() (v [3]time.Duration) {
	if s.of != nil {
		v[0], v[1], v[2] = s.of()
	}
	return v
}

// elapsed is the window's length.
func (s *cpuSpan) elapsed() time.Duration { return s.t1.Sub(s.t0) }

// figures is the window's CPU with n authorizations answered (nil without a reader
// of the times, a window or an authorization).
func (s *cpuSpan) figures(n int64) *ProcessCPU {
	if s.of == nil {
		return nil
	}
	return processCPU(s.from, s.to, s.elapsed(), n)
}

// processCPU turns the three processes' CPU times at the start and the end of a
// window of length d, with n authorizations answered, into cores and µs per
// authorization (nil without a window or an authorization).
func processCPU(start, end [3]time.Duration, d time.Duration, n int64) *ProcessCPU {
	if d <= 0 || n <= 0 {
		return nil
	}
	cores := func(i int) float64 { return (end[i] - start[i]).Seconds() / d.Seconds() }
	per := func(i int) float64 { return float64((end[i] - start[i]).Microseconds()) / float64(n) }
	return &ProcessCPU{SwitchCores: cores(0), SimCores: cores(1), HarnessCores: cores(2), SwitchUS: per(0), SimUS: per(1), HarnessUS: per(2)}
}

// latencyTargets are the latency and memory goals for the curve and the
// distinct-cards run: p99 under 5 ms at every rate up to half the closed loop's
// throughput, and at most 150 MB of heap per million distinct cards.
func latencyTargets(r *Result) []Target {
	var out []Target
	if len(r.Curve) > 0 && r.Switch != nil {
		half := r.Switch.TPS / 2
		worst, at := int64(0), 0.0
		n := 0
		var short []string // the rates not achieved: their p99 leaves out what was not answered
		for _, c := range r.Curve {
			if c.Rate <= half {
				n++
				if c.Latency.P99 >= worst {
					worst, at = c.Latency.P99, c.Rate
				}
				if !(c.TPS >= 0.98*c.Rate) {
					short = append(short, fmt.Sprintf("%.0f/s achieved %.0f/s", c.Rate, c.TPS))
				}
			}
		}
		if n > 0 {
			t := Target{Name: fmt.Sprintf("worst p99 up to half the closed loop (%.0f/s), at %.0f/s", half, at), Goal: "< 5 ms, each rate achieved (98%)",
				Measured: float64(worst) / 1000, Unit: "ms", Met: worst < 5000 && len(short) == 0}
			if len(short) > 0 {
				t.Name += "; not achieved: " + strings.Join(short, ", ")
			}
			out = append(out, t)
		}
	}
	if c := r.Cards; c != nil && c.Cards > 0 {
		out = append(out, Target{Name: fmt.Sprintf("risk state heap per million distinct cards (%d cards)", c.Cards), Goal: "<= 150 MB",
			Measured: c.MBPerMillion, Unit: "MB", Met: c.MBPerMillion <= 150 && c.RiskHeapAfter > c.RiskHeapBefore})
	}
	return out
}
