package state

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
)

// cardSpecs are the default rules' counters a purchase with a new card at a small
// merchant feeds: the per-card counters (rules/40-velocity.yaml) and the per card
// and merchant ones (rules/30-cashout.yaml).
func cardSpecs() []*CounterSpec {
	mk := func(fp uint64, measure string, window, res time.Duration) *CounterSpec {
		return &CounterSpec{FP: fp, Measure: measure, Dims: []string{DimCard}, Window: window, Width: int64(res), NB: int64((window + res - 1) / res)}
	}
	return []*CounterSpec{
		mk(1, MeasureCount, 10*time.Minute, 20*time.Second), // card_attempts_10m
		mk(2, MeasureCount, 24*time.Hour, 10*time.Minute),   // card_attempts_24h
		mk(3, MeasureCount, 24*time.Hour, 30*time.Minute),   // card_merchant_24h
		mk(4, MeasureCount, 30*time.Minute, time.Minute),    // card_merchant_30m
		mk(5, MeasureSum, 30*time.Minute, time.Minute),      // card_merchant_sum_30m
	}
}

// heapPerCard feeds n distinct cards, one purchase each, through the card counters
// and returns the heap the counters hold per card.
func heapPerCard(n int) float64 {
	specs := cardSpecs()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := NewVelocity(nil, 8*n, 0)
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC).UnixNano()
	var buf []byte
	for i := range n {
		buf = strconv.AppendInt(buf[:0], int64(i), 10)
		card := xxhash.Sum64(buf)
		t := t0 + int64(i)*int64(time.Millisecond) // 1,000 cards a second
		for j, c := range specs {
			s.Observe(c, card^uint64(j), t, 1000+i%5000, "")
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(s)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

// TestHeapPerDistinctCard holds the counters' memory per distinct card (the five
// series a new card's purchase at a small merchant adds) under 150 bytes: a day of
// 10 million cards fits in 1.5 GB of heap.
func TestHeapPerDistinctCard(t *testing.T) {
	n := 200_000
	if testing.Short() {
		n = 50_000
	}
	if got := heapPerCard(n); got > 150 {
		t.Errorf("%.0f bytes of heap per distinct card, want at most 150", got)
	} else {
		t.Logf("%.0f bytes of heap per distinct card (%d cards)", got, n)
	}
}

// BenchmarkHeapPerCard reports the counters' heap per distinct card (B/card) for a
// million cards.
func BenchmarkHeapPerCard(b *testing.B) {
	var per float64
	for range b.N {
		per = heapPerCard(1_000_000)
	}
	b.ReportMetric(per, "B/card")
	b.ReportMetric(per*1e6/(1<<20), "MiB/Mcards")
}

// BenchmarkObserveRead is the counters' work per transaction: five reads and five
// observations, over a pool of 100,000 cards.
func BenchmarkObserveRead(b *testing.B) {
	specs := cardSpecs()
	s := NewVelocity(nil, 0, 0)
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC).UnixNano()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		card := uint64(i%100_000) * 0x9e3779b97f4a7c15
		t := t0 + int64(i)*int64(50*time.Microsecond)
		for j, c := range specs {
			_ = s.Read(c, card^uint64(j), t)
		}
		for j, c := range specs {
			s.Observe(c, card^uint64(j), t, 1000, "")
		}
	}
}
