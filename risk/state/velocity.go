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
	// DefaultMaxSeries bounds the number of counter series kept in memory.
	DefaultMaxSeries = 4_000_000
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
)

// CounterSpec is what the velocity store needs to know about a counter.
type CounterSpec struct {
	FP      uint64 // fingerprint of the definition: series of a changed counter are not reused
	Measure string // MeasureCount, MeasureSum or MeasureDistinctCards
	Dims    []string
	Window  time.Duration
	Width   int64 // bucket width in ns
	NB      int64 // buckets per window
}

type seriesKey struct{ fp, key uint64 }

type bucket struct{ n, v int64 }

// series is one counter's buckets for one key, oldest first.
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

type shard struct {
	mu    sync.Mutex
	m     map[seriesKey]*series
	dirty map[seriesKey]struct{}
	_     [40]byte // keep shards on separate cache lines
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
	series      atomic.Int64
	latest      atomic.Int64 // newest transaction time seen, ns
	sweepNext   atomic.Uint32
	restored    sync.Map // fp -> struct{}: fingerprints already loaded from Badger
	evicted     atomic.Int64
}

func NewVelocity(db *badger.DB, maxSeries, maxDistinct int) *Velocity {
	if maxSeries <= 0 {
		maxSeries = DefaultMaxSeries
	}
	if maxDistinct <= 0 {
		maxDistinct = DefaultMaxDistinct
	}
	s := &Velocity{db: db, maxSeries: maxSeries, perShard: max(1, maxSeries/numShards), maxDistinct: maxDistinct}
	for i := range s.shards {
		s.shards[i].m = make(map[seriesKey]*series)
		s.shards[i].dirty = make(map[seriesKey]struct{})
	}
	return s
}

// Series is the number of counter series in memory.
func (s *Velocity) Series() int64 { return s.series.Load() }

// Evicted is the number of series pushed out of a full store since it started.
func (s *Velocity) Evicted() int64 { return s.evicted.Load() }

func (s *Velocity) shardOf(k seriesKey) *shard {
	h := (k.key ^ k.fp) * 0x9e3779b97f4a7c15
	return &s.shards[h>>56]
}

// Read returns the counter's value for key over the window ending at t
// (the transaction being evaluated is not yet counted).
func (s *Velocity) Read(c *CounterSpec, key uint64, t int64) int {
	cur := floorDiv(t, c.Width)
	k := seriesKey{c.FP, key}
	sh := s.shardOf(k)
	sh.mu.Lock()
	var v int64
	if se := sh.m[k]; se != nil {
		v = se.sum(cur-c.NB+1, cur)
	}
	sh.mu.Unlock()
	return int(v)
}

// Observe adds one transaction to the counter's series for key.
func (s *Velocity) Observe(c *CounterSpec, key uint64, t int64, amount int, card string) {
	if c.Measure == MeasureDistinctCards && card == "" {
		return
	}
	cur := floorDiv(t, c.Width)
	lo := cur - c.NB + 1
	k := seriesKey{c.FP, key}
	sh := s.shardOf(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	se := sh.m[k]
	if se == nil {
		if len(sh.m) >= s.perShard {
			s.evictOne(sh, lo)
		}
		se = &series{}
		sh.m[k] = se
		s.series.Add(1)
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
	}
	se.trim(lo)
	sh.dirty[k] = struct{}{}
	for {
		l := s.latest.Load()
		if t <= l || s.latest.CompareAndSwap(l, t) {
			break
		}
	}
}

// Retract takes back, from the counter's series for key, what Observe added for a
// transaction at t: amount from a sum (at most what the bucket holds), one from a
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
	n := floorDiv(t, c.Width)
	k := seriesKey{c.FP, key}
	sh := s.shardOf(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	se := sh.m[k]
	if se == nil {
		return
	}
	for i := len(se.b) - 1; i >= 0; i-- {
		if se.b[i].n < n {
			return
		}
		if se.b[i].n == n {
			se.b[i].v -= min(d, se.b[i].v)
			sh.dirty[k] = struct{}{}
			return
		}
	}
}

// evictOne makes room in a full shard by dropping one of its series, one that
// has expired if the first few looked at include one. Callers hold sh.mu.
func (s *Velocity) evictOne(sh *shard, lo int64) bool {
	var victim seriesKey
	found := false
	n := 0
	for k, se := range sh.m {
		victim, found = k, true
		if len(se.b) == 0 || se.b[len(se.b)-1].n < lo || n >= 8 {
			break
		}
		n++
	}
	if !found {
		return false
	}
	delete(sh.m, victim)
	delete(sh.dirty, victim)
	s.series.Add(-1)
	s.evicted.Add(1)
	return true
}

// Sweep drops expired series and forgotten cards from a few shards, using the
// newest transaction time seen as "now". specs maps fingerprints to counters.
func (s *Velocity) Sweep(specs map[uint64]*CounterSpec, shards int) {
	now := s.latest.Load()
	for i := 0; i < shards; i++ {
		sh := &s.shards[s.sweepNext.Add(1)%numShards]
		sh.mu.Lock()
		for k, se := range sh.m {
			c := specs[k.fp]
			if c == nil {
				delete(sh.m, k)
				delete(sh.dirty, k)
				s.series.Add(-1)
				s.restored.Delete(k.fp) // reload from Badger if the counter comes back
				continue
			}
			lo := floorDiv(now, c.Width) - c.NB + 1
			se.trim(lo)
			if len(se.b) == 0 {
				delete(sh.m, k)
				s.series.Add(-1)
				continue
			}
			for card, n := range se.seen {
				if n < lo {
					delete(se.seen, card)
				}
			}
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
				sh := s.shardOf(k)
				sh.mu.Lock()
				if _, ok := sh.m[k]; !ok {
					sh.m[k] = se
					s.series.Add(1)
					if len(se.b) > 0 {
						t := (se.b[len(se.b)-1].n + 1) * c.Width
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
// that ends when its newest bucket leaves the window.
func (s *Velocity) Flush(specs map[uint64]*CounterSpec) error {
	if s.db == nil {
		return nil
	}
	type kv struct {
		k   seriesKey
		v   []byte
		end int64 // ns when the newest bucket leaves the window
	}
	var out []kv
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for k := range sh.dirty {
			se := sh.m[k]
			c := specs[k.fp]
			if se == nil || c == nil {
				continue
			}
			var end int64
			if len(se.b) > 0 {
				end = (se.b[len(se.b)-1].n+1)*c.Width + int64(c.Window)
			}
			out = append(out, kv{k, se.encode(), end})
		}
		clear(sh.dirty)
		sh.mu.Unlock()
	}
	if len(out) == 0 {
		return nil
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	now := time.Now().UnixNano()
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
	return nil
}
