// Package state is the risk engine's mutable state: the velocity counters
// (sharded in memory, written to Badger in batches with a TTL of their window)
// and the deny, allow and other lists (persisted and audited in Badger). It
// knows nothing of rule files or of the transaction input: the rule set
// (package ruleset) hashes a counter's key and reads the list flags through it.
package state

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/badger/v4"
)

// Key prefixes of everything the risk engine keeps in the shared Badger DB.
const (
	// KeyPrefix is the prefix of every key the risk engine writes.
	KeyPrefix = "risk/"
	// velocityPrefix holds one key per counter series: risk/v/<counter fingerprint>/<key hash>.
	velocityPrefix = KeyPrefix + "v/"
)

const (
	numShards = 256
	// DefaultMaxSeries bounds the number of counter series kept in memory. The
	// memory budget (DefaultMaxBytes) is the bound that matters: this one only
	// keeps the shards' tables to a size that the budget's one-transaction series
	// (about 26 bytes each) fill first.
	DefaultMaxSeries = 64_000_000
	// DefaultMaxBytes bounds the heap the counter series take, as the store
	// estimates it (seriesBytes): a series kept in its slot about 26 bytes, one
	// in the arena 48 bytes and 16 per bucket, a distinct_cards series about 200
	// bytes more and 25 per card it remembers. A store at its budget evicts.
	DefaultMaxBytes = 2 << 30
	// DefaultMaxDistinct bounds the cards a distinct_cards series remembers per window.
	DefaultMaxDistinct = 50_000
)

// Measures a counter can take.
const (
	MeasureCount         = "count"
	MeasureSum           = "sum"
	MeasureDistinctCards = "distinct_cards"
)

// Dimensions a counter can be keyed by.
const (
	DimCard     = "card"
	DimTerminal = "terminal"
	DimMerchant = "merchant"
	DimDevice   = "device"
	// DimMerchantGroup is the merchant's group (chain, parent) in the registry.
	DimMerchantGroup = "merchant_group"
	// DimBIN is the card's BIN: the first six digits of the PAN.
	DimBIN = "bin"
	// DimRegion is the region code the merchant is registered in.
	DimRegion = "region"
	// DimAcquirer is the whole switch (and cluster): one series that every
	// transaction passing the counter's filter feeds. It is kept striped
	// (CounterSpec.Stripes), and is never combined with another dimension.
	DimAcquirer = "acquirer"
)

// AcquirerStripes is how many series an acquirer-wide counter is kept as: a
// transaction feeds one of them (chosen from its card), a read sums them all, so
// that parallel authorizations write to different shards instead of queueing on
// one lock. A read costs one shard lookup per stripe, and every evaluation reads
// the counters its rules use while only the transactions that pass a counter's
// filter write it: 8 keeps the read cheap and spreads the writers of a switch of
// a few dozen cores. Changing it moves an acquirer series to other stripe keys:
// what was counted under keys that are no longer stripes stops counting.
const AcquirerStripes = 8

// CounterSpec is what the velocity store needs to know about a counter.
type CounterSpec struct {
	FP      uint64 // fingerprint of the definition: series of a changed counter are not reused
	Measure string // MeasureCount, MeasureSum or MeasureDistinctCards
	Dims    []string
	Window  time.Duration
	Width   int64 // bucket width in ns
	NB      int64 // buckets per window
	// Stripes, when above 1, says the counter's one key is kept as that many
	// series (at most 16) in different shards (an acquirer-wide counter: AcquirerStripes).
	// Observe and Retract take the key of one stripe (StripeKey), Read the key
	// the stripes are derived from and returns their sum. Stripe series are never
	// evicted from a full store.
	Stripes int
}

// golden is the multiplier shardOf mixes keys with; goldenInv is its inverse
// modulo 2^64.
const (
	golden    = 0x9e3779b97f4a7c15
	goldenInv = 0xf1de83e19937733d
)

// StripeKey returns the key of stripe (taken modulo c.Stripes) of the series of
// key: each stripe of a key lies in a shard of its own, numShards/c.Stripes
// shards apart, so that writers of different stripes never share a lock.
func StripeKey(c *CounterSpec, key, stripe uint64) uint64 {
	if c.Stripes <= 1 {
		return key
	}
	n := uint64(min(c.Stripes, maxStripes))
	step := uint64(numShards) / min(n, numShards)
	h := (key ^ c.FP) * golden
	home := h >> 56
	sh := (home + (stripe%n)*step) % numShards
	// The key whose shardOf is sh: h with its top byte replaced, unmixed.
	return ((sh<<56 | h&(1<<56-1)) * goldenInv) ^ c.FP
}

type seriesKey struct{ fp, key uint64 }

type bucket struct{ n, v int64 }

// series is one counter's buckets for one key, oldest first, as kept in a shard's
// arena (and as written to Badger).
type series struct {
	b    []bucket
	seen map[uint64]int64 // distinct_cards: card -> bucket of its last use
}

func (s *series) add(n, d int64) {
	for i := len(s.b) - 1; i >= 0; i-- {
		if s.b[i].n == n {
			s.b[i].v += d
			return
		}
		if s.b[i].n < n {
			s.b = append(s.b, bucket{})
			copy(s.b[i+2:], s.b[i+1:])
			s.b[i+1] = bucket{n: n, v: d}
			return
		}
	}
	s.b = append(s.b, bucket{})
	copy(s.b[1:], s.b)
	s.b[0] = bucket{n: n, v: d}
}

