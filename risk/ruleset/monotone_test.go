package ruleset

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/risk/state"
)

// TestMonotone: the direction of an expression in counter x, as the doubt checks
// use it: a limit grows with it, its negation and == 0 shrink with it, a band, an
// == other than 0 and anything the analysis does not look into move both ways,
// and an expression that reads only another counter does not move.
func TestMonotone(t *testing.T) {
	rs := &RuleSet{Counters: []*Counter{{Name: "x", Index: 0}, {Name: "y", Index: 1}}}
	for src, want := range map[string]mono{
		"velocity.x >= 3":                                            monoInc,
		"velocity.x > merchant.velocity_limit":                       monoInc,
		"3 < velocity.x && txn.amount > 100":                         monoInc,
		"velocity.x + txn.amount > 5000 || velocity.y > 1":           monoInc,
		"velocity.x * 2 - 5 > 3":                                     monoInc,
		"velocity.x / 4 > 3":                                         monoInc,
		"let n = velocity.x; n >= 3":                                 monoInc,
		"max(velocity.x, velocity.y) > 3":                            monoInc,
		"txn.txn_type == 'refund' ? velocity.x > 1 : velocity.x > 5": monoInc,
		"velocity.x < 3":                                             monoDec,
		"velocity.x == 0 && txn.amount > 1000":                       monoDec,
		"!(velocity.x >= 3)":                                         monoDec,
		"velocity.x * -1 > -3":                                       monoDec,
		"velocity.x != 0":                                            monoInc,
		"velocity.x > 3 && velocity.x < 10":                          monoAny,
		"velocity.x == 5":                                            monoAny,
		"velocity.x in 3..10":                                        monoAny,
		"velocity.x % 2 == 1":                                        monoAny,
		"velocity.x * txn.amount > 5":                                monoAny,
		"velocity.x * 10000000 > 5":                                  monoAny,
		"velocity.x > 3 ? txn.amount > 5 : true":                     monoAny,
		"abs(velocity.x - 5) < 2":                                    monoAny,
		"let n = velocity.x; n > 3 && n < 10":                        monoAny,
		"velocity.y > 3 && velocity.y < 10":                          monoConst,
		"velocity.x * 10":                                            monoInc,
		"100 - velocity.x":                                           monoDec,
	} {
		inc, dec := monotone(src, rs, 1)
		got := monoAny
		switch {
		case inc&1 != 0 && dec&1 != 0:
			got = monoConst
		case inc&1 != 0:
			got = monoInc
		case dec&1 != 0:
			got = monoDec
		}
		if got != want {
			t.Errorf("%s: %d, want %d (0 const, 1 inc, 2 dec, 3 any)", src, got, want)
		}
	}
}

