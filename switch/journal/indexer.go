package journal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/switch/journal/wal"
)

// The indexer: one goroutine (indexLoop, started by Open and joined by Close) writes
// the index entries of committed frames to Badger in batches, unsynced, together
// with j/applied, the log position they cover. Open runs the same code (index) over
// the frames the log holds beyond j/applied, which rebuilds whatever a crash took.

// indexer is the indexer's queue and progress.
type indexer struct {
	mu        sync.Mutex
	queue     []ixItem // committed frames waiting for the indexer
	spare     []ixItem
	wake      chan struct{} // work was queued
	urgent    chan struct{} // a query waits: index now
	stop      chan struct{} // closed by Close
	done      chan struct{} // closed when indexLoop has ended
	appliedCh chan struct{} // closed and replaced after every index batch
	err       error         // the last index write's error, nil once one succeeds
	committed atomic.Uint64 // version of the last frame committed to the log
	applied   atomic.Uint64 // version of the last frame indexed

	// indexLoop's (or, before it starts, Open's) alone:
	// lastSecond is the last second given a time index entry, by the RRN's first
	// digit: a cluster's nodes number their RRNs apart (Options.RRNPrefix), and
	// RRN order is receive order only within one node's RRNs.
	lastSecond [10]int64
	touched    map[string]recState
	// recent is the index state of recently indexed records, newest first, by
	// rrnKey: keys and values without pointers, so that the garbage collector does not
	// scan the maps (up to 2 x 100,000 entries; by RRN string they were 12 MB of the
	// switch's pointer-holding heap, issue 15).
	recent [2]map[uint64]recState
	// busySince is when Badger began refusing the index's writes as blocked
	// (badger.ErrBlockedWrites), zero while it is not.
	busySince time.Time
	// write writes an index batch: Store.index, or a test's stand-in.
	write func([]ixItem) error
}

// retryAfter is how long the indexer waits before it tries again after Badger
// refused an index batch.
const retryAfter = time.Second

// Badger refuses every write while a DropPrefix flushes its memtables (the
// server's clean-up of stored text does one at a start, while a cluster node's
// journal already indexes the other nodes' records): the indexer tries again
// every busyRetry, without reporting the failure, for up to busyQuiet.
const (
	busyRetry = 20 * time.Millisecond
	busyQuiet = 5 * time.Second
)

// ixItem is a committed frame for the indexer.
type ixItem struct {
	kind  byte
	ver   uint64
	rrn   string
	tid   string
	dup   string
	ksn   string // KSNKey, "" for none (Options.IndexKSN)
	owed  string // the record's OwedBy, "" for none
	at    time.Time
	late  [3]time.Time // the record's entries in the index of late changes, zero for none
	ptr   wal.Ptr
	deliv [9]byte
	kv    [2][]byte // kindKV: the key and value
	// replayed marks a frame read back at Open: its key (kindKV) is set again.
	replayed bool
	// owedDone: the record names a node in OwedBy and is reversed.
	owedDone bool
	end      wal.Pos
}

// recState is what the index holds for a record: where its newest version is, and
// the delivery of its response.
type recState struct {
	ptr      wal.Ptr
	hasPtr   bool
	deliv    [9]byte
	hasDeliv bool
}

// recentLimit bounds each generation of the indexer's memory of recent records.
const recentLimit = 100000

var (
	errTornDelivery = errors.New("delivery mark shorter than 10 bytes")
	errTornKV       = errors.New("key frame with a bad key length")
)

// replayItem turns a log frame read at Open back into the indexer's item.
func replayItem(f wal.Frame, indexKSN bool) (ixItem, error) {
	kind, payload := f.Kind, f.Payload
	it := ixItem{kind: kind, ptr: f.At, end: f.End, replayed: true}
	if kind == kindKV {
		n, k := binary.Uvarint(payload)
		if k <= 0 || n > uint64(len(payload)-k) {
			return it, errTornKV
		}
		key := payload[k : k+int(n)]
		it.kv = [2][]byte{append([]byte(nil), key...), append([]byte(nil), payload[k+int(n):]...)}
		return it, nil
	}
	if kind == kindDeliv {
		if len(payload) < 10 {
			return it, errTornDelivery
		}
		it.rrn = string(payload[:len(payload)-9])
		copy(it.deliv[:], payload[len(payload)-9:])
		return it, nil
	}
	var rec Record
	if err := rec.UnmarshalBinary(payload); err != nil {
		return it, err
	}
	it.rrn, it.tid, it.at = rec.RRN, rec.TID, rec.Received
	it.late = rec.lateMarks()
	if rec.OwedBy != "" {
		it.owed, it.owedDone = rec.OwedBy, rec.Reversed()
	}
	if kind == kindFirst {
		it.dup = rec.DuplicateKey()
		if it.dup != "" && indexKSN && rec.KSN != "" {
			it.ksn = KSNKey(rec.KSN) // as newReq
		}
	}
	return it, nil
}

