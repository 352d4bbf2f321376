package journal

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/switch/journal/wal"
)

// Retention: Purge deletes what is older than a time, at the log's granularity: whole
// segment files, oldest first, with the index entries of the records whose newest
// version lies in them. A segment is old when every frame in it and in the segments
// before it is older than the cut-off (a record version counts by its newest event,
// a delivery mark by its time), so a large segment of mixed age waits until its
// newest frame is old: records live somewhat longer than asked, never shorter.
//
// Never removed:
//   - the segment being written, and the segments the index is not complete for
//     (from j/applied's on): replay after a crash starts there;
//   - a record whose newest version is not final (no response code: in flight, or
//     open until recovery settles it), and every segment from its on;
//   - a record whose newest version lies in a kept segment (a refund or reversal
//     updated it lately): its older versions' frames go, its index entries stay.
//
// The order makes a crash at any step harmless: Badger is synced first (j/applied and
// the keys set from the log are durable), then the index entries are deleted in
// batches and synced, and only then are the files removed. A crash leaves index
// entries of records whose segments are still there (the next Purge finishes the
// job) or segments nothing points to. Should an index entry still point into a
// removed segment, reads treat it as purged, never as damage: Get answers ErrNotFound
// and queries skip it.

// PurgeResult is what Purge removed.
type PurgeResult struct {
	Before   time.Time `json:"before"`
	Segments int       `json:"segments"` // segment files removed
	Bytes    int64     `json:"bytes"`    // their size
	Records  int       `json:"records"`  // records whose index entries were removed
	// Kept is how many records of the removed segments were kept, their newest version
	// being in a later segment.
	Kept int `json:"kept"`
	// FirstKept is the oldest segment kept; StoppedBy says why the purge stopped
	// there ("newer", "open record <RRN>", "not indexed", "active").
	FirstKept uint32 `json:"first_kept"`
	StoppedBy string `json:"stopped_by"`
	// FilterKeys and FilterBytes describe the duplicate keys' filter, rebuilt
	// after a purge that removed records (zero when it was not): the keys it
	// read from the index, and the filter's size.
	FilterKeys  int    `json:"filter_keys,omitempty"`
	FilterBytes uint64 `json:"filter_bytes,omitempty"`
}

// purgeBatch is how many records' index entries one Badger transaction deletes.
var purgeBatch = 256

// purgeStep, when set (tests), is called after each step of Purge ("index" after a
// batch of index deletions, "remove" after a segment file's removal); an error stops
// Purge there, as a crash would.
var purgeStep func(step string) error

