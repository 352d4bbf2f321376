package alerts

import (
	"context"
	"log/slog"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/payshield"
	"github.com/switchyard/switchyard/internal/cli"
	"github.com/switchyard/switchyard/internal/devpki"
	"github.com/switchyard/switchyard/switch/cluster"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/internal/testswitch"
	"github.com/switchyard/switchyard/switch/metrics"
	"github.com/switchyard/switchyard/switch/sched"
	"github.com/switchyard/switchyard/switch/server"
)

const (
	rulesFile     = "../../docs/alerts/switchyard.rules.yml"
	rulesTestFile = "../../docs/alerts/switchyard.rules.test.yml"
	alertsDoc     = "../../docs/alerts.md"
)

// promqlParser is the parser Prometheus itself uses for rule files.
var promqlParser = parser.NewParser(parser.Options{})

// loadRules parses and validates path as Prometheus does when it loads a rule file.
func loadRules(t *testing.T, path string) *rulefmt.RuleGroups {
	t.Helper()
	groups, errs := rulefmt.ParseFile(path, false, model.UTF8Validation, promqlParser, slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		for _, err := range errs {
			t.Error(err)
		}
		t.FailNow()
	}
	return groups
}

// TestRulesValid: the rule file parses and validates as Prometheus rules (rulefmt:
// the YAML's fields, each expression, durations, label and annotation templates).
func TestRulesValid(t *testing.T) {
	groups := loadRules(t, rulesFile)
	alerts := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				alerts++
			}
		}
	}
	if alerts < 20 {
		t.Fatalf("%s: %d alerts, want the 20 or more docs/alerts.md describes", rulesFile, alerts)
	}
	// A broken expression is refused: the check can fail.
	if _, errs := rulefmt.Parse([]byte("groups:\n- name: x\n  rules:\n  - alert: X\n    expr: rate(switchyard_transactions_total[5m]\n"),
		false, model.UTF8Validation, promqlParser, slog.New(slog.DiscardHandler)); len(errs) == 0 {
		t.Fatal("an unbalanced expression was accepted")
	}
}

// TestRulesDocumented: every alert has a severity (critical or warning), a summary, a
// description and a runbook that names its section of docs/alerts.md, and that
// section exists; docs/alerts.md describes no alert the file lacks.
func TestRulesDocumented(t *testing.T) {
	doc, err := os.ReadFile(alertsDoc)
	if err != nil {
		t.Fatal(err)
	}
	headings := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^### (Switchyard[A-Za-z]+)\s*$`).FindAllStringSubmatch(string(doc), -1) {
		headings[m[1]] = true
	}
	seen := map[string]bool{}
	for _, g := range loadRules(t, rulesFile).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if seen[r.Alert] {
				t.Errorf("alert %s: defined twice", r.Alert)
			}
			seen[r.Alert] = true
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, s)
			}
			for _, a := range []string{"summary", "description", "runbook"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("alert %s: no %s annotation", r.Alert, a)
				}
			}
			if want := "docs/alerts.md#" + strings.ToLower(r.Alert); r.Annotations["runbook"] != want {
				t.Errorf("alert %s: runbook %q, want %q", r.Alert, r.Annotations["runbook"], want)
			}
			if !headings[r.Alert] {
				t.Errorf("alert %s: no section \"### %s\" in %s", r.Alert, r.Alert, alertsDoc)
			}
		}
	}
	for h := range headings {
		if !seen[h] {
			t.Errorf("%s describes %s, which %s does not define", alertsDoc, h, rulesFile)
		}
	}
}

// family is a metric the switch exports: its label names (without job and instance,
// which the scrape adds) and whether the inventory saw it on a running switch.
type family struct {
	labels map[string]bool
	source string
}