// indexLoop writes the index entries of committed frames: it waits for work, lets
// IndexDelay's worth gather (unless a query is waiting), and writes it all at once.
// After a failed write it tries again in retryAfter. It returns when Close stops it,
// after indexing what is queued.
func (s *Store) indexLoop() {
	defer close(s.ix.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		gather := false
		select {
		case <-s.ix.wake:
			gather = true
		case <-retry.C: // the items wait already: no gathering
		case <-s.ix.urgent:
		case <-s.ix.stop:
			s.indexQueued()
			return
		}
		// While Badger blocks writes, the items wait already, and a query
		// waiting for them is not woken by a quiet failure to ask again.
		if gather && !s.busy() {
			timer.Reset(s.opts.IndexDelay)
			select {
			case <-timer.C:
			case <-s.ix.urgent:
				timer.Stop()
			case <-s.ix.stop:
				timer.Stop()
				s.indexQueued()
				return
			}
		}
		if !s.indexQueued() {
			d := retryAfter
			if s.busy() {
				d = busyRetry
			}
			retry.Reset(d)
		}
	}
}

// busy reports whether Badger has refused the index's writes as blocked for less
// than busyQuiet (indexLoop's alone).
func (s *Store) busy() bool {
	quiet := busyQuiet
	if s.opts.busyQuiet != 0 {
		quiet = s.opts.busyQuiet
	}
	return !s.ix.busySince.IsZero() && time.Since(s.ix.busySince) < quiet
}

// indexQueued indexes what is queued and drops it from the pending maps. It reports
// false if Badger refused the batch (the items stay queued).
func (s *Store) indexQueued() bool {
	s.ix.mu.Lock()
	items := s.ix.queue
	s.ix.queue = s.ix.spare[:0]
	s.ix.mu.Unlock()
	if len(items) == 0 {
		s.ix.spare = items
		return true
	}
	write := s.index
	if s.ix.write != nil {
		write = s.ix.write
	}
	if err := write(items); err != nil {
		// Keep the items (in front of what came since) and try again later; they
		// stay readable from the pending maps meanwhile.
		err = fmt.Errorf("journal: index %d log frames: %w", len(items), err)
		if !errors.Is(err, badger.ErrBlockedWrites) {
			s.ix.busySince = time.Time{} // another fault: reported at once
		} else if s.ix.busySince.IsZero() {
			s.ix.busySince = time.Now()
		}
		// Writes blocked for a moment are neither reported nor a query's error.
		quiet := s.busy()
		if s.onIndexErr != nil && !quiet {
			s.onIndexErr(err)
		}
		s.ix.mu.Lock()
		s.ix.queue = append(items, s.ix.queue...)
		s.ix.spare = nil
		if quiet {
			// Waiting queries go on waiting (woken, they would ask again at once
			// and spin): the next try comes within busyRetry.
			s.ix.mu.Unlock()
			return false
		}
		s.ix.err = err
		ch := s.ix.appliedCh
		s.ix.appliedCh = make(chan struct{})
		s.ix.mu.Unlock()
		close(ch)
		return false
	}
	s.ix.busySince = time.Time{}
	s.pend.mu.Lock()
	for i := range items {
		it := &items[i]
		switch it.kind {
		case kindKV:
		case kindDeliv:
			if d, ok := s.pend.deliv[it.rrn]; ok && d.ver == it.ver {
				delete(s.pend.deliv, it.rrn)
			}
		default:
			if p := s.pend.recs[it.rrn]; p != nil && p.ver == it.ver {
				delete(s.pend.recs, it.rrn)
				encodeBufs.Put(p.buf)
			}
			if it.dup != "" && s.pend.dup[it.dup] == it.rrn {
				delete(s.pend.dup, it.dup)
			}
			if it.ksn != "" && s.pend.dup[it.ksn] == it.rrn {
				delete(s.pend.dup, it.ksn)
			}
		}
	}
	// Inside the lock: a reader that misses the pending maps sees the progress too.
	s.ix.applied.Store(items[len(items)-1].ver)
	s.pend.mu.Unlock()
	s.ix.mu.Lock()
	s.ix.err = nil
	ch := s.ix.appliedCh
	s.ix.appliedCh = make(chan struct{})
	s.ix.spare = items[:0]
	s.ix.mu.Unlock()
	close(ch)
	return true
}

