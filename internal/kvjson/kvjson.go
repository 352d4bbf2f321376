// Package kvjson reads records stored as JSON values in Badger under a key prefix, in
// key order: the lists of the registry and of the review cases (changes, alerts,
// incidents, cases), whose keys sort by sequence.
package kvjson

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"
)

// DefaultLimit is how many records Newest returns when its limit is not positive.
const DefaultLimit = 1000

// MaxLimit is the most records Newest returns, whatever the limit asked: a list
// is read whole into memory, and the admin API's callers choose the limit.
const MaxLimit = 10000

// Newest returns up to limit (at most MaxLimit) of the newest records under prefix
// that keep accepts, oldest first. keep may change the record it accepts (a list view leaving out a
// field, say). what names the records in errors ("registry: read change KEY: ...").
func Newest[T any](db *badger.DB, prefix string, limit int, what string, keep func(*T) bool) ([]*T, error) {
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	var out []*T
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: []byte(prefix), PrefetchValues: true, PrefetchSize: 50})
		defer it.Close()
		for it.Seek([]byte(prefix + "\xff")); it.Valid() && len(out) < limit; it.Next() {
			v := new(T)
			if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, v) }); err != nil {
				return fmt.Errorf("%s %s: %w", what, it.Item().Key(), err)
			}
			if keep(v) {
				out = append(out, v)
			}
		}
		return nil
	})
	slices.Reverse(out)
	return out, err
}
