package state

import (
	"testing"
	"time"
)

// TestEvictedKeyReadsInDoubt: a flood of new cards evicts a card seen once from a
// full store; a read of that card says DoubtEvicted (not the 0 of a card never
// seen), and keeps saying so when the card comes back and its series starts again
// from 1, until the evicted count would have left the window. Cards never seen
// read DoubtNone but for the record's false positives (under 5% of them), and
// the record changes no value.
func TestEvictedKeyReadsInDoubt(t *testing.T) {
	c := spec(MeasureCount, 10*time.Minute, 20*time.Second)
	const capacity = numShards * 16
	s := NewVelocity(nil, capacity, 0)
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC).UnixNano()
	victim := uint64(0x2545f4914f6cdd1d)
	s.Observe(c, victim, t0, 1000, "")
	if v, d := s.ReadDoubt(c, victim, t0+1); v != 1 || d != DoubtNone {
		t.Fatalf("victim before the flood: %d, %v; want 1, no doubt", v, d)
	}
	flood := 20 * capacity
	key := func(i int) uint64 { return uint64(i+1) * 0x9e3779b97f4a7c15 }
	for i := range flood {
		s.Observe(c, key(i), t0+int64(time.Second)+int64(i)*int64(time.Microsecond), 100, "")
	}
	now := t0 + int64(2*time.Second)
	v, d := s.ReadDoubt(c, victim, now)
	if v != 0 || d != DoubtEvicted || d.String() != "evicted" {
		t.Fatalf("victim after a flood of %d keys (%d evicted live): %d, %q; want 0, evicted", flood, s.EvictedLive(), v, d)
	}
	if s.Read(c, victim, now) != v {
		t.Error("Read and ReadDoubt disagree")
	}
	s.Observe(c, victim, now, 1000, "") // back: a new series, from 1
	if v, d := s.ReadDoubt(c, victim, now+1); v != 1 || d != DoubtEvicted {
		t.Errorf("victim back after its eviction: %d, %v; want 1, still evicted (its first attempt was lost)", v, d)
	}
	fp, n := 0, 10_000
	for i := range n {
		if _, d := s.ReadDoubt(c, uint64(i+1)*0xbf58476d1ce4e5b9, now); d != DoubtNone {
			fp++
		}
	}
	t.Logf("%d of %d cards never seen read in doubt (the record's false positives), %d bytes of record", fp, n, s.DoubtBytes())
	if fp*20 > n {
		t.Errorf("%d of %d cards never seen read in doubt: want under 5%%", fp, n)
	}
	// Two windows later the lost count would have left the window: no doubt.
	later := now + 2*int64(c.NB*c.Width)
	if _, d := s.ReadDoubt(c, victim, later); d != DoubtNone {
		t.Errorf("victim two windows after its eviction: %v, want no doubt", d)
	}
	// Another counter's reads of the same key are not in doubt.
	other := &CounterSpec{FP: 43, Measure: MeasureCount, Dims: []string{DimCard}, Window: time.Hour, Width: int64(time.Minute), NB: 60}
	s.Observe(other, 7, now, 1, "")
	if _, d := s.ReadDoubt(other, victim, now); d != DoubtNone {
		t.Errorf("another counter's read of the victim: %v, want no doubt", d)
	}
	// The sweep gives the record's memory back once nothing in it is in doubt.
	s.Sweep(map[uint64]*CounterSpec{c.FP: c, other.FP: other}, 1)
	if s.DoubtBytes() == 0 {
		t.Error("the sweep dropped a record still in use")
	}
	s.Observe(c, 99, later, 1, "")
	s.Sweep(map[uint64]*CounterSpec{c.FP: c, other.FP: other}, 1)
	if n := s.DoubtBytes(); n != 0 {
		t.Errorf("%d bytes of record two windows after the last eviction, want 0", n)
	}
}

// TestMarkFiltered: a key whose filter failed reads DoubtFiltered for the
// counter's span, its value unchanged; other keys do not.
func TestMarkFiltered(t *testing.T) {
	c := spec(MeasureCount, 10*time.Minute, 20*time.Second)
	s := NewVelocity(nil, 0, 0)
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC).UnixNano()
	s.Observe(c, 1, t0, 1, "")
	s.Observe(c, 2, t0, 1, "")
	s.MarkFiltered(c, 2, t0)
	if v, d := s.ReadDoubt(c, 2, t0+1); v != 1 || d != DoubtFiltered || d.String() != "filter failed" {
		t.Errorf("key 2: %d, %q; want 1, filter failed", v, d)
	}
	if v, d := s.ReadDoubt(c, 1, t0+1); v != 1 || d != DoubtNone {
		t.Errorf("key 1: %d, %v; want 1, no doubt", v, d)
	}
	if _, d := s.ReadDoubt(c, 2, t0+int64(11*time.Minute)); d != DoubtNone {
		t.Errorf("key 2 a window later: %v, want no doubt", d)
	}
	// A counter gone from the rule set (not in the sweep's specs) loses its record.
	s.Sweep(map[uint64]*CounterSpec{}, 1)
	if n := s.DoubtBytes(); n != 0 {
		t.Errorf("%d bytes of record of a counter gone, want 0", n)
	}
}

// TestDoubtConcurrent: writers that evict (and record filters failing) while
// readers read the same counter share the record without a data race (run under
// -race), and a key evicted before the readers start reads in doubt throughout.
func TestDoubtConcurrent(t *testing.T) {
	c := spec(MeasureCount, 10*time.Minute, 20*time.Second)
	s := NewVelocity(nil, numShards*4, 0)
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC).UnixNano()
	victim := uint64(0x2545f4914f6cdd1d)
	s.Observe(c, victim, t0, 1, "")
	for i := range 20 * numShards * 4 {
		s.Observe(c, uint64(i+1)*0x9e3779b97f4a7c15, t0+int64(i)*int64(time.Microsecond), 1, "")
	}
	if _, d := s.ReadDoubt(c, victim, t0+int64(time.Second)); d != DoubtEvicted {
		t.Fatalf("victim: %v, want evicted", d)
	}
	done := make(chan struct{})
	errs := make(chan string, 4)
	for w := range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 20_000 {
				k := uint64(w+2)<<40 | uint64(i)
				s.Observe(c, k*0xbf58476d1ce4e5b9, t0+int64(time.Second), 1, "")
				if i%100 == 0 {
					s.MarkFiltered(c, k, t0+int64(time.Second))
				}
			}
		}()
	}
	for range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 20_000 {
				if _, d := s.ReadDoubt(c, victim, t0+int64(time.Second)); d != DoubtEvicted {
					errs <- d.String()
					return
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
	close(errs)
	for e := range errs {
		t.Errorf("victim read %q during the writes, want evicted", e)
	}
}
