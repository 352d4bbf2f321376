package console

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/switchyard/switchyard/switch/registry"
)

// The dashboard reads the counters the switch exports on /metrics (the same
// Prometheus registry, gathered in process): a sampler keeps one sample a
// second for the last 6 minutes, one a minute for the last 25 hours and one an
// hour for the last 7 days (the older ones without their histogram and breaker
// states: a few MB in all), and the figures are differences between samples.
// Nothing is added to the transaction path. The live page gets a new summary
// every second over server-sent events (GET /console/events).

// sample is the counters at one instant.
type sample struct {
	t        time.Time
	total    float64
	approved float64
	byRC     map[string]float64 // response code -> answered
	declines map[string]float64 // "binding:<reason>", "risk:<rc>", "issuer:<rc>" -> declined; "rule:<id>" -> hits
	buckets  []float64          // cumulative latency histogram counts, all labels merged
	bounds   []float64          // the buckets' upper bounds, seconds
	breakers map[string]float64 // issuer -> 0 closed, 1 half-open, 2 open
	saf      float64
}

type sampler struct {
	o       Options
	mu      sync.Mutex
	seconds []sample // last 6 minutes, one a second
	minutes []sample // last 25 hours, one a minute
	hours   []sample // last 7 days, one an hour
	warned  map[string]time.Time
	current []trendWarning
	saf     float64   // the last backlog read, at safAt
	safAt   time.Time // (gather runs on the sampler's goroutine only)
}

// safEvery is how often the store-and-forward backlog is read.
const safEvery = 15 * time.Second

func newSampler(o Options) *sampler { return &sampler{o: o, warned: map[string]time.Time{}} }

var approvedRC = map[string]bool{"00": true, "08": true, "10": true, "11": true}

// gather reads the counters now.
func (sp *sampler) gather(now time.Time) sample {
	s := sample{t: now, byRC: map[string]float64{}, declines: map[string]float64{}, breakers: map[string]float64{}}
	if sp.o.SAFBacklog != nil {
		// At most every safEvery: in a cluster the count is a JetStream request.
		if sp.safAt.IsZero() || now.Sub(sp.safAt) >= safEvery {
			sp.saf, sp.safAt = float64(sp.o.SAFBacklog()), now
		}
		s.saf = sp.saf
	}
	if sp.o.Registry != nil {
		for reason, n := range sp.o.Registry.DeclineCounts() {
			s.declines["binding:"+string(reason)] = n
		}
	}
	if sp.o.Metrics == nil {
		return s
	}
	mfs, err := sp.o.Metrics.Gather()
	if err != nil {
		sp.o.Logger.Warn().Err(err).Msg("console: gathering the metrics")
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "switchyard_transactions_total":
			for _, m := range mf.GetMetric() {
				l := labels(m)
				v := m.GetCounter().GetValue()
				s.total += v
				s.byRC[l["rc"]] += v
				if approvedRC[l["rc"]] {
					s.approved += v
				} else if l["decided_by"] == "risk" || l["decided_by"] == "issuer" {
					s.declines[l["decided_by"]+":"+l["rc"]] += v
				}
			}
		case "switchyard_risk_rule_hits_total":
			for _, m := range mf.GetMetric() {
				if v := m.GetCounter().GetValue(); v > 0 {
					s.declines["rule:"+labels(m)["rule"]] += v
				}
			}
		case "switchyard_transaction_duration_seconds":
			for _, m := range mf.GetMetric() {
				h := m.GetHistogram()
				if s.bounds == nil {
					for _, b := range h.GetBucket() {
						s.bounds = append(s.bounds, b.GetUpperBound())
					}
					s.buckets = make([]float64, len(s.bounds))
				}
				for i, b := range h.GetBucket() {
					if i < len(s.buckets) {
						s.buckets[i] += float64(b.GetCumulativeCount())
					}
				}
			}
		case "switchyard_issuer_breaker_state":
			for _, m := range mf.GetMetric() {
				s.breakers[labels(m)["issuer"]] = m.GetGauge().GetValue()
			}
		}
	}
	return s
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// sample takes a sample and keeps it.
func (sp *sampler) sample(now time.Time) {
	s := sp.gather(now)
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.seconds = append(sp.seconds, s)
	for len(sp.seconds) > 0 && now.Sub(sp.seconds[0].t) > 6*time.Minute {
		sp.seconds = sp.seconds[1:]
	}
	light := s
	light.buckets, light.bounds, light.breakers = nil, nil, nil
	if n := len(sp.minutes); n == 0 || now.Sub(sp.minutes[n-1].t) >= time.Minute {
		sp.minutes = append(sp.minutes, light)
		for len(sp.minutes) > 0 && now.Sub(sp.minutes[0].t) > 25*time.Hour {
			sp.minutes = sp.minutes[1:]
		}
	}
	if n := len(sp.hours); n == 0 || now.Sub(sp.hours[n-1].t) >= time.Hour {
		light.byRC = nil
		sp.hours = append(sp.hours, light)
		for len(sp.hours) > 0 && now.Sub(sp.hours[0].t) > 7*24*time.Hour+time.Hour {
			sp.hours = sp.hours[1:]
		}
	}
}

