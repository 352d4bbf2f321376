package state

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// Doubt says why a counter's value for a key may be short of what it counted: a
// read returns it beside the value (ReadDoubt), and the rules treat a read in
// doubt as a run-time failure of the rules that read it (their on_error).
type Doubt uint8

// The doubts a read can carry.
const (
	// DoubtNone: the value is what the counter counted for the key.
	DoubtNone Doubt = iota
	// DoubtEvicted: a series of the key that still counted something was
	// evicted from the full store within the counter's window (or a key whose
	// hash the record shares: see doubtFilter), so the value may lack what it held.
	DoubtEvicted
	// DoubtFiltered: the counter's where filter failed at run time for a
	// transaction of the key within the window (MarkFiltered), so the value
	// may lack that transaction.
	DoubtFiltered
)

// String names d as the run-error reasons do: "", "evicted" or "filter failed".
func (d Doubt) String() string {
	switch d {
	case DoubtEvicted:
		return "evicted"
	case DoubtFiltered:
		return "filter failed"
	}
	return ""
}

// Bounds of one generation of a doubt filter, in 64-bit words: DoubtBytesShare of
// the memory budget, at least 64 KiB and at most 8 MiB (67 million bits: about
// 6.7 million keys at 10 bits a key).
const (
	minDoubtWords = 8 << 10
	maxDoubtWords = 1 << 20
	// DoubtBytesShare: a generation of a counter's record of evicted keys takes
	// 1/DoubtBytesShare of the memory budget (within the bounds above).
	DoubtBytesShare = 256
)

// doubtBits is how many bits of its word a key sets (k of a blocked Bloom filter).
const doubtBits = 6

// doubtFilter is a compact record of the keys of one counter whose value is in
// doubt: a blocked Bloom filter (each key sets doubtBits bits of one 64-bit word)
// in two generations, so that a key is remembered for at least the counter's
// span (its buckets' reach: what a lost count could still have added to a read)
// and forgotten after at most two. It never says a recorded key is not in doubt
// (no false negatives while the key is within its span); it may say a key is in
// doubt that is not (a false positive, about 2% at 10 bits a key, more once a
// generation holds more keys than its size allows). A false positive is only
// ever used to fail the rules that read the key (their on_error): it never
// changes a count. The bits are atomics: readers take no lock; mu serializes
// the writers' allocation and rotation.
type doubtFilter struct {
	span  int64 // ns a key stays in doubt: the counter's NB*Width
	words int   // size of a generation
	mu    sync.Mutex
	cur   atomic.Pointer[doubtGen]
	prev  atomic.Pointer[doubtGen]
}

// doubtGen is one generation of a doubtFilter.
type doubtGen struct {
	start int64        // store time (ns) of its first key
	last  atomic.Int64 // store time (ns) of its newest key: after last+span, nothing in it counts
	n     atomic.Int64 // keys added
	bits  []atomic.Uint64
}

// doubtHash mixes a counter's fingerprint and a key into the hash the filter
// places the key by (a different mix from the shards' and the tables').
func doubtHash(fp, key uint64) uint64 {
	h := (key ^ bits.RotateLeft64(fp, 29)) * 0xd6e8feb86659fd93
	h ^= h >> 32
	h *= 0xd6e8feb86659fd93
	return h ^ h>>32
}

// mask is the doubtBits bits of h's word, taken from h's low 36 bits.
func doubtMask(h uint64) uint64 {
	var m uint64
	for i := range doubtBits {
		m |= 1 << ((h >> (6 * i)) & 63)
	}
	return m
}

// word is the index of h's word in a generation of n words (from h's high bits).
func doubtWord(h uint64, n int) int {
	hi, _ := bits.Mul64(h, uint64(n))
	return int(hi)
}

// add records h in doubt from store time now.
func (f *doubtFilter) add(h uint64, now int64) {
	f.mu.Lock()
	g := f.cur.Load()
	if g == nil || now >= g.start+f.span {
		// The current generation has been filled for a span: it becomes the
		// previous one (its keys stay for reads until its last+span), the
		// previous one, older than a span, goes.
		f.prev.Store(g)
		g = &doubtGen{start: now, bits: make([]atomic.Uint64, f.words)}
		f.cur.Store(g)
	}
	f.mu.Unlock()
	g.bits[doubtWord(h, len(g.bits))].Or(doubtMask(h))
	g.n.Add(1)
	for {
		l := g.last.Load()
		if now <= l || g.last.CompareAndSwap(l, now) {
			break
		}
	}
}

// has reports whether h may be in doubt at time t. Without a key recorded in the
// last two spans it loads two pointers.
func (f *doubtFilter) has(h uint64, t int64) bool {
	for _, p := range [2]*atomic.Pointer[doubtGen]{&f.cur, &f.prev} {
		g := p.Load()
		if g == nil || t >= g.last.Load()+f.span {
			continue
		}
		m := doubtMask(h)
		if g.bits[doubtWord(h, len(g.bits))].Load()&m == m {
			return true
		}
	}
	return false
}

// expire drops the generations with nothing left in doubt at store time now (all
// of them when gone: the counter is no longer in the rule set), giving their
// memory back.
func (f *doubtFilter) expire(now int64, gone bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if g := f.prev.Load(); g != nil && (gone || now >= g.last.Load()+f.span) {
		f.prev.Store(nil)
	}
	if g := f.cur.Load(); g != nil && (gone || now >= g.last.Load()+f.span) {
		// The previous one is older still: gone above, or gone with this.
		f.prev.Store(nil)
		f.cur.Store(nil)
	}
}

// bytes is the heap the filter's generations hold.
func (f *doubtFilter) bytes() int64 {
	var n int64
	for _, p := range [2]*atomic.Pointer[doubtGen]{&f.cur, &f.prev} {
		if g := p.Load(); g != nil {
			n += int64(len(g.bits)) * 8
		}
	}
	return n
}

// doubts is a counter's two records: keys evicted live, keys whose filter failed.
type doubts struct {
	evicted, filtered doubtFilter
}

// newDoubts makes the (empty: no generation yet) records of a counter of span ns,
// sized for a store of budget bytes.
func newDoubts(span, budget int64) *doubts {
	w := int(min(max(budget/DoubtBytesShare/8, minDoubtWords), maxDoubtWords))
	span = max(span, 1)
	return &doubts{evicted: doubtFilter{span: span, words: w}, filtered: doubtFilter{span: span, words: w}}
}
