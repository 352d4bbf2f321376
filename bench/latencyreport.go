package bench

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// The latency side of the reports: the stage table, the curve (a table and an SVG
// chart), how the open loops started, and the distinct-cards run.

// latencyTables returns the report's latency tables: each a title, a header and rows.
func (r *Result) latencyTables() []rptLatencyTable {
	var out []rptLatencyTable
	if len(r.Stages) > 0 {
		t := rptLatencyTable{Title: "stages in the switch over the open loop", Head: []string{"stage", "count", "p50", "p99", "p99.9", "mean"}}
		for _, s := range r.Stages {
			t.Rows = append(t.Rows, []string{s.Stage, rptCount(int64(s.Count)), rptUS(s.P50), rptUS(s.P99), rptUS(s.P999), rptUS(int64(math.Round(s.Mean)))})
		}
		out = append(out, t)
	}
	if len(r.Curve) > 0 {
		t := rptLatencyTable{Title: "latency versus rate (open loop, from the scheduled send)", Head: []string{"rate", "achieved", "p50", "p90", "p99", "p99.9", "max", "errors", "slowest stage at p99", "switch CPU", "syncs"}}
		for _, c := range r.Curve {
			slow := ""
			var worst int64 = -1
			for _, s := range c.Stages {
				if s.P99 > worst {
					worst, slow = s.P99, s.Stage+" "+rptUS(s.P99)
				}
			}
			cpu, syncs := "", ""
			if c.CPU != nil {
				cpu = fmt.Sprintf("%.0f µs/auth, %.2f cores", c.CPU.SwitchUS, c.CPU.SwitchCores)
			}
			if c.SyncsPerS > 0 {
				syncs = fmt.Sprintf("%s/s of %.1f records", rptNum(c.SyncsPerS), c.RecordsPerSync)
			}
			t.Rows = append(t.Rows, []string{rptNum(c.Rate) + "/s", rptNum(c.TPS) + "/s", rptUS(c.Latency.P50), rptUS(c.Latency.P90), rptUS(c.Latency.P99),
				rptUS(c.Latency.P999), rptUS(c.Latency.Max), rptCount(c.Errors), slow, cpu, syncs})
		}
		out = append(out, t)
	}
	var kv [][]string
	if s := r.Settle; s != nil {
		how := "fresh switch (before the closed loop)"
		if !s.Fresh {
			how = fmt.Sprintf("after the closed loop, settled in %s", s.Waited.Round(10*time.Millisecond))
			if !s.Settled {
				how = fmt.Sprintf("after the closed loop, NOT settled after %s", s.Waited.Round(10*time.Millisecond))
			}
		}
		kv = append(kv, []string{"open loops started on", how})
	}
	if a := r.PacedStore; a != nil {
		v := fmt.Sprintf("%.0f MB written in %d of %d seconds", a.WrittenMB, a.BusySeconds, a.Seconds)
		if a.BusySeconds > 0 {
			v += fmt.Sprintf("; their p99 median %s, worst %s", rptUS(a.BusyP99US[0]), rptUS(a.BusyP99US[1]))
		}
		if a.BusySeconds < a.Seconds {
			v += fmt.Sprintf("; the other seconds' median %s, worst %s", rptUS(a.QuietP99US[0]), rptUS(a.QuietP99US[1]))
		}
		kv = append(kv, []string{"Badger compactions in the open loop", v})
	}
	if c := r.Cards; c != nil {
		kv = append(kv,
			[]string{"distinct cards sent", rptCount(int64(c.Cards))},
			[]string{"risk state heap before / after", fmt.Sprintf("%.1f MB / %.1f MB", float64(c.RiskHeapBefore)/1e6, float64(c.RiskHeapAfter)/1e6)},
			[]string{"risk state heap per million cards", fmt.Sprintf("%.0f MB (%.0f bytes a card)", c.MBPerMillion, c.BytesPerCard)},
			[]string{"whole switch heap before / after", fmt.Sprintf("%.1f MB / %.1f MB", float64(c.HeapBefore)/1e6, float64(c.HeapAfter)/1e6)},
			[]string{"counter series per card", strconv.FormatFloat(c.SeriesPerCard, 'f', 2, 64)})
	}
	if len(kv) > 0 {
		out = append(out, rptLatencyTable{Title: "memory and settling", Rows: kv})
	}
	return out
}

