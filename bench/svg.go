package bench

import (
	"fmt"
	"html"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// This file draws the charts of the HTML report as inline SVG: the latency and
// throughput over time of each phase, and the latency histograms. Every coordinate goes
// through svgNum, which never writes NaN or Inf, and every text through html.EscapeString.

const (
	svgWidth  = 960
	svgFont   = `font-family="system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"`
	svgGrid   = "#e9ecef"
	svgAxis   = "#868e96"
	svgText   = "#495057"
	svgColP50 = "#1971c2"
	svgColP99 = "#e03131"
	svgColTPS = "#868e96"
	// svgColStore shades the seconds in which Badger compacted.
	svgColStore = "#ffe8a1"
	svgPanelH   = 230 // height of one timeline panel
	svgLegendH  = 34
)

// svgPhaseColors are the colors of the phases in the histogram, by rptPhase.key.
var svgPhaseColors = map[string]string{"switch": "#6741d9", "paced": "#0c8599", "relay": "#e67700", "relaypaced": "#868e96"}

// svgBuf accumulates an SVG document.
type svgBuf struct{ strings.Builder }

func (b *svgBuf) printf(format string, args ...any) { fmt.Fprintf(&b.Builder, format, args...) }

// text writes a text element; s is escaped.
func (b *svgBuf) text(x, y float64, anchor, attrs, s string) {
	b.printf(`<text x="%s" y="%s" text-anchor="%s" %s>%s</text>`+"\n", svgNum(x), svgNum(y), anchor, attrs, html.EscapeString(s))
}

func (b *svgBuf) line(x1, y1, x2, y2 float64, attrs string) {
	b.printf(`<line x1="%s" y1="%s" x2="%s" y2="%s" %s/>`+"\n", svgNum(x1), svgNum(y1), svgNum(x2), svgNum(y2), attrs)
}

// svgNum formats a coordinate with at most one decimal; NaN and infinities, which
// should not happen, come out as 0 rather than break the document.
func svgNum(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "0"
	}
	v = math.Round(v*10) / 10
	if v == 0 {
		return "0" // no "-0"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// svgScale maps a domain [d0, d1] linearly onto a range [r0, r1].
type svgScale struct{ d0, d1, r0, r1 float64 }

func (s svgScale) at(v float64) float64 {
	if s.d1 == s.d0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return s.r0
	}
	return s.r0 + (v-s.d0)/(s.d1-s.d0)*(s.r1-s.r0)
}

// svgNiceStep returns a step of 1, 2 or 5 times a power of ten that cuts span into
// about n intervals.
func svgNiceStep(span float64, n int) float64 {
	if !(span > 0) || math.IsInf(span, 0) || n < 1 {
		return 1
	}
	raw := span / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	switch f := raw / p; {
	case f <= 1:
		return p
	case f <= 2:
		return 2 * p
	case f <= 5:
		return 5 * p
	default:
		return 10 * p
	}
}

// svgNiceMax returns a round upper bound at or above v for an axis starting at zero,
// and the step of its ticks.
func svgNiceMax(v float64, n int) (top, step float64) {
	if !(v > 0) || math.IsInf(v, 0) {
		return 1, svgNiceStep(1, n)
	}
	step = svgNiceStep(v, n)
	top = math.Ceil(v/step) * step
	if top < v*1.04 { // leave a little air above the highest value
		top += step
	}
	return top, step
}

// svgTicks returns the multiples of step in [lo, hi].
func svgTicks(lo, hi, step float64) []float64 {
	if !(step > 0) || !(hi >= lo) || (hi-lo)/step > 1000 {
		return nil
	}
	var out []float64
	for v := math.Ceil(lo/step-1e-9) * step; v <= hi+step*1e-9; v += step {
		t := math.Round(v/step) * step
		if t == 0 {
			t = 0 // not -0
		}
		out = append(out, t)
	}
	return out
}

// svgUSLabel labels a latency tick: "0", "250 µs", "1 ms", "2.5 ms", "1.5 s".
func svgUSLabel(us float64) string {
	a := math.Abs(us)
	switch {
	case a == 0:
		return "0"
	case a < 1000:
		return strconv.FormatFloat(us, 'g', 4, 64) + " µs"
	case a < 1e6:
		return strconv.FormatFloat(us/1000, 'g', 4, 64) + " ms"
	case a < 1e9:
		return strconv.FormatFloat(us/1e6, 'g', 4, 64) + " s"
	default:
		return strconv.FormatFloat(us/1e6, 'f', 0, 64) + " s"
	}
}

// svgCountLabel labels a throughput tick: "0", "500", "1.5k", "20k", "1.2M".
func svgCountLabel(v float64) string {
	a := math.Abs(v)
	switch {
	case a < 1000:
		return strconv.FormatFloat(v, 'g', 4, 64)
	case a < 1e6:
		return strconv.FormatFloat(v/1000, 'g', 4, 64) + "k"
	default:
		return strconv.FormatFloat(v/1e6, 'g', 4, 64) + "M"
	}
}

// svgOpen starts an SVG document of the given height with a title for screen readers.
func svgOpen(b *svgBuf, id string, height int, title string) {
	b.printf(`<svg viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-labelledby="%s-title" %s font-size="12" fill="%s">`+"\n",
		svgWidth, height, svgWidth, height, id, svgFont, svgText)
	b.printf(`<title id="%s-title">%s</title>`+"\n", id, html.EscapeString(title))
}

// svgLegendItem is an entry of a legend: a color swatch (a line, a dashed line or an
// outlined area) and a label.
type svgLegendItem struct {
	color, label string
	dashed, area bool
}

// svgLegend draws legend entries in rows from (x, y), wrapping before maxX, and returns
// the drawing and the baseline of its last row.
func svgLegend(x, y, maxX float64, items []svgLegendItem) (string, float64) {
	var b svgBuf
	left := x
	for _, it := range items {
		w := 24 + 6.8*float64(len([]rune(it.label)))
		if x > left && x+w > maxX {
			x, y = left, y+20
		}
		switch {
		case it.area:
			b.printf(`<rect x="%s" y="%s" width="18" height="10" fill="%s" fill-opacity="0.2" stroke="%s" stroke-width="1.5"/>`+"\n",
				svgNum(x), svgNum(y-5), it.color, it.color)
		case it.dashed:
			b.line(x, y, x+18, y, `stroke="`+it.color+`" stroke-width="2" stroke-dasharray="4 3"`)
		default:
			b.line(x, y, x+18, y, `stroke="`+it.color+`" stroke-width="2.5"`)
		}
		b.text(x+24, y+4, "start", "", it.label)
		x += w + 24
	}
	return b.String(), y
}

// svgTimelinePanel is one phase's timeline.
type svgTimelinePanel struct {
	title  string // e.g. "switch, closed loop"
	points []Point
}

// svgTimeline draws the latency (p50 and p99, left axis) and the throughput (right
// axis) over the seconds of the window, one panel per phase stacked vertically.
func svgTimeline(panels []svgTimelinePanel) string {
	var b svgBuf
	height := svgLegendH + max(len(panels), 1)*svgPanelH
	svgOpen(&b, "sy-timeline", height, "Latency and throughput over time")
	items := []svgLegendItem{
		{color: svgColP50, label: "p50 latency (left axis)"},
		{color: svgColP99, label: "p99 latency (left axis)"},
		{color: svgColTPS, label: "authorizations/s (right axis)", dashed: true},
	}
	if slices.ContainsFunc(panels, func(p svgTimelinePanel) bool {
		return slices.ContainsFunc(p.points, func(pt Point) bool { return pt.StoreBusy })
	}) {
		items = append(items, svgLegendItem{color: svgColStore, label: "Badger compacting (shaded)"})
	}
	legend, _ := svgLegend(72, 16, svgWidth-20, items)
	b.WriteString(legend)
	if len(panels) == 0 {
		b.text(svgWidth/2, svgLegendH+svgPanelH/2, "middle", `fill="`+svgAxis+`"`, "no phase was measured")
	}
	for i, p := range panels {
		svgTimelineDraw(&b, i, float64(svgLegendH+i*svgPanelH), p)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func svgTimelineDraw(b *svgBuf, idx int, top float64, p svgTimelinePanel) {
	const ml, mr, mt, mb = 72.0, 72.0, 26.0, 44.0
	x0, x1 := ml, svgWidth-mr
	y0, y1 := top+svgPanelH-mb, top+mt // bottom and top of the plot area
	b.text(x0, top+16, "start", `font-weight="600" font-size="13" fill="#212529"`, p.title)

	pts := append([]Point(nil), p.points...)
	sort.SliceStable(pts, func(i, j int) bool { return pts[i].Second < pts[j].Second })

	// Domains. A single point gets a one-second wide axis around it.
	sMin, sMax := 0.0, 1.0
	var latMax, tpsMax float64
	if len(pts) > 0 {
		sMin, sMax = float64(pts[0].Second), float64(pts[len(pts)-1].Second)
		if sMax <= sMin { // one second: centred on a one-second axis
			sMin, sMax = sMin-0.5, sMin+0.5
		}
	}
	for _, pt := range pts {
		latMax = math.Max(latMax, float64(max(pt.P50US, pt.P99US)))
		if rptFinite(pt.TPS) {
			tpsMax = math.Max(tpsMax, pt.TPS)
		}
	}
	// Latencies are whole microseconds and rates mostly whole: no axis below 5.
	latTop, latStep := svgNiceMax(math.Max(latMax, 5), 5)
	tpsTop, tpsStep := svgNiceMax(math.Max(tpsMax, 5), 5)
	xs := svgScale{sMin, sMax, x0, x1}
	ly := svgScale{0, latTop, y0, y1}
	ty := svgScale{0, tpsTop, y0, y1}

	if len(pts) == 0 {
		b.line(x0, y0, x1, y0, `stroke="`+svgAxis+`"`)
		b.line(x0, y0, x0, y1, `stroke="`+svgAxis+`"`)
		b.line(x1, y0, x1, y1, `stroke="`+svgAxis+`"`)
		b.text(x0+(x1-x0)/2, (y0+y1)/2, "middle", `fill="`+svgAxis+`"`, "no timeline recorded")
		return
	}
	// Seconds in which Badger compacted (the open loop only), shaded
	// behind the lines.
	for _, pt := range pts {
		if pt.StoreBusy {
			xa, xb := xs.at(math.Max(sMin, float64(pt.Second)-0.5)), xs.at(math.Min(sMax, float64(pt.Second)+0.5))
			b.printf(`<rect x="%s" y="%s" width="%s" height="%s" fill="%s"><title>second %d: Badger compacted, writing %s MB</title></rect>`+"\n",
				svgNum(xa), svgNum(y1), svgNum(math.Max(xb-xa, 1)), svgNum(y0-y1), svgColStore, pt.Second, svgNum(pt.StoreMB))
		}
	}
	// Grid and left axis (latency).
	for _, v := range svgTicks(0, latTop, latStep) {
		y := ly.at(v)
		b.line(x0, y, x1, y, `stroke="`+svgGrid+`"`)
		b.text(x0-8, y+4, "end", "", svgUSLabel(v))
	}
	// Right axis (throughput): ticks on the axis only, the grid follows the left one.
	for _, v := range svgTicks(0, tpsTop, tpsStep) {
		y := ty.at(v)
		b.line(x1, y, x1+5, y, `stroke="`+svgAxis+`"`)
		b.text(x1+8, y+4, "start", `fill="`+svgColTPS+`"`, svgCountLabel(v))
	}
	// Bottom axis (seconds).
	for _, v := range svgTicks(sMin, sMax, math.Max(1, svgNiceStep(sMax-sMin, 10))) {
		x := xs.at(v)
		b.line(x, y0, x, y0+5, `stroke="`+svgAxis+`"`)
		b.text(x, y0+18, "middle", "", svgCountLabel(v))
	}
	b.line(x0, y0, x1, y0, `stroke="`+svgAxis+`"`)
	b.line(x0, y0, x0, y1, `stroke="`+svgAxis+`"`)
	b.line(x1, y0, x1, y1, `stroke="`+svgAxis+`"`)
	b.text(x0+(x1-x0)/2, y0+36, "middle", `fill="`+svgAxis+`"`, "seconds into the measured window")
	b.printf(`<text transform="translate(%s %s) rotate(-90)" text-anchor="middle" fill="%s">latency</text>`+"\n",
		svgNum(18), svgNum((y0+y1)/2), svgAxis)
	b.printf(`<text transform="translate(%s %s) rotate(90)" text-anchor="middle" fill="%s">authorizations/s</text>`+"\n",
		svgNum(svgWidth-14), svgNum((y0+y1)/2), svgAxis)

	clip := fmt.Sprintf("sy-tl-clip-%d", idx)
	b.printf(`<clipPath id="%s"><rect x="%s" y="%s" width="%s" height="%s"/></clipPath>`+"\n",
		clip, svgNum(x0), svgNum(y1-2), svgNum(x1-x0), svgNum(y0-y1+4))
	b.printf(`<g clip-path="url(#%s)" fill="none" stroke-linejoin="round" stroke-linecap="round">`+"\n", clip)
	series := []struct {
		color, attrs string
		y            func(Point) float64
	}{
		{svgColTPS, `stroke-width="1.5" stroke-dasharray="4 3"`, func(pt Point) float64 { return ty.at(pt.TPS) }},
		{svgColP99, `stroke-width="2"`, func(pt Point) float64 { return ly.at(float64(pt.P99US)) }},
		{svgColP50, `stroke-width="2"`, func(pt Point) float64 { return ly.at(float64(pt.P50US)) }},
	}
	for _, s := range series {
		if len(pts) == 1 {
			b.printf(`<circle cx="%s" cy="%s" r="3.5" fill="%s" stroke="none"/>`+"\n",
				svgNum(xs.at(float64(pts[0].Second))), svgNum(s.y(pts[0])), s.color)
			continue
		}
		var d strings.Builder
		for i, pt := range pts {
			if i > 0 {
				d.WriteByte(' ')
			}
			d.WriteString(svgNum(xs.at(float64(pt.Second))))
			d.WriteByte(',')
			d.WriteString(svgNum(s.y(pt)))
		}
		b.printf(`<polyline points="%s" stroke="%s" %s/>`+"\n", d.String(), s.color, s.attrs)
	}
	b.WriteString("</g>\n")
}

// svgHistSeries is one phase's latency histogram.
type svgHistSeries struct {
	label, color string
	buckets      []Bucket
	p50, p99     int64
}

// svgBin is a histogram bucket with both bounds, in microseconds, and the share of the
// answers in it, in percent, normalised to the typical bucket width.
type svgBin struct{ lo, hi, pct float64 }

// svgBins gives each bucket its lower bound (the previous bucket's upper bound; for the
// first one, a step like the next one's below its upper bound) and its share of the
// answers. Shares are divided by the bucket's width on the log axis relative to the
// median width, so that uneven buckets do not distort the shape; with evenly spaced
// buckets (the usual case) they are plain shares. uneven reports whether that
// normalisation changed anything. It returns no bins when nothing was counted.
func svgBins(buckets []Bucket) (bins []svgBin, uneven bool) {
	bs := append([]Bucket(nil), buckets...)
	sort.SliceStable(bs, func(i, j int) bool { return bs[i].UpperUS < bs[j].UpperUS })
	var merged []Bucket // bounds of at least 1 µs, each once
	var total int64
	for _, bk := range bs {
		bk.UpperUS = max(bk.UpperUS, 1)
		bk.Count = max(bk.Count, 0)
		total += bk.Count
		if n := len(merged); n > 0 && merged[n-1].UpperUS == bk.UpperUS {
			merged[n-1].Count += bk.Count
			continue
		}
		merged = append(merged, bk)
	}
	if total <= 0 {
		return nil, false
	}
	widths := make([]float64, len(merged))
	for i, bk := range merged {
		hi := float64(bk.UpperUS)
		var lo float64
		switch {
		case i > 0:
			lo = float64(merged[i-1].UpperUS)
		case len(merged) > 1:
			lo = math.Max(hi*hi/float64(merged[1].UpperUS), hi/10)
		default:
			lo = hi / 2
		}
		bins = append(bins, svgBin{lo: lo, hi: hi, pct: 100 * float64(bk.Count) / float64(total)})
		widths[i] = math.Log10(hi / lo)
	}
	sorted := append([]float64(nil), widths...)
	sort.Float64s(sorted)
	median := sorted[len(sorted)/2]
	for i := range bins {
		f := median / widths[i]
		if math.Abs(f-1) > 0.1 && bins[i].pct > 0 {
			uneven = true
		}
		bins[i].pct *= f
	}
	return bins, uneven
}

// svgHistogram draws the latency histograms of the phases as outlined areas over a
// log-scaled latency axis, with the p99 of each as a dashed vertical line. uneven
// reports whether some buckets were normalised to the typical width.
func svgHistogram(series []svgHistSeries) (out string, uneven bool) {
	type drawn struct {
		s    svgHistSeries
		bins []svgBin
	}
	var ds []drawn
	var items []svgLegendItem
	lo, hi, pctMax := math.Inf(1), math.Inf(-1), 0.0
	for _, s := range series {
		bins, u := svgBins(s.buckets)
		uneven = uneven || u
		label := s.label
		if bins == nil {
			label += " (no data)"
		} else {
			label += " (p50 " + rptUS(s.p50) + ", p99 " + rptUS(s.p99) + ")"
		}
		items = append(items, svgLegendItem{color: s.color, label: label, area: true})
		if bins == nil {
			continue
		}
		for _, bn := range bins {
			if bn.pct > 0 {
				lo, hi = math.Min(lo, bn.lo), math.Max(hi, bn.hi)
				pctMax = math.Max(pctMax, bn.pct)
			}
		}
		ds = append(ds, drawn{s, bins})
	}
	if len(ds) > 0 {
		items = append(items, svgLegendItem{color: svgAxis, label: "p99 (in the phase's color)", dashed: true})
	}

	const plotH, ml, mr, mb = 260.0, 72.0, 40.0, 48.0
	legend, legendY := svgLegend(ml, 16, svgWidth-20, items)
	x0, x1, y1 := ml, svgWidth-mr, legendY+24
	y0 := y1 + plotH
	height := int(y0 + mb)
	var b svgBuf
	svgOpen(&b, "sy-histogram", height, "Latency distribution")
	b.WriteString(legend)
	if len(ds) == 0 {
		b.line(x0, y0, x1, y0, `stroke="`+svgAxis+`"`)
		b.text((x0+x1)/2, (y0+y1)/2, "middle", `fill="`+svgAxis+`"`, "no latency histogram recorded")
		b.WriteString("</svg>\n")
		return b.String(), uneven
	}

	// Log x domain over the buckets that counted something, at least one decade wide.
	lo, hi = math.Max(lo, 0.1), math.Max(hi, 1)
	if hi/lo < 10 {
		mid := math.Sqrt(lo * hi)
		lo, hi = mid/math.Sqrt(10), mid*math.Sqrt(10)
	}
	l0, l1 := math.Log10(lo), math.Log10(hi)
	xs := svgScale{l0, l1, x0, x1}
	xAt := func(us float64) float64 { return xs.at(math.Log10(math.Max(us, 1e-3))) }
	pctTop, pctStep := svgNiceMax(pctMax, 5)
	ys := svgScale{0, pctTop, y0, y1}

	for _, v := range svgTicks(0, pctTop, pctStep) {
		y := ys.at(v)
		b.line(x0, y, x1, y, `stroke="`+svgGrid+`"`)
		b.text(x0-8, y+4, "end", "", strconv.FormatFloat(v, 'g', 4, 64)+"%")
	}
	// Decades get a grid line and, every every-th one, a label; 2× and 5× get a label
	// when the axis spans few decades, a tick otherwise.
	decades := l1 - l0
	every := math.Max(1, math.Ceil(decades/8))
	for e := math.Floor(l0); e <= math.Ceil(l1); e++ {
		for _, m := range []float64{1, 2, 3, 4, 5, 6, 7, 8, 9} {
			v := m * math.Pow(10, e)
			if v < lo*0.999 || v > hi*1.001 {
				continue
			}
			x := xAt(v)
			labelled := (m == 1 && math.Mod(e, every) == 0) || ((m == 2 || m == 5) && decades <= 3.2)
			if m == 1 {
				b.line(x, y0, x, y1, `stroke="`+svgGrid+`"`)
			}
			tick := 3.0
			if labelled {
				tick = 6
				b.text(x, y0+19, "middle", "", svgUSLabel(v))
			}
			b.line(x, y0, x, y0+tick, `stroke="`+svgAxis+`"`)
		}
	}
	b.line(x0, y0, x1, y0, `stroke="`+svgAxis+`"`)
	b.line(x0, y0, x0, y1, `stroke="`+svgAxis+`"`)
	b.text((x0+x1)/2, y0+38, "middle", `fill="`+svgAxis+`"`, "latency (log scale)")
	b.printf(`<text transform="translate(%s %s) rotate(-90)" text-anchor="middle" fill="%s">share of answers per bucket</text>`+"\n",
		svgNum(16), svgNum((y0+y1)/2), svgAxis)

	b.printf(`<clipPath id="sy-hist-clip"><rect x="%s" y="%s" width="%s" height="%s"/></clipPath>`+"\n",
		svgNum(x0), svgNum(y1-2), svgNum(x1-x0), svgNum(y0-y1+2))
	b.WriteString(`<g clip-path="url(#sy-hist-clip)" stroke-linejoin="round">` + "\n")
	for _, d := range ds {
		// A step outline: up and across each bucket, down to the axis at both ends.
		var p strings.Builder
		fmt.Fprintf(&p, "M%s,%s", svgNum(xAt(d.bins[0].lo)), svgNum(y0))
		for _, bn := range d.bins {
			y := ys.at(bn.pct)
			fmt.Fprintf(&p, " L%s,%s L%s,%s", svgNum(xAt(bn.lo)), svgNum(y), svgNum(xAt(bn.hi)), svgNum(y))
		}
		fmt.Fprintf(&p, " L%s,%s Z", svgNum(xAt(d.bins[len(d.bins)-1].hi)), svgNum(y0))
		b.printf(`<path d="%s" fill="%s" fill-opacity="0.14" stroke="%s" stroke-width="1.8"/>`+"\n", p.String(), d.s.color, d.s.color)
	}
	for _, d := range ds {
		if d.s.p99 > 0 {
			x := xAt(float64(d.s.p99))
			b.line(x, y0, x, y1, `stroke="`+d.s.color+`" stroke-width="1.5" stroke-dasharray="5 3"`)
		}
	}
	b.WriteString("</g>\n</svg>\n")
	return b.String(), uneven
}
