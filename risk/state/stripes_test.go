package state

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
)

// acqSpec is an acquirer-wide count, striped as the rule compiler makes it.
func acqSpec(stripes int) *CounterSpec {
	c := spec(MeasureCount, 10*time.Minute, 20*time.Second)
	c.FP, c.Dims, c.Stripes = 77, []string{DimAcquirer}, stripes
	return c
}

// The stripes of a key lie in shards of their own, spaced evenly; stripe 0 is the
// key itself and stripe numbers wrap around.
func TestStripeKeys(t *testing.T) {
	s := NewVelocity(nil, 0, 0)
	c := acqSpec(AcquirerStripes)
	for _, key := range []uint64{0, 1, 0xdeadbeef, 1 << 63} {
		shards := map[*shard]bool{}
		keys := map[uint64]bool{}
		for i := range uint64(AcquirerStripes) {
			k := StripeKey(c, key, i)
			shards[s.shardOf(c.FP, k)] = true
			keys[k] = true
			if k2 := StripeKey(c, key, i+AcquirerStripes); k2 != k {
				t.Errorf("key %#x: stripe %d is %#x, stripe %d %#x", key, i, k, i+AcquirerStripes, k2)
			}
		}
		if len(shards) != AcquirerStripes || len(keys) != AcquirerStripes {
			t.Errorf("key %#x: %d stripes in %d shards under %d keys, want %d each", key, AcquirerStripes, len(shards), len(keys), AcquirerStripes)
		}
		if k := StripeKey(c, key, 0); k != key {
			t.Errorf("key %#x: stripe 0 is %#x", key, k)
		}
		if k := StripeKey(acqSpec(0), key, 5); k != key {
			t.Errorf("unstriped counter: key %#x became %#x", key, k)
		}
	}
}

// A read of a striped counter sums what every stripe holds, over the window;
// a retraction takes back from the stripe it names.
func TestStripedReadAndRetract(t *testing.T) {
	s := NewVelocity(nil, 0, 0)
	c := acqSpec(AcquirerStripes)
	t0 := time.Date(2025, 6, 4, 6, 0, 0, 0, time.UTC).UnixNano()
	for i := range 100 {
		s.Observe(c, StripeKey(c, 9, uint64(i)), t0+int64(i)*int64(time.Second), 100, "")
	}
	if got := s.Series(); got != AcquirerStripes {
		t.Errorf("%d series, want %d (one per stripe)", got, AcquirerStripes)
	}
	at := t0 + 100*int64(time.Second)
	if got := s.Read(c, 9, at); got != 100 {
		t.Errorf("read %d, want 100", got)
	}
	// The sum a read keeps gives way to a change of any stripe.
	for i := range uint64(AcquirerStripes) {
		s.Observe(c, StripeKey(c, 9, i), at-1, 100, "")
		if got, want := s.Read(c, 9, at), 101; got != want {
			t.Fatalf("after an observation in stripe %d: read %d, want %d", i, got, want)
		}
		s.Retract(c, StripeKey(c, 9, i), at-1, 100, true)
		if got := s.Read(c, 9, at); got != 100 {
			t.Fatalf("after a retraction in stripe %d: read %d, want 100", i, got)
		}
	}
	for i := range 10 {
		s.Retract(c, StripeKey(c, 9, uint64(i)), t0+int64(i)*int64(time.Second), 100, true)
	}
	if got := s.Read(c, 9, at); got != 90 {
		t.Errorf("after 10 retractions: %d, want 90", got)
	}
	if got := s.Read(c, 9, t0+12*int64(time.Minute)); got != 0 {
		t.Errorf("12 minutes later: %d, want 0", got)
	}
}

// A full store makes room by dropping other series, never an acquirer stripe.
func TestStripesNotEvicted(t *testing.T) {
	s := NewVelocity(nil, numShards*2, 0) // two series a shard
	acq := acqSpec(AcquirerStripes)
	card := spec(MeasureCount, 10*time.Minute, 20*time.Second)
	t0 := time.Date(2025, 6, 4, 6, 0, 0, 0, time.UTC).UnixNano()
	for i := range uint64(AcquirerStripes) {
		s.Observe(acq, StripeKey(acq, 9, i), t0, 0, "")
	}
	for i := range uint64(20_000) {
		s.Observe(card, i*0x9e3779b97f4a7c15, t0+int64(i), 0, "")
	}
	if s.Evicted() == 0 {
		t.Fatal("nothing evicted: the store was not full")
	}
	if got := s.Read(acq, 9, t0+int64(time.Minute)); got != AcquirerStripes {
		t.Errorf("acquirer count %d after %d evictions, want %d", got, s.Evicted(), AcquirerStripes)
	}
}

