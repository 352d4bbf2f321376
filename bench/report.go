package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// This file renders a Result as JSON and as the end-of-run table for a terminal. The
// rows of the table are built once (rptModel) and shared with the HTML report, so the
// terminal and the browser show the same figures.

// WriteJSON writes r as indented JSON, the format of the result file. Numbers that JSON
// cannot hold (NaN and infinities, say a ratio to a relay that answered nothing) are
// written as 0 rather than fail the whole file.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r.finite())
}

// finite returns r, or a copy of it with its non-finite numbers replaced by 0.
func (r *Result) finite() *Result {
	fix := func(v *float64, changed *bool) {
		if !rptFinite(*v) {
			*v, *changed = 0, true
		}
	}
	c := *r
	changed := false
	fix(&c.Settings.Rate, &changed)
	fix(&c.SwitchCPUPerAuthUS, &changed)
	fix(&c.SimCPUPerAuthUS, &changed)
	fix(&c.HarnessCPUPerAuthUS, &changed)
	fix(&c.Ratio, &changed)
	for _, pp := range []**Phase{&c.Switch, &c.Paced, &c.Relay, &c.RelayPaced} {
		if *pp == nil {
			continue
		}
		p := **pp
		fix(&p.TPS, &changed)
		p.Timeline = append([]Point(nil), p.Timeline...)
		for i := range p.Timeline {
			fix(&p.Timeline[i].TPS, &changed)
		}
		*pp = &p
	}
	c.Scenarios = append([]Scenario(nil), r.Scenarios...)
	for i := range c.Scenarios {
		fix(&c.Scenarios[i].Rate, &changed)
	}
	c.Targets = append([]Target(nil), r.Targets...)
	for i := range c.Targets {
		fix(&c.Targets[i].Measured, &changed)
	}
	if !changed {
		return r
	}
	return &c
}

// ReadResult reads a result file written by WriteJSON.
func ReadResult(rd io.Reader) (*Result, error) {
	dec := json.NewDecoder(rd)
	var r Result
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("bench: read result: %w", err)
	}
	// A result file holds one object: anything but white space after it is damage.
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("bench: read result: trailing data after the result object")
	}
	return &r, nil
}

// WriteTable writes the end-of-run report for a terminal: the phases side by side
// (throughput, answers, errors, latency quantiles), the switch's CPU cost and its ratio
// to the relay, the response codes of the switch, the fraud scenarios and the targets.
func (r *Result) WriteTable(w io.Writer) {
	m := r.rptView()
	fmt.Fprintln(w)
	fmt.Fprintln(w, m.title)
	if m.settings != "" {
		fmt.Fprintln(w, m.settings)
	}

	if len(m.phases) == 0 {
		fmt.Fprintln(w, "\nno phase was measured")
	} else {
		fmt.Fprintln(w)
		t := rptTable{right: []bool{false}}
		head := []string{""}
		for _, p := range m.phases {
			head = append(head, p.label)
			t.right = append(t.right, true)
		}
		t.rows = append(t.rows, head)
		for _, row := range m.summary {
			t.rows = append(t.rows, append([]string{row.name}, row.values...))
		}
		t.write(w, "")
	}

	if len(m.extras) > 0 {
		fmt.Fprintln(w)
		t := rptTable{right: []bool{false, true}}
		for _, kv := range m.extras {
			t.rows = append(t.rows, []string{kv.Key, kv.Value})
		}
		t.write(w, "")
	}

	if len(m.faults) > 0 {
		fmt.Fprintln(w, "\nfaults and reconciliation")
		t := rptTable{right: []bool{false, false}}
		for _, kv := range m.faults {
			t.rows = append(t.rows, []string{kv.Key, kv.Value})
		}
		t.write(w, "")
		for _, n := range m.faultNotes {
			fmt.Fprintln(w, "note: "+n)
		}
	}

	if len(m.codes) > 0 {
		fmt.Fprintln(w, "\nresponse codes (switch)")
		t := rptTable{right: []bool{false, false, true, true}}
		for _, c := range m.codes {
			t.rows = append(t.rows, []string{c.Code, c.Meaning, c.Count, c.Share})
		}
		t.write(w, "")
	}

	if len(m.scenarios) > 0 {
		fmt.Fprintln(w, "\nscenarios (rate: catch rate of fraud, false-positive rate of legitimate traffic)")
		t := rptTable{right: []bool{false, false, true, true, true, false, false}}
		t.rows = append(t.rows, []string{"scenario", "fraud?", "sent", "declined", "rate", "", "top reasons"})
		for _, s := range m.scenarios {
			t.rows = append(t.rows, []string{s.Label, s.FraudText, s.Sent, s.Declined, s.Rate, s.RateKind, s.Reasons})
		}
		t.write(w, "")
	}

	if len(m.targets) > 0 {
		fmt.Fprintf(w, "\ntargets: %d of %d met", m.targetsMet, len(m.targets)-m.targetsNotJudged)
		if m.targetsNotJudged > 0 {
			fmt.Fprintf(w, ", %d not judged", m.targetsNotJudged)
		}
		fmt.Fprintln(w)
		t := rptTable{right: []bool{false, false, false, true}}
		for _, tg := range m.targets {
			t.rows = append(t.rows, []string{tg.Verdict, tg.Name, tg.Goal, tg.Measured})
		}
		t.write(w, "")
	}
	r.writeLatency(w)
	fmt.Fprintln(w)
}

