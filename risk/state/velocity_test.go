package state

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

func spec(measure string, window, res time.Duration) *CounterSpec {
	return &CounterSpec{FP: 42, Measure: measure, Dims: []string{DimCard}, Window: window, Width: int64(res), NB: int64((window + res - 1) / res)}
}

func TestSlidingWindow(t *testing.T) {
	s := NewVelocity(nil, 0, 0)
	c := spec(MeasureCount, 10*time.Minute, 20*time.Second)
	t0 := time.Date(2025, 6, 4, 6, 0, 0, 0, time.UTC).UnixNano()
	min := int64(time.Minute)
	for i := int64(0); i < 10; i++ { // one a minute, 06:00 ... 06:09
		s.Observe(c, 1, t0+i*min, 100, "")
	}
	cases := []struct {
		at   int64
		want int
	}{
		{t0 - 1, 0},             // before the first
		{t0 + 9*min + 1, 10},    // all ten within 10 minutes
		{t0 + 10*min, 9},        // 06:00 has left the window
		{t0 + 14*min + 30e9, 5}, // 06:05 ... 06:09
		{t0 + 18*min + 30e9, 1}, // only 06:09 (9.5 minutes old)
		{t0 + 19*min + 30e9, 0}, // 06:09 is 10.5 minutes old
	}
	for _, c2 := range cases {
		if got := s.Read(c, 1, c2.at); got != c2.want {
			t.Errorf("at +%ds: %d, want %d", (c2.at-t0)/1e9, got, c2.want)
		}
	}
	if got := s.Read(c, 2, t0+5*min); got != 0 {
		t.Errorf("other key: %d", got)
	}
}

func TestSumAndDistinct(t *testing.T) {
	s := NewVelocity(nil, 0, 3)
	sum := spec(MeasureSum, time.Hour, time.Minute)
	dist := spec(MeasureDistinctCards, time.Hour, time.Minute)
	dist.FP = 43
	t0 := time.Date(2025, 6, 4, 6, 0, 0, 0, time.UTC).UnixNano()
	for i, card := range []string{"a", "b", "a", "c", "b", "d", "e"} {
		at := t0 + int64(i)*int64(time.Minute)
		s.Observe(sum, 1, at, 100*(i+1), card)
		s.Observe(dist, 1, at, 0, card)
	}
	if got := s.Read(sum, 1, t0+10*int64(time.Minute)); got != 2800 {
		t.Errorf("sum %d, want 2800", got)
	}
	// a, b, c; d and e are over the cap of 3.
	if got := s.Read(dist, 1, t0+10*int64(time.Minute)); got != 3 {
		t.Errorf("distinct %d, want 3 (capped)", got)
	}
	// The first "a" (+0m) has left, but a was seen again at +2m, c at +3m, b at +4m.
	if got := s.Read(dist, 1, t0+61*int64(time.Minute)); got != 3 {
		t.Errorf("distinct after the first minute left: %d, want 3", got)
	}
	if got := s.Read(dist, 1, t0+63*int64(time.Minute)); got != 1 {
		t.Errorf("distinct after a and c left: %d, want 1", got)
	}
}

func TestSeriesEncoding(t *testing.T) {
	se := &series{b: []bucket{{-5, 3}, {100, -2}, {1 << 40, 1 << 50}}, seen: map[uint64]int64{1: 100, 1 << 63: -5}}
	got, err := decodeSeries(se.encode())
	if err != nil || !reflect.DeepEqual(got, se) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for _, bad := range [][]byte{nil, {2}, {1, 5}} {
		if _, err := decodeSeries(bad); err == nil {
			t.Errorf("decoded %v", bad)
		}
	}
	k := seriesKey{fp: 0xdeadbeef, key: 0x0123456789abcdef}
	if back, err := parseSeriesDBKey(seriesDBKey(k)); err != nil || back != k {
		t.Errorf("key round trip %v %v", back, err)
	}
}

func TestMaxSeriesEvicts(t *testing.T) {
	s := NewVelocity(nil, 2*numShards, 0)
	c := spec(MeasureCount, time.Hour, time.Minute)
	t0 := time.Now().UnixNano()
	for i := 0; i < 5000; i++ {
		s.Observe(c, uint64(i)*0x9e3779b97f4a7c15, t0, 1, "")
	}
	if n := s.series.Load(); n > 2*numShards {
		t.Errorf("%d series, cap %d", n, 2*numShards)
	}
	if s.evicted.Load() < 5000-2*numShards {
		t.Errorf("evicted %d", s.evicted.Load())
	}
	// The newest key is always kept.
	last := uint64(4999)
	if got := s.Read(c, last*0x9e3779b97f4a7c15, t0); got != 1 {
		t.Errorf("newest series lost: %d", got)
	}
}

func TestSweepForgetsExpired(t *testing.T) {
	s := NewVelocity(nil, 0, 0)
	c := spec(MeasureDistinctCards, 10*time.Minute, time.Minute)
	t0 := time.Date(2025, 6, 4, 6, 0, 0, 0, time.UTC).UnixNano()
	for i := 0; i < 20; i++ {
		s.Observe(c, uint64(i), t0, 0, fmt.Sprint(i))
	}
	s.Observe(c, 999, t0+time.Hour.Nanoseconds(), 0, "x")
	s.Sweep(map[uint64]*CounterSpec{c.FP: c}, numShards)
	if n := s.series.Load(); n != 1 {
		t.Errorf("%d series after the sweep, want 1", n)
	}
}
