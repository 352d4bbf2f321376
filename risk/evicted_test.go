package risk

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"
)

// TestFloodEvictedCardTakesOnError: a card attempted once, then a flood of new
// cards that pushes its series out of a full store (a memory budget hit by card
// numbers chosen by the sender), then the card again: its counter reads 0, as for
// a card never seen, but the read is in doubt, so the velocity rule that would
// have hit on the lost attempt takes its on_error instead of passing: review,
// decline with its own response code, or (on_error: miss, the default) a miss as
// before, now listed under errors with "evicted" and counted by rule. A rule that
// cannot hit whatever the count (a refund rule, for a purchase) is not blamed, a
// card never seen is not in doubt, and the run error is logged with the reason.
func TestFloodEvictedCardTakesOnError(t *testing.T) {
	for _, c := range []struct {
		onError string
		action  Action
		code    string
	}{
		{"", ActionAllow, ""},
		{"on_error: review,", ActionReview, ""},
		{"on_error: decline,", ActionDecline, "65"},
	} {
		t.Run(fmt.Sprintf("%q", c.onError), func(t *testing.T) {
			dir := writeRules(t, map[string]string{"a.yaml": `
counters:
  - {name: card_attempts_10m, dimension: card, window: 10m, resolution: 20s}
rules:
  - {id: card-again, condition: "velocity.card_attempts_10m >= 1", action: decline, response_code: "65", ` + c.onError + ` reason: card-again}
  - {id: card-refunds, condition: "txn.txn_type == 'refund' && velocity.card_attempts_10m >= 1", action: decline, on_error: decline, reason: card-refunds}
`})
			var logs bytes.Buffer
			// 1,024 series at most (4 a shard): a flood of 20 times that evicts
			// every key seen once.
			e, err := New(dir, Options{MaxSeries: 1024, Logger: zerolog.New(&logs)})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			t0 := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
			victim := purchase(5000)
			victim.Txn.CardHash = "victim0000000000000000000"
			victim.Txn.Time = t0
			if d := e.Evaluate(victim); d.Action != ActionAllow || len(d.Errors) != 0 {
				t.Fatalf("first attempt: %+v, want allow and no error", d)
			}
			e.Observe(victim, Outcome{Approved: true, ResponseCode: "00"})
			in := purchase(100)
			for i := range 20 * 1024 {
				in.Txn.CardHash = fmt.Sprintf("flood%020d", i)
				in.Txn.Time = t0.Add(time.Second + time.Duration(i)*time.Millisecond)
				e.Observe(in, Outcome{Approved: true, ResponseCode: "00"})
			}
			victim.Txn.Time = t0.Add(time.Minute)
			if v, _ := e.Velocity(victim, "card_attempts_10m"); v != 0 {
				t.Fatalf("victim's count after the flood %d: not evicted (%d live series evicted)", v, e.store.EvictedLive())
			}
			d := e.Evaluate(victim)
			if d.Action != c.action || d.ResponseCode != c.code {
				t.Errorf("second attempt of the evicted card: %s %q (%+v), want %s %q", d.Action, d.ResponseCode, d, c.action, c.code)
			}
			if len(d.Errors) != 1 || d.Errors[0].Rule != "card-again" || !strings.Contains(d.Errors[0].Error, "velocity.card_attempts_10m evicted") {
				t.Errorf("errors %+v, want card-again's, evicted", d.Errors)
			}
			if h, ok := d.Hit("card-again"); c.action != ActionAllow && (!ok || !h.OnError || h.Reason != "card-again") {
				t.Errorf("hit %+v, want card-again's on_error hit", h)
			}
			if _, ok := d.Hit("card-refunds"); ok {
				t.Error("card-refunds hit a purchase: it cannot hit one whatever the count")
			}
			if st := e.Stats(); st.DoubtBytes < 64<<10 {
				t.Errorf("stats: doubt record of %d bytes, want at least a generation (64 KiB)", st.DoubtBytes)
			}
			if got := e.RuleErrors()["card-again"]; got != 1 {
				t.Errorf("run errors of card-again %d, want 1", got)
			}
			if !strings.Contains(logs.String(), `"rule":"card-again"`) || !strings.Contains(logs.String(), "evicted") {
				t.Errorf("no log line for card-again naming the eviction:\n%s", logs.String())
			}
			fresh := purchase(5000)
			fresh.Txn.CardHash = "neverseen0000000000000000"
			fresh.Txn.Time = victim.Txn.Time
			if d := e.Evaluate(fresh); d.Action != ActionAllow || len(d.Errors) != 0 {
				t.Errorf("a card never seen: %+v, want allow and no error", d)
			}
		})
	}
}

// TestEvictedCardInDoubtAfterRestart: the record of evicted keys is saved with the
// counters. A card attempted once is evicted by a flood, the engine stops (its
// last write to Badger) and a new engine starts on the same database: the card
// reads 0, still in doubt, and the rule that would have hit on the lost attempt
// takes its on_error (decline) instead of letting the card through as a card never
// seen, which it did until this release. A card never seen is not in doubt.
func TestEvictedCardInDoubtAfterRestart(t *testing.T) {
	dir := writeRules(t, map[string]string{"a.yaml": `
counters:
  - {name: card_attempts_10m, dimension: card, window: 10m, resolution: 20s}
rules:
  - {id: card-again, condition: "velocity.card_attempts_10m >= 1", action: decline, response_code: "65", on_error: decline, reason: card-again}
`})
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// By the wall clock: the counters and the record are written with a TTL by it.
	t0 := time.Now().UTC()
	e, err := New(dir, Options{DB: db, MaxSeries: 1024})
	if err != nil {
		t.Fatal(err)
	}
	victim := purchase(5000)
	victim.Txn.CardHash = "victim0000000000000000000"
	victim.Txn.Time = t0
	e.Observe(victim, Outcome{Approved: true, ResponseCode: "00"})
	in := purchase(100)
	for i := range 20 * 1024 {
		in.Txn.CardHash = fmt.Sprintf("flood%020d", i)
		in.Txn.Time = t0.Add(time.Second + time.Duration(i)*time.Microsecond)
		e.Observe(in, Outcome{Approved: true, ResponseCode: "00"})
	}
	victim.Txn.Time = t0.Add(2 * time.Second)
	if d := e.Evaluate(victim); d.Action != ActionDecline || len(d.Errors) != 1 {
		t.Fatalf("before the restart: %+v, want the on_error decline of an evicted card", d)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	e, err = New(dir, Options{DB: db, MaxSeries: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if v, _ := e.Velocity(victim, "card_attempts_10m"); v != 0 {
		t.Fatalf("victim's count after the restart %d, want 0 (evicted before it)", v)
	}
	d := e.Evaluate(victim)
	if d.Action != ActionDecline || d.ResponseCode != "65" {
		t.Errorf("evicted card after the restart: %s %q (%+v), want the on_error decline 65", d.Action, d.ResponseCode, d)
	}
	if len(d.Errors) != 1 || !strings.Contains(d.Errors[0].Error, "velocity.card_attempts_10m evicted") {
		t.Errorf("errors %+v, want card-again's, evicted", d.Errors)
	}
	fresh := purchase(5000)
	fresh.Txn.CardHash = "neverseen0000000000000000"
	fresh.Txn.Time = victim.Txn.Time
	if d := e.Evaluate(fresh); d.Action != ActionAllow || len(d.Errors) != 0 {
		t.Errorf("a card never seen: %+v, want allow and no error", d)
	}
}