// history returns the minute samples with the newest second sample after them
// (so that a figure reaches now, not the last whole minute).
func (sp *sampler) history() []sample {
	out := append([]sample(nil), sp.minutes...)
	if n := len(sp.seconds); n > 0 {
		out = append(out, sp.seconds[n-1])
	}
	return out
}

// at returns the newest sample at or before t (the oldest if none is).
func at(ss []sample, t time.Time) sample {
	i := sort.Search(len(ss), func(i int) bool { return ss[i].t.After(t) })
	if i == 0 {
		return ss[0]
	}
	return ss[i-1]
}

// Summary is what the dashboard shows, live.
type Summary struct {
	Time         string         `json:"time"`
	AuthPerSec   float64        `json:"auth_per_sec"`   // last 10 s
	ApprovalRate float64        `json:"approval_rate"`  // last 5 min
	Total        float64        `json:"total"`          // last hour
	P50          float64        `json:"p50_ms"`         // last 5 min, milliseconds
	P99          float64        `json:"p99_ms"`         // last 5 min, milliseconds
	RC           []Count        `json:"response_codes"` // last hour
	Declines     []DeclineGroup `json:"declines"`       // last hour, by who declined
	Breakers     []Breaker      `json:"breakers"`
	SAF          float64        `json:"saf_backlog"`
	Warnings     []trendWarning `json:"warnings"`
	Incidents    []IncidentLine `json:"incidents"` // the newest binding incidents
}

// Count is a label and how many.
type Count struct {
	Key string  `json:"key"`
	N   float64 `json:"n"`
}

// DeclineGroup is the top decline reasons of one decider (binding, risk, issuer).
type DeclineGroup struct {
	By  string  `json:"by"`
	Top []Count `json:"top"`
}

// Breaker is an issuer link's breaker state.
type Breaker struct {
	Issuer string `json:"issuer"`
	State  string `json:"state"`
}

// IncidentLine is an incident as the dashboard lists it.
type IncidentLine struct {
	ID       string `json:"id"`
	Time     string `json:"time"`
	Reason   string `json:"reason"`
	Terminal string `json:"terminal"`
	Merchant string `json:"merchant"`
}