// trim drops buckets before lo.
func (s *series) trim(lo int64) {
	i := 0
	for i < len(s.b) && s.b[i].n < lo {
		i++
	}
	if i > 0 {
		s.b = append(s.b[:0], s.b[i:]...)
	}
}

func (s *series) sum(lo, hi int64) int64 {
	var t int64
	for i := len(s.b) - 1; i >= 0; i-- {
		n := s.b[i].n
		if n < lo {
			break
		}
		if n <= hi {
			t += s.b[i].v
		}
	}
	return t
}

// slot is a series as a counter's map holds it: 8 bytes, no pointers, so that a
// million cards cost little heap and nothing to the garbage collector's marking.
// Most series (a card seen once in the window) hold one bucket: it is kept in the
// slot itself, n its number and v its value. A series with more buckets, a bucket
// number or value beyond 32 bits, or a distinct_cards series lives in its shard's
// arena: n is inArena and v its index there.
type slot struct{ n, v int32 }

const inArena = math.MinInt32

// inline reports whether a one-bucket series with this bucket fits in a slot.
func inline(n, v int64) bool {
	return n > emptySlot && n <= math.MaxInt32 && v >= math.MinInt32 && v <= math.MaxInt32
}

// counters maps counter fingerprints to the small indexes the shards keep their
// maps by; copied on change (a new counter), read without a lock.
type counters struct {
	idx    map[uint64]int32
	fp     []uint64 // by index
	pinned []bool   // by index: a striped counter, whose series are never evicted
	// width and nb are, by index, the counter's bucket width (ns) and buckets per
	// window: what eviction needs to tell an expired series of any counter.
	width, nb []int64
	// sum is, by index, whether the counter is a sum: its value is an amount, so
	// eviction weighs its series by their buckets rather than by their value.
	sum []bool
	// sums holds, by index, the last sum read of a striped counter (nil for others).
	sums []*atomic.Pointer[stripedSum]
	// doubt holds, by index, the counter's records of keys whose value is in
	// doubt (evicted live, filter failed): ReadDoubt consults them.
	doubt []*doubts
}

// stripedSum is a read of a striped counter: the sum of key's stripes over the
// window ending in bucket cur, as it was when the stripes' shards had the change
// counts vers. While they still have them, the sum holds.
type stripedSum struct {
	key  uint64
	cur  int64
	vers [maxStripes]uint64
	val  int64
}

// maxStripes bounds CounterSpec.Stripes.
const maxStripes = 16

// changeCount counts the changes to the striped series of one shard, on a cache
// line of its own: readers of a striped counter load it (they take no lock while
// the counter does not change), writers of striped series add to it.
type changeCount struct {
	n atomic.Uint64
	_ [56]byte
}

// dirtyKey names a series changed since the last Flush.
type dirtyKey struct {
	ctr int32
	key uint64
}

type shard struct {
	mu    sync.Mutex
	m     []slotTable // by counter index
	evict int         // where the next eviction looks first
	n     int         // series in the shard, all counters
	// bytes is the estimated heap of the shard's arena series (arenaBytes of
	// each), written under mu, read by Bytes without it.
	bytes atomic.Int64
	arena []series // the series not held in their slot
	free  []int32  // arena entries free for reuse
	dirty map[dirtyKey]struct{}
	_     [16]byte // keep shards on separate cache lines
}

func (sh *shard) get(ci int32, key uint64) (slot, bool) {
	if int(ci) >= len(sh.m) {
		return slot{}, false
	}
	return sh.m[ci].get(key)
}

func (sh *shard) put(ci int32, key uint64, sl slot) {
	for int(ci) >= len(sh.m) {
		sh.m = append(sh.m, slotTable{})
	}
	sh.m[ci].put(key, sl)
}

// toArena puts se in the arena and returns the slot that points at it.
func (sh *shard) toArena(se series) slot {
	sh.bytes.Add(arenaBytes(&se))
	if n := len(sh.free); n > 0 {
		i := sh.free[n-1]
		sh.free = sh.free[:n-1]
		sh.arena[i] = se
		return slot{inArena, i}
	}
	sh.arena = append(sh.arena, se)
	return slot{inArena, int32(len(sh.arena) - 1)}
}

// release frees the arena entry of a slot leaving the map.
func (sh *shard) release(sl slot) {
	if sl.n == inArena {
		sh.bytes.Add(-arenaBytes(&sh.arena[sl.v]))
		sh.arena[sl.v] = series{}
		sh.free = append(sh.free, sl.v)
	}
}

// settle moves an arena series that is down to one bucket (and no cards) back into
// its slot.
func (sh *shard) settle(ci int32, key uint64, sl slot) {
	se := &sh.arena[sl.v]
	if se.seen != nil || len(se.b) != 1 || !inline(se.b[0].n, se.b[0].v) {
		return
	}
	b := se.b[0]
	sh.release(sl)
	sh.m[ci].put(key, slot{int32(b.n), int32(b.v)})
}

// Heap estimates of a series, in bytes, measured with Go 1.26 (docs/rules.md,
// "Where counts live"): a slot table entry at the table's load, an arena entry
// with its bucket slice, a distinct_cards series' map of cards.
const (
	slotBytes      = 26
	arenaBaseBytes = 48
	bucketBytes    = 16
	seenBaseBytes  = 170
	seenCardBytes  = 25
)

// arenaBytes estimates the heap an arena series holds beyond its slot.
func arenaBytes(se *series) int64 {
	n := int64(arenaBaseBytes + bucketBytes*cap(se.b))
	if se.seen != nil {
		n += seenBaseBytes + seenCardBytes*int64(len(se.seen))
	}
	return n
}

