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
