package alerts

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/template"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
	"go.yaml.in/yaml/v3"

	"github.com/switchyard/switchyard/internal/racedetect"
)

// This file runs unit tests written in promtool's format (`promtool test rules`,
// https://prometheus.io/docs/prometheus/latest/configuration/unit_testing_rules/)
// with Prometheus's own PromQL engine, parser and template expander, without
// promtool and without the module's rules and promqltest packages (their imports reach
// Kubernetes' and the cloud vendors' clients: docs/alerts.md, "The Prometheus
// dependency"). It follows promtool: the groups are evaluated in order every
// evaluation_interval from 0 to the last eval_time, recording rules write their
// samples (and a stale marker for a series that went away) before the rules after
// them read them, an alert is pending from the first evaluation that returns its
// series and firing once that is `for` old, and at each eval_time the firing alerts
// of the named rule, their labels (alertname added) and expanded annotations, must
// equal exp_alerts exactly. Not supported (refused, not ignored): promql_expr_test,
// external labels and URL, keep_firing_for, templated rule labels.

// unitFile is a promtool rule test file.
type unitFile struct {
	RuleFiles          []string       `yaml:"rule_files"`
	EvaluationInterval model.Duration `yaml:"evaluation_interval"`
	Tests              []unitTest     `yaml:"tests"`
}

type unitTest struct {
	Name        string         `yaml:"name"`
	Interval    model.Duration `yaml:"interval"`
	InputSeries []struct {
		Series string `yaml:"series"`
		Values string `yaml:"values"`
	} `yaml:"input_series"`
	AlertRuleTests []alertTest `yaml:"alert_rule_test"`
}

type alertTest struct {
	EvalTime  model.Duration `yaml:"eval_time"`
	Alertname string         `yaml:"alertname"`
	ExpAlerts []struct {
		ExpLabels      map[string]string `yaml:"exp_labels"`
		ExpAnnotations map[string]string `yaml:"exp_annotations"`
	} `yaml:"exp_alerts"`
}

// TestRulesUnit runs docs/alerts/switchyard.rules.test.yml, and checks that it tests
// every alert both firing and silent.
func TestRulesUnit(t *testing.T) {
	if racedetect.Enabled {
		t.Skip(racedetect.SkipLong)
	}
	f := readUnitFile(t, rulesTestFile)
	fired, silent := map[string]bool{}, map[string]bool{}
	for _, ut := range f.Tests {
		for _, at := range ut.AlertRuleTests {
			if len(at.ExpAlerts) > 0 {
				fired[at.Alertname] = true
			} else {
				silent[at.Alertname] = true
			}
		}
	}
	groups := loadUnitGroups(t, rulesTestFile, f)
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if !fired[r.Alert] {
				t.Errorf("%s: no test sees %s fire", rulesTestFile, r.Alert)
			}
			if !silent[r.Alert] {
				t.Errorf("%s: no test sees %s stay silent", rulesTestFile, r.Alert)
			}
		}
	}
	for _, ut := range f.Tests {
		t.Run(ut.Name, func(t *testing.T) {
			for _, problem := range runUnitTest(t, groups, time.Duration(f.EvaluationInterval), ut) {
				t.Error(problem)
			}
		})
	}
}

// TestRulesUnitCanFail: the runner reports an alert expected and not firing, one
// firing and not expected, a wrong label and a wrong annotation.
func TestRulesUnitCanFail(t *testing.T) {
	rules := `groups:
- name: g
  rules:
  - alert: Broken
    expr: switchyard_journal_broken == 1
    for: 2m
    labels: {severity: critical}
    annotations: {summary: "broken on {{ $labels.instance }}"}
`
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "r.yml"), []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := `rule_files: [r.yml]
evaluation_interval: 1m
tests:
- interval: 1m
  input_series:
  - series: 'switchyard_journal_broken{instance="a"}'
    values: '0 0 1 1 1 1'
  alert_rule_test:
  - {eval_time: 3m, alertname: Broken}
  - eval_time: 4m
    alertname: Broken
    exp_alerts:
    - exp_labels: {severity: critical, instance: a}
      exp_annotations: {summary: "broken on a"}
`
	path := filepath.Join(dir, "r.test.yml")
	if err := os.WriteFile(path, []byte(tests), 0o600); err != nil {
		t.Fatal(err)
	}
	f := readUnitFile(t, path)
	groups := loadUnitGroups(t, path, f)
	run := func() []string {
		return runUnitTest(t, groups, time.Duration(f.EvaluationInterval), f.Tests[0])
	}
	if p := run(); len(p) != 0 {
		t.Fatalf("the right expectations: %v", p)
	}
	exp := &f.Tests[0].AlertRuleTests[1].ExpAlerts[0]
	for name, mutate := range map[string]func(){
		"not firing yet": func() { f.Tests[0].AlertRuleTests[1].EvalTime = model.Duration(3 * time.Minute) },
		"wrong label":    func() { exp.ExpLabels["instance"] = "b" },
		"wrong annotation": func() {
			exp.ExpAnnotations["summary"] = "broken on b"
		},
		"firing, unexpected": func() { f.Tests[0].AlertRuleTests[0].EvalTime = model.Duration(5 * time.Minute) },
	} {
		saved := f.Tests[0].AlertRuleTests
		savedLabels, savedAnn := exp.ExpLabels["instance"], exp.ExpAnnotations["summary"]
		f.Tests[0].AlertRuleTests = slices.Clone(saved)
		mutate()
		if p := run(); len(p) == 0 {
			t.Errorf("%s: not reported", name)
		}
		f.Tests[0].AlertRuleTests = saved
		exp.ExpLabels["instance"], exp.ExpAnnotations["summary"] = savedLabels, savedAnn
	}
}