// view returns the series of a slot (a copy for one held in its slot).
func (sh *shard) view(sl slot) *series {
	if sl.n == inArena {
		return &sh.arena[sl.v]
	}
	return &series{b: []bucket{{int64(sl.n), int64(sl.v)}}}
}

// expired reports whether a slot's series has no bucket at or after lo.
func (sh *shard) expired(sl slot, lo int64) bool {
	if sl.n != inArena {
		return int64(sl.n) < lo
	}
	se := &sh.arena[sl.v]
	return len(se.b) == 0 || se.b[len(se.b)-1].n < lo
}

// remove takes the series of key out of the shard.
func (sh *shard) remove(ci int32, key uint64, sl slot) {
	sh.release(sl)
	sh.m[ci].del(key)
	sh.n--
}

// Velocity keeps counter series in memory, sharded by key with a lock per
// shard, and writes changed series to Badger in batches with a TTL of their
// window. Badger is never read on the transaction path.
type Velocity struct {
	db          *badger.DB
	shards      [numShards]shard
	maxSeries   int
	perShard    int // maxSeries spread over the shards
	maxDistinct int
	perShardMem int64 // the memory budget spread over the shards, bytes
	series      atomic.Int64
	latest      atomic.Int64 // newest transaction time seen, ns
	sweepNext   atomic.Uint32
	restored    sync.Map // fp -> struct{}: fingerprints already loaded from Badger
	evicted     atomic.Int64
	evictedLive atomic.Int64 // evicted series that still counted something
	ctrs        atomic.Pointer[counters]
	ctrMu       sync.Mutex // serializes new counters
	// changes are the shards' change counts of striped series, by shard.
	changes [numShards]changeCount
}

func NewVelocity(db *badger.DB, maxSeries, maxDistinct int) *Velocity {
	if maxSeries <= 0 {
		maxSeries = DefaultMaxSeries
	}
	if maxDistinct <= 0 {
		maxDistinct = DefaultMaxDistinct
	}
	s := &Velocity{db: db, maxSeries: maxSeries, perShard: max(1, maxSeries/numShards), maxDistinct: maxDistinct}
	s.SetMaxBytes(0)
	for i := range s.shards {
		s.shards[i].dirty = make(map[dirtyKey]struct{})
	}
	s.ctrs.Store(&counters{idx: map[uint64]int32{}})
	return s
}

// SetMaxBytes sets the memory budget of the series (DefaultMaxBytes when n <= 0),
// spread evenly over the shards. Call it before the store is used.
func (s *Velocity) SetMaxBytes(n int64) {
	if n <= 0 {
		n = DefaultMaxBytes
	}
	s.perShardMem = max(1, n/numShards)
}

// MaxBytes is the memory budget of the series.
func (s *Velocity) MaxBytes() int64 { return s.perShardMem * numShards }

// MaxSeries is the most series the store keeps.
func (s *Velocity) MaxSeries() int64 { return int64(s.perShard) * numShards }

// Series is the number of counter series in memory.
func (s *Velocity) Series() int64 { return s.series.Load() }

// Bytes is the store's estimate of the heap its series take (what the memory
// budget is compared with).
func (s *Velocity) Bytes() int64 {
	n := s.series.Load() * slotBytes
	for i := range s.shards {
		n += s.shards[i].bytes.Load()
	}
	return n
}

// Evicted is the number of series pushed out of a full store since it started.
func (s *Velocity) Evicted() int64 { return s.evicted.Load() }

// EvictedLive is the number of those that still counted something in their
// window: counts lost, what an operator must hear about (the rest had expired
// and read 0 anyway).
func (s *Velocity) EvictedLive() int64 { return s.evictedLive.Load() }

// full reports whether a shard is at its series cap or over its memory budget.
func (s *Velocity) full(sh *shard) bool {
	return sh.n >= s.perShard || int64(sh.n)*slotBytes+sh.bytes.Load() > s.perShardMem
}

func (s *Velocity) shardOf(fp, key uint64) *shard {
	return &s.shards[shardIndex(fp, key)]
}

// shardIndex is the number of the shard that holds key of the counter fp.
func shardIndex(fp, key uint64) int {
	return int(((key ^ fp) * golden) >> 56)
}

// changed records a change to a striped series in shard i.
func (s *Velocity) changed(i int) { s.changes[i].n.Add(1) }

// counter returns the index of counter c, -1 for one not seen yet unless create.
func (s *Velocity) counter(c *CounterSpec, create bool) int32 {
	fp := c.FP
	if i, ok := s.ctrs.Load().idx[fp]; ok || !create {
		if !ok {
			return -1
		}
		return i
	}
	s.ctrMu.Lock()
	defer s.ctrMu.Unlock()
	cur := s.ctrs.Load()
	if i, ok := cur.idx[fp]; ok {
		return i
	}
	next := &counters{idx: make(map[uint64]int32, len(cur.idx)+1), fp: append(cur.fp[:len(cur.fp):len(cur.fp)], fp),
		pinned: append(cur.pinned[:len(cur.pinned):len(cur.pinned)], c.Stripes > 1),
		width:  append(cur.width[:len(cur.width):len(cur.width)], max(1, c.Width)),
		nb:     append(cur.nb[:len(cur.nb):len(cur.nb)], c.NB),
		sum:    append(cur.sum[:len(cur.sum):len(cur.sum)], c.Measure == MeasureSum),
		sums:   append(cur.sums[:len(cur.sums):len(cur.sums)], nil),
		doubt:  append(cur.doubt[:len(cur.doubt):len(cur.doubt)], newDoubts(c.NB*max(1, c.Width), s.MaxBytes()))}
	if c.Stripes > 1 {
		next.sums[len(next.sums)-1] = new(atomic.Pointer[stripedSum])
	}
	for k, v := range cur.idx {
		next.idx[k] = v
	}
	i := int32(len(cur.fp))
	next.idx[fp] = i
	s.ctrs.Store(next)
	return i
}

