package pipeline

import (
	"hash/maphash"
	"sync/atomic"
	"time"
)

// bloom is a fixed-size Bloom filter, safe for concurrent use without locks.
type bloom struct {
	words []atomic.Uint64
	mask  uint64 // bits - 1 (bits is a power of two)
}

const bloomHashes = 7

func newBloom(bits uint64) *bloom {
	n := uint64(64)
	for n < bits {
		n <<= 1
	}
	return &bloom{words: make([]atomic.Uint64, n/64), mask: n - 1}
}

// positions derives bloomHashes bit positions from one 64-bit hash (double hashing).
func (b *bloom) positions(h uint64, fn func(bit uint64) bool) {
	h1, h2 := h, h>>32|h<<32|1
	for i := uint64(0); i < bloomHashes; i++ {
		if !fn((h1 + i*h2) & b.mask) {
			return
		}
	}
}

func (b *bloom) add(h uint64) {
	b.positions(h, func(bit uint64) bool {
		b.words[bit/64].Or(1 << (bit % 64))
		return true
	})
}

func (b *bloom) has(h uint64) bool {
	all := true
	b.positions(h, func(bit uint64) bool {
		all = b.words[bit/64].Load()&(1<<(bit%64)) != 0
		return all
	})
	return all
}

// recentKeys remembers which duplicate keys were seen in the last one to two windows,
// in two rotating Bloom filters. "No" is certain; "maybe" sends the caller to the
// journal.
type recentKeys struct {
	seed    maphash.Seed
	cur     atomic.Pointer[bloom]
	prev    atomic.Pointer[bloom]
	bits    uint64
	window  time.Duration
	rotated atomic.Int64 // unix nanos of the last rotation
	started time.Time
}

// newRecentKeys sizes the filters for perWindow keys a window at about 1% false
// positives (10 bits a key).
func newRecentKeys(window time.Duration, perWindow uint64, now time.Time) *recentKeys {
	r := &recentKeys{seed: maphash.MakeSeed(), bits: perWindow * 10, window: window, started: now}
	r.cur.Store(newBloom(r.bits))
	r.prev.Store(newBloom(64))
	r.rotated.Store(now.UnixNano())
	return r
}

func (r *recentKeys) hash(key string) uint64 { return maphash.String(r.seed, key) }

// complete reports whether the filters cover a whole window (not right after a start).
func (r *recentKeys) complete(now time.Time) bool { return now.Sub(r.started) > r.window }

func (r *recentKeys) add(key string, now time.Time) {
	r.rotate(now)
	r.cur.Load().add(r.hash(key))
}

func (r *recentKeys) mayHave(key string) bool {
	h := r.hash(key)
	return r.cur.Load().has(h) || r.prev.Load().has(h)
}

// rotate starts a new filter every window; the previous one is kept for one more.
func (r *recentKeys) rotate(now time.Time) {
	last := r.rotated.Load()
	if now.UnixNano()-last < int64(r.window) || !r.rotated.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	r.prev.Store(r.cur.Load())
	r.cur.Store(newBloom(r.bits))
}
