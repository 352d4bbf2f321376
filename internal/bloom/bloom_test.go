package bloom

import (
	"hash/maphash"
	"testing"
)

// TestFilter: every key added is found; about 1% of keys never added are answered
// "maybe" at BitsPerKey bits a key.
func TestFilter(t *testing.T) {
	seed := maphash.MakeSeed()
	h := func(i int) uint64 { return maphash.Comparable(seed, i) }
	const n = 10000
	f := New(n * BitsPerKey)
	for i := range n {
		f.Add(h(i))
	}
	for i := range n {
		if !f.Has(h(i)) {
			t.Fatalf("key %d added, not found", i)
		}
	}
	fp := 0
	for i := n; i < 11*n; i++ {
		if f.Has(h(i)) {
			fp++
		}
	}
	if rate := float64(fp) / (10 * n); rate > 0.03 {
		t.Fatalf("%.2f%% false positives; want about 1%%", 100*rate)
	}
	if New(0).Has(h(1)) {
		t.Fatal("an empty filter says maybe")
	}
}

// BenchmarkFilter adds keys to, and looks up absent and present keys in, a filter
// the size of the journal's first part of its duplicate keys (1M keys, 1.25 MiB,
// which a core's L2 of 2 MiB holds while nothing else runs), as the journal and the
// pipeline do per request.
func BenchmarkFilter(b *testing.B) {
	seed := maphash.MakeSeed()
	const n = 1 << 20
	keys := make([]uint64, n)
	for i := range keys {
		keys[i] = maphash.Comparable(seed, i)
	}
	b.Run("Add", func(b *testing.B) {
		f := New(n * BitsPerKey)
		for i := 0; b.Loop(); i++ {
			f.Add(keys[i&(n-1)])
		}
	})
	full := New(n * BitsPerKey)
	for _, k := range keys[:n/2] {
		full.Add(k)
	}
	b.Run("HasAbsent", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			full.Has(keys[n/2+i&(n/2-1)])
		}
	})
	b.Run("HasPresent", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			full.Has(keys[i&(n/2-1)])
		}
	})
}

// BenchmarkFilterLarge is BenchmarkFilter on a filter of 64M keys (80 MiB), far
// beyond the core's caches, as a switch's filters are once its other work has
// pushed them out: every line the filter touches is a miss.
func BenchmarkFilterLarge(b *testing.B) {
	const n = 1 << 26
	mix := func(i uint64) uint64 { // splitmix64: a cheap hash of i
		i += 0x9e3779b97f4a7c15
		i = (i ^ i>>30) * 0xbf58476d1ce4e5b9
		i = (i ^ i>>27) * 0x94d049bb133111eb
		return i ^ i>>31
	}
	f := New(n * BitsPerKey)
	b.Run("Add", func(b *testing.B) {
		for i := uint64(0); b.Loop(); i++ {
			f.Add(mix(i))
		}
	})
	b.Run("HasAbsent", func(b *testing.B) {
		for i := uint64(1 << 40); b.Loop(); i++ {
			f.Has(mix(i))
		}
	})
}