// index writes the index entries of items and the log position they reach, in one
// unsynced Badger batch. A record touched several times in the batch (its versions,
// its delivery) gets one entry.
func (s *Store) index(items []ixItem) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	set := func(k, v []byte) error {
		if err := wb.Set(k, v); err != nil {
			return fmt.Errorf("index %s: %w", k, err)
		}
		return nil
	}
	clear(s.ix.touched)
	lastSecond := s.ix.lastSecond // kept only if the batch is written
	var owed map[string]bool      // index of owed reversals: key -> set (false: delete); rare
	for i := range items {
		it := &items[i]
		switch it.kind {
		case kindKV:
			if it.replayed {
				if err := set(it.kv[0], it.kv[1]); err != nil {
					return err
				}
			}
			continue
		case kindDeliv:
			st, err := s.state(it.rrn, false)
			if err != nil {
				return err
			}
			st.deliv, st.hasDeliv = it.deliv, true
			s.ix.touched[it.rrn] = st
			continue
		}
		st, err := s.state(it.rrn, it.kind == kindFirst)
		if err != nil {
			return err
		}
		st.ptr, st.hasPtr = it.ptr, true
		s.ix.touched[it.rrn] = st
		if it.owed != "" {
			if owed == nil {
				owed = map[string]bool{}
			}
			owed[string(owedKey(it.owed, it.rrn))] = !it.owedDone // the batch's last version decides
		}
		for _, at := range it.late {
			if !at.IsZero() {
				if err := set(timeKey(prefixLate, at, it.rrn), nil); err != nil {
					return err
				}
			}
		}
		if it.kind != kindFirst {
			continue
		}
		if it.dup != "" {
			if err := set([]byte(prefixDup+it.dup), []byte(it.rrn)); err != nil {
				return err
			}
		}
		if it.ksn != "" {
			if err := set([]byte(prefixDup+it.ksn), []byte(it.rrn)); err != nil {
				return err
			}
		}
		if c := rrnClass(it.rrn); it.at.Unix() != lastSecond[c] {
			lastSecond[c] = it.at.Unix()
			if err := set(timeKey(prefixTime, it.at, it.rrn), nil); err != nil {
				return err
			}
		}
		if it.tid != "" {
			if err := set(timeKey(prefixTerm+it.tid+"/", it.at, it.rrn), nil); err != nil {
				return err
			}
		}
	}
	for rrn, st := range s.ix.touched {
		var err error
		switch {
		case st.hasPtr:
			v := appendPtr(make([]byte, 0, 22), st.ptr)
			if st.hasDeliv {
				v = append(v, st.deliv[:]...)
			}
			err = set(recordKey(rrn), v)
		case st.hasDeliv: // the record is not in the log
			err = set([]byte(prefixDeliv+rrn), append([]byte(nil), st.deliv[:]...))
		}
		if err != nil {
			return err
		}
	}
	for k, live := range owed {
		if live {
			if err := set([]byte(k), nil); err != nil {
				return err
			}
		} else if err := wb.Delete([]byte(k)); err != nil {
			return fmt.Errorf("index %s: %w", k, err)
		}
	}
	if err := set([]byte(keyApplied), items[len(items)-1].end.Encode()); err != nil {
		return err
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	s.ix.lastSecond = lastSecond
	for rrn, st := range s.ix.touched {
		k, ok := rrnKey(rrn)
		if !ok {
			continue // read back from Badger when needed
		}
		if len(s.ix.recent[0]) >= recentLimit {
			s.ix.recent[1], s.ix.recent[0] = s.ix.recent[0], make(map[uint64]recState, recentLimit)
		}
		s.ix.recent[0][k] = st
	}
	return nil
}

