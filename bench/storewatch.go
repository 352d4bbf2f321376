package bench

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
)

// The open loop's tail after a long closed loop is made by Badger's compactions
// (docs/performance.md, part 10): seconds in which the LSM tree writes millions of
// index keys into its levels at once, and the switch wants more CPU than the machine
// has. storeWatch samples Badger's compaction counters once a second over the open
// loop, so that the report can say which seconds had one and what their latency was.
// (Badger counts no memtable flush; its "L0" counter,
// switchyard_store_flushed_bytes_total, grows with every write to the memtable, so it
// is no sign of one.)

// The switch's metrics of Badger's compactions (switch/server's storeCollector),
// read here and by settle.
const (
	metricCompacted  = "switchyard_store_compacted_bytes_total"
	metricCompacting = "switchyard_store_compacting_tables"
)

// storeSample is Badger's compaction counters at one moment: the bytes its
// compactions have written so far, and the tables being compacted now.
type storeSample struct {
	at         time.Duration // since the watch started
	written    float64
	compacting float64
	ok         bool // the scrape succeeded
}

// storeWatch scrapes the switch's metrics once a second, from start until stop.
type storeWatch struct {
	done    chan struct{} // closed by stop
	start   time.Time
	wg      sync.WaitGroup
	samples []storeSample // samples[i] at i seconds after start
}

// storeScrapeTimeout bounds one scrape, so that a switch that stops answering
// costs the watch a failed sample, not a hung bench.
const storeScrapeTimeout = 2 * time.Second

// startStoreWatch takes a first sample now and one a second from then on, until
// stop or the end of ctx.
func startStoreWatch(ctx context.Context, adminURL string) *storeWatch {
	w := &storeWatch{done: make(chan struct{}), start: time.Now()}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			w.samples = append(w.samples, w.scrape(ctx, adminURL))
			select {
			case <-w.done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// stop lets a scrape in progress finish, takes a last sample and returns them all:
// samples[i] at i seconds after the start, the last one at the end of the window.
func (w *storeWatch) stop(ctx context.Context, adminURL string) []storeSample {
	close(w.done)
	w.wg.Wait()
	return append(w.samples, w.scrape(ctx, adminURL))
}

// scrape takes a sample, stamped with the time since the start.
func (w *storeWatch) scrape(ctx context.Context, adminURL string) storeSample {
	at := time.Since(w.start)
	s := scrapeStore(ctx, adminURL)
	s.at = at
	return s
}

// scrapeStore reads Badger's counters from the switch's metrics.
func scrapeStore(ctx context.Context, adminURL string) storeSample {
	ctx, cancel := context.WithTimeout(ctx, storeScrapeTimeout)
	defer cancel()
	samples, _, err := scrapeMetrics(ctx, adminURL)
	if err != nil {
		return storeSample{}
	}
	return storeFrom(samples)
}

// storeFrom sums the bytes compacted (every level) and the tables being compacted
// out of a scrape.
func storeFrom(samples map[string]float64) storeSample {
	s := storeSample{ok: true}
	for name, v := range samples {
		switch {
		case strings.HasPrefix(name, metricCompacted):
			s.written += v
		case strings.HasPrefix(name, metricCompacting):
			s.compacting += v
		}
	}
	return s
}

// StoreActivity is what Badger's compactions did over an open loop, second by
// second, beside the latency of those seconds.
type StoreActivity struct {
	// WrittenMB is what Badger's compactions wrote over the loop.
	WrittenMB float64 `json:"written_mb"`
	// BusySeconds counts the seconds in which Badger compacted, of Seconds
	// measured.
	BusySeconds int `json:"busy_seconds"`
	Seconds     int `json:"seconds"`
	// BusyP99US and QuietP99US are the median and the worst of the per-second p99 in
	// the busy seconds and in the others (zero when there were none).
	BusyP99US  [2]int64 `json:"busy_p99_us"`
	QuietP99US [2]int64 `json:"quiet_p99_us"`
}

// markStore sets each second's StoreMB in timeline from samples (samples[i] taken i
// seconds into the window) and sums the seconds up. A second is busy when Badger's
// compactions wrote in it or had tables in compaction at either end. It returns nil,
// and marks nothing, when the samples do not cover the timeline second by second (a
// scrape failed, or one came more than half a second off its second).
func markStore(timeline []Point, samples []storeSample) *StoreActivity {
	if len(timeline) == 0 || len(samples) < 2 {
		return nil
	}
	for i, s := range samples {
		off := s.at - time.Duration(i)*time.Second
		if !s.ok || i < len(samples)-1 && (off < -storeSlack || off > storeSlack) {
			return nil
		}
	}
	a := &StoreActivity{}
	var busy, quiet []int64
	for i := range timeline {
		if i+1 >= len(samples) {
			break
		}
		s0, s1 := samples[i], samples[i+1]
		mb := max(0, s1.written-s0.written) / 1e6
		timeline[i].StoreMB = mb
		a.WrittenMB += mb
		a.Seconds++
		if mb > 0 || s0.compacting > 0 || s1.compacting > 0 {
			timeline[i].StoreBusy = true
			a.BusySeconds++
			busy = append(busy, timeline[i].P99US)
		} else {
			quiet = append(quiet, timeline[i].P99US)
		}
	}
	a.BusyP99US, a.QuietP99US = medianMax(busy), medianMax(quiet)
	return a
}

// storeSlack is how far from its second a sample may be taken.
const storeSlack = 500 * time.Millisecond

// medianMax returns the median and the largest of v (zeros for none).
func medianMax(v []int64) [2]int64 {
	if len(v) == 0 {
		return [2]int64{}
	}
	v = slices.Clone(v)
	slices.Sort(v)
	return [2]int64{v[len(v)/2], v[len(v)-1]}
}
