package ruleset

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/switchyard/switchyard/risk/state"
)

const boxRules = `counters:
  - {name: card_count_1h, dimension: card, measure: count, window: 1h, resolution: 1m,
     where: "outcome.approved && txn.txn_type in [\"purchase\", \"preauth\"] && terminal.kind != \"atm\""}
rules:
  - {id: softpos-big, condition: "terminal.kind == \"softpos\" && txn.amount > 100000",
     action: decline, response_code: "61", reason: softpos-limit}
  - {id: many-uses, condition: "velocity.card_count_1h >= 3", action: review, reason: many-uses}
`

func boxRuleSet(t testing.TB) *RuleSet {
	t.Helper()
	rs, err := Load(writeRules(t, map[string]string{"box.yaml": boxRules}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// bytesPerCall is the heap bytes f allocates per call, over n calls.
func bytesPerCall(n int, f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(n)
}

// TestEvaluateAndObserveDoNotCopyTheInput: the expressions read the environment
// through a pooled box (envBox), not through a fresh heap copy of the Input
// (about 1.5 KB) for every evaluation and every counted transaction.
func TestEvaluateAndObserveDoNotCopyTheInput(t *testing.T) {
	rs := boxRuleSet(t)
	store := state.NewVelocity(nil, 100000, 1000)
	in := purchase(5000)
	size := uint64(unsafe.Sizeof(Input{}))
	rs.Evaluate(in, store, nil) // warm the pools
	rs.Observe(in, Outcome{Approved: true, ResponseCode: "00"}, store)
	if b := bytesPerCall(1000, func() { rs.Evaluate(in, store, nil) }); b >= size {
		t.Errorf("Evaluate allocates %d bytes a call, an Input is %d: the environment is copied to the heap", b, size)
	}
	if b := bytesPerCall(1000, func() { rs.Observe(in, Outcome{Approved: true, ResponseCode: "00"}, store) }); b >= size {
		t.Errorf("Observe allocates %d bytes a call, an Input is %d: the environment is copied to the heap", b, size)
	}
}

// TestBoxedEnvironmentsConcurrent: evaluations and observations on many
// goroutines at once, each over its own input, decide exactly as one at a time
// would (a box reused while another goroutine still read it would mix inputs).
func TestBoxedEnvironmentsConcurrent(t *testing.T) {
	rs := boxRuleSet(t)
	store := state.NewVelocity(nil, 100000, 1000)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 300 {
				in := purchase(50000 + 100000*(i%2)) // 500.00 or 1,500.00
				if g%2 == 0 {
					in.Terminal.Kind = "softpos"
				}
				in.Txn.CardHash = fmt.Sprintf("card-%d-%d", g, i)
				d := rs.Evaluate(in, store, nil)
				want := ActionAllow
				if g%2 == 0 && i%2 == 1 {
					want = ActionDecline
				}
				if d.Action != want || len(d.Errors) > 0 {
					errs <- fmt.Errorf("goroutine %d, evaluation %d (kind %s, amount %d): %s %v, want %s", g, i, in.Terminal.Kind, in.Txn.Amount, d.Action, d.Errors, want)
					return
				}
				if e := rs.Observe(in, Outcome{Approved: true, ResponseCode: "00"}, store); len(e) > 0 {
					errs <- fmt.Errorf("goroutine %d: observe: %v", g, e)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Every card was counted once, by its own filter evaluation.
	in := purchase(1000)
	in.Txn.CardHash = "card-3-7"
	rs.Observe(in, Outcome{Approved: true, ResponseCode: "00"}, store)
	rs.Observe(in, Outcome{Approved: true, ResponseCode: "00"}, store)
	if d := rs.Evaluate(in, store, nil); d.Action != ActionReview {
		t.Fatalf("a card counted in the concurrent run, then twice more: %s, want review (3 uses)", d.Action)
	}
}

// TestMaxWindow: the longest time back a counter reads is its window rounded up to
// whole buckets of its resolution (25m in buckets of 10m reads 30m back), not the
// window as written: the cluster's applier folds nothing older into the counters.
func TestMaxWindow(t *testing.T) {
	rules := `counters:
  - {name: a, dimension: card, measure: count, window: 1h, resolution: 1m}
  - {name: b, dimension: card, measure: count, window: 65m, resolution: 10m}
rules:
  - {id: r, condition: "velocity.a + velocity.b > 3", action: review, reason: r}
`
	rs, err := Load(writeRules(t, map[string]string{"w.yaml": rules}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := rs.MaxWindow(); got != 70*time.Minute {
		t.Fatalf("MaxWindow %v; want 70m (65m in buckets of 10m)", got)
	}
}
