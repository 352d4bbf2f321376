package bench

import (
	htmltemplate "html/template" // load.go declares a type named template
	"io"
)

// WriteHTML writes the report as one self-contained HTML page: the run's header, the
// summary of the phases, the targets, the fraud scenarios and two charts (latency and
// throughput over time, latency histograms) drawn as inline SVG. The page loads
// nothing: no script, style sheet, font or image from elsewhere, so it reads offline.
func (r *Result) WriteHTML(w io.Writer) error {
	m := r.rptView()
	d := htmlData{
		Title:      m.title,
		Heading:    m.heading,
		Meta:       m.meta,
		Settings:   m.settingsKV,
		Extras:     m.extras,
		Codes:      m.codes,
		Scenarios:  m.scenarios,
		Targets:    m.targets,
		TargetsMet: m.targetsMet,
		Judged:     len(m.targets) - m.targetsNotJudged,
		NotJudged:  m.targetsNotJudged,
		Faults:     m.faults,
		FaultNotes: m.faultNotes,
	}
	d.Head = append(d.Head, "")
	for _, p := range m.phases {
		d.Head = append(d.Head, p.long)
	}
	for _, row := range m.summary {
		d.Rows = append(d.Rows, append([]string{row.name}, row.values...))
	}

	var panels []svgTimelinePanel
	var series []svgHistSeries
	for _, p := range m.phases {
		panels = append(panels, svgTimelinePanel{title: p.long, points: p.p.Timeline})
		series = append(series, svgHistSeries{label: p.label, color: svgPhaseColors[p.key], buckets: p.p.Buckets, p50: p.p.Latency.P50, p99: p.p.Latency.P99})
	}
	// The SVG is built from numbers formatted in Go and texts escaped by the
	// generator (svg.go), so it is trusted here.
	d.TimelineSVG = htmltemplate.HTML(svgTimeline(panels))
	hist, uneven := svgHistogram(series)
	d.HistogramSVG = htmltemplate.HTML(hist)
	d.HistogramUneven = uneven
	d.Latency = r.latencyTables()
	d.CurveSVG = htmltemplate.HTML(svgCurve(r.Curve))
	return htmlReport.Execute(w, d)
}

// htmlData is what the page template shows.
type htmlData struct {
	Title, Heading  string
	Meta, Settings  []rptKV
	Head            []string   // "" then the long name of each phase
	Rows            [][]string // metric then its value in each phase
	Extras          []rptKV
	Codes           []rptCode
	Scenarios       []rptScenario
	Targets         []rptTarget
	TargetsMet      int
	Judged          int // targets the run could judge
	NotJudged       int
	Faults          []rptKV
	FaultNotes      []string
	TimelineSVG     htmltemplate.HTML
	HistogramSVG    htmltemplate.HTML
	HistogramUneven bool
	Latency         []rptLatencyTable // latencyreport.go
	CurveSVG        htmltemplate.HTML
}

var htmlReport = htmltemplate.Must(htmltemplate.New("report").Parse(htmlPage))