func readUnitFile(t *testing.T, path string) *unitFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f unitFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true) // promtool reads it strictly too
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if f.EvaluationInterval == 0 {
		f.EvaluationInterval = model.Duration(time.Minute)
	}
	if len(f.Tests) == 0 {
		t.Fatalf("%s: no tests", path)
	}
	return &f
}

// loadUnitGroups loads the rule files a test file names (relative to it, as promtool
// reads them), in order, as one list of groups.
func loadUnitGroups(t *testing.T, path string, f *unitFile) *rulefmt.RuleGroups {
	t.Helper()
	all := &rulefmt.RuleGroups{}
	for _, rf := range f.RuleFiles {
		g := loadRules(t, filepath.Join(filepath.Dir(path), rf))
		all.Groups = append(all.Groups, g.Groups...)
	}
	if len(all.Groups) == 0 {
		t.Fatalf("%s: no rule files", path)
	}
	return all
}

// alertState is one alert of a rule: its labels, annotations, since when it is active.
type alertState struct {
	labels, annotations labels.Labels
	activeAt            time.Time
}

// runUnitTest runs one test of a promtool file over groups and returns every
// mismatch between the firing alerts and the expected ones.
func runUnitTest(t *testing.T, groups *rulefmt.RuleGroups, evalInterval time.Duration, ut unitTest) []string {
	t.Helper()
	interval := time.Duration(ut.Interval)
	if interval == 0 {
		interval = evalInterval
	}
	st := newMemStorage()
	for _, in := range ut.InputSeries {
		lset, vals, err := promqlParser.ParseSeriesDesc(in.Series + " " + in.Values)
		if err != nil {
			t.Fatalf("input series %q: %v", in.Series, err)
		}
		for i, v := range vals {
			if v.Histogram != nil {
				t.Fatalf("input series %q: native histograms are not supported here", in.Series)
			}
			if !v.Omitted {
				st.add(lset, int64(i)*interval.Milliseconds(), v.Value)
			}
		}
	}
	var maxEval time.Duration
	for _, at := range ut.AlertRuleTests {
		maxEval = max(maxEval, time.Duration(at.EvalTime))
	}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	ctx := context.Background()
	query := func(ctx context.Context, q string, ts time.Time) (promql.Vector, error) {
		qry, err := engine.NewInstantQuery(ctx, st, nil, q, ts)
		if err != nil {
			return nil, err
		}
		defer qry.Close()
		res := qry.Exec(ctx)
		if res.Err != nil {
			return nil, res.Err
		}
		switch v := res.Value.(type) {
		case promql.Vector:
			return v, nil
		case promql.Scalar:
			return promql.Vector{{F: v.V, T: v.T, Metric: labels.EmptyLabels()}}, nil
		}
		return nil, fmt.Errorf("query %q: a %s, not a vector", q, res.Value.Type())
	}

	active := map[string]map[uint64]*alertState{} // alert name -> label hash -> state
	recorded := map[string]map[uint64]labels.Labels{}
	var problems []string
	mint := time.Unix(0, 0).UTC()
	for ts := mint; !ts.After(mint.Add(maxEval)); ts = ts.Add(evalInterval) {
		for _, g := range groups.Groups {
			if g.Interval != 0 && time.Duration(g.Interval) != evalInterval {
				t.Fatalf("group %s: an interval of its own is not supported here", g.Name)
			}
			for _, r := range g.Rules {
				vec, err := query(ctx, r.Expr, ts)
				if err != nil {
					t.Fatalf("rule %s%s at %s: %v", r.Alert, r.Record, ts.Sub(mint), err)
				}
				if r.Record != "" {
					now := map[uint64]labels.Labels{}
					for _, s := range vec {
						b := labels.NewBuilder(s.Metric).Set(labels.MetricName, r.Record)
						for k, v := range r.Labels {
							b.Set(k, v)
						}
						l := b.Labels()
						st.add(l, timestamp.FromTime(ts), s.F)
						now[l.Hash()] = l
					}
					for h, l := range recorded[r.Record] {
						if _, ok := now[h]; !ok {
							st.add(l, timestamp.FromTime(ts), math.Float64frombits(value.StaleNaN))
						}
					}
					recorded[r.Record] = now
					continue
				}
				if r.KeepFiringFor != 0 {
					t.Fatalf("alert %s: keep_firing_for is not supported here", r.Alert)
				}
				prev, now := active[r.Alert], map[uint64]*alertState{}
				for _, s := range vec {
					lb := labels.NewBuilder(s.Metric).Del(labels.MetricName)
					for k, v := range r.Labels {
						if strings.Contains(v, "{{") {
							t.Fatalf("alert %s: templated labels are not supported here", r.Alert)
						}
						lb.Set(k, v)
					}
					lb.Set(labels.AlertName, r.Alert)
					a := &alertState{labels: lb.Labels(), activeAt: ts}
					if p := prev[a.labels.Hash()]; p != nil {
						a.activeAt = p.activeAt
					}
					a.annotations = expandAnnotations(ctx, t, r, s, ts, query)
					now[a.labels.Hash()] = a
				}
				active[r.Alert] = now
			}
		}
		// As promtool: an eval_time in [ts, ts+interval) is checked against the
		// evaluation at ts.
		for _, at := range ut.AlertRuleTests {
			et := mint.Add(time.Duration(at.EvalTime))
			if et.Before(ts) || !et.Before(ts.Add(evalInterval)) {
				continue
			}
			hold := time.Duration(0)
			found := false
			for _, g := range groups.Groups {
				for _, r := range g.Rules {
					if r.Alert == at.Alertname {
						hold, found = time.Duration(r.For), true
					}
				}
			}
			if !found {
				t.Fatalf("test %q: no alert %s in the rule files", ut.Name, at.Alertname)
			}
			var got []string
			for _, a := range active[at.Alertname] {
				if ts.Sub(a.activeAt) >= hold {
					got = append(got, a.labels.String()+" "+a.annotations.String())
				}
			}
			var want []string
			for _, e := range at.ExpAlerts {
				l := labels.FromMap(e.ExpLabels)
				l = labels.NewBuilder(l).Set(labels.AlertName, at.Alertname).Labels()
				want = append(want, l.String()+" "+labels.FromMap(e.ExpAnnotations).String())
			}
			sort.Strings(got)
			sort.Strings(want)
			if !slices.Equal(got, want) {
				problems = append(problems, fmt.Sprintf("test %q, alert %s at %s:\n  want %q\n  got  %q",
					ut.Name, at.Alertname, time.Duration(at.EvalTime), want, got))
			}
		}
	}
	return problems
}

