package wal

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkGroupCommitOpen is the group commit alone under an open load: writes
// submitted on a fixed schedule (each by its own goroutine, as transactions do) at
// the rates of an ordinary load (an authorization makes two durable writes and a
// delivery mark: 1,000/s is 3,000 writes/s, 5,000/s is 15,000), with the default
// window and none. It reports how long a write waited for its sync (p50, p99) and
// the writes per sync: what the window costs a write at that rate.
//
//	go test -run XXX -bench GroupCommitOpen ./switch/journal/wal/
func BenchmarkGroupCommitOpen(b *testing.B) {
	for _, rate := range []int{3000, 9000, 15000} {
		for _, window := range []time.Duration{time.Millisecond, 0} {
			b.Run(fmt.Sprintf("writes=%d/window=%s", rate, window), func(b *testing.B) {
				l, _, err := tryOpen(filepath.Join(b.TempDir(), "log"), Options{}, Pos{})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				var syncs int
				c := StartCommitter(GroupOptions{Window: window}, func(group []*req) {
					syncs++
					bt, err := l.Begin()
					if err == nil {
						for _, r := range group {
							r.at, _ = bt.Add(1, []byte(r.payload))
						}
						err = l.Append(bt)
					}
					for _, r := range group {
						r.done <- err
					}
				})
				defer c.Close()
				const d = 2 * time.Second
				n := int(float64(rate) * d.Seconds())
				waits := make([]time.Duration, n)
				var wg sync.WaitGroup
				b.ResetTimer()
				for range b.N {
					syncs = 0
					start := time.Now()
					for i := range n {
						at := start.Add(time.Duration(i) * d / time.Duration(n))
						time.Sleep(time.Until(at))
						wg.Add(1)
						go func() {
							defer wg.Done()
							r := &req{payload: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", done: make(chan error, 1)}
							if err := c.Submit(r); err != nil {
								b.Error(err)
								return
							}
							<-r.done
							waits[i] = time.Since(at)
						}()
					}
					wg.Wait()
				}
				b.StopTimer()
				slices.Sort(waits)
				b.ReportMetric(float64(waits[n/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(waits[n*99/100].Microseconds()), "p99-µs")
				b.ReportMetric(float64(n)/float64(max(syncs, 1)), "writes/sync")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
