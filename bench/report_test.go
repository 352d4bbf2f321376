package bench

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// sampleBuckets spreads count answers over log-spaced buckets (×1.25 from 40 µs) by a
// log-normal distribution with the given median and spread.
func sampleBuckets(count int64, medianUS, sigma float64) []Bucket {
	cdf := func(us float64) float64 {
		return 0.5 * (1 + math.Erf((math.Log(us)-math.Log(medianUS))/(sigma*math.Sqrt2)))
	}
	var out []Bucket
	lo := 40.0
	for i := 0; i < 40; i++ {
		hi := lo * 1.25
		out = append(out, Bucket{UpperUS: int64(math.Round(hi)), Count: int64(math.Round(float64(count) * (cdf(hi) - cdf(lo))))})
		lo = hi
	}
	return out
}

// sampleTimeline makes n seconds of a run around tps and the latencies given, with a
// deterministic wobble and a latency spike at second spike (when within the run).
func sampleTimeline(n int, tps float64, p50, p99 int64, spike int) []Point {
	out := make([]Point, n)
	for i := range out {
		w := math.Sin(float64(i)*0.7) + 0.5*math.Cos(float64(i)*1.9)
		out[i] = Point{Second: i, TPS: tps * (1 + 0.03*w), P50US: p50 + int64(float64(p50)*0.05*w), P99US: p99 + int64(float64(p99)*0.08*w)}
		if i == spike {
			out[i].P99US *= 3
			out[i].TPS *= 0.8
		}
	}
	return out
}