const htmlPage = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
:root { color-scheme: light; }
body { margin: 0; background: #f8f9fa; color: #212529;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
main { max-width: 1000px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 10px; }
section { background: #fff; border: 1px solid #dee2e6; border-radius: 6px; padding: 14px 18px; margin-top: 16px; }
section > h2:first-child { margin-top: 0; }
.meta { display: flex; flex-wrap: wrap; gap: 4px 22px; margin: 8px 0 0; color: #495057; }
.meta b { color: #868e96; font-weight: 500; margin-right: 4px; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: 5px 10px; border-bottom: 1px solid #e9ecef; text-align: left; vertical-align: top; }
th { font-weight: 600; color: #495057; }
thead th { background: #f1f3f5; }
tbody th { font-weight: 500; }
tbody tr:hover { background: #f8f9fa; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.total td { font-weight: 600; border-top: 2px solid #ced4da; }
.code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.muted { color: #868e96; }
.met { color: #2b8a3e; font-weight: 700; }
.missed { color: #c92a2a; font-weight: 700; }
.unjudged { color: #868e96; font-weight: 700; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 12px; font-weight: 600; font-size: 13px; margin-left: 8px; vertical-align: 2px; }
.verdict.ok { background: #d3f9d8; color: #2b8a3e; }
.verdict.ko { background: #ffe3e3; color: #c92a2a; }
.chart { overflow-x: auto; }
.chart svg { display: block; max-width: 100%; height: auto; }
.note { color: #868e96; font-size: 12px; margin: 6px 0 0; }
td.nw { white-space: nowrap; }
.twocol { display: flex; flex-wrap: wrap; gap: 8px 40px; }
.twocol > div { flex: 1 1 300px; }
</style>
</head>
<body>
<main>
<header>
<h1>{{.Heading}}</h1>
<div class="meta">{{range .Meta}}<span><b>{{.Key}}</b>{{.Value}}</span>{{end}}</div>
{{with .Settings}}<div class="meta">{{range .}}<span><b>{{.Key}}</b>{{.Value}}</span>{{end}}</div>{{end}}
</header>

<section>
<h2>Summary</h2>
{{if .Rows}}<table>
<thead><tr>{{range $i, $h := .Head}}<th{{if $i}} class="n"{{end}}>{{$h}}</th>{{end}}</tr></thead>
<tbody>
{{range .Rows}}<tr>{{range $i, $c := .}}{{if $i}}<td class="n">{{$c}}</td>{{else}}<th>{{$c}}</th>{{end}}{{end}}</tr>
{{end}}</tbody>
</table>{{else}}<p class="muted">No phase was measured.</p>{{end}}
<div class="twocol">
{{with .Extras}}<div><h2>Cost</h2><table><tbody>
{{range .}}<tr><th>{{.Key}}</th><td class="n">{{.Value}}</td></tr>
{{end}}</tbody></table></div>{{end}}
{{with .Codes}}<div><h2>Response codes of the switch</h2><table>
<thead><tr><th>code</th><th>meaning</th><th class="n">count</th><th class="n">share</th></tr></thead><tbody>
{{range .}}<tr><td class="code">{{.Code}}</td><td>{{.Meaning}}</td><td class="n">{{.Count}}</td><td class="n">{{.Share}}</td></tr>
{{end}}</tbody></table></div>{{end}}
</div>
</section>

{{if .Targets}}<section>
<h2>Targets <span class="verdict {{if eq .TargetsMet .Judged}}ok{{else}}ko{{end}}">{{.TargetsMet}} of {{.Judged}} met{{if .NotJudged}}, {{.NotJudged}} not judged{{end}}</span></h2>
<table>
<thead><tr><th></th><th>target</th><th>goal</th><th class="n">measured</th></tr></thead>
<tbody>
{{range .Targets}}<tr><td>{{if .NotJudged}}<span class="unjudged" title="{{.NotJudged}}">&#8211; NOT JUDGED</span>{{else if .Met}}<span class="met" title="met">&#10004; MET</span>{{else}}<span class="missed" title="missed">&#10008; MISSED</span>{{end}}</td><td>{{.Name}}</td><td>{{.Goal}}</td><td class="n">{{.Measured}}</td></tr>
{{end}}</tbody>
</table>
</section>{{end}}

{{if .Faults}}<section>
<h2>Faults and reconciliation</h2>
<table><tbody>
{{range .Faults}}<tr><th>{{.Key}}</th><td class="n">{{.Value}}</td></tr>
{{end}}</tbody></table>
{{range .FaultNotes}}<p class="note">Note: {{.}}</p>{{end}}
<p class="note">The reconciliation checks every approval the issuer simulator gave against the terminals' answers, the simulator's record of reversals and the switch's journal.</p>
</section>{{end}}

<section>
<h2>Latency and throughput over time</h2>
<div class="chart">{{.TimelineSVG}}</div>
<p class="note">One point per second of the measured window; latency on the left axis, authorizations per second on the right.</p>
</section>

<section>
<h2>Latency distribution</h2>
<div class="chart">{{.HistogramSVG}}</div>
<p class="note">Share of the answers in each latency bucket; the latency axis is logarithmic.{{if .HistogramUneven}} Buckets of uneven width are scaled to the typical bucket width.{{end}}</p>
</section>

{{if .CurveSVG}}<section>
<h2>Latency versus rate</h2>
<div class="chart">{{.CurveSVG}}</div>
<p class="note">Open loop at each rate; latency from each request's scheduled send, so that a request the harness could not send on time counts its wait.</p>
</section>{{end}}

{{range .Latency}}<section>
<h2>{{.Title}}</h2>
<table>{{with .Head}}<thead><tr>{{range .}}<th>{{.}}</th>{{end}}</tr></thead>{{end}}
<tbody>{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</tbody></table>
</section>{{end}}

{{if .Scenarios}}<section>
<h2>Scenarios</h2>
<table>
<thead><tr><th>scenario</th><th>fraud?</th><th class="n">sent</th><th class="n">declined</th><th class="n">rate</th><th></th><th>top reasons</th></tr></thead>
<tbody>
{{range .Scenarios}}<tr{{if .Total}} class="total"{{end}}><td class="nw">{{.Label}}</td><td>{{.FraudText}}</td><td class="n">{{.Sent}}</td><td class="n">{{.Declined}}</td><td class="n">{{.Rate}}</td><td class="muted">{{.RateKind}}</td><td>{{.Reasons}}</td></tr>
{{end}}</tbody>
</table>
<p class="note">The rate is the catch rate of a fraud scenario and the false-positive rate of legitimate traffic: declined over sent.</p>
</section>{{end}}
</main>
</body>
</html>
`
