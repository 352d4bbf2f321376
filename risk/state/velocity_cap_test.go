package state

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/racedetect"
)

// capShapes are the busiest series shapes a request can add a key to, the key
// chosen by the sender (a random card number, a new device ID on every request):
// a count seen once (kept in its slot), a sum of an amount past 32 bits and a
// count with traffic in three buckets (both in the arena), and a distinct_cards
// series with one card (the arena and a map).
func capShapes() []struct {
	name string
	feed func(s *Velocity, key uint64, t int64)
} {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC).UnixNano()
	mk := func(fp uint64, m string, w, r time.Duration) *CounterSpec {
		return &CounterSpec{FP: fp, Measure: m, Dims: []string{DimDevice}, Window: w, Width: int64(r), NB: int64((w + r - 1) / r)}
	}
	cnt := mk(1, MeasureCount, 24*time.Hour, 10*time.Minute)
	sum := mk(2, MeasureSum, 24*time.Hour, 10*time.Minute)
	dc := mk(3, MeasureDistinctCards, 10*time.Minute, 20*time.Second)
	return []struct {
		name string
		feed func(s *Velocity, key uint64, t int64)
	}{
		{"count, one transaction", func(s *Velocity, k uint64, t int64) { s.Observe(cnt, k, t0+t, 1, "") }},
		{"sum, one amount over 2^31", func(s *Velocity, k uint64, t int64) { s.Observe(sum, k, t0+t, 5_000_000_000, "") }},
		{"count, three buckets", func(s *Velocity, k uint64, t int64) {
			for b := range int64(3) {
				s.Observe(cnt, k, t0+t+b*int64(10*time.Minute), 1, "")
			}
		}},
		{"distinct_cards, one card", func(s *Velocity, k uint64, t int64) {
			s.Observe(dc, k, t0+t, 1, strconv.FormatUint(k, 16))
		}},
	}
}

// heapOf feeds n keys of one shape into a store built by mk and returns the heap
// it holds afterwards, per key, and the store.
func heapOf(n int, mk func() *Velocity, feed func(s *Velocity, key uint64, t int64)) (float64, *Velocity) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC() // the garbage of earlier tests (and its finalizers) gone first
	runtime.ReadMemStats(&before)
	s := mk()
	for i := range n {
		feed(s, uint64(i+1)*0x9e3779b97f4a7c15, int64(i)*int64(time.Millisecond))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(s)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n), s
}

// TestSeriesBytesEstimate: for each shape a flood can add, the store's estimate of
// its heap (Bytes, what the memory budget is held against) is within 25% of the
// heap it really holds; the per-key figures are those docs/rules.md gives.
func TestSeriesBytesEstimate(t *testing.T) {
	if racedetect.Enabled {
		t.Skip("the race detector changes the heap")
	}
	n := 100_000
	for _, sh := range capShapes() {
		per, s := heapOf(n, func() *Velocity { return NewVelocity(nil, 8*n, 0) }, sh.feed)
		est := float64(s.Bytes()) / float64(n)
		t.Logf("%s: %.0f bytes of heap per key, estimated %.0f", sh.name, per, est)
		if est < per*0.75 || est > per*1.25 {
			t.Errorf("%s: estimate %.0f bytes per key, heap %.0f: more than 25%% apart", sh.name, est, per)
		}
	}
}

// TestMemoryBudgetHolds: a flood of new keys of the largest shape (a distinct_cards
// series per device ID) fills a store with a 16 MiB budget to its budget and no
// further, whatever the number of keys: the heap stays within the budget (and the
// slack of the arena's growth) while the flood, with no budget, would take 80 MB.
func TestMemoryBudgetHolds(t *testing.T) {
	if racedetect.Enabled {
		t.Skip("the race detector changes the heap")
	}
	const budget = 16 << 20
	n := 300_000
	shapes := capShapes()
	per, s := heapOf(n, func() *Velocity {
		s := NewVelocity(nil, 0, 0)
		s.SetMaxBytes(budget)
		return s
	}, shapes[len(shapes)-1].feed)
	heap := per * float64(n)
	t.Logf("%d keys: %.1f MiB of heap, %.1f MiB estimated, %d series, %d evicted (%d live)",
		n, heap/(1<<20), float64(s.Bytes())/(1<<20), s.Series(), s.Evicted(), s.EvictedLive())
	if s.Bytes() > budget {
		t.Errorf("estimate %d bytes, over the budget of %d", s.Bytes(), budget)
	}
	if heap > budget*1.5 {
		t.Errorf("%.1f MiB of heap for a budget of %d MiB", heap/(1<<20), budget>>20)
	}
	if s.EvictedLive() == 0 {
		t.Error("no live series evicted: the flood did not reach the budget")
	}
}

// TestFloodKeepsRepeatedCards: a store full of keys seen once (card testing with
// random card numbers) keeps evicting those, not the series of the cards that
// came back: 100 cards with three attempts each still read 3 after a flood of
// 100 times the store's capacity of new cards. Every eviction of a live series
// is counted.
func TestFloodKeepsRepeatedCards(t *testing.T) {
	c := spec(MeasureCount, 24*time.Hour, 10*time.Minute)
	s := NewVelocity(nil, numShards*64, 0)
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC).UnixNano()
	victim := func(i int) uint64 { return uint64(i+1) * 0x2545f4914f6cdd1d }
	for i := range 100 {
		for a := range int64(3) {
			s.Observe(c, victim(i), t0+a*int64(time.Minute), 1000, "")
		}
	}
	flood := 100 * numShards * 64
	for i := range flood {
		s.Observe(c, uint64(i+1)*0x9e3779b97f4a7c15, t0+int64(time.Hour)+int64(i)*int64(time.Microsecond), 100, "")
	}
	lost := 0
	for i := range 100 {
		if got := s.Read(c, victim(i), t0+2*int64(time.Hour)); got != 3 {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of 100 cards with 3 attempts lost their count to a flood of %d new cards", lost, flood)
	}
	if s.Series() > int64(numShards*64) {
		t.Errorf("%d series, over the cap of %d", s.Series(), numShards*64)
	}
	if got := s.EvictedLive(); got < int64(flood-numShards*64) {
		t.Errorf("%d live series evicted, want at least %d", got, flood-numShards*64)
	}
}