// expandAnnotations expands the rule's annotation templates for the sample s, as
// Prometheus's alerting rule does.
func expandAnnotations(ctx context.Context, t *testing.T, r rulefmt.Rule, s promql.Sample, ts time.Time, query template.QueryFunc) labels.Labels {
	t.Helper()
	data := template.AlertTemplateData(s.Metric.Map(), nil, "", s)
	defs := "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"
	m := map[string]string{}
	for k, v := range r.Annotations {
		out, err := template.NewTemplateExpander(ctx, defs+v, "__alert_"+r.Alert, data, model.Time(timestamp.FromTime(ts)), query, nil, nil).Expand()
		if err != nil {
			t.Fatalf("alert %s: annotation %s: %v", r.Alert, k, err)
		}
		m[k] = out
	}
	return labels.FromMap(m)
}

// memStorage holds float series in memory for the PromQL engine: storage.Queryable.
type memStorage struct {
	series map[uint64]*memSeries
}

type memSeries struct {
	lset    labels.Labels
	samples []chunks.Sample
}

func newMemStorage() *memStorage { return &memStorage{series: map[uint64]*memSeries{}} }

// add appends a sample; samples of a series come in time order.
func (m *memStorage) add(l labels.Labels, t int64, v float64) {
	h := l.Hash()
	s := m.series[h]
	if s == nil {
		s = &memSeries{lset: l}
		m.series[h] = s
	}
	s.samples = append(s.samples, fSample{t: t, f: v})
}

// Querier implements storage.Queryable.
func (m *memStorage) Querier(_, _ int64) (storage.Querier, error) { return memQuerier{m}, nil }

type memQuerier struct{ m *memStorage }

func (q memQuerier) Select(_ context.Context, _ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	var out []storage.Series
	for _, s := range q.m.series {
		ok := true
		for _, matcher := range ms {
			if !matcher.Matches(s.lset.Get(matcher.Name)) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, storage.NewListSeries(s.lset, s.samples))
		}
	}
	sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i].Labels(), out[j].Labels()) < 0 })
	return &listSet{series: out, i: -1}
}

func (memQuerier) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (memQuerier) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (memQuerier) Close() error { return nil }

// listSet is a storage.SeriesSet over a slice.
type listSet struct {
	series []storage.Series
	i      int
}

func (s *listSet) Next() bool                        { s.i++; return s.i < len(s.series) }
func (s *listSet) At() storage.Series                { return s.series[s.i] }
func (s *listSet) Err() error                        { return nil }
func (s *listSet) Warnings() annotations.Annotations { return nil }

// fSample is a float sample: chunks.Sample.
type fSample struct {
	t int64
	f float64
}

func (s fSample) T() int64                      { return s.t }
func (s fSample) ST() int64                     { return 0 }
func (s fSample) F() float64                    { return s.f }
func (s fSample) H() *histogram.Histogram       { return nil }
func (s fSample) FH() *histogram.FloatHistogram { return nil }
func (s fSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s fSample) Copy() chunks.Sample           { return s }