// rptLatencyTable is one of the latency tables.
type rptLatencyTable struct {
	Title string
	Head  []string
	Rows  [][]string
}

// writeLatency writes the latency tables under the report table.
func (r *Result) writeLatency(w io.Writer) {
	for _, lt := range r.latencyTables() {
		fmt.Fprintln(w, "\n"+lt.Title)
		n := len(lt.Head)
		if n == 0 && len(lt.Rows) > 0 {
			n = len(lt.Rows[0])
		}
		t := rptTable{right: make([]bool, n)}
		for i := 1; i < n; i++ {
			t.right[i] = lt.Head != nil
		}
		if lt.Head != nil {
			t.rows = append(t.rows, lt.Head)
		}
		t.rows = append(t.rows, lt.Rows...)
		t.write(w, "")
	}
}

// svgCurve draws p50, p99 and p99.9 against the offered rate, on a logarithmic
// latency axis, with the 5 ms goal as a dashed line.
func svgCurve(points []CurvePoint) string {
	if len(points) == 0 {
		return ""
	}
	const h, left, right, top, bottom = 340, 72, 24, 44, 44
	var b svgBuf
	svgOpen(&b, "sy-curve", h, "Latency versus rate")
	legend, _ := svgLegend(left, 16, svgWidth-right, []svgLegendItem{
		{color: svgColP50, label: "p50"}, {color: svgColP99, label: "p99"}, {color: "#5f3dc4", label: "p99.9"},
		{color: svgAxis, label: "goal: p99 under 5 ms", dashed: true}})
	b.WriteString(legend)
	maxRate, maxUS, minUS := 0.0, 5000.0, 1e12
	for _, p := range points {
		maxRate = max(maxRate, p.Rate)
		for _, v := range []int64{p.Latency.P50, p.Latency.P99, p.Latency.P999} {
			maxUS = max(maxUS, float64(v))
			if v > 0 {
				minUS = min(minUS, float64(v))
			}
		}
	}
	lo := math.Pow(10, math.Floor(math.Log10(max(min(minUS, 5000), 1))))
	hi := math.Pow(10, math.Ceil(math.Log10(maxUS)))
	xTop, xStep := svgNiceMax(maxRate, 8)
	x := svgScale{0, xTop, left, svgWidth - right}
	y := svgScale{math.Log10(lo), math.Log10(hi), h - bottom, top}
	yAt := func(us float64) float64 { return y.at(math.Log10(max(us, lo))) }
	for d := lo; d <= hi*1.0001; d *= 10 {
		b.line(left, yAt(d), svgWidth-right, yAt(d), `stroke="`+svgGrid+`"`)
		b.text(left-6, yAt(d)+4, "end", "", svgUSLabel(d))
	}
	for _, t := range svgTicks(0, xTop, xStep) {
		b.line(x.at(t), h-bottom, x.at(t), h-bottom+4, `stroke="`+svgAxis+`"`)
		b.text(x.at(t), h-bottom+18, "middle", "", svgCountLabel(t))
	}
	b.text((left+svgWidth-right)/2, h-6, "middle", "", "offered rate (authorizations per second)")
	b.line(left, yAt(5000), svgWidth-right, yAt(5000), `stroke="`+svgAxis+`" stroke-dasharray="4 3"`)
	for _, s := range []struct {
		color string
		v     func(CurvePoint) int64
	}{{svgColP50, func(p CurvePoint) int64 { return p.Latency.P50 }}, {svgColP99, func(p CurvePoint) int64 { return p.Latency.P99 }},
		{"#5f3dc4", func(p CurvePoint) int64 { return p.Latency.P999 }}} {
		path := ""
		for i, p := range points {
			cmd := "L"
			if i == 0 {
				cmd = "M"
			}
			path += cmd + svgNum(x.at(p.Rate)) + " " + svgNum(yAt(float64(s.v(p)))) + " "
		}
		b.printf(`<path d="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", path, s.color)
		for _, p := range points {
			b.printf(`<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", svgNum(x.at(p.Rate)), svgNum(yAt(float64(s.v(p)))), s.color)
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}