// Read returns the counter's value for key over the window ending at t
// (the transaction being evaluated is not yet counted). For a striped counter
// (CounterSpec.Stripes) key is the series' own key, and the value the sum of its
// stripes.
func (s *Velocity) Read(c *CounterSpec, key uint64, t int64) int {
	v, _ := s.ReadDoubt(c, key, t)
	return v
}

// ReadDoubt is Read, and whether the value is in doubt: DoubtEvicted when a
// series of the key that still counted something was evicted from the full store
// within the counter's span before t, DoubtFiltered when the counter's filter
// failed for a transaction of the key (MarkFiltered) within it; either may also be
// a false positive of the compact record they are kept in (doubtFilter), never a
// false negative. A key never seen, or whose counts have all left the window,
// reads 0 with DoubtNone. Without an eviction or a failed filter of the counter in
// the last two spans the check costs two pointer loads.
func (s *Velocity) ReadDoubt(c *CounterSpec, key uint64, t int64) (int, Doubt) {
	ci := s.counter(c, false)
	if ci < 0 {
		return 0, DoubtNone
	}
	cur := floorDiv(t, c.Width)
	lo := cur - c.NB + 1
	var v int64
	if c.Stripes <= 1 {
		v = s.read(c, ci, key, lo, cur)
	} else {
		v = s.readStriped(c, ci, key, lo, cur)
	}
	d := s.ctrs.Load().doubt[ci]
	if d.evicted.cur.Load() == nil && d.filtered.cur.Load() == nil {
		return int(v), DoubtNone
	}
	h := doubtHash(c.FP, key)
	switch {
	case d.evicted.has(h, t):
		return int(v), DoubtEvicted
	case d.filtered.has(h, t):
		return int(v), DoubtFiltered
	}
	return int(v), DoubtNone
}

// MarkFiltered records that the counter's where filter failed at run time for a
// transaction of key (for a striped counter: the key Read takes, not a stripe's)
// at t: reads of the key in the counter's span after t say DoubtFiltered.
func (s *Velocity) MarkFiltered(c *CounterSpec, key uint64, t int64) {
	ci := s.counter(c, true)
	s.ctrs.Load().doubt[ci].filtered.add(doubtHash(c.FP, key), t)
}

// DoubtBytes is the heap the records of keys in doubt take (outside the memory
// budget: a generation is 1/DoubtBytesShare of it, within 64 KiB and 8 MiB, two
// per counter that evicted or had a filter fail within its last two spans).
func (s *Velocity) DoubtBytes() int64 {
	var n int64
	for _, d := range s.ctrs.Load().doubt {
		n += d.evicted.bytes() + d.filtered.bytes()
	}
	return n
}

// readStriped sums the stripes of key. The last sum is kept: a read in the same
// bucket while no shard of the stripes changed returns it after loading their
// change counts, taking no lock (every evaluation reads the counters its rules
// use, and most transactions do not pass an acquirer counter's filter). A change
// counted after the counts were loaded makes the kept sum unusable: a writer adds
// to its shard's count after it changed the series, so a change the sum missed
// (its series was read before the writer locked it) is counted after.
func (s *Velocity) readStriped(c *CounterSpec, ci int32, key uint64, lo, cur int64) int64 {
	n := min(c.Stripes, maxStripes)
	last := s.ctrs.Load().sums[ci]
	var shards [maxStripes]int
	for i := range n {
		shards[i] = shardIndex(c.FP, StripeKey(c, key, uint64(i)))
	}
	if p := last.Load(); p != nil && p.key == key && p.cur == cur {
		same := true
		for i := range n {
			if s.changes[shards[i]].n.Load() != p.vers[i] {
				same = false
				break
			}
		}
		if same {
			return p.val
		}
	}
	sum := stripedSum{key: key, cur: cur}
	for i := range n {
		sum.vers[i] = s.changes[shards[i]].n.Load()
	}
	for i := range n {
		sum.val += s.read(c, ci, StripeKey(c, key, uint64(i)), lo, cur)
	}
	// Kept only if no stripe changed meanwhile: under a stream of writes the next
	// read could not use it (and keeping it would cost an allocation each read).
	for i := range n {
		if s.changes[shards[i]].n.Load() != sum.vers[i] {
			return sum.val
		}
	}
	kept := new(stripedSum)
	*kept = sum
	last.Store(kept)
	return sum.val
}

// read sums the buckets lo..cur of one series.
func (s *Velocity) read(c *CounterSpec, ci int32, key uint64, lo, cur int64) int64 {
	sh := s.shardOf(c.FP, key)
	sh.mu.Lock()
	var v int64
	if sl, ok := sh.get(ci, key); ok {
		if sl.n == inArena {
			v = sh.arena[sl.v].sum(lo, cur)
		} else if n := int64(sl.n); n >= lo && n <= cur {
			v = int64(sl.v)
		}
	}
	sh.mu.Unlock()
	return v
}

