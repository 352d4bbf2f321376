package server

import (
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/metrics"
)

// unboundedLabels are label names whose values grow with the fleet or the traffic
// (terminals, merchants, transactions, cards, addresses, free text): one series each,
// with 100,000 terminals, would swamp Prometheus. Such detail belongs in the logs and
// the journal, never in a label.
var unboundedLabels = []string{"tid", "terminal", "mid", "merchant", "rrn", "stan", "pan", "card", "ip", "addr", "address", "source", "client", "peer", "error", "err", "message", "url", "order", "user", "token", "session"}

// TestMetricConventions walks the registry of a demo switch that carried a few
// transactions and checks the Prometheus conventions on every series it exposes
// (promlint: counters end in _total, base units such as _seconds and _bytes, help
// text on every metric, no reserved suffix), that every metric is typed (a _total a
// counter), that no two metrics make one OpenMetrics family (a gauge X beside a
// counter X_total), and that no label names a value of unbounded cardinality.
func TestMetricConventions(t *testing.T) {
	s := start(t, demoConfig(t, t.TempDir()), nil)
	c := dial(t, s, "ascii", message.DialectASCII)
	send(t, c, message.DialectASCII, purchase("4761739001010119", 1000))
	send(t, c, message.DialectASCII, purchase("5500000000000004", 1000)) // no route
	touchVecs(t, s.Metrics)
	mfs, err := s.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if !strings.HasPrefix(p.Metric, "switchyard_") {
			continue // the Go and process collectors' names are theirs
		}
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	seen := 0
	families := map[string]string{} // OpenMetrics family name (a counter's without _total) -> metric
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "switchyard_") {
			continue
		}
		seen++
		name := mf.GetName()
		// A name that says counter is one: untyped, a scraper cannot know it only
		// grows (and OpenMetrics exposes it as unknown).
		if strings.HasSuffix(name, "_total") && mf.GetType() != dto.MetricType_COUNTER {
			t.Errorf("%s: a _total of type %s, not a counter", name, mf.GetType())
		}
		if mf.GetType() == dto.MetricType_UNTYPED {
			t.Errorf("%s: untyped (say counter or gauge)", name)
		}
		// In OpenMetrics a counter's family is its name without _total: a gauge of
		// that name makes two families of one name, and the exposition invalid.
		family := name
		if mf.GetType() == dto.MetricType_COUNTER {
			family = strings.TrimSuffix(name, "_total")
		}
		if other, dup := families[family]; dup {
			t.Errorf("%s and %s are one OpenMetrics family, %s", other, name, family)
		}
		families[family] = name
		if strings.TrimSpace(mf.GetHelp()) == "" {
			t.Errorf("%s: no help text", mf.GetName())
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				for _, u := range unboundedLabels {
					if lp.GetName() == u || strings.HasSuffix(lp.GetName(), "_"+u) {
						t.Errorf("%s: label %q has unbounded cardinality (one series per %s)", mf.GetName(), lp.GetName(), u)
					}
				}
			}
		}
	}
	if seen < 55 {
		t.Fatalf("only %d switchyard_ metrics gathered: the walk checks too little", seen)
	}
}

// touchVecs gives every metric vector among m's fields one series (label values
// "x"), so that the walk sees those the few transactions did not reach (issuer
// errors, refused connections...): a vector without a series is not gathered.
func touchVecs(t *testing.T, m *metrics.Metrics) {
	v := reflect.ValueOf(m).Elem()
	for i := 0; i < v.NumField(); i++ {
		get := v.Field(i).MethodByName("GetMetricWithLabelValues")
		if !get.IsValid() || v.Field(i).IsNil() {
			continue
		}
		touched := false
		for n := 0; n <= 8 && !touched; n++ {
			args := make([]reflect.Value, n)
			for j := range args {
				args[j] = reflect.ValueOf("x")
			}
			out := get.Call(args)
			touched = out[1].IsNil() // no error: n is the vector's label count
		}
		if !touched {
			t.Fatalf("metrics.Metrics.%s: no label count from 0 to 8 fits", v.Type().Field(i).Name)
		}
	}
}
