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
// write of a record that owns its key, before the key can be read. Its "no" is
// certain, so LookupDuplicate answers most lookups of a new request (a key nobody
// journaled) without reading Badger: a cluster node's applier looks up the key of
// every request of every node (docs/cluster.md, Duplicates), and Badger's memtable
// search was 8% of a node's CPU. Its "maybe" sends the lookup on to the index as
// before. Keys the index loses (a purge) stay in the filter: a needless read, never a
// wrong answer. It grows by parts, each twice the last, about 1% false positives.
type dupKeys struct {
	seed  maphash.Seed
	mu    sync.Mutex // serializes growth
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

// loadDupKeys builds the filter from the index's duplicate keys (two passes over the
// keys alone: one to size it, one to fill it).
func loadDupKeys(db *badger.DB) (*dupKeys, error) {
	d := &dupKeys{seed: maphash.MakeSeed()}
	var n uint64
	each := func(fn func(key []byte)) error {
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
	if err := each(func([]byte) { n++ }); err != nil {
		return nil, fmt.Errorf("journal: count the duplicate keys: %w", err)
	}
	first := newDupPart(max(2*n, minDupKeys))
	d.parts.Store(&[]*dupPart{first})
	if err := each(func(key []byte) { d.addHash(maphash.Bytes(d.seed, key)) }); err != nil {
		return nil, fmt.Errorf("journal: load the duplicate keys: %w", err)
	}
	return d, nil
}

// add notes key.
func (d *dupKeys) add(key string) { d.addHash(maphash.String(d.seed, key)) }

func (d *dupKeys) addHash(h uint64) {
	parts := *d.parts.Load()
	last := parts[len(parts)-1]
	last.f.Add(h)
	if last.n.Add(1) == last.cap {
		d.mu.Lock()
		if cur := *d.parts.Load(); cur[len(cur)-1] == last {
			grown := append(append([]*dupPart(nil), cur...), newDupPart(2*last.cap))
			d.parts.Store(&grown)
		}
		d.mu.Unlock()
	}
}

// mayHave reports whether key may have been added; false is certain.
func (d *dupKeys) mayHave(key string) bool {
	h := maphash.String(d.seed, key)
	for _, p := range *d.parts.Load() {
		if p.f.Has(h) {
			return true
		}
	}
	return false
}