// inventory collects the switch's metric families: those a demo switch, given a TLS
// listener and a key with an expiry, serves on /metrics (fetched over HTTP once it
// has started), and those of the collectors whose
// series appear only with traffic or on other deployments (metrics.New's vectors,
// the store-and-forward and risk collectors, a cluster node's, a payShield's, the
// scheduler's), read from their descriptions.
func inventory(t *testing.T) map[string]*family {
	t.Helper()
	inv := map[string]*family{}
	add := func(name, source string, labels ...string) {
		f := inv[name]
		if f == nil {
			f = &family{labels: map[string]bool{}, source: source}
			inv[name] = f
		}
		for _, l := range labels {
			f.labels[l] = true
		}
	}

	// A running demo switch's /metrics, with a TLS listener and a key with an expiry
	// (their expiry gauges have no series without them).
	dir := t.TempDir()
	cfg := testswitch.DemoConfig(t, dir, "../../rules")
	ca, err := devpki.NewCA(dir, "terminal-ca")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.Issue(dir, "switch.example")
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.Listeners[0]
	l.Name, l.Addr, l.Kind, l.ProxyProtocol = "tls", "127.0.0.1:0", "", nil
	l.TLS = &config.TLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: ca.File}
	cfg.Listeners = append(cfg.Listeners, l)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := server.New(cfg, zerolog.Nop(), cli.DemoIssuer())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if _, err := s.HSM.GenerateKey(hsm.WithActor(context.Background(), "alerts-test"), hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{
		ID: "alerts-test.ZMK", Type: hsm.ZMK, ExpiresAt: time.Now().Add(30 * 24 * time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	fams := testswitch.Metrics(t, s.AdminAddr())
	for name, mf := range fams {
		add(name, "/metrics")
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				add(name, "/metrics", lp.GetName())
			}
		}
	}
	for _, name := range []string{"switchyard_ready", "switchyard_tls_certificate_expiry_timestamp_seconds", "switchyard_key_expiry_timestamp_seconds"} {
		if inv[name] == nil {
			t.Fatalf("a demo switch's /metrics has no %s", name)
		}
	}

	// Collectors described rather than collected.
	var cs []prometheus.Collector
	m := metrics.New()
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		if c, ok := v.Field(i).Interface().(prometheus.Collector); ok {
			cs = append(cs, c)
		}
	}
	cs = append(cs, metrics.SAFCollector(nil), metrics.RiskCollector(nil))
	rec := &recorder{}
	if _, err := cluster.NewMetrics(rec); err != nil {
		t.Fatal(err)
	}
	if _, err := payshield.NewMetrics(rec); err != nil {
		t.Fatal(err)
	}
	db, err := server.OpenDB(t.TempDir(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := sched.New(db, sched.Options{Metrics: rec, Logger: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	cs = append(cs, rec.cs...)
	for _, c := range cs {
		ch := make(chan *prometheus.Desc, 64)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			name, labels := parseDesc(t, d)
			add(name, "description", labels...)
		}
	}
	return inv
}

// recorder is a prometheus.Registerer that keeps what is registered with it.
type recorder struct{ cs []prometheus.Collector }

func (r *recorder) Register(c prometheus.Collector) error   { r.cs = append(r.cs, c); return nil }
func (r *recorder) MustRegister(cs ...prometheus.Collector) { r.cs = append(r.cs, cs...) }
func (r *recorder) Unregister(prometheus.Collector) bool    { return false }

// descRE reads a Desc's String (client_golang prints no other accessor): its name
// and its variable label names. A change of that format fails the test, never
// passes it.
var descRE = regexp.MustCompile(`^Desc\{fqName: "([^"]+)", .*variableLabels: \{([^}]*)\}\}$`)

func parseDesc(t *testing.T, d *prometheus.Desc) (string, []string) {
	t.Helper()
	m := descRE.FindStringSubmatch(d.String())
	if m == nil {
		t.Fatalf("cannot read the metric description %s", d)
	}
	var labels []string
	for l := range strings.SplitSeq(m[2], ",") {
		if l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")"); l != "" {
			labels = append(labels, l)
		}
	}
	return m[1], labels
}

// TestRulesUseExistingMetrics: every metric a rule selects exists in the switch with
// every label the rule matches on or groups by; recording rules' names count as
// metrics with the labels they keep. The inventory's own check: a name the switch
// lacks is reported.
func TestRulesUseExistingMetrics(t *testing.T) {
	inv := inventory(t)
	// Labels every scraped series has, and Prometheus's own series.
	target := map[string]bool{"job": true, "instance": true}
	inv["up"] = &family{labels: map[string]bool{}, source: "Prometheus"}
	groups := loadRules(t, rulesFile)
	// Recording rules first: later rules may select them.
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Record == "" {
				continue
			}
			expr, err := promqlParser.ParseExpr(r.Expr)
			if err != nil {
				t.Fatal(err)
			}
			agg, ok := expr.(*parser.AggregateExpr)
			if !ok {
				if b, isBin := expr.(*parser.BinaryExpr); isBin {
					agg, ok = b.LHS.(*parser.AggregateExpr)
				}
			}
			if !ok || agg.Without {
				t.Fatalf("recording rule %s: keep its labels with an outer sum by (...)", r.Record)
			}
			f := &family{labels: map[string]bool{}, source: "recording rule"}
			for _, l := range agg.Grouping {
				f.labels[l] = true
			}
			inv[r.Record] = f
		}
	}
	checked := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			expr, err := promqlParser.ParseExpr(r.Expr)
			if err != nil {
				t.Fatal(err)
			}
			for _, problem := range checkExpr(expr, inv, target) {
				t.Errorf("rule %s: %s", name, problem)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no rule checked")
	}
	// The check itself: a misspelt metric, an unknown label and a grouping label no
	// selector has are reported.
	for _, bad := range []string{
		`switchyard_issuer_breaker_states == 2`,
		`switchyard_issuer_breaker_state{link="a"} == 2`,
		`sum by (listener) (switchyard_issuer_breaker_state) == 2`,
	} {
		e, err := promqlParser.ParseExpr(bad)
		if err != nil {
			t.Fatal(err)
		}
		if len(checkExpr(e, inv, target)) == 0 {
			t.Errorf("%s: not reported", bad)
		}
	}
}