// rptTable is a table for a terminal, aligned with text/tabwriter. Columns flagged in
// right are right-aligned (numbers); the others are left-aligned (text).
type rptTable struct {
	rows  [][]string
	right []bool
}

// write writes the table with each line prefixed by indent. tabwriter aligns a whole
// table one way, so the writer right-aligns and the text columns are padded to their
// width beforehand, which makes them left-aligned.
func (t rptTable) write(w io.Writer, indent string) {
	ncol := 0
	for _, row := range t.rows {
		ncol = max(ncol, len(row))
	}
	width := make([]int, ncol)
	for _, row := range t.rows {
		for i, c := range row {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, row := range t.rows {
		var b strings.Builder
		b.WriteString(indent)
		for i := 0; i < ncol; i++ {
			c := ""
			if i < len(row) {
				c = row[i]
			}
			switch {
			case i < len(t.right) && t.right[i]:
				b.WriteString(c)
			case i == ncol-1:
				// A trailing text cell is not a column: no padding, just a separator.
				b.WriteString("  ")
				b.WriteString(c)
				continue
			default:
				b.WriteString(c)
				b.WriteString(strings.Repeat(" ", width[i]-len([]rune(c))))
			}
			b.WriteByte('\t')
		}
		fmt.Fprintln(tw, strings.TrimRight(b.String(), " "))
	}
	tw.Flush()
}

// rptPhase is a phase present in a result, with the name it is shown under.
type rptPhase struct {
	key   string // "switch", "paced" or "relay"
	label string // short column heading, e.g. "paced 5,000/s"
	long  string // e.g. "switch, open loop at 5,000/s"
	p     *Phase
}

// rptKV is a labelled value.
type rptKV struct{ Key, Value string }

// rptRow is a row of the summary: a metric and its value in each phase.
type rptRow struct {
	name   string
	values []string
}

// rptCode is a response code of the switch phase.
type rptCode struct{ Code, Meaning, Count, Share string }

// rptScenario is a row of the scenario table.
type rptScenario struct {
	Label, FraudText, Sent, Declined, Rate, RateKind, Reasons string
	Fraud, Total                                              bool
}

// rptTarget is a target and its outcome.
type rptTarget struct {
	Name, Goal, Measured, Verdict string
	Met                           bool
	NotJudged                     string // why the run cannot judge it
}

// rptModel is a Result made into the strings both reports show.
type rptModel struct {
	title, settings  string  // a line each for a terminal
	heading          string  // "Switchyard bench — standard", for the page
	meta             []rptKV // scenario, started, host, version
	settingsKV       []rptKV
	phases           []rptPhase
	summary          []rptRow
	extras           []rptKV
	codes            []rptCode
	scenarios        []rptScenario
	targets          []rptTarget
	targetsMet       int
	targetsNotJudged int
	faults           []rptKV  // the fault run's figures (bench --faults)
	faultNotes       []string // how the fault run departs from the setting
}

// rptPhases returns the phases present in r, in the order switch, paced, relay.
func (r *Result) rptPhases() []rptPhase {
	var out []rptPhase
	if r.Switch != nil {
		long := "switch, closed loop"
		if r.Faults != nil { // an open loop through faults, named with its schedule
			long = rptOr(r.Switch.Name, "switch under faults")
		}
		out = append(out, rptPhase{"switch", "switch", long, r.Switch})
	}
	// at is " 5,000/s", the open loops' rate, when there is one.
	at := ""
	if rate := r.Settings.Rate; rate > 0 && !math.IsInf(rate, 0) {
		at = " " + rptGroup(fmt.Sprintf("%.0f", rate)) + "/s"
	}
	if r.Paced != nil {
		label, long := "paced", "switch, open loop"
		if at != "" {
			label, long = "paced"+at, long+" at"+at
		}
		out = append(out, rptPhase{"paced", label, long, r.Paced})
	}
	if r.Relay != nil {
		out = append(out, rptPhase{"relay", "relay", "relay (baseline)", r.Relay})
	}
	if r.RelayPaced != nil {
		label, long := "relay paced", "relay, open loop"
		if at != "" {
			label, long = "relay"+at, long+" at"+at+" (the floor)"
		}
		out = append(out, rptPhase{"relaypaced", label, long, r.RelayPaced})
	}
	return out
}

// rptView turns r into the rows of the reports.
func (r *Result) rptView() rptModel {
	var m rptModel
	m.meta = []rptKV{
		{"scenario", rptOr(r.Scenario, "-")},
		{"started", rptTime(r.Started)},
		{"host", rptOr(r.Host, "-")},
		{"version", rptOr(r.Version, "-")},
	}
	m.title = "Switchyard bench"
	if r.Scenario != "" {
		m.title += " — " + r.Scenario
	}
	m.heading = m.title
	var parts []string
	for _, kv := range m.meta[1:] {
		if kv.Value != "-" {
			parts = append(parts, kv.Value)
		}
	}
	if len(parts) > 0 {
		m.title += " — " + strings.Join(parts, ", ")
	}

	s := r.Settings
	if s.Terminals > 0 {
		m.settingsKV = append(m.settingsKV, rptKV{"terminals", strconv.Itoa(s.Terminals)})
	}
	if s.Conns > 0 {
		m.settingsKV = append(m.settingsKV, rptKV{"connections", strconv.Itoa(s.Conns)})
	}
	if s.Depth > 0 {
		m.settingsKV = append(m.settingsKV, rptKV{"depth", strconv.Itoa(s.Depth)})
	}
	if s.Duration > 0 {
		m.settingsKV = append(m.settingsKV, rptKV{"duration", s.Duration.String()})
	}
	if s.Warmup > 0 {
		m.settingsKV = append(m.settingsKV, rptKV{"warm-up", s.Warmup.String()})
	}
	if s.Rate > 0 && rptFinite(s.Rate) {
		m.settingsKV = append(m.settingsKV, rptKV{"paced rate", rptNum(s.Rate) + "/s"})
	}
	switch {
	case s.IssuerLatencyP99 > 0:
		m.settingsKV = append(m.settingsKV, rptKV{"issuer latency", "median " + s.IssuerLatency.String() + ", p99 " + s.IssuerLatencyP99.String()})
	case s.IssuerLatency > 0:
		m.settingsKV = append(m.settingsKV, rptKV{"issuer latency", s.IssuerLatency.String()})
	}
	if s.RelayBurn > 0 {
		m.settingsKV = append(m.settingsKV, rptKV{"relay CPU a request", s.RelayBurn.String()})
	}
	if s.JournalWindow > 0 || s.JournalWindowCPU > 0 { // both 0: a result from before they were recorded
		m.settingsKV = append(m.settingsKV, rptKV{"switch journal", "window " + s.JournalWindow.String() + ", window_cpu " + strconv.FormatFloat(s.JournalWindowCPU, 'g', -1, 64)})
	}
	if s.RelayJournal {
		m.settingsKV = append(m.settingsKV, rptKV{"relay journal", "two durable writes a transaction, group commit window " + s.RelayJournalWindow.String()})
	}
	parts = parts[:0]
	for _, kv := range m.settingsKV {
		parts = append(parts, kv.Key+" "+kv.Value)
	}
	m.settings = strings.Join(parts, ", ")

	m.phases = r.rptPhases()
	row := func(name string, f func(*Phase) string) {
		if len(m.phases) == 0 {
			return
		}
		rw := rptRow{name: name}
		for _, p := range m.phases {
			rw.values = append(rw.values, f(p.p))
		}
		m.summary = append(m.summary, rw)
	}
	row("authorizations/s", func(p *Phase) string { return rptNum(p.TPS) })
	row("answered", func(p *Phase) string { return rptCount(p.Count) })
	row("errors (unanswered)", func(p *Phase) string { return rptCount(p.Errors) })
	row("failed (91, 96)", func(p *Phase) string { return rptCount(p.Failed) })
	row("malformed (no DE 39)", func(p *Phase) string { return rptCount(p.Malformed) })
	row("latency p50", func(p *Phase) string { return rptUS(p.Latency.P50) })
	row("latency p90", func(p *Phase) string { return rptUS(p.Latency.P90) })
	row("latency p99", func(p *Phase) string { return rptUS(p.Latency.P99) })
	row("latency p99.9", func(p *Phase) string { return rptUS(p.Latency.P999) })
	row("latency max", func(p *Phase) string { return rptUS(p.Latency.Max) })

	if r.Switch != nil && r.Faults == nil {
		cpu := "-"
		if rptFinite(r.SwitchCPUPerAuthUS) && r.SwitchCPUPerAuthUS > 0 {
			cpu = strconv.FormatFloat(r.SwitchCPUPerAuthUS, 'f', 1, 64) + " µs"
		}
		m.extras = append(m.extras, rptKV{"switch CPU per authorization", cpu})
		if r.SimCPUPerAuthUS > 0 && rptFinite(r.SimCPUPerAuthUS) && rptFinite(r.HarnessCPUPerAuthUS) {
			m.extras = append(m.extras, rptKV{"issuer simulator / harness CPU per authorization",
				strconv.FormatFloat(r.SimCPUPerAuthUS, 'f', 1, 64) + " µs / " + strconv.FormatFloat(r.HarnessCPUPerAuthUS, 'f', 1, 64) + " µs"})
			if r.SwitchCPUPerAuthUS > 0 && rptFinite(r.SwitchCPUPerAuthUS) {
				// The simulator does the same work in every run: the quotient moves far
				// less with the machine's speed than either figure.
				m.extras = append(m.extras, rptKV{"switch CPU in issuer-simulator units",
					strconv.FormatFloat(r.SwitchCPUPerAuthUS/r.SimCPUPerAuthUS, 'f', 2, 64) + "×"})
			}
		}
	}
	if r.Faults == nil {
		m.extras = append(m.extras, rptProcessCPU("open loop: switch / simulator / harness CPU", r.PacedCPU)...)
		m.extras = append(m.extras, rptProcessCPU("relay open loop: relay / simulator / harness CPU", r.RelayPacedCPU)...)
	}
	if (r.Switch != nil || r.Relay != nil) && r.Faults == nil {
		ratio := "-"
		if rptFinite(r.Ratio) && r.Ratio > 0 {
			ratio = strconv.FormatFloat(r.Ratio, 'f', 2, 64) + "×"
		}
		m.extras = append(m.extras, rptKV{"switch / relay throughput", ratio})
	}

	if r.Switch != nil {
		m.codes = rptCodes(r.Switch.Codes)
	}
	if r.Faults != nil {
		m.faults, m.faultNotes = r.Faults.rptKVs(), r.Faults.Notes
	}
	m.scenarios = rptScenarios(r.Scenarios)
	for _, t := range r.Targets {
		rt := rptTarget{Name: t.Name, Goal: t.Goal, Met: t.Met, Verdict: "MISSED"}
		rt.Measured = rptNum(t.Measured)
		if t.Unit != "" {
			sep := " "
			if strings.HasPrefix(t.Unit, "/") || t.Unit == "%" || t.Unit == "×" {
				sep = ""
			}
			rt.Measured += sep + t.Unit
		}
		switch {
		case t.NotJudged != "":
			rt.Verdict, rt.NotJudged = "NOT JUDGED", t.NotJudged
			rt.Measured += " (" + t.NotJudged + ")"
			m.targetsNotJudged++
		case t.Met:
			rt.Verdict = "MET"
			m.targetsMet++
		}
		m.targets = append(m.targets, rt)
	}
	return m
}

// rptCodeNames are the meanings of the usual ISO 8583:1987 response codes (DE 39).
var rptCodeNames = map[string]string{
	"00": "approved", "01": "refer to issuer", "03": "invalid merchant", "04": "pick up card",
	"05": "do not honour", "08": "honour with identification", "10": "partial approval",
	"12": "invalid transaction", "13": "invalid amount", "14": "invalid card number",
	"15": "no such issuer", "25": "original not found", "30": "format error",
	"41": "lost card", "43": "stolen card", "51": "insufficient funds", "54": "expired card",
	"55": "incorrect PIN", "57": "not permitted to cardholder", "58": "not permitted to terminal",
	"59": "suspected fraud", "61": "exceeds amount limit", "62": "restricted card",
	"63": "security violation", "65": "exceeds frequency limit", "75": "PIN tries exceeded",
	"91": "issuer unavailable", "94": "duplicate transmission", "95": "reconciliation error",
	"96": "system malfunction",
}

// rptCodes lists response codes by count, the most frequent first.
func rptCodes(codes map[string]int64) []rptCode {
	var total int64
	keys := make([]string, 0, len(codes))
	for k, n := range codes {
		keys = append(keys, k)
		total += max(n, 0)
	}
	sort.Slice(keys, func(i, j int) bool {
		if codes[keys[i]] != codes[keys[j]] {
			return codes[keys[i]] > codes[keys[j]]
		}
		return keys[i] < keys[j]
	})
	out := make([]rptCode, 0, len(keys))
	for _, k := range keys {
		share := "-"
		if total > 0 {
			share = rptPct(float64(max(codes[k], 0)) / float64(total))
		}
		out = append(out, rptCode{Code: k, Meaning: rptCodeNames[k], Count: rptCount(codes[k]), Share: share})
	}
	return out
}

// rptScenarios makes the rows of the scenario table, with an "all fraud" row totalling
// the fraud scenarios when there are several.
func rptScenarios(sc []Scenario) []rptScenario {
	var out []rptScenario
	var all Scenario
	nFraud := 0
	for _, s := range sc {
		out = append(out, rptScenarioRow(s, false))
		if s.Fraud {
			nFraud++
			all.Sent += s.Sent
			all.Declined += s.Declined
			for k, n := range s.ByReason {
				if all.ByReason == nil {
					all.ByReason = map[string]int64{}
				}
				all.ByReason[k] += n
			}
		}
	}
	if nFraud > 1 {
		all.Label, all.Fraud = "all fraud", true
		out = append(out, rptScenarioRow(all, true))
	}
	return out
}

func rptScenarioRow(s Scenario, total bool) rptScenario {
	row := rptScenario{
		Label: s.Label, Fraud: s.Fraud, Total: total, FraudText: "no",
		Sent: rptCount(s.Sent), Declined: rptCount(s.Declined), RateKind: "false positives",
	}
	if s.Fraud {
		row.FraudText, row.RateKind = "yes", "caught"
	}
	rate := s.Rate
	if s.Sent > 0 && (total || (rate == 0 && s.Declined > 0) || !rptFinite(rate)) {
		rate = float64(s.Declined) / float64(s.Sent)
	}
	if s.Sent == 0 || !rptFinite(rate) {
		row.Rate = "-"
	} else {
		row.Rate = rptPct(rate)
	}
	row.Reasons = rptTopReasons(s.ByReason, 3)
	return row
}

// rptTopReasons lists the n most frequent reasons with their counts.
func rptTopReasons(by map[string]int64, n int) string {
	keys := make([]string, 0, len(by))
	for k, c := range by {
		if c > 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if by[keys[i]] != by[keys[j]] {
			return by[keys[i]] > by[keys[j]]
		}
		return keys[i] < keys[j]
	})
	var parts []string
	for i, k := range keys {
		if i == n {
			parts = append(parts, fmt.Sprintf("+%d more", len(keys)-n))
			break
		}
		name := k
		if name == "" {
			name = "(none)"
		}
		parts = append(parts, name+" "+rptCount(by[k]))
	}
	return strings.Join(parts, ", ")
}

// rptUS formats a latency in microseconds: "850 µs" below a millisecond, "4.12 ms"
// from there on.
func rptUS(us int64) string {
	if us >= 1000 || us <= -1000 {
		return strconv.FormatFloat(float64(us)/1000, 'f', 2, 64) + " ms"
	}
	return strconv.FormatInt(us, 10) + " µs"
}

// rptCount formats a count with thousands separators.
func rptCount(n int64) string { return rptGroup(strconv.FormatInt(n, 10)) }

// rptNum formats a measured value: whole above 100 (with thousands separators), with
// two decimals above 0.1, with three significant digits below; "-" when not finite.
func rptNum(v float64) string {
	if !rptFinite(v) {
		return "-"
	}
	a := math.Abs(v)
	switch {
	case a >= 100:
		return rptGroup(strconv.FormatFloat(v, 'f', 0, 64))
	case a >= 0.1 || a == 0:
		s := strconv.FormatFloat(v, 'f', 2, 64)
		if strings.HasSuffix(s, ".00") {
			s = strings.TrimSuffix(s, ".00")
		}
		return s
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

// rptPct formats a fraction as a percentage with two decimals: 0.995 is "99.50%".
func rptPct(f float64) string {
	if !rptFinite(f) {
		return "-"
	}
	return strconv.FormatFloat(f*100, 'f', 2, 64) + "%"
}

// rptGroup puts thousands separators into the integer part of a formatted number.
func rptGroup(s string) string {
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	intPart, frac := s, ""
	if i := strings.IndexByte(s, '.'); i >= 0 {
		intPart, frac = s[:i], s[i:]
	}
	if len(intPart) <= 3 {
		return sign + s
	}
	var b strings.Builder
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return sign + b.String() + frac
}

func rptFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func rptOr(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}

func rptTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format("2006-01-02 15:04:05 MST")
}

// rptKVs are the fault run's figures as the reports show them.
func (fr *FaultResult) rptKVs() []rptKV {
	of := func(n, total int64) string {
		return rptCount(n) + " of " + rptCount(total) + " (" + rptPct(share(n, total)) + ")"
	}
	secs := func(d time.Duration) string {
		if d < 0 {
			return "none came"
		}
		return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + " s"
	}
	finding := func(f Finding) string {
		if f.Count == 0 {
			return "0"
		}
		return rptCount(f.Count) + ": " + strings.Join(f.Examples, " ")
	}
	kv := []rptKV{
		{"issuer faults", fmt.Sprintf("%s dropped, %s late by %s (switch timeout %s)", rptPct(fr.Drop), rptPct(fr.Late), fr.LateBy, fr.IssuerTimeout)},
		{"issuer outage", fmt.Sprintf("%s, %s, from %.1f s to %.1f s of the run", fr.Outage, rptOr(fr.OutageMode, "-"), fr.Schedule.OutageStart, fr.Schedule.OutageEnd)},
		{"requests sent / answered / unanswered", rptCount(fr.Sent) + " / " + rptCount(fr.Answered) + " / " + rptCount(fr.Unanswered)},
		{"91s outside the outage", of(fr.Outside91, fr.OutsideAnswered)},
		{"answers the issuer dropped or delayed, outside it", of(fr.OutsideFaulty, fr.OutsideAnswered)},
		{"91s while the links reconnected after it", of(fr.Gap91, fr.GapAnswered)},
		{"issuer's return to the first approval", secs(fr.ReturnToApproval)},
	}
	if fr.Kill {
		kv = append(kv, rptKV{"kill -9 of the switch", fmt.Sprintf("at %.1f s, ready again at %.1f s", fr.Schedule.Kill, fr.Schedule.Ready)},
			rptKV{"restarted switch to the first approval", secs(fr.RestartToApproval)})
	}
	kv = append(kv,
		rptKV{"legitimate rule declines before the outage", of(fr.RuleDeclinesBefore, fr.LegitBefore)},
		rptKV{"... in the " + fr.AfterWindow.String() + " after it", of(fr.RuleDeclinesAfter, fr.LegitAfter)},
		rptKV{"issuer approvals", rptCount(fr.IssuerApprovals)},
		rptKV{"reversals owed / delivered", rptCount(fr.ReversalsOwed) + " / " + rptCount(fr.ReversalsDelivered)},
		rptKV{"reversal delivery p50 / max", secs(fr.ReversalP50) + " / " + secs(fr.ReversalMax)},
		rptKV{"lost", finding(fr.Lost)},
		rptKV{"double authorizations", finding(fr.DoubleAuthorizations)},
		rptKV{"approvals neither delivered nor reversed", finding(fr.UndeliveredUnreversed)},
		rptKV{"delivered approvals reversed by the switch", finding(fr.DeliveredReversed)},
	)
	return kv
}

// rptProcessCPU is the row of an open loop's CPU, named name: the three processes'
// cores and µs per authorization (none without figures).
func rptProcessCPU(name string, c *ProcessCPU) []rptKV {
	if c == nil || !rptFinite(c.SwitchCores+c.SimCores+c.HarnessCores+c.SwitchUS+c.SimUS+c.HarnessUS) {
		return nil
	}
	f := func(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }
	return []rptKV{{name, f(c.SwitchCores, 2) + " / " + f(c.SimCores, 2) + " / " + f(c.HarnessCores, 2) + " cores (" +
		f(c.SwitchUS, 0) + " / " + f(c.SimUS, 0) + " / " + f(c.HarnessUS, 0) + " µs per authorization)"}}
}