// Purge deletes the records older than before and the log segments holding them (see
// the retention rules above). It runs beside the writes and queries; one at a time.
func (s *Store) Purge(ctx context.Context, before time.Time) (PurgeResult, error) {
	res := PurgeResult{Before: before}
	if s.closed.Load() {
		return res, ErrClosed
	}
	if before.IsZero() {
		return res, errors.New("journal: purge: no cut-off time given")
	}
	s.purgeMu.Lock()
	defer s.purgeMu.Unlock()
	if err := s.catchUp(ctx); err != nil {
		return res, err
	}
	applied, err := s.readPos(keyApplied)
	if err != nil {
		return res, err
	}
	segs, err := s.log.Segments()
	if err != nil {
		return res, err
	}
	limit := min(applied.Seg, s.log.Active())
	var cand []wal.Segment
	var newest time.Time
	res.StoppedBy = "active"
	for _, sg := range segs {
		if sg.N >= limit {
			if sg.N < s.log.Active() {
				res.StoppedBy = "not indexed"
			}
			break
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		t, open, err := s.segmentAge(sg.N)
		if err != nil {
			return res, fmt.Errorf("journal: purge: %w", err)
		}
		if open != "" {
			res.StoppedBy = "open record " + open
			break
		}
		if t.After(newest) {
			newest = t
		}
		if !newest.Before(before) {
			res.StoppedBy = "newer"
			break
		}
		cand = append(cand, sg)
	}
	res.FirstKept = limit
	if len(cand) < len(segs) {
		res.FirstKept = segs[len(cand)].N
	}
	if len(cand) == 0 {
		return res, nil
	}
	last := cand[len(cand)-1].N
	if err := s.db.Sync(); err != nil {
		return res, fmt.Errorf("journal: purge: sync the index: %w", err)
	}
	var batch []purgeRec
	flush := func() error {
		n, err := s.purgeIndex(ctx, batch)
		res.Records += n
		batch = batch[:0]
		if err == nil && purgeStep != nil {
			err = purgeStep("index")
		}
		return err
	}
	for _, sg := range cand {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		err := s.viewSegment(sg.N, func(txn *badger.Txn, f wal.Frame) error {
			if f.Kind != kindFirst && f.Kind != kindUpdate {
				return nil
			}
			var rec Record
			if err := rec.UnmarshalBinary(f.Payload); err != nil {
				return fmt.Errorf("record at %d:%d: %w", f.At.Seg, f.At.Off, err)
			}
			ptr, ok, err := indexPtr(txn, rec.RRN)
			switch {
			case err != nil:
				return err
			case !ok || ptr != f.At:
				if ok && ptr.Seg > last && (f.Kind == kindFirst) {
					res.Kept++
				}
				return nil // an older version, or gone already
			}
			pr := purgeRec{rrn: rec.RRN, ptr: ptr, tid: rec.TID, at: rec.Received, dup: dupKeyOf(&rec), owed: rec.OwedBy}
			pr.late = rec.lateMarks()
			if s.opts.IndexKSN && rec.KSN != "" {
				pr.ksn = KSNKey(rec.KSN)
			}
			batch = append(batch, pr)
			if len(batch) >= purgeBatch {
				return flush()
			}
			return nil
		})
		if err != nil {
			return res, fmt.Errorf("journal: purge segment %d: %w", sg.N, err)
		}
	}
	if err := flush(); err != nil {
		return res, fmt.Errorf("journal: purge: %w", err)
	}
	if err := s.db.Sync(); err != nil {
		return res, fmt.Errorf("journal: purge: sync the index: %w", err)
	}
	for _, sg := range cand {
		if err := s.log.RemoveSegment(sg.N); err != nil {
			return res, err
		}
		res.Segments++
		res.Bytes += sg.Size
		if purgeStep != nil {
			if err := purgeStep("remove"); err != nil {
				return res, err
			}
		}
	}
	if res.Records > 0 {
		// The purged records' keys leave the duplicate filter (which otherwise
		// only grew while the process ran). Should it fail, the old filter stays,
		// larger than needed but right.
		keys, err := s.rebuildDupKeys()
		if err != nil {
			return res, fmt.Errorf("journal: purge: %w", err)
		}
		res.FilterKeys, res.FilterBytes = keys, s.dups.bits()/8
	}
	return res, nil
}

// segmentAge reads segment n: the newest time of its frames, and the RRN of a
// record whose newest version is in it and not final ("" if none).
func (s *Store) segmentAge(n uint32) (newest time.Time, open string, err error) {
	err = s.viewSegment(n, func(txn *badger.Txn, f wal.Frame) error {
		var t time.Time
		switch f.Kind {
		case kindDeliv:
			if len(f.Payload) >= 10 {
				t = time.Unix(0, int64(binary.BigEndian.Uint64(f.Payload[len(f.Payload)-8:])))
			}
		case kindFirst, kindUpdate:
			var rec Record
			if err := rec.UnmarshalBinary(f.Payload); err != nil {
				return fmt.Errorf("record at %d:%d: %w", f.At.Seg, f.At.Off, err)
			}
			t = rec.Received
			if len(rec.Events) > 0 && rec.Events[len(rec.Events)-1].At.After(t) {
				t = rec.Events[len(rec.Events)-1].At
			}
			if rec.Written.After(t) { // journaled after its events (the sweep of owed orders)
				t = rec.Written
			}
			if !rec.Final() {
				ptr, ok, err := indexPtr(txn, rec.RRN)
				if err != nil {
					return err
				}
				if ok && ptr == f.At {
					open = rec.RRN
					return errStopScan
				}
			}
		}
		if t.After(newest) {
			newest = t
		}
		return nil
	})
	if errors.Is(err, errStopScan) {
		err = nil
	}
	return newest, open, err
}

var errStopScan = errors.New("stop")

// viewSegment calls fn for every frame of segment n, with one read transaction of
// the index for the whole segment.
func (s *Store) viewSegment(n uint32, fn func(*badger.Txn, wal.Frame) error) error {
	return s.db.View(func(txn *badger.Txn) error {
		return s.log.ScanSegment(n, func(f wal.Frame) error { return fn(txn, f) })
	})
}

// indexPtr returns where the index says the newest version of rrn is (ok false if
// the index has no pointer for it).
func indexPtr(txn *badger.Txn, rrn string) (p wal.Ptr, ok bool, err error) {
	item, err := txn.Get(recordKey(rrn))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return p, false, nil
	}
	if err == nil {
		err = item.Value(func(v []byte) error {
			p, _, ok = decodePtr(v)
			return nil
		})
	}
	if err != nil {
		return p, false, fmt.Errorf("read index entry of %s: %w", rrn, err)
	}
	return p, ok, nil
}

