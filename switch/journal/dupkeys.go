package journal

import (
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/bloom"
)

// dupKeys is a Bloom filter of every duplicate key the store's index holds or is
// about to hold: built from the index when the store opens, and added to by every
// commit of a record that owns its key, before the key can be read (publish). Its
// "no" is certain, so LookupDuplicate answers most lookups of a new request (a key
// nobody journaled) without reading Badger: a cluster node's applier looks up the
// key of every request of every node (docs/cluster.md, Duplicates), and Badger's
// memtable search was 8% of a node's CPU. Its "maybe" sends the lookup on to the
// index as before. It grows by parts, each twice the last, about 1% false positives.
//
// Keys the index loses (a purge) stay in the filter until it is rebuilt
// (rebuildDupKeys, after a purge): a needless read meanwhile, never a wrong answer.
// Without the rebuild a process that ran for months grew it by some 4 bytes a
// transaction, for good.
type dupKeys struct {
	seed maphash.Seed
	mu   sync.Mutex // serializes growth
	cur  atomic.Pointer[dupSet]
	// next, while a rebuild runs, is the filter being built: every key added goes
	// to it as well as to cur, and it replaces cur when the rebuild ends.
	next atomic.Pointer[dupSet]
}

// dupSet is a filter: its parts, the last one being filled.
type dupSet struct {
	parts atomic.Pointer[[]*dupPart]
}

// dupPart is one fixed-size part of the filter, sized for cap keys.
type dupPart struct {
	f   *bloom.Filter
	cap uint64        // keys it is sized for
	n   atomic.Uint64 // keys added
}

// minDupKeys is the smallest part: 1M keys, 1.25 MiB.
const minDupKeys = 1 << 20

func newDupPart(keys uint64) *dupPart {
	return &dupPart{f: bloom.New(keys * bloom.BitsPerKey), cap: keys}
}

// newDupSet is an empty filter whose first part holds keys.
func newDupSet(keys uint64) *dupSet {
	s := &dupSet{}
	s.parts.Store(&[]*dupPart{newDupPart(keys)})
	return s
}

// eachDupKey calls fn with every duplicate key of db's index (the key without its
// prefix, valid during the call only).
func eachDupKey(db *badger.DB, fn func(key []byte)) error {
	return db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte(prefixDup)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			fn(it.Item().Key()[len(prefixDup):])
		}
		return nil
	})
}

// countDupKeys counts the duplicate keys of db's index.
func countDupKeys(db *badger.DB) (uint64, error) {
	var n uint64
	if err := eachDupKey(db, func([]byte) { n++ }); err != nil {
		return 0, fmt.Errorf("journal: count the duplicate keys: %w", err)
	}
	return n, nil
}

// loadDupKeys builds the filter from the index's duplicate keys (two passes over the
// keys alone: one to size it, one to fill it).
func loadDupKeys(db *badger.DB) (*dupKeys, error) {
	d := &dupKeys{seed: maphash.MakeSeed()}
	n, err := countDupKeys(db)
	if err != nil {
		return nil, err
	}
	set := newDupSet(max(2*n, minDupKeys))
	d.cur.Store(set)
	if err := eachDupKey(db, func(key []byte) { d.addTo(set, maphash.Bytes(d.seed, key)) }); err != nil {
		return nil, fmt.Errorf("journal: load the duplicate keys: %w", err)
	}
	return d, nil
}

// add notes key. The store calls it with s.ix.mu held (publish), which orders it
// with a rebuild's start and end.
func (d *dupKeys) add(key string) {
	h := maphash.String(d.seed, key)
	d.addTo(d.cur.Load(), h)
	if next := d.next.Load(); next != nil {
		d.addTo(next, h)
	}
}

func (d *dupKeys) addTo(set *dupSet, h uint64) {
	parts := *set.parts.Load()
	last := parts[len(parts)-1]
	last.f.Add(h)
	if last.n.Add(1) == last.cap {
		d.mu.Lock()
		if cur := *set.parts.Load(); cur[len(cur)-1] == last {
			grown := append(append([]*dupPart(nil), cur...), newDupPart(2*last.cap))
			set.parts.Store(&grown)
		}
		d.mu.Unlock()
	}
}

// mayHave reports whether key may have been added; false is certain.
func (d *dupKeys) mayHave(key string) bool {
	h := maphash.String(d.seed, key)
	for _, p := range *d.cur.Load().parts.Load() {
		if p.f.Has(h) {
			return true
		}
	}
	return false
}

// bits is the size of the filter in bits (its parts').
func (d *dupKeys) bits() uint64 {
	var n uint64
	for _, p := range *d.cur.Load().parts.Load() {
		n += p.cap * bloom.BitsPerKey
	}
	return n
}

// rebuildDupKeys replaces the filter by one of the keys the index holds now (and
// those about to be indexed), and returns how many keys it read from the index:
// the keys a purge removed from the index leave it. It reads the index's keys
// twice (to size the filter, then to fill it), about 0.4 s a million keys here.
// Lookups go on meanwhile, on the old filter. s.purgeMu is held (one rebuild at a
// time).
//
// No key that may be read is lost, by this order:
//  1. With s.ix.mu held (publish holds it while it adds a committed record's keys
//     to the filter and makes them readable), the new filter is started: from now
//     every key added goes to it as well.
//  2. A key published before (1) was then pending (s.pend.dup) or already indexed;
//     the pending keys are copied, and a key that left them meanwhile was indexed
//     first (the indexer removes it after its index write).
//  3. Only then the index is read, so it holds every key that left the pending
//     keys before (2) read them.
//  4. The new filter replaces the old.
func (s *Store) rebuildDupKeys() (int, error) {
	d := s.dups
	n, err := countDupKeys(s.db)
	if err != nil {
		return 0, err
	}
	next := newDupSet(max(2*n, minDupKeys))
	s.ix.mu.Lock()
	d.next.Store(next)
	s.ix.mu.Unlock()
	// Abandoned, the old filter stays: still right.
	abandon := func() { d.next.Store(nil) }
	keys := 0 // read from the index
	s.pend.mu.RLock()
	for key := range s.pend.dup {
		d.addTo(next, maphash.String(d.seed, key))
	}
	s.pend.mu.RUnlock()
	if rebuildStep != nil {
		rebuildStep("pending")
	}
	if err := eachDupKey(s.db, func(key []byte) {
		d.addTo(next, maphash.Bytes(d.seed, key))
		keys++
	}); err != nil {
		abandon()
		return 0, fmt.Errorf("journal: rebuild the duplicate keys' filter: %w", err)
	}
	if rebuildStep != nil {
		rebuildStep("index")
	}
	s.ix.mu.Lock()
	d.cur.Store(next)
	d.next.Store(nil)
	s.ix.mu.Unlock()
	return keys, nil
}

// rebuildStep, when set (tests), runs in rebuildDupKeys after each of its reads:
// "pending" after the pending keys', "index" after the index's (before the new
// filter replaces the old).
var rebuildStep func(step string)
