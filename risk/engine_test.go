package risk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"
)

func openDB(t testing.TB, dir string) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type reloads struct {
	mu   sync.Mutex
	errs []error
	sets []*RuleSet
}

func (r *reloads) record(rs *RuleSet, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs = append(r.errs, err)
	} else {
		r.sets = append(r.sets, rs)
	}
}

func (r *reloads) counts() (int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sets), len(r.errs)
}

// The acceptance scenario on the engine: add the example rule to a
// running engine's directory, see it decline, break the file, see the
// previous rules stay with a clear error.
func TestWatchHotReloadGoodAndBadFile(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"00-deny.yaml", "10-limits.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "rules", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var seen reloads
	watching := make(chan struct{})
	var once sync.Once
	log := zerolog.New(io.Discard).Hook(zerolog.HookFunc(func(_ *zerolog.Event, _ zerolog.Level, msg string) {
		if msg == watchingMsg {
			once.Do(func() { close(watching) })
		}
	}))
	e, err := New(dir, Options{DB: openDB(t, t.TempDir()), Debounce: 50 * time.Millisecond, OnReload: seen.record, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.Watch(ctx) }()
	select { // a file written before the watch is in place would go unseen
	case <-watching:
	case err := <-done:
		t.Fatalf("Watch: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher did not start")
	}

	in := purchase(500000)
	if d := e.Evaluate(in); d.Action != ActionAllow {
		t.Fatalf("before the new rule: %s", d.Summary())
	}
	v0 := e.RuleSet().Version

	analyst := filepath.Join(dir, "90-analyst.yaml")
	if err := os.WriteFile(analyst, []byte(bigRound), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the good file to load", func() bool { n, _ := seen.counts(); return n == 1 })
	d := e.Evaluate(in)
	if d.Action != ActionDecline || d.ResponseCode != "05" || d.Reason != "round-amount" || d.Rule != "big-round" {
		t.Fatalf("after the new rule: %s", d.Summary())
	}
	v1 := e.RuleSet().Version
	if v1 == v0 || d.Version != v1 {
		t.Errorf("versions: before %s, after %s, decision %s", v0, v1, d.Version)
	}

	broken := strings.Replace(bigRound, "txn.amount >= 500000", "txn.amount >= ", 1)
	if err := os.WriteFile(analyst, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the bad file to be refused", func() bool { _, n := seen.counts(); return n == 1 })
	seen.mu.Lock()
	msg := seen.errs[0].Error()
	seen.mu.Unlock()
	if !strings.Contains(msg, "90-analyst.yaml:2:") || !strings.Contains(msg, "rule big-round: condition:") {
		t.Errorf("reload error does not name file:line and the expr error: %s", msg)
	}
	if e.RuleSet().Version != v1 {
		t.Errorf("the running rule set changed after a bad file")
	}
	if st := e.LastReload(); st.Error == "" || st.Version != v1 {
		t.Errorf("last reload status %+v", st)
	}
	if d := e.Evaluate(in); d.Rule != "big-round" {
		t.Errorf("previous rules not kept: %s", d.Summary())
	}

	// Removing the file takes the rule away.
	if err := os.Remove(analyst); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the removal to load", func() bool { n, _ := seen.counts(); return n == 2 })
	if d := e.Evaluate(in); d.Action != ActionAllow || e.RuleSet().Version != v0 {
		t.Errorf("after removal: %s, version %s want %s", d.Summary(), e.RuleSet().Version, v0)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Watch: %v", err)
	}
}

func TestNewRefusesBadRules(t *testing.T) {
	dir := writeRules(t, map[string]string{"a.yaml": "rules:\n  - {id: a, condition: \"txn.nope\", action: alert}\n"})
	_, err := New(dir, Options{})
	var le *LoadError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "a.yaml:2:") {
		t.Fatalf("New with a bad file: %v", err)
	}
}

// Counters survive a restart: observe, close (flush), reopen the same DB.
func TestCountersSurviveRestart(t *testing.T) {
	dbDir := t.TempDir()
	rules := writeRules(t, map[string]string{"v.yaml": `
counters:
  - {name: card_1h, dimension: card, window: 1h}
  - {name: merchant_sum_24h, dimension: merchant, measure: sum, window: 24h, where: outcome.approved}
  - {name: terminal_cards_10m, dimension: terminal, measure: distinct_cards, window: 10m}
rules:
  - {id: a, condition: "velocity.card_1h + velocity.merchant_sum_24h + velocity.terminal_cards_10m > 0", action: alert}
`})
	now := time.Now().UTC()
	db := openDB(t, dbDir)
	e, err := New(rules, Options{DB: db, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 7; i++ {
		in := purchase(1000 * (i + 1))
		in.Txn.Time = now.Add(-time.Duration(7-i) * time.Minute)
		in.Txn.CardHash = fmt.Sprintf("card-%d", i%3) // three cards
		if i%3 == 0 {
			in.Txn.CardHash = "c0ffee00c0ffee00c0ffee00c0ffee00"
		}
		e.Observe(in, Outcome{Approved: i != 6, ResponseCode: map[bool]string{true: "00", false: "51"}[i != 6]})
	}
	probe := purchase(1)
	probe.Txn.Time = now
	env := e.RuleSet().Prepare(probe, e.store, nil)
	want := [3]int{3, 1000 + 2000 + 3000 + 4000 + 5000 + 6000, 3}
	got := [3]int{env.Velocity[0], env.Velocity[1], env.Velocity[2]}
	if got != want {
		t.Fatalf("before restart: %v, want %v", got, want)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openDB(t, dbDir)
	defer db.Close()
	e2, err := New(rules, Options{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	env = e2.RuleSet().Prepare(probe, e2.store, nil)
	got = [3]int{env.Velocity[0], env.Velocity[1], env.Velocity[2]}
	if got != want {
		t.Fatalf("after restart: %v, want %v", got, want)
	}
	// The distinct-card memory survived too: a known card does not count twice.
	in := purchase(1)
	in.Txn.Time = now
	in.Txn.CardHash = "card-1"
	e2.Observe(in, Outcome{Approved: true, ResponseCode: "00"})
	probe.Txn.Time = now.Add(time.Second)
	env = e2.RuleSet().Prepare(probe, e2.store, nil)
	if env.Velocity[2] != 3 || env.Velocity[0] != 3 {
		t.Errorf("after a known card: %v", env.Velocity[:3])
	}
	// Everything is under risk/.
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		n := 0
		for it.Rewind(); it.Valid(); it.Next() {
			n++
			k := string(it.Item().Key())
			if !strings.HasPrefix(k, "risk/v/") {
				t.Errorf("key %q outside risk/v/", k)
			}
			if strings.Contains(k, "c0ffee") || strings.Contains(k, "card-") {
				t.Errorf("key %q holds a card identifier in clear", k)
			}
			if it.Item().ExpiresAt() == 0 {
				t.Errorf("key %q has no TTL", k)
			}
		}
		if n == 0 {
			t.Error("nothing persisted")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A reload keeps the counts of unchanged counters and starts changed ones anew.
func TestReloadKeepsUnchangedCounters(t *testing.T) {
	dir := writeRules(t, map[string]string{"v.yaml": `
counters:
  - {name: card_1h, dimension: card, window: 1h}
  - {name: card_small_1h, dimension: card, window: 1h, where: txn.amount < 1000}
rules:
  - {id: a, condition: "velocity.card_1h + velocity.card_small_1h > 100", action: alert}
`})
	e, err := New(dir, Options{DB: openDB(t, t.TempDir())})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	now := time.Now().UTC()
	for i := 0; i < 4; i++ {
		in := purchase(500)
		in.Txn.Time = now.Add(-time.Minute)
		e.Observe(in, Outcome{Approved: true, ResponseCode: "00"})
	}
	if err := os.WriteFile(filepath.Join(dir, "v.yaml"), []byte(`
counters:
  - {name: card_small_1h, dimension: card, window: 1h, where: txn.amount < 600}
  - {name: card_1h, dimension: card, window: 1h}
rules:
  - {id: a, condition: "velocity.card_1h + velocity.card_small_1h > 100", action: alert}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := e.Reload()
	if err != nil {
		t.Fatal(err)
	}
	probe := purchase(1)
	probe.Txn.Time = now
	env := rs.Prepare(probe, e.store, nil)
	if c := rs.Counter("card_1h"); env.Velocity[c.Index] != 4 {
		t.Errorf("unchanged counter after reload: %d, want 4", env.Velocity[c.Index])
	}
	if c := rs.Counter("card_small_1h"); env.Velocity[c.Index] != 0 {
		t.Errorf("changed counter after reload: %d, want 0", env.Velocity[c.Index])
	}
}

// Many goroutines evaluate and observe while the rules reload: run with -race.
func TestConcurrentEvaluateObserveReload(t *testing.T) {
	e, err := New("../rules", Options{DB: openDB(t, t.TempDir()), FlushInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ins := benchInputs(2000, time.Now().Add(-time.Minute))
	// The rules reload over and over from before the first evaluation until after
	// the last, so that every evaluation races a reload.
	var wg, reloader sync.WaitGroup
	stop, reloading := make(chan struct{}), make(chan struct{})
	reloader.Add(1)
	go func() {
		defer reloader.Done()
		for n := 0; ; n++ {
			if n == 1 {
				close(reloading)
			}
			select {
			case <-stop:
				return
			default:
				if _, err := e.Reload(); err != nil {
					t.Error(err)
					if n == 0 {
						close(reloading)
					}
					return
				}
				_, _ = e.Lists().Add("tester", ListEntry{List: ListDeny, Kind: KindTerminal, Value: "T0000099"})
			}
		}
	}()
	<-reloading
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < len(ins); i += 4 {
				d := e.Evaluate(&ins[i])
				e.Observe(&ins[i], OutcomeOf(&d, map[bool]string{true: d.ResponseCode, false: "00"}[d.Declined()]))
				if len(d.Errors) > 0 {
					t.Errorf("run-time errors: %v", d.Errors)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(stop)
	reloader.Wait()
	if st := e.Stats(); st.Evaluations < 2000 || st.RunErrors != 0 {
		t.Errorf("stats %+v", st)
	}
}