// purgeRec is a record whose index entries Purge deletes.
type purgeRec struct {
	rrn, tid, dup string
	ksn           string // KSNKey, "" for a record without a KSN
	owed          string // its OwedBy, "" for none
	at            time.Time
	late          [3]time.Time // its entries in the index of late changes, zero for none
	ptr           wal.Ptr
}

// purgeIndex deletes the index entries of recs in one transaction, each only if its
// entry still points where Purge found it and no newer version waits in memory for
// the indexer. A conflict with the indexer (it rewrote an entry meanwhile) makes it
// try again. It returns how many records it deleted.
func (s *Store) purgeIndex(ctx context.Context, recs []purgeRec) (int, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	for {
		n := 0
		err := s.db.Update(func(txn *badger.Txn) error {
			n = 0
			for _, r := range recs {
				item, err := txn.Get(recordKey(r.rrn))
				if errors.Is(err, badger.ErrKeyNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				v, err := item.ValueCopy(nil)
				if err != nil {
					return err
				}
				if p, _, ok := decodePtr(v); !ok || p != r.ptr {
					continue
				}
				s.pend.mu.RLock()
				_, pend := s.pend.recs[r.rrn]
				s.pend.mu.RUnlock()
				if pend {
					continue
				}
				keys := [][]byte{recordKey(r.rrn), timeKey(prefixTime, r.at, r.rrn), []byte(prefixDeliv + r.rrn)}
				if r.tid != "" {
					keys = append(keys, timeKey(prefixTerm+r.tid+"/", r.at, r.rrn))
				}
				if r.owed != "" {
					keys = append(keys, owedKey(r.owed, r.rrn))
				}
				for _, at := range r.late {
					if !at.IsZero() {
						keys = append(keys, timeKey(prefixLate, at, r.rrn))
					}
				}
				for _, key := range []string{r.dup, r.ksn} {
					if key == "" {
						continue
					}
					dk := []byte(prefixDup + key)
					if item, err := txn.Get(dk); err == nil {
						if d, err := item.ValueCopy(nil); err == nil && bytes.Equal(d, []byte(r.rrn)) {
							keys = append(keys, dk)
						}
					}
				}
				for _, k := range keys {
					if err := txn.Delete(k); err != nil {
						return err
					}
				}
				n++
			}
			return nil
		})
		if errors.Is(err, badger.ErrConflict) {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("delete the index entries of %d records: %w", len(recs), err)
		}
		return n, nil
	}
}