// sampleResult is a realistic result: a 30-second closed loop, a paced loop at
// 5,000/s, a 10-second relay run, eight fraud scenarios and legitimate traffic.
func sampleResult() *Result {
	return &Result{
		Started:  time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC),
		Host:     "linux/amd64, 2 CPUs",
		Version:  "v0.9.0-12-gdeadbee",
		Scenario: "standard",
		Settings: Settings{Terminals: 64, Conns: 4, Depth: 32, Duration: 30 * time.Second, Warmup: 3 * time.Second, Rate: 5000,
			IssuerLatency: 20 * time.Millisecond, IssuerLatencyP99: 150 * time.Millisecond},
		Switch: &Phase{
			Name: "switch", TPS: 15234.4, Count: 457032, Errors: 3, Elapsed: 30 * time.Second,
			Latency:  Quantiles{P50: 2104, P90: 3380, P99: 6120, P999: 11850, Max: 48211},
			Codes:    map[string]int64{"00": 452101, "05": 2210, "59": 2475, "61": 180, "65": 66},
			Timeline: sampleTimeline(30, 15234, 2104, 6120, 17),
			Buckets:  sampleBuckets(457032, 2100, 0.45),
		},
		Paced: &Phase{
			Name: "paced", TPS: 4999.2, Count: 149976, Elapsed: 30 * time.Second,
			Latency:  Quantiles{P50: 812, P90: 1240, P99: 1930, P999: 3120, Max: 9870},
			Codes:    map[string]int64{"00": 148300, "59": 1676},
			Timeline: sampleTimeline(30, 5000, 812, 1930, -1),
			Buckets:  sampleBuckets(149976, 810, 0.4),
		},
		Relay: &Phase{
			Name: "relay", TPS: 18512.9, Count: 185129, Elapsed: 10 * time.Second,
			Latency:  Quantiles{P50: 1702, P90: 2480, P99: 3530, P999: 5210, Max: 14002},
			Codes:    map[string]int64{"00": 185129},
			Timeline: sampleTimeline(10, 18513, 1702, 3530, -1),
			Buckets:  sampleBuckets(185129, 1700, 0.35),
		},
		RelayPaced: &Phase{
			Name: "relay paced", TPS: 4998.7, Count: 49987, Elapsed: 10 * time.Second,
			Latency:  Quantiles{P50: 402, P90: 690, P99: 2871, P999: 7420, Max: 12050},
			Codes:    map[string]int64{"00": 49987},
			Timeline: sampleTimeline(10, 5000, 402, 2871, -1),
			Buckets:  sampleBuckets(49987, 400, 0.5),
		},
		RelayPacedCPU:       &ProcessCPU{SwitchCores: 0.214, SimCores: 0.251, HarnessCores: 0.332, SwitchUS: 42.8, SimUS: 50.2, HarnessUS: 66.4},
		SwitchCPUPerAuthUS:  41.27,
		SimCPUPerAuthUS:     8.25,
		HarnessCPUPerAuthUS: 12.5,
		PacedCPU:            &ProcessCPU{SwitchCores: 0.876, SimCores: 0.258, HarnessCores: 0.34, SwitchUS: 175.2, SimUS: 51.6, HarnessUS: 68},
		Ratio:               0.8229,
		Scenarios: []Scenario{
			{Label: "card-testing", Fraud: true, Sent: 2000, Declined: 1990, Rate: 0.995, ByReason: map[string]int64{"card-testing": 1902, "card-declines": 80, "card-velocity": 6, "deny-card": 2}},
			{Label: "cashout", Fraud: true, Sent: 800, Declined: 776, Rate: 0.97, ByReason: map[string]int64{"cashout-score": 700, "cashout-repeat-card": 76}},
			{Label: "velocity", Fraud: true, Sent: 1200, Declined: 1188, Rate: 0.99, ByReason: map[string]int64{"card-velocity": 1188}},
			{Label: "relocation", Fraud: true, Sent: 600, Declined: 522, Rate: 0.87, ByReason: map[string]int64{"geo-mismatch": 500, "deny-country": 22}},
			{Label: "split-purchase", Fraud: true, Sent: 500, Declined: 495, Rate: 0.99, ByReason: map[string]int64{"split-purchase": 495}},
			{Label: "refund-other-card", Fraud: true, Sent: 300, Declined: 300, Rate: 1, ByReason: map[string]int64{"refund-other-card": 300}},
			{Label: "deny-list", Fraud: true, Sent: 400, Declined: 400, Rate: 1, ByReason: map[string]int64{"deny-card": 250, "deny-bin": 100, "deny-merchant": 30, "deny-terminal": 20}},
			{Label: "softpos-limit", Fraud: true, Sent: 250, Declined: 240, Rate: 0.96, ByReason: map[string]int64{"softpos-limit": 240}},
			{Label: "legitimate", Fraud: false, Sent: 120000, Declined: 360, Rate: 0.003, ByReason: map[string]int64{"card-velocity": 200, "geo-mismatch": 100, "05": 60}},
		},
		Targets: []Target{
			{Name: "switch throughput", Goal: ">= 15000/s", Measured: 15234.4, Unit: "/s", Met: true},
			{Name: "p99 at 5,000/s", Goal: "<= 5 ms", Measured: 1.93, Unit: "ms", Met: true},
			{Name: "CPU per authorization", Goal: "<= 40 µs", Measured: 41.27, Unit: "µs", Met: false},
			{Name: "fraud catch rate", Goal: ">= 95%", Measured: 97.67, Unit: "%", Met: true},
			{Name: "false positives", Goal: "<= 0.5%", Measured: 0.3, Unit: "%", Met: true},
			{Name: "catch rate: card-testing-slow", Goal: ">= 99%", Measured: 75, Unit: "%", NotJudged: "4 attempts, fewer than 20"},
		},
	}
}

func TestSampleResultIsRealistic(t *testing.T) {
	r := sampleResult()
	if n := len(r.Switch.Buckets); n != 40 {
		t.Errorf("%d buckets, want 40", n)
	}
	var sum int64
	for _, b := range r.Switch.Buckets {
		sum += b.Count
	}
	if d := math.Abs(float64(sum-r.Switch.Count)) / float64(r.Switch.Count); d > 0.01 {
		t.Errorf("buckets hold %d answers, the phase %d", sum, r.Switch.Count)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	r := sampleResult()
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "\n  \"started\": \"2026-03-14T09:26:53Z\",\n") {
		t.Errorf("not indented JSON with the start time:\n%.300s", buf.String())
	}
	for _, key := range []string{`"switch_cpu_us_per_auth": 41.27`, `"p99": 6120`, `"upper_us"`, `"by_reason"`} {
		if !strings.Contains(buf.String(), key) {
			t.Errorf("JSON lacks %s", key)
		}
	}
	got, err := ReadResult(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Started.Equal(r.Started) {
		t.Errorf("started %v, want %v", got.Started, r.Started)
	}
	got.Started = r.Started
	if !reflect.DeepEqual(got, r) {
		t.Errorf("round trip changed the result:\n got %+v\nwant %+v", got, r)
	}

	// Without the optional phases and scenarios.
	small := &Result{Scenario: "smoke", Switch: &Phase{Name: "switch", TPS: 10}}
	buf.Reset()
	if err := small.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), `"paced"`) || strings.Contains(buf.String(), `"scenarios"`) {
		t.Errorf("empty optional fields written:\n%s", buf.String())
	}
	got, err = ReadResult(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if got.Paced != nil || got.Relay != nil || got.Switch == nil || got.Switch.TPS != 10 {
		t.Errorf("read back %+v", got)
	}
}