// Many goroutines feeding one acquirer series lose nothing (run with -race).
func TestStripedConcurrent(t *testing.T) {
	s := NewVelocity(nil, 0, 0)
	c := acqSpec(AcquirerStripes)
	t0 := time.Date(2025, 6, 4, 6, 0, 0, 0, time.UTC).UnixNano()
	const workers, each = 8, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				card := fmt.Sprintf("card-%d-%d", w, i)
				s.Observe(c, StripeKey(c, 9, xxhash.Sum64String(card)), t0+int64(i)*int64(time.Millisecond), 100, card)
				_ = s.Read(c, 9, t0+int64(i)*int64(time.Millisecond))
			}
		})
	}
	wg.Wait()
	if got := s.Read(c, 9, t0+int64(time.Minute)); got != workers*each {
		t.Errorf("read %d, want %d", got, workers*each)
	}
}

// BenchmarkAcquirerObserve measures parallel authorizations on the one
// acquirer-wide series, a different card each: "observe" feeds it, "read" reads
// it (a counter whose filter few transactions pass: the kept sum holds),
// "read+observe" does both (a counter every transaction feeds: each read sums
// the stripes again). "striped" is the series as rule files get it (AcquirerStripes stripes),
// "one-series" the same counter kept as a single series, whose shard lock every
// goroutine takes.
func BenchmarkAcquirerObserve(b *testing.B) {
	for _, op := range []string{"observe", "read", "read+observe"} {
		for _, bc := range []struct {
			name    string
			stripes int
		}{{"striped", AcquirerStripes}, {"one-series", 0}} {
			b.Run(op+"/"+bc.name, func(b *testing.B) {
				s := NewVelocity(nil, 0, 0)
				c := acqSpec(bc.stripes)
				t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC).UnixNano()
				for i := range uint64(1000) { // something to read
					s.Observe(c, StripeKey(c, 9, i), t0, 1000, "")
				}
				var next sync.Mutex
				seed := uint64(0)
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					next.Lock()
					seed++
					card := seed << 40
					next.Unlock()
					for i := int64(0); pb.Next(); i++ {
						card++
						t := t0 + i*int64(50*time.Microsecond)
						if op != "observe" {
							_ = s.Read(c, 9, t)
						}
						if op != "read" {
							s.Observe(c, StripeKey(c, 9, card*0x9e3779b97f4a7c15), t, 1000, "")
						}
					}
				})
			})
		}
	}
}

// Reads racing observations and retractions in one bucket never see a sum that
// went back (only observations before the retractions), and the read after the
// last write, in the same bucket as the reads whose sums were kept, sees every
// write: no kept sum outlives a change to a stripe (run with -race).
func TestStripedKeptSumConcurrent(t *testing.T) {
	s := NewVelocity(nil, 0, 0)
	c := acqSpec(AcquirerStripes)
	t0 := time.Date(2025, 6, 4, 6, 0, 0, 0, time.UTC).UnixNano()
	const workers, each = 4, 400
	var writers, readers sync.WaitGroup
	stop := make(chan struct{})
	went := make(chan int, workers)
	for range workers {
		readers.Go(func() {
			last := 0
			for {
				select {
				case <-stop:
					return
				default:
				}
				got := s.Read(c, 9, t0)
				if got < last {
					went <- got
					return
				}
				last = got
			}
		})
	}
	for w := range workers {
		writers.Go(func() {
			for i := range each {
				card := fmt.Sprintf("card-%d-%d", w, i)
				s.Observe(c, StripeKey(c, 9, xxhash.Sum64String(card)), t0, 1, card)
			}
		})
	}
	writers.Wait()
	close(stop)
	readers.Wait()
	close(went)
	for got := range went {
		t.Errorf("a read went back to %d while only observations were made", got)
	}
	if got := s.Read(c, 9, t0); got != workers*each {
		t.Fatalf("read in the same bucket after the observations: %d, want %d", got, workers*each)
	}
	// Retractions, each from the stripe its card fed, racing reads of the same bucket.
	for w := range workers {
		writers.Go(func() {
			for i := range each / 2 {
				card := fmt.Sprintf("card-%d-%d", w, i)
				s.Retract(c, StripeKey(c, 9, xxhash.Sum64String(card)), t0, 1, true)
				_ = s.Read(c, 9, t0)
			}
		})
	}
	writers.Wait()
	if got := s.Read(c, 9, t0); got != workers*each/2 {
		t.Fatalf("read in the same bucket after the retractions: %d, want %d", got, workers*each/2)
	}
}