// rrnKey packs an RRN of 1 to 17 decimal digits (the journal's own are 12) into a
// number, its length in the top bits so that "01" and "1" differ; ok is false for
// any other RRN.
func rrnKey(rrn string) (k uint64, ok bool) {
	if len(rrn) == 0 || len(rrn) > 17 {
		return 0, false
	}
	for i := 0; i < len(rrn); i++ {
		c := rrn[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		k = k*10 + uint64(c-'0')
	}
	return k | uint64(len(rrn))<<59, true
}

// state returns what the index holds for rrn: from this batch, from the recently
// indexed records, or from Badger. A record's first version has nothing before it.
func (s *Store) state(rrn string, first bool) (recState, error) {
	if st, ok := s.ix.touched[rrn]; ok {
		return st, nil
	}
	if first {
		return recState{}, nil
	}
	if k, ok := rrnKey(rrn); ok {
		for _, m := range s.ix.recent {
			if st, ok := m[k]; ok {
				return st, nil
			}
		}
	}
	var st recState
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(recordKey(rrn))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if p, d, ok := decodePtr(v); ok {
				st.ptr, st.hasPtr = p, true
				if d != nil {
					copy(st.deliv[:], d)
					st.hasDeliv = true
				}
			}
			return nil
		})
	})
	if err != nil {
		return st, fmt.Errorf("read index entry of %s: %w", rrn, err)
	}
	return st, nil
}

// catchUp waits until everything committed so far is indexed, for queries that walk
// the index.
func (s *Store) catchUp(ctx context.Context) error {
	target := s.ix.committed.Load()
	for s.ix.applied.Load() < target {
		s.ix.mu.Lock()
		ch, ixErr := s.ix.appliedCh, s.ix.err
		s.ix.mu.Unlock()
		if ixErr != nil {
			return ixErr
		}
		if s.ix.applied.Load() >= target {
			break
		}
		select {
		case s.ix.urgent <- struct{}{}:
		default:
		}
		select {
		case <-ch:
		case <-s.ix.done:
			if s.ix.applied.Load() < target {
				return ErrClosed
			}
		case <-ctx.Done():
			return fmt.Errorf("journal: waiting for the index: %w", ctx.Err())
		}
	}
	return nil
}

func recordKey(rrn string) []byte { return []byte(prefixRecord + rrn) }

// owedKey is the index entry of the record rrn whose reversal advice node owes.
func owedKey(node, rrn string) []byte { return []byte(prefixOwed + node + "/" + rrn) }

func timeKey(prefix string, at time.Time, rrn string) []byte {
	k := make([]byte, 0, len(prefix)+8+len(rrn))
	k = append(k, prefix...)
	k = binary.BigEndian.AppendUint64(k, timeOrder(at))
	return append(k, rrn...)
}

// timeOrder is at as the time keys order it: its Unix nanoseconds, a time before
// 1970 as 0 and one past 2262 (beyond int64 nanoseconds) as the last. A query's
// bound out there (the console searched from 0001-01-01) made a key that sorted
// wrong (a negative count read as a huge one), and the scan found nothing.
func timeOrder(at time.Time) uint64 {
	switch {
	case at.Before(time.Unix(0, 0)):
		return 0
	case at.After(maxNano):
		return math.MaxInt64
	}
	return uint64(at.UnixNano())
}

// maxNano is the last time Unix nanoseconds hold.
var maxNano = time.Unix(0, math.MaxInt64)

// ptrTag starts an index value that points into the log (13 bytes, or 22 with the
// record's delivery mark). Records stored whole in Badger (by earlier versions of the
// journal) start with codecVersion instead.
const ptrTag byte = 0xF0

// appendPtr appends the index value of a pointer into the log to b.
func appendPtr(b []byte, p wal.Ptr) []byte {
	b = append(b, ptrTag)
	b = binary.BigEndian.AppendUint32(b, p.Seg)
	b = binary.BigEndian.AppendUint32(b, p.Off)
	return binary.BigEndian.AppendUint32(b, p.N)
}

// decodePtr reads an index value: the pointer, and the delivery mark (9 bytes) when
// one follows it.
func decodePtr(v []byte) (p wal.Ptr, deliv []byte, ok bool) {
	if (len(v) != 13 && len(v) != 22) || v[0] != ptrTag {
		return wal.Ptr{}, nil, false
	}
	p = wal.Ptr{Seg: binary.BigEndian.Uint32(v[1:]), Off: binary.BigEndian.Uint32(v[5:]), N: binary.BigEndian.Uint32(v[9:])}
	if len(v) == 22 {
		deliv = v[13:]
	}
	return p, deliv, true
}

// rrnClass is the index of an RRN's class: its first digit (a cluster node's RRNs
// share it), 0 for anything else.
func rrnClass(rrn string) int {
	if rrn != "" && rrn[0] >= '0' && rrn[0] <= '9' {
		return int(rrn[0] - '0')
	}
	return 0
}