func TestWriteJSONNonFinite(t *testing.T) {
	r := sampleResult()
	r.Ratio = math.Inf(1)
	r.Relay.TPS = math.NaN()
	r.Switch.Timeline[3].TPS = math.NaN()
	r.Targets[1].Measured = math.Inf(-1)
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := ReadResult(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if got.Ratio != 0 || got.Relay.TPS != 0 || got.Switch.Timeline[3].TPS != 0 || got.Targets[1].Measured != 0 {
		t.Errorf("non-finite numbers not written as 0: %v %v %v %v", got.Ratio, got.Relay.TPS, got.Switch.Timeline[3].TPS, got.Targets[1].Measured)
	}
	if got.Switch.TPS != r.Switch.TPS || got.Switch.Timeline[4].TPS != r.Switch.Timeline[4].TPS {
		t.Errorf("finite numbers changed")
	}
	// The result itself is left as it was.
	if !math.IsInf(r.Ratio, 1) || !math.IsNaN(r.Relay.TPS) || !math.IsNaN(r.Switch.Timeline[3].TPS) {
		t.Errorf("WriteJSON changed its receiver")
	}
}

func TestReadResultErrors(t *testing.T) {
	for name, in := range map[string]string{
		"empty":    "",
		"garbage":  "not json",
		"wrong":    `{"switch": "fast"}`,
		"trailing": `{"scenario": "a"} {"scenario": "b"}`,
		"cut":      `{"scenario": "a", "switch": {"tps": 1`,
	} {
		if r, err := ReadResult(strings.NewReader(in)); err == nil {
			t.Errorf("%s: read %+v, want an error", name, r)
		}
	}
	if _, err := ReadResult(strings.NewReader("{\"scenario\": \"a\"}\n\n")); err != nil {
		t.Errorf("trailing white space: %v", err)
	}
}

func TestWriteTable(t *testing.T) {
	var buf bytes.Buffer
	sampleResult().WriteTable(&buf)
	out := buf.String()
	if path := os.Getenv("BENCH_SAMPLE_TABLE"); path != "" {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{
		"Switchyard bench — standard — 2026-03-14 09:26:53 UTC, linux/amd64, 2 CPUs, v0.9.0-12-gdeadbee",
		"terminals 64, connections 4, depth 32, duration 30s, warm-up 3s, paced rate 5,000/s, issuer latency median 20ms, p99 150ms",
		"paced 5,000/s",
		"15,234", "4,999", "18,513", // TPS
		"457,032", "149,976", "185,129", // answers
		"2.10 ms", "812 µs", "1.70 ms", // p50
		"6.12 ms", "1.93 ms", "3.53 ms", // p99
		"11.85 ms", "48.21 ms", // p99.9, max
		"41.3 µs", "0.82×",
		"8.2 µs / 12.5 µs", "switch CPU in issuer-simulator units", "5.00×",
		"open loop: switch / simulator / harness CPU", "0.88 / 0.26 / 0.34 cores (175 / 52 / 68 µs per authorization)",
		"relay open loop: relay / simulator / harness CPU", "0.21 / 0.25 / 0.33 cores (43 / 50 / 66 µs per authorization)",
		"relay 5,000/s", "2.87 ms",
		"suspected fraud", "98.92%", // 452101 of 457032 approved
		"99.50%", "caught", "0.30%", "false positives",
		"card-testing 1,902, card-declines 80, card-velocity 6, +1 more",
		"all fraud",
		"targets: 4 of 5 met, 1 not judged", "MISSED", "NOT JUDGED", "75% (4 attempts, fewer than 20)", "CPU per authorization", "41.27 µs", "15,234/s", "0.30%",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	if strings.Contains(out, "NaN") || strings.Contains(out, "Inf") {
		t.Errorf("table has NaN or Inf:\n%s", out)
	}

	// The summary is right-aligned: its rows end in the same column.
	lines := strings.Split(out, "\n")
	var widths []int
	for _, l := range lines {
		if strings.Contains(l, "latency p") || strings.Contains(l, "authorizations/s") || strings.Contains(l, "answered") {
			widths = append(widths, utf8.RuneCountInString(l))
		}
	}
	if len(widths) != 7 {
		t.Fatalf("found %d summary rows, want 7:\n%s", len(widths), out)
	}
	for _, w := range widths[1:] {
		if w != widths[0] {
			t.Errorf("summary rows of different widths %v:\n%s", widths, out)
			break
		}
	}
	// The phases come in the order switch, paced, relay.
	head := lines[slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, "relay") })]
	if !(strings.Index(head, "switch") < strings.Index(head, "paced") && strings.Index(head, "paced") < strings.Index(head, "relay")) {
		t.Errorf("phase header %q", head)
	}
	// The scenario rows keep the order given, the fraud total after them.
	if i, j := strings.Index(out, "softpos-limit"), strings.Index(out, "all fraud"); i < 0 || j < i {
		t.Errorf("all fraud row not after the scenarios")
	}
	for _, l := range lines {
		if strings.HasSuffix(l, " ") {
			t.Errorf("trailing blanks in %q", l)
		}
	}
}

