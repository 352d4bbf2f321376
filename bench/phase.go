package bench

import (
	"math"
	"sort"
	"time"
)

// Phase summarizes a load run for the result file and report.
func (l *LoadResult) Phase(name string) *Phase {
	if l == nil {
		return nil
	}
	p := &Phase{Name: name, TPS: l.TPS, Count: l.Hist.TotalCount(), Errors: l.Errors, Failed: l.Failed, Malformed: l.Malformed, Elapsed: l.Elapsed, Codes: l.Codes}
	p.Latency = Quantiles{P50: l.Hist.ValueAtQuantile(50), P90: l.Hist.ValueAtQuantile(90), P99: l.Hist.ValueAtQuantile(99),
		P999: l.Hist.ValueAtQuantile(99.9), Max: l.Hist.Max()}
	p.Timeline = timeline(l.Samples, l.Elapsed)
	p.Buckets = buckets(l)
	return p
}

// timeline computes throughput and p50/p99 latency for each second of a window of
// elapsed. The window ends a little after a whole second (the harness stops on a
// timer): a last part shorter than half a second has no point (its answers are in
// the phase's totals), and a longer one (or a window under a second) has its
// throughput over its own length, not a whole second's. (Every timeline used to end
// on a point of a few milliseconds' answers counted over a second: a drop to nearly
// nothing at the end of every chart.)
func timeline(samples []Sample, elapsed time.Duration) []Point {
	seconds := int(elapsed / time.Second)
	last := elapsed - time.Duration(seconds)*time.Second   // the part after the whole seconds
	if last >= time.Second/2 || seconds == 0 && last > 0 { // a window under a second is one point
		seconds++
	} else {
		last = time.Second
	}
	if seconds <= 0 {
		return nil
	}
	per := make([][]uint32, seconds)
	for _, s := range samples {
		if int(s.Second) < seconds {
			per[s.Second] = append(per[s.Second], s.LatencyUS)
		}
	}
	out := make([]Point, 0, seconds)
	for i, lat := range per {
		pt := Point{Second: i, TPS: float64(len(lat))}
		if i == seconds-1 {
			pt.TPS /= last.Seconds()
		}
		if len(lat) > 0 {
			sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
			pt.P50US = int64(lat[len(lat)*50/100])
			pt.P99US = int64(lat[min(len(lat)-1, len(lat)*99/100)])
		}
		out = append(out, pt)
	}
	return out
}

// buckets spreads the latency distribution over log-spaced buckets, 10 per decade.
func buckets(l *LoadResult) []Bucket {
	if l.Hist.TotalCount() == 0 {
		return nil
	}
	var bounds []int64
	for e := 1.0; e <= 7.01; e += 0.1 {
		b := int64(math.Round(math.Pow(10, e)))
		if len(bounds) == 0 || b > bounds[len(bounds)-1] {
			bounds = append(bounds, b)
		}
	}
	counts := make([]int64, len(bounds))
	for _, bar := range l.Hist.Distribution() {
		if bar.Count == 0 {
			continue
		}
		i := sort.Search(len(bounds), func(i int) bool { return bounds[i] >= bar.To })
		if i == len(bounds) {
			i--
		}
		counts[i] += bar.Count
	}
	lo, hi := 0, len(bounds)-1
	for lo < hi && counts[lo] == 0 {
		lo++
	}
	for hi > lo && counts[hi] == 0 {
		hi--
	}
	out := make([]Bucket, 0, hi-lo+1)
	for i := lo; i <= hi; i++ {
		out = append(out, Bucket{UpperUS: bounds[i], Count: counts[i]})
	}
	return out
}
