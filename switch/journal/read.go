package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/switch/journal/wal"
)

// Reads by RRN and duplicate lookups: a frame committed to the log but not indexed
// yet is served from memory (pending, filled by publish before its writer is told,
// emptied by the indexer); anything older through its index entry, from the log.

// pending holds the frames committed to the log but not yet indexed, by RRN and
// duplicate key.
type pending struct {
	mu    sync.RWMutex
	recs  map[string]*pendRec
	deliv map[string]pendDeliv
	dup   map[string]string
}

// pendRec is a record version committed but not indexed yet.
type pendRec struct {
	ver uint64
	buf *[]byte // the pooled buffer holding rec
	rec []byte
}

// pendDeliv is a delivery mark committed but not indexed yet.
type pendDeliv struct {
	ver uint64
	v   [9]byte
}

// Get returns the record with the RRN.
func (s *Store) Get(rrn string) (*Record, error) {
	var rec *Record
	gen := s.ix.applied.Load()
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		rec, err = s.load(txn, gen, rrn, nil)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%w: RRN %s", ErrNotFound, rrn)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// load reads the newest version of the record rrn, with its delivery merged in: from
// the pending maps if it is not indexed yet, else through the index entry v (looked up
// when nil) from the log. gen is the indexer's progress (applied) read before txn was
// opened: when the indexer has moved frames out of the pending maps since, txn may
// predate them, and the record is read again in a new transaction.
func (s *Store) load(txn *badger.Txn, gen uint64, rrn string, v []byte) (*Record, error) {
	var rec Record
	s.pend.mu.RLock()
	p := s.pend.recs[rrn]
	var err error
	if p != nil {
		err = rec.UnmarshalBinary(p.rec)
	}
	d, pendingDeliv := s.pend.deliv[rrn]
	moved := s.ix.applied.Load() != gen
	s.pend.mu.RUnlock()
	if moved && (p == nil || !pendingDeliv) {
		var fresh *Record
		gen = s.ix.applied.Load()
		err := s.db.View(func(txn *badger.Txn) error {
			var err error
			fresh, err = s.load(txn, gen, rrn, nil)
			return err
		})
		return fresh, err
	}
	if p != nil && err != nil {
		return nil, fmt.Errorf("journal: decode record %s: %w", rrn, err)
	}
	if v == nil && (p == nil || !pendingDeliv) {
		item, err := txn.Get(recordKey(rrn))
		switch {
		case err == nil:
			if v, err = item.ValueCopy(nil); err != nil {
				return nil, err
			}
		case p == nil || !errors.Is(err, badger.ErrKeyNotFound):
			return nil, err
		}
	}
	at, idxDeliv, isPtr := decodePtr(v)
	if p == nil {
		if isPtr {
			if v, err = s.log.Read(at); err != nil {
				if errors.Is(err, wal.ErrPurged) {
					// Retention removed its segment: the record is gone, not damaged.
					return nil, fmt.Errorf("%w: RRN %s (removed by retention)", ErrNotFound, rrn)
				}
				if uerr := s.unreadable(rrn, err); uerr != err {
					return nil, uerr // damaged: named, counted, reported
				}
				return nil, fmt.Errorf("journal: record %s: %w", rrn, err)
			}
		}
		if err := rec.UnmarshalBinary(v); err != nil {
			return nil, fmt.Errorf("journal: decode record %s: %w", rrn, err)
		}
	}
	switch {
	case pendingDeliv:
		mergeDelivery(&rec, d.v[:])
		return &rec, nil
	case idxDeliv != nil:
		mergeDelivery(&rec, idxDeliv)
		return &rec, nil
	}
	item, err := txn.Get([]byte(prefixDeliv + rrn))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return &rec, nil
	}
	if err != nil {
		return nil, err
	}
	if err := item.Value(func(v []byte) error { mergeDelivery(&rec, v); return nil }); err != nil {
		return nil, err
	}
	return &rec, nil
}