// checkHTML checks what every rendered page must satisfy and returns its SVG elements.
func checkHTML(t *testing.T, page string) []string {
	t.Helper()
	for _, bad := range []string{"http://", "https://", "<script", "<link", "<img", "<iframe", "@import", "url(http", "NaN", "Inf"} {
		if strings.Contains(page, bad) {
			i := strings.Index(page, bad)
			t.Errorf("page contains %q: ...%s...", bad, page[max(0, i-80):min(len(page), i+80)])
		}
	}
	if !strings.HasPrefix(page, "<!DOCTYPE html>") || !strings.HasSuffix(page, "</html>\n") {
		t.Errorf("not a whole HTML document")
	}
	for _, tag := range []string{"section", "table", "tr", "svg", "g", "text"} {
		open := len(regexp.MustCompile(`<`+tag+`[\s>]`).FindAllString(page, -1))
		if closed := strings.Count(page, "</"+tag+">"); open != closed {
			t.Errorf("%d <%s> but %d </%s>", open, tag, closed, tag)
		}
	}
	svgs := regexp.MustCompile(`(?s)<svg .*?</svg>`).FindAllString(page, -1)
	for _, s := range svgs {
		// Each chart must be well-formed XML, with only finite coordinates.
		dec := xml.NewDecoder(strings.NewReader(s))
		for {
			tok, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("SVG is not well-formed: %v\n%s", err, s)
			}
			if el, ok := tok.(xml.StartElement); ok {
				for _, a := range el.Attr {
					if strings.Contains(a.Value, "NaN") || strings.Contains(a.Value, "Inf") {
						t.Errorf("<%s %s=%q>", el.Name.Local, a.Name.Local, a.Value)
					}
				}
			}
		}
	}
	return svgs
}