// checkExpr returns what expr names that the inventory lacks: a metric, a label a
// selector matches, or a label an aggregation groups by or a binary operation matches
// on that none of the selectors beneath it has.
func checkExpr(expr parser.Expr, inv map[string]*family, target map[string]bool) []string {
	var problems []string
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			f := inv[n.Name]
			if f == nil {
				problems = append(problems, "metric "+n.Name+" is not exported by the switch")
				return nil
			}
			for _, m := range n.LabelMatchers {
				if m.Name != model.MetricNameLabel && !f.labels[m.Name] && !target[m.Name] {
					problems = append(problems, "metric "+n.Name+" has no label "+m.Name+" (it has "+keys(f.labels)+")")
				}
			}
		case *parser.AggregateExpr:
			problems = append(problems, checkLabels(n.Expr, n.Grouping, inv, target)...)
		case *parser.BinaryExpr:
			if n.VectorMatching != nil {
				problems = append(problems, checkLabels(n.LHS, n.VectorMatching.MatchingLabels, inv, target)...)
				problems = append(problems, checkLabels(n.RHS, n.VectorMatching.MatchingLabels, inv, target)...)
			}
		}
		return nil
	})
	return problems
}

// checkLabels reports each label of want that no selector in e has.
func checkLabels(e parser.Expr, want []string, inv map[string]*family, target map[string]bool) []string {
	have := map[string]bool{}
	selectors := 0
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			selectors++
			if f := inv[vs.Name]; f != nil {
				for l := range f.labels {
					have[l] = true
				}
			}
		}
		return nil
	})
	if selectors == 0 { // a number: vector matching does not apply
		return nil
	}
	var problems []string
	for _, l := range want {
		if !have[l] && !target[l] {
			problems = append(problems, "label "+l+" is on none of the metrics in "+e.String())
		}
	}
	return problems
}

func keys(m map[string]bool) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	if len(ks) == 0 {
		return "none"
	}
	return strings.Join(ks, ", ")
}