func mergeDelivery(rec *Record, v []byte) {
	if len(v) != 9 {
		return
	}
	st := StateUndeliver
	if v[0] == 1 {
		st = StateResponded
	}
	at := time.Unix(0, int64(binary.BigEndian.Uint64(v[1:]))).UTC()
	for _, e := range rec.Events {
		if e.State == st && e.At.Equal(at) {
			// A version written after a read that had merged the mark (a cluster
			// node's reversal of it) carries it already.
			return
		}
	}
	if st == StateResponded && rec.Timings.Total > 0 && at.After(rec.Received) {
		// The record's total was taken before its final write; the answer was
		// written at the mark's time: the whole time the terminal waited in the switch.
		rec.Timings.Total = at.Sub(rec.Received).Microseconds()
	}
	// Keep the events in time order; the state is the delivery unless a later
	// event (a reversal) came after it.
	i := len(rec.Events)
	for i > 0 && rec.Events[i-1].At.After(at) {
		i--
	}
	rec.Events = append(rec.Events[:i], append([]Event{{State: st, At: at}}, rec.Events[i:]...)...)
	rec.State = rec.Events[len(rec.Events)-1].State
}

// DupKey is the key of the duplicate index: DE 41, DE 11 and DE 7.
func DupKey(tid, stan, de7 string) string { return tid + "/" + stan + "/" + de7 }

// KSNKey is the key under which the duplicate index holds the first record that
// carried a DUKPT KSN (Options.IndexKSN). It starts with "/", as no DupKey does (their
// DE 41 is never empty). The KSN is hexadecimal, read by the HSM in either case: the
// key is upper-cased, so that a replay with the KSN in lower case finds it.
func KSNKey(ksn string) string { return "/ksn/" + strings.ToUpper(ksn) }

// CaptureDupKey is the key under which the duplicate index holds the offline
// approval whose Record.CaptureKey is key. It starts with "/", as no DupKey does,
// and names no terminal: the same card approval uploaded from another terminal is
// the same key.
func CaptureDupKey(key string) string { return "/capture/" + key }

// LookupDuplicateKey returns the RRN of the record the duplicate index holds under
// key (a DupKey or a CaptureDupKey), if the journal holds one.
func (s *Store) LookupDuplicateKey(key string) (string, bool, error) {
	rrn, ok, err := s.lookupKey(key)
	if err != nil {
		return "", false, fmt.Errorf("journal: duplicate lookup %s: %w", key, err)
	}
	return rrn, ok, nil
}

// LookupDuplicate returns the RRN of the request with the same DE 41, DE 11 and DE 7,
// if the journal holds one.
func (s *Store) LookupDuplicate(tid, stan, de7 string) (string, bool, error) {
	rrn, ok, err := s.lookupKey(DupKey(tid, stan, de7))
	if err != nil {
		return "", false, fmt.Errorf("journal: duplicate lookup %s/%s: %w", tid, stan, err)
	}
	return rrn, ok, nil
}

// LookupKSN returns the RRN of the first record whose first version carried the DUKPT
// KSN, if the journal holds one (only with Options.IndexKSN).
func (s *Store) LookupKSN(ksn string) (string, bool, error) {
	rrn, ok, err := s.lookupKey(KSNKey(ksn))
	if err != nil {
		return "", false, fmt.Errorf("journal: KSN lookup: %w", err)
	}
	return rrn, ok, nil
}

// lookupKey reads key of the duplicate index: the filter, the pending writes, Badger.
func (s *Store) lookupKey(key string) (string, bool, error) {
	if !s.dups.mayHave(key) {
		return "", false, nil // certain: no write of the key ever began
	}
	s.pend.mu.RLock()
	rrn, ok := s.pend.dup[key]
	s.pend.mu.RUnlock()
	if ok {
		return rrn, true, nil
	}
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(prefixDup + key))
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
	if err != nil {
		return "", false, err
	}
	return rrn, rrn != "", nil
}