// summary computes the dashboard's figures from the samples.
func (c *Console) summary() Summary {
	sp := c.stats
	now := c.o.Now()
	sp.mu.Lock()
	var sum Summary
	if len(sp.seconds) > 0 {
		last := sp.seconds[len(sp.seconds)-1]
		s10, s5m, s1h := at(sp.seconds, now.Add(-10*time.Second)), at(sp.seconds, now.Add(-5*time.Minute)), at(sp.history(), now.Add(-time.Hour))
		if d := last.t.Sub(s10.t).Seconds(); d > 0 {
			sum.AuthPerSec = (last.total - s10.total) / d
		}
		if n := last.total - s5m.total; n > 0 {
			sum.ApprovalRate = (last.approved - s5m.approved) / n
		}
		sum.Total = last.total - s1h.total
		sum.P50, sum.P99 = 1000*quantile(last, s5m, 0.5), 1000*quantile(last, s5m, 0.99)
		for _, k := range sortedKeys(last.byRC) {
			if n := last.byRC[k] - s1h.byRC[k]; n > 0 {
				sum.RC = append(sum.RC, Count{k, n})
			}
		}
		groups := map[string][]Count{}
		for k, v := range last.declines {
			if n := v - s1h.declines[k]; n > 0 {
				by, what, _ := strings.Cut(k, ":")
				groups[by] = append(groups[by], Count{what, n})
			}
		}
		for _, by := range []string{"binding", "risk", "issuer"} {
			g := groups[by]
			sort.Slice(g, func(i, j int) bool { return g[i].N > g[j].N || g[i].N == g[j].N && g[i].Key < g[j].Key })
			if len(g) > 5 {
				g = g[:5]
			}
			sum.Declines = append(sum.Declines, DeclineGroup{By: by, Top: g})
		}
		for _, k := range sortedKeys(last.breakers) {
			sum.Breakers = append(sum.Breakers, Breaker{k, [...]string{"closed", "half-open", "open"}[min(2, max(0, int(last.breakers[k])))]})
		}
		sum.SAF = last.saf
	}
	sum.Warnings = append([]trendWarning(nil), sp.current...)
	sp.mu.Unlock()
	sum.Time = now.Local().Format("15:04:05")
	if incs, err := c.o.Registry.Incidents(registry.IncidentFilter{Limit: 8}); err == nil {
		for i := len(incs) - 1; i >= 0; i-- {
			x := incs[i]
			sum.Incidents = append(sum.Incidents, IncidentLine{ID: x.ID, Time: fmtTime(x.Time), Reason: string(x.Reason), Terminal: x.TerminalID, Merchant: x.MerchantID})
		}
	}
	return sum
}

// quantile estimates the q-quantile of the latencies observed between a and b
// (b older) from their histogram buckets, interpolating inside the bucket as
// Prometheus' histogram_quantile does.
func quantile(a, b sample, q float64) float64 {
	if len(a.buckets) == 0 {
		return 0
	}
	d := make([]float64, len(a.buckets))
	for i := range a.buckets {
		d[i] = a.buckets[i]
		if i < len(b.buckets) {
			d[i] -= b.buckets[i]
		}
	}
	total := d[len(d)-1]
	if total <= 0 {
		return 0
	}
	rank := q * total
	lower, prev := 0.0, 0.0
	for i, cum := range d {
		if cum >= rank {
			upper := a.bounds[i]
			if math.IsInf(upper, 1) {
				return lower
			}
			n := cum - prev
			if n <= 0 {
				return upper
			}
			return lower + (upper-lower)*(rank-prev)/n
		}
		lower, prev = a.bounds[i], cum
	}
	return lower
}

// dashboard serves the page; the script keeps it live from /console/events.
func (c *Console) dashboard(w http.ResponseWriter, r *http.Request, s *session) {
	c.render(w, r, s, "dashboard", map[string]any{"S": c.summary(), "HourChart": c.chart(time.Hour, time.Minute), "DayChart": c.chart(24*time.Hour, 30*time.Minute)})
}

// events streams the summary once a second until the client goes away, the
// console stops or the session ends.
func (c *Console) events(w http.ResponseWriter, r *http.Request, s *session) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		b, _ := json.Marshal(c.summary())
		if _, err := fmt.Fprintf(w, "event: summary\ndata: %s\n\n", b); err != nil {
			return
		}
		fl.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-c.stop:
			return
		case <-t.C:
		}
		// The stream ends with its session (logout, idle timeout, the user
		// disabled or given a new password): otherwise one request opened
		// before would go on showing the switch to whoever holds it.
		if !c.sessions.live(s.ID) || !c.userValid(s) {
			return
		}
	}
}
