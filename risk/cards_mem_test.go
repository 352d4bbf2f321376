package risk

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/racedetect"
)

// engineHeapPerCard observes n approved purchases, each with a card not seen before,
// at standard and micro merchants with the default rule pack, and returns the heap
// the engine holds per card (the velocity series of the card and card-merchant
// counters, and the merchants' and terminals' shares).
func engineHeapPerCard(tb testing.TB, n int) (perCard float64, seriesPerCard float64) {
	e, err := New("../rules", Options{MaxSeries: 16 * n})
	if err != nil {
		tb.Fatal(err)
	}
	defer e.Close()
	ins := benchInputs(1000, time.Now().Add(-time.Hour))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now().Add(-time.Hour)
	for i := range n {
		in := &ins[i%len(ins)]
		in.Txn.CardHash = fmt.Sprintf("%032x", i)
		in.Txn.Time = start.Add(time.Duration(i) * 2 * time.Millisecond)
		e.Observe(in, Outcome{Approved: true, ResponseCode: "00"})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(e)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n), float64(e.Stats().Series) / float64(n)
}

// TestEngineHeapPerDistinctCard: with the default rules, the risk state holds at most
// 150 bytes per distinct card (a day of 10 million cards in 1.5 GB).
func TestEngineHeapPerDistinctCard(t *testing.T) {
	if racedetect.Enabled {
		t.Skip(racedetect.SkipLong)
	}
	n := 300_000
	if testing.Short() {
		n = 100_000
	}
	per, series := engineHeapPerCard(t, n)
	t.Logf("%.0f bytes of heap and %.1f series per distinct card (%d cards)", per, series, n)
	if per > 150 {
		t.Errorf("%.0f bytes of heap per distinct card, want at most 150", per)
	}
}

// BenchmarkEngineHeapPerCard reports the risk state's heap per distinct card for a
// million cards with the default rules.
func BenchmarkEngineHeapPerCard(b *testing.B) {
	var per, series float64
	for range b.N {
		per, series = engineHeapPerCard(b, 1_000_000)
	}
	b.ReportMetric(per, "B/card")
	b.ReportMetric(per*1e6/(1<<20), "MiB/Mcards")
	b.ReportMetric(series, "series/card")
}
