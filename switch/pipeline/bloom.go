package pipeline

import (
	"hash/maphash"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/internal/bloom"
)

// recentKeys remembers which duplicate keys were seen in the last one to two windows,
// in two rotating Bloom filters. "No" is certain; "maybe" sends the caller to the
// journal.
type recentKeys struct {
	seed    maphash.Seed
	cur     atomic.Pointer[bloom.Filter]
	prev    atomic.Pointer[bloom.Filter]
	bits    uint64
	window  time.Duration
	rotated atomic.Int64 // unix nanos of the last rotation
	started time.Time
}

// newRecentKeys sizes the filters for perWindow keys a window at about 1% false
// positives (10 bits a key).
func newRecentKeys(window time.Duration, perWindow uint64, now time.Time) *recentKeys {
	r := &recentKeys{seed: maphash.MakeSeed(), bits: perWindow * bloom.BitsPerKey, window: window, started: now}
	r.cur.Store(bloom.New(r.bits))
	r.prev.Store(bloom.New(64))
	r.rotated.Store(now.UnixNano())
	return r
}

func (r *recentKeys) hash(key string) uint64 { return maphash.String(r.seed, key) }

// complete reports whether the filters cover a whole window (not right after a start).
func (r *recentKeys) complete(now time.Time) bool { return now.Sub(r.started) > r.window }

func (r *recentKeys) add(key string, now time.Time) {
	r.rotate(now)
	r.cur.Load().Add(r.hash(key))
}

func (r *recentKeys) mayHave(key string) bool {
	h := r.hash(key)
	return r.cur.Load().Has(h) || r.prev.Load().Has(h)
}

// rotate starts a new filter every window; the previous one is kept for one more.
func (r *recentKeys) rotate(now time.Time) {
	last := r.rotated.Load()
	if now.UnixNano()-last < int64(r.window) || !r.rotated.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	r.prev.Store(r.cur.Load())
	r.cur.Store(bloom.New(r.bits))
}
