package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
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
	// flushed is n as of the last write of the generation to Badger that
	// succeeded (Velocity.Flush): a generation whose n is still that is not
	// written again.
	flushed atomic.Int64
	bits    []atomic.Uint64
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
	// last before n: a Flush that loads n, then the bits and last, saves the
	// time of every key n counts.
	for {
		l := g.last.Load()
		if now <= l || g.last.CompareAndSwap(l, now) {
			break
		}
	}
	g.n.Add(1)
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

// Saved records of keys in doubt. Velocity.Flush writes each generation of a
// doubtFilter that gained keys since its last write, in chunks of at most
// doubtChunkWords words, each chunk under its own key:
//
//	risk/vd/<counter fingerprint, 16 hex>/<e: evicted, f: filter failed>/<generation start, 16 hex>/<chunk, 4 hex>
//
// with a time-to-live that ends when nothing in the generation is in doubt any
// more (its newest key's time plus the counter's span). A chunk is self-contained:
//
//	version (1 byte, 1), then uvarints: words of the generation, first word of the
//	chunk, words in the chunk; varints: start, last (store time, ns); uvarint: n;
//	then 1 byte, 0: sparse (uvarint count of the non-zero words, then per word
//	the uvarint distance from the previous one's index plus one, and the word,
//	8 bytes little-endian) or 1: dense (every word of the chunk, 8 bytes
//	little-endian).
//
// Restore ORs the chunks of a generation together: bits are only ever set, so
// chunks written by different flushes of one generation (a crash between two
// writes of one batch) make a record that holds at least what the older one did,
// never one that forgets a key. A database written before the records were saved
// (6 December 2026, fifth release) has no such key and loads as it did: no key in
// doubt.
const (
	doubtPrefix      = KeyPrefix + "vd/"
	doubtVersion     = 1
	doubtChunkWords  = 1 << 17 // 1 MiB dense: well under Badger's largest write
	doubtSparse      = 0
	doubtDense       = 1
	doubtKindEvicted = 'e'
	doubtKindFilter  = 'f'
)

// doubtChunk is one saved chunk of a generation, as Flush writes it.
type doubtChunk struct {
	key []byte
	val []byte
	end int64 // store time (ns) when nothing in the generation is in doubt any more
}

// doubtDBKey is the Badger key of chunk i of the generation starting at start of
// counter fp's record of kind (doubtKindEvicted or doubtKindFilter).
func doubtDBKey(fp uint64, kind byte, start int64, i int) []byte {
	return fmt.Appendf(nil, "%s%016x/%c/%016x/%04x", doubtPrefix, fp, kind, uint64(start), i)
}

// chunks encodes g (which n keys had filled) as its saved chunks, leaving out
// the chunks with no bit set. Each is sparse or dense, whichever is smaller.
func (g *doubtGen) chunks(fp uint64, kind byte, span, n int64) []doubtChunk {
	var out []doubtChunk
	last := g.last.Load()
	words := make([]uint64, 0, min(len(g.bits), doubtChunkWords))
	for from := 0; from < len(g.bits); from += doubtChunkWords {
		to := min(from+doubtChunkWords, len(g.bits))
		words = words[:0]
		nz := 0
		for i := from; i < to; i++ {
			w := g.bits[i].Load()
			words = append(words, w)
			if w != 0 {
				nz++
			}
		}
		if nz == 0 {
			continue
		}
		b := make([]byte, 0, 48+min(nz*12, len(words)*8))
		b = append(b, doubtVersion)
		b = binary.AppendUvarint(b, uint64(len(g.bits)))
		b = binary.AppendUvarint(b, uint64(from))
		b = binary.AppendUvarint(b, uint64(len(words)))
		b = binary.AppendVarint(b, g.start)
		b = binary.AppendVarint(b, last)
		b = binary.AppendUvarint(b, uint64(n))
		if nz*(8+3) < len(words)*8 {
			b = append(b, doubtSparse)
			b = binary.AppendUvarint(b, uint64(nz))
			prev := -1
			for i, w := range words {
				if w != 0 {
					b = binary.AppendUvarint(b, uint64(i-prev))
					b = binary.LittleEndian.AppendUint64(b, w)
					prev = i
				}
			}
		} else {
			b = append(b, doubtDense)
			for _, w := range words {
				b = binary.LittleEndian.AppendUint64(b, w)
			}
		}
		out = append(out, doubtChunk{key: doubtDBKey(fp, kind, g.start, from/doubtChunkWords), val: b, end: last + span})
	}
	return out
}

// savedChunk is a decoded chunk: its generation's header and its words.
type savedChunk struct {
	words, from int
	start, last int64
	n           int64
	set         map[int]uint64 // word index in the generation -> bits
}