func renderHTML(t *testing.T, r *Result) string {
	t.Helper()
	var buf bytes.Buffer
	if err := r.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestWriteHTML(t *testing.T) {
	page := renderHTML(t, sampleResult())
	if path := os.Getenv("BENCH_SAMPLE_HTML"); path != "" {
		// BENCH_SAMPLE_HTML=/tmp/bench-sample.html go test ./bench -run TestWriteHTML
		if err := os.WriteFile(path, []byte(page), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	svgs := checkHTML(t, page)
	if len(svgs) != 2 {
		t.Fatalf("%d <svg> elements, want 2", len(svgs))
	}
	for _, want := range []string{
		"<title>Switchyard bench — standard — 2026-03-14 09:26:53 UTC",
		"linux/amd64, 2 CPUs", "v0.9.0-12-gdeadbee", "paced rate", "5,000/s",
		"switch, closed loop", "switch, open loop at 5,000/s", "relay (baseline)",
		"15,234", "2.10 ms", "812 µs", "48.21 ms", "41.3 µs", "0.82×", "suspected fraud",
		"<td class=\"n\">99.50%</td>", "<td class=\"n\">0.30%</td>", "all fraud",
		"4 of 5 met, 1 not judged", `class="missed"`, `class="met"`, `class="unjudged"`,
		"card-testing 1,902, card-declines 80, card-velocity 6, &#43;1 more",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// The timeline has a panel per phase, each with a p50, a p99 and a TPS line.
	tl, hist := svgs[0], svgs[1]
	if n := strings.Count(tl, "<polyline"); n != 12 {
		t.Errorf("timeline has %d lines, want 12", n)
	}
	for _, want := range []string{"seconds into the measured window", "p99 latency (left axis)", "authorizations/s (right axis)", "15k"} {
		if !strings.Contains(tl, want) {
			t.Errorf("timeline lacks %q", want)
		}
	}
	// The histogram: an area per phase over a log axis labelled in µs and ms.
	if n := strings.Count(hist, "<path"); n != 4 {
		t.Errorf("histogram has %d areas, want 4", n)
	}
	for _, want := range []string{">500 µs<", ">1 ms<", ">2 ms<", ">10 ms<", "latency (log scale)", "switch (p50 2.10 ms, p99 6.12 ms)", "relay (p50", "relay 5,000/s (p50 402 µs, p99 2.87 ms)"} {
		if !strings.Contains(hist, want) {
			t.Errorf("histogram lacks %q", want)
		}
	}
	// The axis is logarithmic: 2 ms lies log10(2) of the way from 1 ms to 10 ms.
	x := func(label string) float64 {
		m := regexp.MustCompile(`<text x="([0-9.]+)" y="[0-9.]+" text-anchor="middle" >` + label + `</text>`).FindStringSubmatch(hist)
		if m == nil {
			t.Fatalf("no tick %q", label)
		}
		var v float64
		if _, err := fmt.Sscan(m[1], &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	a, b, c := x("1 ms"), x("2 ms"), x("10 ms")
	if c <= a || math.Abs((b-a)/(c-a)-math.Log10(2)) > 0.01 {
		t.Errorf("axis not logarithmic: 1 ms at %v, 2 ms at %v, 10 ms at %v", a, b, c)
	}
}

func TestWriteHTMLEscapes(t *testing.T) {
	r := sampleResult()
	r.Scenario = `<script>alert("x")</script>`
	r.Host = "a & b"
	r.Scenarios[0].Label = "<b>bold</b>"
	r.Targets[0].Name = `"><img src=x>`
	page := renderHTML(t, r)
	checkHTML(t, page)
	for _, bad := range []string{"<script>", "<b>bold</b>", "<img src"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains unescaped %q", bad)
		}
	}
	if !strings.Contains(page, "&lt;b&gt;bold&lt;/b&gt;") || !strings.Contains(page, "a &amp; b") {
		t.Errorf("escaped text missing")
	}
}

func TestRenderDegenerate(t *testing.T) {
	nan := math.NaN()
	cases := map[string]*Result{
		"zero":        {},
		"switch only": {Switch: &Phase{Name: "switch"}},
		"one point": {
			Switch: &Phase{TPS: 100, Timeline: []Point{{Second: 0, TPS: 100, P50US: 500, P99US: 900}}, Buckets: []Bucket{{UpperUS: 1000, Count: 100}}},
			Relay:  &Phase{Timeline: []Point{{Second: 5, TPS: 200, P50US: 300, P99US: 800}}},
		},
		"zero counts": {
			Switch: &Phase{Timeline: []Point{{Second: 0}, {Second: 1}, {Second: 2}}, Buckets: []Bucket{{UpperUS: 100}, {UpperUS: 200}}},
			Paced:  &Phase{Buckets: []Bucket{{UpperUS: 0, Count: 0}}},
			Relay:  &Phase{},
		},
		"odd values": {
			Settings: Settings{Rate: math.Inf(1)},
			Switch: &Phase{TPS: nan, Codes: map[string]int64{"00": 0},
				Timeline: []Point{{Second: 3, TPS: nan, P50US: -5}, {Second: 1, TPS: math.Inf(1), P99US: 10}, {Second: 1, TPS: 3}},
				Buckets:  []Bucket{{UpperUS: 5, Count: -3}, {UpperUS: -1, Count: 2}, {UpperUS: 5, Count: 1}, {UpperUS: 1 << 40, Count: 1}}},
			Ratio: nan, SwitchCPUPerAuthUS: math.Inf(-1),
			Scenarios: []Scenario{{Label: "none sent", Fraud: true}, {Label: "nan", Rate: nan, Sent: 0}},
			Targets:   []Target{{Name: "t", Measured: nan}},
		},
		"relay only": {Relay: &Phase{TPS: 10, Count: 10, Buckets: sampleBuckets(10, 100, 0.3)}},
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			var tab bytes.Buffer
			r.WriteTable(&tab)
			if strings.Contains(tab.String(), "NaN") || strings.Contains(tab.String(), "Inf") {
				t.Errorf("table:\n%s", tab.String())
			}
			page := renderHTML(t, r)
			if dir := os.Getenv("BENCH_SAMPLE_DIR"); dir != "" {
				// Pages to look at: BENCH_SAMPLE_DIR=/tmp go test ./bench -run TestRenderDegenerate
				if err := os.WriteFile(filepath.Join(dir, "bench-"+strings.ReplaceAll(name, " ", "-")+".html"), []byte(page), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if svgs := checkHTML(t, page); len(svgs) != 2 {
				t.Errorf("%d <svg> elements, want 2", len(svgs))
			}
		})
	}

	// What the empty cases say instead of charts.
	page := renderHTML(t, &Result{})
	for _, want := range []string{"No phase was measured.", "no phase was measured", "no latency histogram recorded"} {
		if !strings.Contains(page, want) {
			t.Errorf("empty page lacks %q", want)
		}
	}
	page = renderHTML(t, cases["zero counts"])
	for _, want := range []string{"no timeline recorded", "no latency histogram recorded", "switch (no data)"} {
		if !strings.Contains(page, want) {
			t.Errorf("zero-count page lacks %q", want)
		}
	}
	page = renderHTML(t, cases["one point"])
	if n := strings.Count(page, "<circle"); n != 6 {
		t.Errorf("%d markers for two one-point timelines, want 6", n)
	}
}

func TestFormatting(t *testing.T) {
	for us, want := range map[int64]string{0: "0 µs", 812: "812 µs", 999: "999 µs", 1000: "1.00 ms", 2104: "2.10 ms", 48211: "48.21 ms", 1234567: "1234.57 ms"} {
		if got := rptUS(us); got != want {
			t.Errorf("rptUS(%d) = %q, want %q", us, got, want)
		}
	}
	for v, want := range map[float64]string{0: "0", 1.5: "1.50", 2: "2", 15234.4: "15,234", 1234567.8: "1,234,568", -4321: "-4,321", 0.0123: "0.0123", 0.3: "0.30", 0.00012345: "0.000123", 100: "100"} {
		if got := rptNum(v); got != want {
			t.Errorf("rptNum(%v) = %q, want %q", v, got, want)
		}
	}
	for f, want := range map[float64]string{0.995: "99.50%", 1: "100.00%", 0.003: "0.30%", 0: "0.00%"} {
		if got := rptPct(f); got != want {
			t.Errorf("rptPct(%v) = %q, want %q", f, got, want)
		}
	}
	if got := rptPct(math.NaN()); got != "-" {
		t.Errorf("rptPct(NaN) = %q", got)
	}
	for us, want := range map[float64]string{0: "0", 250: "250 µs", 1000: "1 ms", 2500: "2.5 ms", 1.5e6: "1.5 s"} {
		if got := svgUSLabel(us); got != want {
			t.Errorf("svgUSLabel(%v) = %q, want %q", us, got, want)
		}
	}
}

func TestScenarioRates(t *testing.T) {
	rows := rptScenarios([]Scenario{
		{Label: "a", Fraud: true, Sent: 200, Declined: 199, Rate: 0.995},
		{Label: "b", Fraud: true, Sent: 100, Declined: 50}, // Rate left unset: computed
		{Label: "legit", Sent: 1000, Declined: 3, Rate: 0.003},
	})
	if len(rows) != 4 {
		t.Fatalf("%d rows, want 3 and a total", len(rows))
	}
	want := []string{"99.50%", "50.00%", "0.30%", "83.00%"} // total: 249 of 300
	for i, w := range want {
		if rows[i].Rate != w {
			t.Errorf("row %d (%s): rate %s, want %s", i, rows[i].Label, rows[i].Rate, w)
		}
	}
	if !rows[3].Total || rows[3].Sent != "300" || rows[3].RateKind != "caught" || rows[2].RateKind != "false positives" {
		t.Errorf("rows %+v", rows)
	}
	if got := rptTopReasons(map[string]int64{"x": 5, "y": 9, "z": 5, "w": 1, "nil": 0}, 3); got != "y 9, x 5, z 5, +1 more" {
		t.Errorf("top reasons %q", got)
	}
}

func TestSVGBins(t *testing.T) {
	// Evenly spaced buckets: shares as they are.
	bins, uneven := svgBins([]Bucket{{UpperUS: 200, Count: 1}, {UpperUS: 100, Count: 1}, {UpperUS: 400, Count: 2}})
	if uneven || len(bins) != 3 {
		t.Fatalf("bins %+v uneven %v", bins, uneven)
	}
	if bins[0].lo != 50 || bins[0].hi != 100 || bins[1].lo != 100 || bins[2].hi != 400 {
		t.Errorf("bounds %+v", bins)
	}
	if bins[0].pct != 25 || bins[2].pct != 50 {
		t.Errorf("shares %+v", bins)
	}
	// A bucket four times as wide (on the log axis) as the others is flattened.
	bins, uneven = svgBins([]Bucket{{UpperUS: 100, Count: 1}, {UpperUS: 200, Count: 1}, {UpperUS: 400, Count: 1}, {UpperUS: 6400, Count: 1}})
	if !uneven || math.Abs(bins[3].pct-25.0/4) > 1e-9 {
		t.Errorf("bins %+v uneven %v", bins, uneven)
	}
	if bins, _ := svgBins([]Bucket{{UpperUS: 10}, {UpperUS: 20}}); bins != nil {
		t.Errorf("bins of nothing: %+v", bins)
	}
	for _, c := range []struct{ v, top, step float64 }{{0, 1, 0.2}, {6120, 8000, 2000}, {15800, 20000, 5000}, {96, 100, 20}, {100, 120, 20}} {
		if top, step := svgNiceMax(c.v, 5); top != c.top || step != c.step {
			t.Errorf("svgNiceMax(%v) = %v, %v; want %v, %v", c.v, top, step, c.top, c.step)
		}
	}
	if n := svgNum(math.NaN()) + svgNum(math.Inf(1)) + svgNum(-0.01); n != "000" {
		t.Errorf("svgNum of NaN, Inf, -0.01: %q", n)
	}
}

func TestScenarioTargets(t *testing.T) {
	got := scenarioTargets([]Scenario{
		{Label: LabelCardTesting, Fraud: true, Sent: 1812, Declined: 1812, Rate: 1},
		{Label: LabelCashOut, Fraud: true, Sent: 1000, Declined: 980, Rate: 0.98},
		{Label: LabelCardTestSlow, Fraud: true, Sent: 4, Declined: 3, Rate: 0.75},
		{Label: LabelCardTestSpread, Fraud: true, Sent: minJudged, Declined: minJudged, Rate: 1},
		{Label: LabelLegit, Sent: 100000, Declined: 600, Rate: 0.006},
		{Label: "legit-lunch-queue", Sent: 238, Declined: 1, Rate: 1.0 / 238},
	})
	want := []struct {
		name      string
		met       bool
		notJudged bool
	}{
		{"catch rate: card-testing", true, false},
		{"catch rate: cash-out", false, false},
		{"catch rate: card-testing-slow", false, true},
		{"catch rate: card-testing-spread", true, false},
		{"false positives on legitimate traffic", false, false},
		{"false positives: legit-lunch-queue", false, false},
	}
	if len(got) != len(want) {
		t.Fatalf("%d targets, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Name != w.name || g.Met != w.met || (g.NotJudged != "") != w.notJudged {
			t.Errorf("target %d: %q met %v not judged %q; want %q met %v not judged %v", i, g.Name, g.Met, g.NotJudged, w.name, w.met, w.notJudged)
		}
	}
	if !strings.Contains(got[2].NotJudged, "4 attempts") {
		t.Errorf("the reason does not give the attempts: %q", got[2].NotJudged)
	}
}
