package journal

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/switch/journal/wal"
)

// Durable keys: the batch closes, the recovery checkpoint, the RRN lease and the keys
// other subsystems write with PutDurable go through the log's group commit (one frame
// each) and are set in Badger right after the sync (commit, in write.go); Open sets
// again those a crash took from Badger. They are read from Badger.

// PutDurable writes key = value through the group commit and returns once it is on
// disk (other subsystems share the journal's fsync this way).
func (s *Store) PutDurable(ctx context.Context, key, value []byte) error {
	return s.put(ctx, [2][]byte{key, value})
}

// PutDurableBatch writes the keys through the group commit and returns once they are
// on disk.
func (s *Store) PutDurableBatch(ctx context.Context, kvs [][2][]byte) error {
	if len(kvs) == 0 {
		return nil
	}
	return s.put(ctx, kvs...)
}

// put writes extra keys through the group commit, durably.
func (s *Store) put(ctx context.Context, kv ...[2][]byte) error {
	for _, p := range kv {
		switch {
		case len(p[0]) == 0 || len(p[0]) > 65000:
			return fmt.Errorf("journal: key of %d bytes (want 1 to 65000)", len(p[0]))
		case bytes.HasPrefix(p[0], []byte("!badger!")):
			return fmt.Errorf("journal: key %q uses Badger's reserved prefix", p[0])
		case len(p[0])+len(p[1])+binary.MaxVarintLen64 > wal.MaxFrame:
			return fmt.Errorf("journal: key %s with a value of %d bytes does not fit a log frame", p[0], len(p[1]))
		}
	}
	req := &writeReq{kv: kv, done: donePool.Get().(chan error)}
	if err := s.enqueue(req); err != nil {
		return err
	}
	select {
	case err := <-req.done:
		donePool.Put(req.done)
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// LastBatch returns when the terminal's last batch was closed (zero if never).
func (s *Store) LastBatch(tid string) (time.Time, error) {
	var t time.Time
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(prefixBatch + tid))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) == 8 {
				t = time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC()
			}
			return nil
		})
	})
	return t, err
}

// BatchCloses calls fn with each terminal's last batch close, in terminal ID order,
// until fn returns an error (which it returns).
func (s *Store) BatchCloses(fn func(tid string, at time.Time) error) error {
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixBatch), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			var at time.Time
			if err := item.Value(func(v []byte) error {
				if len(v) != 8 {
					return fmt.Errorf("journal: batch close %s: value of %d bytes, not 8", item.Key(), len(v))
				}
				at = time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC()
				return nil
			}); err != nil {
				return err
			}
			if err := fn(string(item.Key()[len(prefixBatch):]), at); err != nil {
				return err
			}
		}
		return nil
	})
}

// CloseBatch records that the terminal's batch was closed at t.
func (s *Store) CloseBatch(ctx context.Context, tid string, t time.Time) error {
	v := binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano()))
	return s.put(ctx, [2][]byte{[]byte(prefixBatch + tid), v})
}

// Checkpoint returns the recovery checkpoint: every record with a lower RRN is final.
func (s *Store) Checkpoint() (string, error) {
	var rrn string
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyCkpt))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		rrn = string(v)
		return err
	})
	return rrn, err
}

// SetCheckpoint moves the recovery checkpoint to rrn.
func (s *Store) SetCheckpoint(ctx context.Context, rrn string) error {
	return s.put(ctx, [2][]byte{[]byte(keyCkpt), []byte(rrn)})
}

// rrnSeq is the RRN sequence: the next number and the end of the lease.
type rrnSeq struct {
	mu           sync.Mutex
	next, leased uint64
}

// rrnLease is how many RRNs are taken at a time; the end of the lease is written
// through the log, so that no RRN is handed out twice, even after a machine crash.
const rrnLease = 10000

// startRRNs sets the RRN sequence past both the stored lease and the highest RRN the
// index holds under this store's prefix (the log is indexed by now, so that covers
// every RRN ever written here; other nodes' records, under other prefixes, do not
// count).
func (s *Store) startRRNs() error {
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(s.rrnSeqKey()))
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			if err := item.Value(func(v []byte) error {
				if len(v) == 8 {
					s.rrn.next = binary.BigEndian.Uint64(v)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		prefix := []byte(prefixRecord + s.opts.RRNPrefix)
		it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: prefix})
		defer it.Close()
		it.Seek(append(prefix, 0xFF))
		if it.ValidForPrefix(prefix) {
			s.noteRRN(string(it.Item().Key()[len(prefixRecord):]))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("journal: RRN sequence: %w", err)
	}
	s.rrn.leased = s.rrn.next
	return nil
}

// rrnSeqKey is where the sequence's lease is kept: one key per prefix, so that the
// sequences of two prefixes never mix (a data directory renumbered by a version
// before serve refused that holds both).
func (s *Store) rrnSeqKey() string {
	if s.opts.RRNPrefix == "" {
		return keyRRNSeq
	}
	return keyRRNSeq + "/" + s.opts.RRNPrefix
}

// noteRRN moves the sequence past rrn if it is one of this store's (its prefix) and
// the sequence has not passed it yet. The caller holds s.rrn.mu or is Open.
func (s *Store) noteRRN(rrn string) {
	p := s.opts.RRNPrefix
	if len(rrn) != 12 || rrn[:len(p)] != p {
		return
	}
	// An RRN is n+1 for sequence number n: the next n is the highest RRN.
	if top, err := strconv.ParseUint(rrn[len(p):], 10, 64); err == nil && top > s.rrn.next {
		s.rrn.next = top
	}
}

// NoteRRN makes sure NextRRN never hands out rrn, nor any RRN below it under this
// store's prefix: a cluster node that lost its disk gets its own old records back
// from the other nodes after Open, and must continue after them.
func (s *Store) NoteRRN(rrn string) {
	s.rrn.mu.Lock()
	s.noteRRN(rrn)
	s.rrn.mu.Unlock()
}

// NextRRN returns a new retrieval reference number: 12 digits, unique across restarts
// (with Options.RRNPrefix, the prefix and an 11-digit sequence).
func (s *Store) NextRRN() (string, error) {
	s.rrn.mu.Lock()
	if s.rrn.next >= s.rrn.leased {
		end := s.rrn.next + rrnLease
		if err := s.put(context.Background(), [2][]byte{[]byte(s.rrnSeqKey()), binary.BigEndian.AppendUint64(nil, end)}); err != nil {
			s.rrn.mu.Unlock()
			return "", fmt.Errorf("journal: next RRN: lease up to %d: %w", end, err)
		}
		s.rrn.leased = end
	}
	n := s.rrn.next
	s.rrn.next++
	s.rrn.mu.Unlock()
	var b [12]byte
	low := 0
	if p := s.opts.RRNPrefix; p != "" {
		b[0], low = p[0], 1
		n = n%99999999999 + 1
	} else {
		n = n%999999999999 + 1
	}
	for i := 11; i >= low; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[:]), nil
}
