package server

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/switch/pipeline"
)

// pfxStandIn holds the pipeline's stand-in counts of the day in the node's Badger:
// + day + "/" + card hash -> the count and the sum, two varints. A card hash is not
// card data (a keyed HMAC of the PAN).
const pfxStandIn = "standin/"

// standInStore keeps the pipeline's stand-in book of the day (pipeline.StandInStore),
// so that a switch restarted while an issuer is down does not give each card its
// stand-in limits again. Each node of a cluster keeps its own: its own approvals and
// those of the other nodes it counted.
type standInStore struct{ db *badger.DB }

// LoadStandIns returns day's counts and deletes those of other days.
func (s standInStore) LoadStandIns(day string) (map[string]pipeline.StandInCount, error) {
	out := map[string]pipeline.StandInCount{}
	var stale [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxStandIn), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().KeyCopy(nil)
			d, card, ok := strings.Cut(strings.TrimPrefix(string(k), pfxStandIn), "/")
			if !ok || d != day {
				stale = append(stale, k)
				continue
			}
			err := it.Item().Value(func(v []byte) error {
				n, i := binary.Varint(v)
				sum, j := binary.Varint(v[max(i, 0):])
				if i <= 0 || j <= 0 {
					return fmt.Errorf("stand-in count %s: %d bytes that are not two varints", k, len(v))
				}
				out[card] = pipeline.StandInCount{N: int(n), Sum: sum}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(stale) > 0 {
		wb := s.db.NewWriteBatch()
		defer wb.Cancel()
		for _, k := range stale {
			if err := wb.Delete(k); err != nil {
				return nil, fmt.Errorf("delete the stand-in counts of earlier days: %w", err)
			}
		}
		if err := wb.Flush(); err != nil {
			return nil, fmt.Errorf("delete the stand-in counts of earlier days: %w", err)
		}
	}
	return out, nil
}

// SaveStandIn stores a card's counts of day.
func (s standInStore) SaveStandIn(day, card string, c pipeline.StandInCount) error {
	v := binary.AppendVarint(binary.AppendVarint(nil, int64(c.N)), c.Sum)
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(pfxStandIn+day+"/"+card), v) })
}
