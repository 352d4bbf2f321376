package console

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Early warning: a decline reason (binding reason, risk or issuer response
// code) or a risk rule's hits (switchyard_risk_rule_hits_total, shadow rules
// too) whose count in the last hour jumps against its own hourly average over
// the last 7 days is flagged on the dashboard and the incidents page, and
// raised as an alert: a warning in the switch's log, once an hour per reason,
// with the figures (the log is where the acquirers' alerting reads the switch's
// warnings). The baseline is the sampler's minute samples, so it covers what
// this process has seen, up to 7 days; until it has an hour of history before
// the last hour nothing is flagged.

// Jump thresholds: at least minJumpCount declines in the last hour and jumpFactor
// times the baseline's hourly average (a reason never seen before jumps when it
// reaches minJumpCount).
const (
	minJumpCount = 20
	jumpFactor   = 3.0
)

// trendWarning is one flagged decline reason.
type trendWarning struct {
	Key      string  `json:"key"`       // e.g. "binding:location-out-of-range"
	LastHour float64 `json:"last_hour"` // declines in the last hour
	Baseline float64 `json:"baseline"`  // hourly average before it (up to 7 days)
	Since    string  `json:"since"`     // start of the baseline
}

// trends compares every decline reason's last hour with its baseline.
func (sp *sampler) trends(now time.Time) []trendWarning {
	if len(sp.minutes) < 2 || len(sp.seconds) == 0 {
		return nil
	}
	last := sp.seconds[len(sp.seconds)-1]
	hourAgo := at(sp.minutes, now.Add(-time.Hour))
	first := sp.minutes[0]
	if len(sp.hours) > 0 && sp.hours[0].t.Before(first.t) {
		first = sp.hours[0] // up to 7 days back
	}
	baseHours := hourAgo.t.Sub(first.t).Hours()
	if baseHours < 1 {
		return nil
	}
	var out []trendWarning
	for _, k := range sortedKeys(last.declines) {
		n := last.declines[k] - hourAgo.declines[k]
		base := (hourAgo.declines[k] - first.declines[k]) / baseHours
		if n >= minJumpCount && n > jumpFactor*base {
			out = append(out, trendWarning{Key: k, LastHour: n, Baseline: base, Since: fmtTime(first.t)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LastHour > out[j].LastHour })
	return out
}

// watchTrends recomputes the warnings and logs the new ones (once an hour each).
func (c *Console) watchTrends() {
	now := c.o.Now()
	sp := c.stats
	sp.mu.Lock()
	ws := sp.trends(now)
	sp.current = ws
	var raise []trendWarning
	for _, w := range ws {
		if t, ok := sp.warned[w.Key]; !ok || now.Sub(t) >= time.Hour {
			sp.warned[w.Key] = now
			raise = append(raise, w)
		}
	}
	sp.mu.Unlock()
	for _, w := range raise {
		c.o.Logger.Warn().Str("alert", "decline-trend").Str("reason", w.Key).Float64("last_hour", w.LastHour).Float64("hourly_baseline", w.Baseline).
			Str("baseline_since", w.Since).Msg("decline reason jumped against its own recent history")
	}
}

func (sp *sampler) warnings() []trendWarning {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return append([]trendWarning(nil), sp.current...)
}

// chart draws the transactions per step over the last span as an SVG bar
// chart, approved and declined stacked. The SVG is built here from numbers
// only (no user text), which is why the template may include it as is.
func (c *Console) chart(span, step time.Duration) string {
	sp := c.stats
	now := c.o.Now()
	sp.mu.Lock()
	src := sp.history()
	n := int(span / step)
	type bar struct{ ok, no float64 }
	bars := make([]bar, n)
	if len(src) > 0 {
		for i := 0; i < n; i++ {
			from, to := now.Add(-span+time.Duration(i)*step), now.Add(-span+time.Duration(i+1)*step)
			if to.Before(src[0].t) {
				continue
			}
			a, b := at(src, from), at(src, to)
			ok := b.approved - a.approved
			bars[i] = bar{ok, (b.total - a.total) - ok}
		}
	}
	sp.mu.Unlock()
	peak := 1.0
	for _, b := range bars {
		peak = max(peak, b.ok+b.no)
	}
	const w, h = 600.0, 120.0
	bw := w / float64(n)
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" xmlns="http://www.w3.org/2000/svg">`, w, h+14)
	for i, b := range bars {
		x := float64(i) * bw
		hOK, hNo := h*b.ok/peak, h*b.no/peak
		if hOK > 0 {
			fmt.Fprintf(&sb, `<rect class="ok" x="%.1f" y="%.1f" width="%.1f" height="%.1f"/>`, x, h-hOK, bw*0.9, hOK)
		}
		if hNo > 0 {
			fmt.Fprintf(&sb, `<rect class="no" x="%.1f" y="%.1f" width="%.1f" height="%.1f"/>`, x, h-hOK-hNo, bw*0.9, hNo)
		}
	}
	fmt.Fprintf(&sb, `<line class="axis" x1="0" y1="%.0f" x2="%.0f" y2="%.0f"/>`, h, w, h)
	fmt.Fprintf(&sb, `<text x="0" y="%.0f">-%.0f h</text><text x="%.0f" y="%.0f" text-anchor="end">%.0f / %v</text></svg>`, h+12, span.Hours(), w, h+12, peak, step)
	return sb.String()
}
