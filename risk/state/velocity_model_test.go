package state

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
)

// modelVelocity is the counters as they were kept before the compact slots (a map of
// series, each a slice of buckets): the reference the store must agree with.
type modelVelocity struct {
	m           map[seriesKey]*series
	maxDistinct int
}

func (s *modelVelocity) read(c *CounterSpec, key uint64, t int64) int {
	cur := floorDiv(t, c.Width)
	if se := s.m[seriesKey{c.FP, key}]; se != nil {
		return int(se.sum(cur-c.NB+1, cur))
	}
	return 0
}

func (s *modelVelocity) observe(c *CounterSpec, key uint64, t int64, amount int, card string) {
	if c.Measure == MeasureDistinctCards && card == "" {
		return
	}
	cur := floorDiv(t, c.Width)
	lo := cur - c.NB + 1
	k := seriesKey{c.FP, key}
	se := s.m[k]
	if se == nil {
		se = &series{}
		s.m[k] = se
	}
	switch c.Measure {
	case MeasureCount:
		se.add(cur, 1)
	case MeasureSum:
		se.add(cur, int64(amount))
	case MeasureDistinctCards:
		ch := xxhash.Sum64String(card)
		if se.seen == nil {
			se.seen = make(map[uint64]int64)
		}
		old, ok := se.seen[ch]
		switch {
		case ok && old >= cur:
		case ok && old >= lo:
			se.add(old, -1)
			se.add(cur, 1)
			se.seen[ch] = cur
		case !ok && len(se.seen) >= s.maxDistinct:
		default:
			se.add(cur, 1)
			se.seen[ch] = cur
		}
	}
	se.trim(lo)
}

// sweep is the old Sweep over every series, with now the newest time observed.
func (s *modelVelocity) sweep(specs map[uint64]*CounterSpec, now int64) {
	for k, se := range s.m {
		c := specs[k.fp]
		lo := floorDiv(now, c.Width) - c.NB + 1
		se.trim(lo)
		if len(se.b) == 0 {
			delete(s.m, k)
			continue
		}
		for card, n := range se.seen {
			if n < lo {
				delete(se.seen, card)
			}
		}
	}
}

func (s *modelVelocity) retract(c *CounterSpec, key uint64, t int64, amount int, whole bool) {
	var d int64
	switch c.Measure {
	case MeasureCount:
		if !whole {
			return
		}
		d = 1
	case MeasureSum:
		d = int64(amount)
	default:
		return
	}
	if d <= 0 {
		return
	}
	n := floorDiv(t, c.Width)
	se := s.m[seriesKey{c.FP, key}]
	if se == nil {
		return
	}
	for i := len(se.b) - 1; i >= 0; i-- {
		if se.b[i].n < n {
			return
		}
		if se.b[i].n == n {
			se.b[i].v -= min(d, se.b[i].v)
			return
		}
	}
}

// TestVelocityAgreesWithModel runs random observations, retractions, reads and sweeps
// (times mostly forward, some late; sums past 32 bits; distinct cards) through the
// store and through the reference, and wants every read to agree: the compact slots
// change the memory, not what a rule sees.
func TestVelocityAgreesWithModel(t *testing.T) {
	specs := []*CounterSpec{
		{FP: 1, Measure: MeasureCount, Window: 10 * time.Minute, Width: int64(time.Minute), NB: 10},
		{FP: 2, Measure: MeasureSum, Window: time.Hour, Width: int64(5 * time.Minute), NB: 12},
		{FP: 3, Measure: MeasureDistinctCards, Window: 30 * time.Minute, Width: int64(time.Minute), NB: 30},
		{FP: 4, Measure: MeasureCount, Window: time.Second, Width: int64(time.Millisecond), NB: 1000}, // bucket numbers past 32 bits
		{FP: 5, Measure: MeasureSum, Window: 24 * time.Hour, Width: int64(10 * time.Minute), NB: 144},
	}
	byFP := map[uint64]*CounterSpec{}
	for _, c := range specs {
		byFP[c.FP] = c
	}
	for seed := range uint64(4) {
		r := rand.New(rand.NewPCG(seed, 99))
		s := NewVelocity(nil, 0, 5)
		m := &modelVelocity{m: map[seriesKey]*series{}, maxDistinct: 5}
		now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC).UnixNano()
		var latest int64 // the newest time observed
		for i := range 60_000 {
			now += r.Int64N(int64(2 * time.Second))
			at := now
			if r.IntN(10) == 0 {
				at -= r.Int64N(int64(40 * time.Minute)) // a late one
			}
			c := specs[r.IntN(len(specs))]
			key := uint64(r.IntN(300))
			amount := r.IntN(5000)
			if r.IntN(50) == 0 {
				amount = 3_000_000_000 // past 32 bits
			}
			card := string(rune('a' + r.IntN(12)))
			switch op := r.IntN(10); {
			case op < 6:
				s.Observe(c, key, at, amount, card)
				m.observe(c, key, at, amount, card)
				latest = max(latest, at)
			case op < 8:
				whole := r.IntN(2) == 0
				s.Retract(c, key, at, amount, whole)
				m.retract(c, key, at, amount, whole)
			default:
				if got, want := s.Read(c, key, at), m.read(c, key, at); got != want {
					t.Fatalf("seed %d op %d: counter %d key %d: read %d, the reference %d", seed, i, c.FP, key, got, want)
				}
			}
			if i%997 == 0 {
				s.Sweep(byFP, numShards)
				m.sweep(byFP, latest)
			}
		}
		for _, c := range specs {
			for key := range uint64(300) {
				if got, want := s.Read(c, key, now), m.read(c, key, now); got != want {
					t.Fatalf("seed %d at the end: counter %d key %d: read %d, the reference %d", seed, c.FP, key, got, want)
				}
			}
		}
	}
}

// TestSlotTable checks the open-addressing table (backward-shift deletion, growth,
// shrinking) against a map.
func TestSlotTable(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	var tb slotTable
	ref := map[uint64]slot{}
	for i := range 200_000 {
		key := r.Uint64N(3000)
		if r.IntN(3) == 0 {
			key *= 0x9e3779b97f4a7c15 // spread ones too
		}
		switch r.IntN(3) {
		case 0, 1:
			sl := slot{int32(r.IntN(1000)), int32(i)}
			tb.put(key, sl)
			ref[key] = sl
		default:
			tb.del(key)
			delete(ref, key)
		}
		if i%5000 == 0 {
			tb.shrink()
		}
		if tb.len() != len(ref) {
			t.Fatalf("op %d: %d entries, want %d", i, tb.len(), len(ref))
		}
	}
	for k, want := range ref {
		if got, ok := tb.get(k); !ok || got != want {
			t.Fatalf("key %d: %v %v, want %v", k, got, ok, want)
		}
	}
	if n := len(tb.keys(nil)); n != len(ref) {
		t.Fatalf("keys: %d, want %d", n, len(ref))
	}
	for k := range ref {
		tb.del(k)
	}
	tb.shrink()
	if tb.len() != 0 || len(tb.e) > minTable {
		t.Fatalf("emptied table: %d entries in %d", tb.len(), len(tb.e))
	}
}