// Observe adds one transaction to the counter's series for key (for a striped
// counter: to the stripe whose key StripeKey gave).
func (s *Velocity) Observe(c *CounterSpec, key uint64, t int64, amount int, card string) {
	if c.Measure == MeasureDistinctCards && card == "" {
		return
	}
	cur := floorDiv(t, c.Width)
	lo := cur - c.NB + 1
	ci := s.counter(c, true)
	// The store's "now" first: an eviction this makes dates the evicted key's
	// doubt (doubtFilter) from this transaction, not from the one before.
	for {
		l := s.latest.Load()
		if t <= l || s.latest.CompareAndSwap(l, t) {
			break
		}
	}
	sh := s.shardOf(c.FP, key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sl, ok := sh.get(ci, key)
	if !ok {
		if s.full(sh) {
			s.evictOne(sh, ci)
		}
		sh.n++
		s.series.Add(1)
	}
	switch c.Measure {
	case MeasureCount, MeasureSum:
		d := int64(1)
		if c.Measure == MeasureSum {
			d = int64(amount)
		}
		inArenaNow := true
		switch {
		case ok && sl.n == inArena:
		case (!ok || int64(sl.n) < lo) && inline(cur, d):
			// new, or its only bucket has left the window
			sh.put(ci, key, slot{int32(cur), int32(d)})
			inArenaNow = false
		case !ok || int64(sl.n) < lo:
			sl = sh.toArena(series{})
			sh.put(ci, key, sl)
		case int64(sl.n) == cur && inline(cur, int64(sl.v)+d):
			sh.put(ci, key, slot{sl.n, sl.v + int32(d)})
			inArenaNow = false
		default:
			sl = sh.toArena(series{b: []bucket{{int64(sl.n), int64(sl.v)}}})
			sh.put(ci, key, sl)
		}
		if inArenaNow {
			se := &sh.arena[sl.v]
			was := arenaBytes(se)
			se.add(cur, d)
			se.trim(lo)
			sh.bytes.Add(arenaBytes(se) - was)
			sh.settle(ci, key, sl)
		}
	case MeasureDistinctCards:
		switch {
		case !ok:
			sl = sh.toArena(series{})
			sh.put(ci, key, sl)
		case sl.n != inArena:
			var b []bucket
			if int64(sl.n) >= lo {
				b = []bucket{{int64(sl.n), int64(sl.v)}}
			}
			sl = sh.toArena(series{b: b})
			sh.put(ci, key, sl)
		}
		se := &sh.arena[sl.v]
		was := arenaBytes(se)
		ch := xxhash.Sum64String(card)
		if se.seen == nil {
			se.seen = make(map[uint64]int64)
		}
		old, ok := se.seen[ch]
		switch {
		case ok && old >= cur:
			// already counted in the newest bucket
		case ok && old >= lo:
			se.add(old, -1)
			se.add(cur, 1)
			se.seen[ch] = cur
		case !ok && len(se.seen) >= s.maxDistinct:
			// saturated: the count stays at its cap
		default:
			se.add(cur, 1)
			se.seen[ch] = cur
		}
		se.trim(lo)
		sh.bytes.Add(arenaBytes(se) - was)
	}
	if s.db != nil { // without Badger nothing is flushed: nothing to remember
		sh.dirty[dirtyKey{ci, key}] = struct{}{}
	}
	if c.Stripes > 1 {
		s.changed(shardIndex(c.FP, key))
	}
	// A series that grew (a card remembered, a bucket added) may have taken the
	// shard over its budget: others make room, a few at most per transaction.
	for range 4 {
		if int64(sh.n)*slotBytes+sh.bytes.Load() <= s.perShardMem || !s.evictOne(sh, ci) {
			break
		}
	}
}

// Retract takes back, from the counter's series for key, what Observe added for a
// transaction at t (for a striped counter: from the stripe Observe added it to,
// the same StripeKey): amount from a sum (at most what the bucket holds), one from a
// count when whole. The bucket of t must still be in the window (an older one has
// left it: nothing to take back); no bucket goes below zero, so a retraction of
// something never counted (a counter changed meanwhile, a series evicted) cannot
// make a counter negative. distinct_cards counters do not retract: a card that was
// seen stays seen for the window.
func (s *Velocity) Retract(c *CounterSpec, key uint64, t int64, amount int, whole bool) {
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
	ci := s.counter(c, false)
	if ci < 0 {
		return
	}
	n := floorDiv(t, c.Width)
	sh := s.shardOf(c.FP, key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sl, ok := sh.get(ci, key)
	if !ok {
		return
	}
	if c.Stripes > 1 {
		defer s.changed(shardIndex(c.FP, key)) // after the change, before the unlock
	}
	if sl.n != inArena {
		if int64(sl.n) == n {
			sh.put(ci, key, slot{sl.n, sl.v - int32(min(d, int64(sl.v)))})
			sh.dirty[dirtyKey{ci, key}] = struct{}{}
		}
		return
	}
	se := &sh.arena[sl.v]
	for i := len(se.b) - 1; i >= 0; i-- {
		if se.b[i].n < n {
			return
		}
		if se.b[i].n == n {
			se.b[i].v -= min(d, se.b[i].v)
			sh.dirty[dirtyKey{ci, key}] = struct{}{}
			return
		}
	}
}

// evictSample is how many series eviction looks at before it picks one.
const evictSample = 8

// evictOne makes room in a full shard by dropping one of its series. It looks at
// the next evictSample series of the counter being written (from where the last
// eviction stopped), then of the others, and drops the first that has left its
// window, else the one of least weight among those looked at: the fewest
// transactions counted (a count), buckets with traffic (a sum), cards
// remembered (distinct_cards). A flood of keys seen once (random card numbers,
// a new device ID on every request) so pushes out keys seen once, not the
// series of a card tried again and again, whose count a rule is waiting on: an
// attacker has to spend as many transactions on each key as the count he wants
// erased. The stripes of a striped counter are never dropped (a handful of
// series that every transaction feeds: losing one would lose a share of the
// acquirer's count). Callers hold sh.mu.
func (s *Velocity) evictOne(sh *shard, ci int32) bool {
	ctrs := s.ctrs.Load()
	now := s.latest.Load()
	type cand struct {
		ctr    int32
		key    uint64
		weight int64
	}
	best, found, looked, start := cand{}, false, 0, sh.evict
	defer func() { sh.evict = start + looked }()
	consider := func(c int32) bool { // true: an expired series found, best is it
		t := &sh.m[c]
		if t.n == 0 || ctrs.pinned[c] {
			return false
		}
		lo := floorDiv(now, ctrs.width[c]) - ctrs.nb[c] + 1
		for i := range t.e {
			if looked >= evictSample {
				return false
			}
			x := &t.e[(start+i)%len(t.e)]
			if x.sl.n == emptySlot {
				continue
			}
			looked++
			if sh.expired(x.sl, lo) {
				best, found = cand{c, x.key, -1}, true
				return true
			}
			if w := sh.weight(x.sl, ctrs.sum[c], lo); !found || w < best.weight {
				best, found = cand{c, x.key, w}, true
			}
		}
		return false
	}
	done := int(ci) < len(sh.m) && consider(ci)
	for i := 0; !done && looked < evictSample && i < len(sh.m); i++ {
		if int32(i) != ci {
			done = consider(int32(i))
		}
	}
	if !found {
		return false
	}
	sl, _ := sh.m[best.ctr].get(best.key)
	sh.remove(best.ctr, best.key, sl)
	delete(sh.dirty, dirtyKey{best.ctr, best.key})
	s.series.Add(-1)
	s.evicted.Add(1)
	if best.weight >= 0 {
		s.evictedLive.Add(1)
		// Its counts are lost while they would still be in the window: reads of
		// the key say so (ReadDoubt) until they would have left it.
		ctrs.doubt[best.ctr].evicted.add(doubtHash(ctrs.fp[best.ctr], best.key), now)
	}
	return true
}

// weight is what eviction keeps a live series by: the transactions it counts
// over the window (a count), its buckets (a sum: its value is an amount, which a
// single transaction can make large), its cards (distinct_cards).
func (sh *shard) weight(sl slot, sum bool, lo int64) int64 {
	if sl.n != inArena {
		if sum {
			return 1
		}
		return int64(sl.v)
	}
	se := &sh.arena[sl.v]
	switch {
	case se.seen != nil:
		return int64(len(se.seen))
	case sum:
		return int64(len(se.b))
	}
	return se.sum(lo, math.MaxInt64)
}

// Sweep drops expired series and forgotten cards from a few shards, using the
// newest transaction time seen as "now". specs maps fingerprints to counters.
func (s *Velocity) Sweep(specs map[uint64]*CounterSpec, shards int) {
	now := s.latest.Load()
	// The records of keys in doubt: those of counters no longer in specs, and
	// generations with nothing left in doubt, give their memory back.
	ctrs := s.ctrs.Load()
	for ci, d := range ctrs.doubt {
		gone := specs[ctrs.fp[ci]] == nil
		d.evicted.expire(now, gone)
		d.filtered.expire(now, gone)
	}
	for i := 0; i < shards; i++ {
		si := int(s.sweepNext.Add(1) % numShards)
		sh := &s.shards[si]
		sh.mu.Lock()
		ctrs := s.ctrs.Load()
		for ci := range sh.m {
			m := &sh.m[ci]
			if m.n == 0 {
				continue
			}
			if ctrs.pinned[ci] {
				s.changed(si) // a stripe's old buckets may go
			}
			fp := ctrs.fp[ci]
			c := specs[fp]
			if c == nil {
				for _, x := range m.e {
					if x.sl.n != emptySlot {
						sh.release(x.sl)
					}
				}
				sh.n -= m.n
				s.series.Add(-int64(m.n))
				*m = slotTable{}
				for dk := range sh.dirty {
					if dk.ctr == int32(ci) {
						delete(sh.dirty, dk)
					}
				}
				s.restored.Delete(fp) // reload from Badger if the counter comes back
				continue
			}
			lo := floorDiv(now, c.Width) - c.NB + 1
			for _, k := range m.keys(nil) {
				sl, _ := m.get(k)
				if sl.n != inArena {
					if int64(sl.n) < lo {
						sh.remove(int32(ci), k, sl)
						s.series.Add(-1)
					}
					continue
				}
				se := &sh.arena[sl.v]
				was := arenaBytes(se)
				se.trim(lo)
				if len(se.b) == 0 {
					sh.remove(int32(ci), k, sl)
					s.series.Add(-1)
					continue
				}
				for card, n := range se.seen {
					if n < lo {
						delete(se.seen, card)
					}
				}
				sh.bytes.Add(arenaBytes(se) - was)
				sh.settle(int32(ci), k, sl)
			}
			m.shrink()
		}
		sh.mu.Unlock()
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func seriesDBKey(k seriesKey) []byte {
	b := make([]byte, 0, len(velocityPrefix)+33)
	b = append(b, velocityPrefix...)
	b = hex.AppendEncode(b, binary.BigEndian.AppendUint64(nil, k.fp))
	b = append(b, '/')
	b = hex.AppendEncode(b, binary.BigEndian.AppendUint64(nil, k.key))
	return b
}

func parseSeriesDBKey(b []byte) (seriesKey, error) {
	rest := b[len(velocityPrefix):]
	if len(rest) != 33 || rest[16] != '/' {
		return seriesKey{}, fmt.Errorf("velocity key %q: want %s<16 hex>/<16 hex>", b, velocityPrefix)
	}
	fp, err1 := hex.DecodeString(string(rest[:16]))
	key, err2 := hex.DecodeString(string(rest[17:]))
	if err := errors.Join(err1, err2); err != nil {
		return seriesKey{}, fmt.Errorf("velocity key %q: %w", b, err)
	}
	return seriesKey{binary.BigEndian.Uint64(fp), binary.BigEndian.Uint64(key)}, nil
}

// encode writes a series as: version 1, bucket count, (bucket, value) pairs,
// card count, (card hash, bucket) pairs; all varints.
func (se *series) encode() []byte {
	b := make([]byte, 0, 4+len(se.b)*12+len(se.seen)*14)
	b = append(b, 1)
	b = binary.AppendUvarint(b, uint64(len(se.b)))
	for _, x := range se.b {
		b = binary.AppendVarint(b, x.n)
		b = binary.AppendVarint(b, x.v)
	}
	b = binary.AppendUvarint(b, uint64(len(se.seen)))
	for c, n := range se.seen {
		b = binary.AppendUvarint(b, c)
		b = binary.AppendVarint(b, n)
	}
	return b
}

func decodeSeries(b []byte) (*series, error) {
	if len(b) == 0 || b[0] != 1 {
		return nil, errors.New("unknown series encoding")
	}
	b = b[1:]
	var err error
	next := func(signed bool) int64 {
		if err != nil {
			return 0
		}
		var v int64
		var n int
		if signed {
			v, n = binary.Varint(b)
		} else {
			var u uint64
			u, n = binary.Uvarint(b)
			v = int64(u)
		}
		if n <= 0 {
			err = errors.New("truncated series")
			return 0
		}
		b = b[n:]
		return v
	}
	se := &series{}
	nb := next(false)
	if nb > 1<<20 {
		return nil, fmt.Errorf("series with %d buckets", nb)
	}
	for i := int64(0); i < nb && err == nil; i++ {
		n := next(true)
		v := next(true)
		se.b = append(se.b, bucket{n, v})
	}
	ns := next(false)
	if ns > 1<<24 {
		return nil, fmt.Errorf("series with %d cards", ns)
	}
	if ns > 0 {
		se.seen = make(map[uint64]int64, ns)
	}
	for i := int64(0); i < ns && err == nil; i++ {
		c := uint64(next(false))
		se.seen[c] = next(true)
	}
	return se, err
}

// Restore loads from Badger the series of counters not loaded before.
func (s *Velocity) Restore(specs []*CounterSpec) (int, error) {
	if s.db == nil {
		return 0, nil
	}
	total := 0
	for _, c := range specs {
		if _, done := s.restored.LoadOrStore(c.FP, struct{}{}); done {
			continue
		}
		ci := s.counter(c, true)
		// The records of keys in doubt first: a restored series that finds its
		// shard full evicts one, which the record must add to, not replace.
		if err := s.restoreDoubts(c, ci); err != nil {
			s.restored.Delete(c.FP)
			return total, fmt.Errorf("restore velocity counters from Badger: %w", err)
		}
		prefix := fmt.Appendf(nil, "%s%016x/", velocityPrefix, c.FP)
		err := s.db.View(func(txn *badger.Txn) error {
			opts := badger.DefaultIteratorOptions
			opts.Prefix = prefix
			it := txn.NewIterator(opts)
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				item := it.Item()
				k, err := parseSeriesDBKey(item.Key())
				if err != nil {
					return err
				}
				var se *series
				if err := item.Value(func(v []byte) error {
					var err error
					se, err = decodeSeries(v)
					return err
				}); err != nil {
					return fmt.Errorf("velocity %s: %w", item.Key(), err)
				}
				sh := s.shardOf(k.fp, k.key)
				sh.mu.Lock()
				if c.Stripes > 1 {
					s.changed(shardIndex(k.fp, k.key))
				}
				if _, ok := sh.get(ci, k.key); !ok {
					if s.full(sh) {
						s.evictOne(sh, ci)
					}
					if len(se.b) == 1 && se.seen == nil && inline(se.b[0].n, se.b[0].v) {
						sh.put(ci, k.key, slot{int32(se.b[0].n), int32(se.b[0].v)})
					} else {
						sh.put(ci, k.key, sh.toArena(*se))
					}
					sh.n++
					s.series.Add(1)
					if len(se.b) > 0 {
						// The start of its newest bucket: the newest transaction
						// it holds came no earlier. Its end (up to a bucket's
						// width later: six hours for a 30-day counter) took the
						// store's "now" past the present, and the sweep and the
						// eviction dropped every live series of the short
						// windows as expired until real time caught up.
						t := se.b[len(se.b)-1].n * c.Width
						for {
							l := s.latest.Load()
							if t <= l || s.latest.CompareAndSwap(l, t) {
								break
							}
						}
					}
				}
				sh.mu.Unlock()
				total++
			}
			return nil
		})
		if err != nil {
			s.restored.Delete(c.FP)
			return total, fmt.Errorf("restore velocity counters from Badger: %w", err)
		}
	}
	return total, nil
}

// Flush writes every changed series to Badger in one batch, each with a TTL
// that ends when its newest bucket leaves the window. When the write fails (a
// disk that fails writes, a database that refuses them) the series stay marked
// changed, and the next Flush writes them: until 6 December 2026 they were
// forgotten, and a series that did not change again after the failure kept in
// Badger its value from before it, which the next start restored
// (TestFlushFailureKeepsChanges).
func (s *Velocity) Flush(specs map[uint64]*CounterSpec) (err error) {
	if s.db == nil {
		return nil
	}
	type kv struct {
		k     seriesKey
		v     []byte
		end   int64 // ns when the newest bucket leaves the window
		shard int   // where the series is marked changed
		dk    dirtyKey
	}
	var out []kv
	defer func() {
		if err == nil {
			return
		}
		for _, x := range out {
			sh := &s.shards[x.shard]
			sh.mu.Lock()
			sh.dirty[x.dk] = struct{}{} // an eviction meanwhile: the next Flush skips it
			sh.mu.Unlock()
		}
	}()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		ctrs := s.ctrs.Load()
		for dk := range sh.dirty {
			sl, ok := sh.get(dk.ctr, dk.key)
			k := seriesKey{ctrs.fp[dk.ctr], dk.key}
			c := specs[k.fp]
			if !ok || c == nil {
				continue
			}
			se := sh.view(sl)
			var end int64
			if len(se.b) > 0 {
				end = (se.b[len(se.b)-1].n+1)*c.Width + int64(c.Window)
			}
			out = append(out, kv{k, se.encode(), end, i, dk})
		}
		clear(sh.dirty)
		sh.mu.Unlock()
	}
	chunks, gens := s.doubtChunks(specs)
	if len(out) == 0 && len(chunks) == 0 {
		return nil
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	now := time.Now().UnixNano()
	for _, x := range chunks {
		if ttl := time.Duration(x.end - now); ttl > time.Second {
			if err := wb.SetEntry(badger.NewEntry(x.key, x.val).WithTTL(ttl)); err != nil {
				return fmt.Errorf("write velocity doubt records to Badger: %w", err)
			}
		}
	}
	for _, x := range out {
		key := seriesDBKey(x.k)
		var err error
		if ttl := time.Duration(x.end - now); ttl > time.Second {
			err = wb.SetEntry(badger.NewEntry(key, x.v).WithTTL(ttl))
		} else {
			err = wb.Delete(key)
		}
		if err != nil {
			return fmt.Errorf("write velocity counters to Badger: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("write velocity counters to Badger: %w", err)
	}
	for _, g := range gens {
		g.g.flushed.Store(g.n)
	}
	return nil
}

// flushedGen is a generation of a record of keys in doubt that a Flush writes,
// and its key count when the Flush read it.
type flushedGen struct {
	g *doubtGen
	n int64
}

// doubtChunks encodes the generations of the records of keys in doubt of the
// counters in specs that gained keys since they were last written (doubtPrefix),
// and lists them with their key counts, which a Flush that succeeds marks written.
func (s *Velocity) doubtChunks(specs map[uint64]*CounterSpec) ([]doubtChunk, []flushedGen) {
	var chunks []doubtChunk
	var gens []flushedGen
	ctrs := s.ctrs.Load()
	for ci, d := range ctrs.doubt {
		fp := ctrs.fp[ci]
		if specs[fp] == nil {
			continue
		}
		for _, f := range [2]struct {
			f    *doubtFilter
			kind byte
		}{{&d.evicted, doubtKindEvicted}, {&d.filtered, doubtKindFilter}} {
			for _, p := range [2]*atomic.Pointer[doubtGen]{&f.f.cur, &f.f.prev} {
				g := p.Load()
				if g == nil {
					continue
				}
				n := g.n.Load() // before the bits: every key it counts is in them
				if n == g.flushed.Load() {
					continue
				}
				gens = append(gens, flushedGen{g, n})
				chunks = append(chunks, g.chunks(fp, f.kind, f.f.span, n)...)
			}
		}
	}
	return chunks, gens
}

// restoreDoubts loads from Badger the records of keys in doubt of counter c
// (index ci) that a Flush wrote, into its records that hold no generation yet.
func (s *Velocity) restoreDoubts(c *CounterSpec, ci int32) error {
	prefix := fmt.Appendf(nil, "%s%016x/", doubtPrefix, c.FP)
	gens := map[byte]map[int64]*doubtGen{doubtKindEvicted: {}, doubtKindFilter: {}}
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			// <prefix><kind>/<16 hex>/<4 hex>
			rest := k[len(prefix):]
			if len(rest) != 23 || rest[1] != '/' || rest[18] != '/' || gens[rest[0]] == nil {
				return fmt.Errorf("velocity doubt record key %q: want %s<e or f>/<16 hex>/<4 hex>", k, prefix)
			}
			var ch *savedChunk
			if err := item.Value(func(v []byte) error {
				var err error
				ch, err = decodeDoubtChunk(v)
				return err
			}); err != nil {
				return fmt.Errorf("velocity doubt record %s: %w", k, err)
			}
			if err := addChunk(gens[rest[0]], ch); err != nil {
				return fmt.Errorf("velocity doubt record %s: %w", k, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	d := s.ctrs.Load().doubt[ci]
	d.evicted.restoreGens(gens[doubtKindEvicted])
	d.filtered.restoreGens(gens[doubtKindFilter])
	return nil
}