// TestBandAndScoreInDoubt: rules reading a counter in doubt, evicted (read 0) or
// with a failed filter (read 12). A band (velocity.x > 3 && velocity.x < 10) that
// misses on 0 could hit on the true count: it fails and takes its on_error (until
// this release it passed, as it also missed on 2^40). A rule that hits on 0 and
// shrinks with the count (== 0, <) could miss on the true count: the error is
// listed, and the hit stands (stronger than its on_error: miss). A score that
// grows with the count may be short: the error is listed, and its on_error
// (review, stronger than the rule's alert) makes the hit. At 12, a limit that
// hits and a rule that shrinks and misses cannot change: no error. A card not in
// doubt gives no error at all, and a where filter that is a band fails on 0.
func TestBandAndScoreInDoubt(t *testing.T) {
	rs, err := Load(writeRules(t, map[string]string{"a.yaml": `
counters:
  - {name: x, dimension: card, window: 10m, resolution: 20s}
  - {name: banded, dimension: card, window: 10m, resolution: 20s, where: "velocity.x > 3 && velocity.x < 10"}
rules:
  - {id: band, condition: "velocity.x > 3 && velocity.x < 10", action: decline, on_error: review, reason: band}
  - {id: limit, condition: "velocity.x >= 3", action: review, reason: limit}
  - {id: fresh, condition: "velocity.x == 0 && txn.amount > 1000", action: review, reason: fresh}
  - {id: under, condition: "velocity.x < 3", action: alert, reason: under}
  - {id: scored, condition: "txn.amount > 0", score: "velocity.x * 10", action: alert, on_error: review, reason: scored}
`}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	x := rs.counterByName["x"]
	store := state.NewVelocity(nil, 1024, 0) // 4 series a shard
	ok := Outcome{Approved: true, ResponseCode: "00"}
	errsOf := func(d Decision) map[string]string {
		m := map[string]string{}
		for _, e := range d.Errors {
			m[e.Rule] = e.Error
		}
		return m
	}

	// Read 0, evicted.
	victim := purchase(5000)
	victim.Txn.CardHash = "victim0000000000000000000"
	rs.Observe(victim, ok, store)
	flood := purchase(100)
	for i := range 20 * 1024 {
		flood.Txn.CardHash = fmt.Sprintf("flood%020d", i)
		flood.Txn.Time = victim.Txn.Time.Add(time.Second + time.Duration(i)*time.Millisecond)
		rs.Observe(flood, ok, store)
	}
	victim.Txn.Time = victim.Txn.Time.Add(time.Minute)
	if v, _ := rs.Read("x", victim, store); v != 0 {
		t.Fatalf("victim's count after the flood %d: not evicted", v)
	}
	d := rs.Evaluate(victim, store, nil)
	errs := errsOf(d)
	if h, hit := d.Hit("band"); !hit || !h.OnError || h.Action != ActionReview || !strings.Contains(errs["band"], "velocity.x evicted") ||
		!strings.Contains(errs["band"], "does not only grow or only shrink") {
		t.Errorf("band on an evicted 0: hit %+v, error %q; want its on_error review, the error naming x evicted and the band", h, errs["band"])
	}
	if _, hit := d.Hit("limit"); hit || !strings.Contains(errs["limit"], "could hit on what is missing") {
		t.Errorf("limit on an evicted 0: error %q, want a miss with the error (on_error: miss)", errs["limit"])
	}
	for _, id := range []string{"fresh", "under"} {
		if h, hit := d.Hit(id); !hit || h.OnError || !strings.Contains(errs[id], "hit on it, could miss") {
			t.Errorf("%s on an evicted 0: hit %+v, error %q; want the hit and the error", id, h, errs[id])
		}
	}
	if h, hit := d.Hit("scored"); !hit || !h.OnError || h.Action != ActionReview || !strings.HasPrefix(errs["scored"], "score: velocity.x evicted") {
		t.Errorf("scored on an evicted 0: hit %+v, error %q; want its on_error review and a score error", h, errs["scored"])
	}
	if d.Action != ActionReview {
		t.Errorf("decision %s, want review", d.Action)
	}
	if errs := rs.Observe(victim, ok, store); len(errs) != 1 || errs[0].Rule != "counter banded" || !strings.Contains(errs[0].Error, "velocity.x evicted") {
		t.Errorf("observe errors %+v, want counter banded's (a band where filter on an evicted 0)", errs)
	}

	// Read 12, filter failed: the monotone rules cannot change.
	card := purchase(5000)
	card.Txn.CardHash = "twelve0000000000000000000"
	card.Txn.Time = victim.Txn.Time.Add(time.Second)
	for range 12 {
		store.Observe(&x.spec, mustKey(t, x, card), card.Txn.Time.UnixNano(), card.Txn.Amount, card.Txn.CardHash)
	}
	store.MarkFiltered(&x.spec, mustKey(t, x, card), card.Txn.Time.UnixNano())
	card.Txn.Time = card.Txn.Time.Add(time.Second)
	d = rs.Evaluate(card, store, nil)
	errs = errsOf(d)
	for _, id := range []string{"limit", "fresh", "under"} {
		if errs[id] != "" {
			t.Errorf("%s on 12 in doubt: error %q, want none (it cannot change)", id, errs[id])
		}
	}
	if _, hit := d.Hit("limit"); !hit {
		t.Error("limit on 12: no hit")
	}
	if !strings.Contains(errs["band"], "velocity.x filter failed") || !strings.Contains(errs["scored"], "velocity.x filter failed") {
		t.Errorf("errors %+v, want band's (not monotone) and scored's (the score may be short)", d.Errors)
	}

	// Not in doubt: no error.
	fresh := purchase(5000)
	fresh.Txn.CardHash = "neverseen0000000000000000"
	fresh.Txn.Time = card.Txn.Time
	if d := rs.Evaluate(fresh, store, nil); len(d.Errors) != 0 {
		t.Errorf("a card never seen: errors %+v, want none", d.Errors)
	}
}

// mustKey is counter c's key for in.
func mustKey(t *testing.T, c *Counter, in *Input) uint64 {
	t.Helper()
	k, ok := counterKey(c.dims, in)
	if !ok {
		t.Fatalf("counter %s: no key for the input", c.Name)
	}
	return k
}
