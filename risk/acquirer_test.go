package risk

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/risk/state"
)

// acquirerCount reads counter name of e as a transaction at `at` would.
func acquirerCount(t *testing.T, e *Engine, name string, at time.Time) int {
	t.Helper()
	rs := e.RuleSet()
	for _, c := range rs.Counters {
		if c.Name == name {
			probe := purchase(1)
			probe.Txn.Time = at
			return rs.Prepare(probe, e.store, nil).Velocity[c.Index]
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}

// Authorizations evaluated and observed in parallel all count in the acquirer's
// series (run with -race); its stripes go to Badger and a restarted engine reads
// the same count.
func TestAcquirerCounterParallelAndRestart(t *testing.T) {
	dir := writeRules(t, map[string]string{"a.yaml": `
counters:
  - {name: acq_attempts_10m, dimension: acquirer, window: 10m}
  - {name: acq_sum_10m, dimension: acquirer, measure: sum, window: 10m}
rules:
  - {id: busy, condition: "velocity.acq_attempts_10m > 1000000 || velocity.acq_sum_10m < 0", action: review, reason: busy}
`})
	db := openDB(t, t.TempDir())
	defer db.Close()
	e, err := New(dir, Options{DB: db, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	const workers, each = 4, 250
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				in := purchase(100)
				in.Txn.CardHash = fmt.Sprintf("card-%d-%04d", w, i)
				in.Terminal.ID = fmt.Sprintf("T%07d", w)
				in.Txn.Time = now.Add(-time.Duration(i) * time.Second / 2)
				d := e.Evaluate(in)
				e.Observe(in, OutcomeOf(&d, "00"))
			}
		})
	}
	wg.Wait()
	at := now.Add(time.Second)
	if got := acquirerCount(t, e, "acq_attempts_10m", at); got != workers*each {
		t.Errorf("acq_attempts_10m = %d, want %d", got, workers*each)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e2, err := New(dir, Options{DB: db, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if got := acquirerCount(t, e2, "acq_attempts_10m", at); got != workers*each {
		t.Errorf("after a restart: acq_attempts_10m = %d, want %d", got, workers*each)
	}
	if got := acquirerCount(t, e2, "acq_sum_10m", at); got != workers*each*100 {
		t.Errorf("after a restart: acq_sum_10m = %d, want %d", got, workers*each*100)
	}
	if got := e2.Stats().Series; got != 2*state.AcquirerStripes {
		t.Errorf("%d series restored, want %d (two counters of %d stripes)", got, 2*state.AcquirerStripes, state.AcquirerStripes)
	}
}