// decodeDoubtChunk decodes a chunk written by doubtGen.chunks.
func decodeDoubtChunk(b []byte) (*savedChunk, error) {
	if len(b) == 0 || b[0] != doubtVersion {
		if len(b) == 0 {
			return nil, errors.New("empty doubt record")
		}
		return nil, fmt.Errorf("doubt record version %d: want %d", b[0], doubtVersion)
	}
	b = b[1:]
	var err error
	uv := func() uint64 {
		if err != nil {
			return 0
		}
		v, n := binary.Uvarint(b)
		if n <= 0 {
			err = errors.New("truncated doubt record")
			return 0
		}
		b = b[n:]
		return v
	}
	sv := func() int64 {
		if err != nil {
			return 0
		}
		v, n := binary.Varint(b)
		if n <= 0 {
			err = errors.New("truncated doubt record")
			return 0
		}
		b = b[n:]
		return v
	}
	words, from, count := uv(), uv(), uv()
	c := &savedChunk{start: sv(), last: sv()}
	n := uv()
	if err != nil {
		return nil, err
	}
	switch {
	case words == 0 || words > maxDoubtWords:
		return nil, fmt.Errorf("doubt record of %d words: want 1 to %d", words, maxDoubtWords)
	case count == 0 || count > doubtChunkWords || from > words || count > words-from:
		return nil, fmt.Errorf("doubt record chunk of words %d+%d in a generation of %d: out of range", from, count, words)
	case n > math.MaxInt64 || c.last < c.start:
		return nil, fmt.Errorf("doubt record of %d keys from %d to %d: inconsistent", n, c.start, c.last)
	case len(b) == 0:
		return nil, errors.New("truncated doubt record")
	}
	c.words, c.from, c.n = int(words), int(from), int64(n)
	enc := b[0]
	b = b[1:]
	switch enc {
	case doubtSparse:
		nz := uv()
		if err != nil {
			return nil, err
		}
		if nz > count || uint64(len(b)) < nz*9 {
			return nil, fmt.Errorf("doubt record: %d words set in a chunk of %d (%d bytes left)", nz, count, len(b))
		}
		c.set = make(map[int]uint64, nz)
		i := -1
		for range nz {
			d := uv()
			if err != nil {
				return nil, err
			}
			if d == 0 || d > count || i+int(d) >= int(count) {
				return nil, fmt.Errorf("doubt record: word index out of its chunk of %d", count)
			}
			i += int(d)
			if len(b) < 8 {
				return nil, errors.New("truncated doubt record")
			}
			c.set[c.from+i] = binary.LittleEndian.Uint64(b)
			b = b[8:]
		}
	case doubtDense:
		if uint64(len(b)) != count*8 {
			return nil, fmt.Errorf("doubt record: %d bytes of words, want %d", len(b), count*8)
		}
		c.set = make(map[int]uint64)
		for i := range int(count) {
			if w := binary.LittleEndian.Uint64(b[8*i:]); w != 0 {
				c.set[c.from+i] = w
			}
		}
		b = nil
	default:
		return nil, fmt.Errorf("doubt record encoding %d: want %d (sparse) or %d (dense)", enc, doubtSparse, doubtDense)
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("doubt record: %d bytes past its end", len(b))
	}
	return c, nil
}

// restoreGens installs saved generations (by start) in f, the newest as the
// current one, the one before as the previous one, when f holds none yet (a
// counter restored before its first eviction or failed filter of this run).
// Older ones are dropped: nothing in them can be in doubt once a newer
// generation has been filled for a span.
func (f *doubtFilter) restoreGens(gens map[int64]*doubtGen) {
	if len(gens) == 0 {
		return
	}
	var newest, second *doubtGen
	for _, g := range gens {
		switch {
		case newest == nil || g.start > newest.start:
			newest, second = g, newest
		case second == nil || g.start > second.start:
			second = g
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cur.Load() != nil {
		return
	}
	f.prev.Store(second)
	f.cur.Store(newest)
}

// addChunk ORs chunk c into the generation of gens it belongs to, making it.
func addChunk(gens map[int64]*doubtGen, c *savedChunk) error {
	g := gens[c.start]
	if g == nil {
		g = &doubtGen{start: c.start, bits: make([]atomic.Uint64, c.words)}
		gens[c.start] = g
	}
	if len(g.bits) != c.words {
		return fmt.Errorf("doubt record generation %d: chunks of %d and %d words", c.start, len(g.bits), c.words)
	}
	for i, w := range c.set {
		g.bits[i].Or(w)
	}
	if c.last > g.last.Load() {
		g.last.Store(c.last)
	}
	if c.n > g.n.Load() {
		g.n.Store(c.n)
		g.flushed.Store(c.n)
	}
	return nil
}
