package journal

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/switchyard/switchyard/switch/journal/wal"
)

// Writes: a record version, a delivery mark or durable keys become a writeReq, which
// the log's committer (wal.Committer, started by Open) gathers with others into a
// group; commitGroup appends the group's frames to the log with one write and one
// fdatasync, makes them readable from memory (publish) and queues them for the
// indexer, and then tells the writers that wait.

// writeReq is one write waiting for the next group commit.
type writeReq struct {
	rec   []byte
	buf   *[]byte // rec's pooled buffer; it moves to the pending map on commit
	rrn   string
	first bool // the first write of a record (its indexes are written with it)
	// owedDone: the record names a node in OwedBy and is reversed (its entry in
	// the index of owed reversals goes).
	owedDone bool
	tid      string
	dup      string // duplicate key, "" for none
	ksn      string // KSNKey, "" for none (Options.IndexKSN)
	owed     string // the record's OwedBy, "" for none (the index of owed reversals)
	at       time.Time
	// late are the record's entries in the index of late changes (Record.lateMarks:
	// its first write, its reversal, its approval), zero for none.
	late  [3]time.Time
	deliv []byte      // a delivery mark (9 bytes) for rrn instead of a record
	kv    [][2][]byte // keys to set in Badger (batch marks, checkpoints, PutDurable)
	done  chan error  // nil: do not wait (not durable yet when Write returns)

	ver   uint64 // set by the committer
	ptr   wal.Ptr
	end   wal.Pos
	kvErr error // Badger refused the keys (they are in the log; the indexer sets them)
	// v is what OnVersion is told of the record once it is readable (hasV: a
	// function is set and this is a record version).
	v    Version
	hasV bool
}

var donePool = sync.Pool{New: func() any { return make(chan error, 1) }}

// encodeBufs holds record encoding buffers; a buffer goes back once its record
// version is indexed (or superseded).
var encodeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Write stores rec. With durable, it returns once rec is synced to disk; otherwise it
// returns at once and rec is written with the next group. The first write of a record
// (first = true) also writes its indexes.
func (s *Store) Write(ctx context.Context, rec *Record, first, durable bool) error {
	buf := encodeBufs.Get().(*[]byte)
	b, err := rec.AppendBinary((*buf)[:0])
	if err != nil {
		encodeBufs.Put(buf)
		return fmt.Errorf("journal: encode record %s: %w", rec.RRN, err)
	}
	*buf = b
	return s.write(ctx, rec, buf, first, durable)
}

// WriteEncoded is Write of a record whose encoding (rec.AppendBinary) the caller
// already holds, as enc: the cluster journal publishes that encoding and applies the
// other nodes' records from it, and need not encode them twice.
func (s *Store) WriteEncoded(ctx context.Context, rec *Record, enc []byte, first, durable bool) error {
	buf := encodeBufs.Get().(*[]byte)
	*buf = append((*buf)[:0], enc...)
	return s.write(ctx, rec, buf, first, durable)
}

// WriteEncodedAsync is WriteEncoded of a durable write whose caller does not wait
// for it: it returns at once, with the channel the write's outcome (nil once synced)
// comes on. The cluster journal's applier writes a first version its node's writer
// waits for this way, and the writer waits.
func (s *Store) WriteEncodedAsync(rec *Record, enc []byte, first bool) (<-chan error, error) {
	buf := encodeBufs.Get().(*[]byte)
	*buf = append((*buf)[:0], enc...)
	req, err := s.newReq(rec, buf, first)
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	req.done = done
	if err := s.commits.Submit(req); err != nil {
		encodeBufs.Put(buf)
		return nil, err
	}
	return done, nil
}

// newReq is the write request of rec encoded in *buf (a buffer of encodeBufs, which
// it takes).
func (s *Store) newReq(rec *Record, buf *[]byte, first bool) (*writeReq, error) {
	b := *buf
	if len(b) > wal.MaxFrame {
		encodeBufs.Put(buf)
		return nil, fmt.Errorf("journal: record %s encodes to %d bytes, more than a log frame holds (%d)", rec.RRN, len(b), wal.MaxFrame)
	}
	req := &writeReq{rec: b, buf: buf, rrn: rec.RRN, first: first, tid: rec.TID, at: rec.Received}
	if s.onVersion.Load() != nil {
		req.v, req.hasV = versionOf(rec), true
	}
	req.late = rec.lateMarks()
	if rec.OwedBy != "" { // rare: a reversal advice owed (index of owed reversals)
		req.owed, req.owedDone = rec.OwedBy, rec.Reversed()
	}
	if first {
		// Only a record that owns its duplicate key: in a cluster those are all
		// written by the applier, in the stream's order (cjournal's first.go).
		// publish adds the keys to the filter, before they can be read.
		req.dup = rec.DuplicateKey()
		if req.dup != "" && s.opts.IndexKSN && rec.KSN != "" {
			req.ksn = KSNKey(rec.KSN)
		}
	}
	return req, nil
}

// RefuseNew makes the first write of every record but those that take back an
// earlier transaction (Record.TakesBack: reversals and voids) fail, wrapping
// ErrUnavailable with why, until it is called with nil: nothing of such a record is
// written, and the pipeline declines its request 91. Later versions of records already
// written, delivery marks and durable keys go on. The server refuses new records while
// the data directory's disk is nearly full (server/diskguard.go), keeping what is left
// for the transactions in flight, their reversals and voids, and Badger.
func (s *Store) RefuseNew(why error) {
	if why == nil {
		s.refuse.Store(nil)
		return
	}
	s.refuse.Store(&why)
}

// write is Write of rec encoded in *buf (a buffer of encodeBufs, which it takes).
func (s *Store) write(ctx context.Context, rec *Record, buf *[]byte, first, durable bool) error {
	if why := s.refuse.Load(); first && why != nil && !rec.TakesBack() {
		encodeBufs.Put(buf)
		return fmt.Errorf("journal: record %s not written: %w: %w", rec.RRN, ErrUnavailable, *why)
	}
	req, err := s.newReq(rec, buf, first)
	if err != nil {
		return err
	}
	if durable {
		req.done = donePool.Get().(chan error)
	}
	if err := s.enqueue(req); err != nil {
		encodeBufs.Put(buf)
		return err
	}
	if !durable {
		return nil
	}
	if ctx.Done() == nil {
		// A context that is never done (the pipeline's own): a plain receive, not
		// a select (which locks every channel it names, 1.6% of the switch's CPU).
		err := <-req.done
		donePool.Put(req.done)
		return err
	}
	select {
	case err := <-req.done:
		donePool.Put(req.done)
		return err
	case <-ctx.Done():
		// The record is still written; the caller just stops waiting.
		return fmt.Errorf("journal: waiting for sync of %s: %w", rec.RRN, ctx.Err())
	}
}

// CommitFailures counts the groups of writes whose commit failed since the store
// opened. A writer that waits for its write learns of its failure; one that does not
// (a write without durable, a delivery mark) can only notice that the count moved:
// the cluster journal's applier does, before it moves its position past writes of
// its own that may be lost.
func (s *Store) CommitFailures() uint64 { return s.commitFailures.Load() }

// MarkDelivery records whether the response of rrn reached the terminal. It is kept
// apart from the record (and merged into it on reading), so that it never races with
// later updates of the record; it is written with the next group, not waited for.
func (s *Store) MarkDelivery(rrn string, delivered bool, at time.Time) error {
	v := make([]byte, 9)
	if delivered {
		v[0] = 1
	}
	binary.BigEndian.PutUint64(v[1:], uint64(at.UnixNano()))
	return s.enqueue(&writeReq{rrn: rrn, deliv: v})
}

// enqueue hands req to the committer. A writer that waits for its write leads: when
// no commit is in progress, it commits its group itself (wal.Committer.Lead).
func (s *Store) enqueue(req *writeReq) error {
	if req.done != nil {
		return s.commits.Lead(req)
	}
	return s.commits.Submit(req)
}

// commitGroup is the committer's work on each group (wal.Committer): the group's
// frames go to the log with one write and one sync, its records become readable and
// go to the indexer, and then its writers are told.
func (s *Store) commitGroup(batch []*writeReq) {
	start := time.Now()
	err := s.commit(batch)
	if err == nil {
		s.publish(batch)
		if f := s.onVersion.Load(); f != nil {
			for _, r := range batch {
				if r.hasV {
					(*f)(r.v)
				}
			}
		}
	} else {
		s.commitFailures.Add(1)
		for _, r := range batch {
			if r.buf != nil {
				encodeBufs.Put(r.buf)
			}
		}
	}
	for _, r := range batch {
		if r.done != nil {
			if err == nil && r.kvErr != nil {
				r.done <- r.kvErr
			} else {
				r.done <- err
			}
		}
	}
	if s.onSync != nil {
		s.onSync(len(batch), time.Since(start))
	}
}

// noteBroken tells Options.OnBroken, once, that the log refuses every write until a
// restart. The committer's only.
func (s *Store) noteBroken() {
	if broken := s.log.Broken(); broken != nil && s.opts.OnBroken != nil && !s.brokenTold {
		s.brokenTold = true
		s.opts.OnBroken(broken)
	}
}

// Broken returns why the journal's log refuses every write until a restart (a failed
// fdatasync: what reached the disk is unknown), or nil. Every request is then
// answered without approval; /readyz says so.
func (s *Store) Broken() error { return s.log.Broken() }

// commit appends the batch's frames to the log with one write and one sync, and
// writes its Badger keys, if any, with one more.
func (s *Store) commit(batch []*writeReq) error {
	b, err := s.log.Begin()
	if err != nil {
		s.noteBroken()
		return err
	}
	var kvs int
	for _, r := range batch {
		kvs += len(r.kv)
		for _, kv := range r.kv {
			_, r.end = b.Add(kindKV, binary.AppendUvarint(nil, uint64(len(kv[0]))), kv[0], kv[1])
		}
		switch {
		case r.rec != nil:
			kind := kindUpdate
			if r.first {
				kind = kindFirst
			}
			r.ptr, r.end = b.Add(kind, r.rec)
		case r.deliv != nil:
			_, r.end = b.Add(kindDeliv, []byte(r.rrn), r.deliv)
		}
	}
	if err := s.log.Append(b); err != nil {
		s.noteBroken()
		return err
	}
	if kvs == 0 {
		return nil
	}
	// The keys are durable in the log now; Badger gets them unsynced, with the log
	// position they reach. Should Badger refuse them, only their writers are told;
	// the indexer sets them later (they are in the log, and the rest of the group is
	// fine).
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	var last wal.Pos
	err = func() error {
		for _, r := range batch {
			for _, kv := range r.kv {
				if err := wb.Set(kv[0], kv[1]); err != nil {
					return fmt.Errorf("journal: write %s: %w", kv[0], err)
				}
			}
			if r.kv != nil {
				last = r.end
			}
		}
		if err := wb.Set([]byte(keyKVApplied), last.Encode()); err != nil {
			return err
		}
		return wb.Flush()
	}()
	if err != nil {
		err = fmt.Errorf("journal: write %d keys to the store: %w", kvs, err)
		for _, r := range batch {
			if r.kv != nil {
				r.kvErr = err
			}
		}
	}
	return nil
}

// publish makes a committed batch readable (the pending maps) and queues it for the
// indexer. It runs before the writers are told, so that a record is found as soon as
// its Write returns.
func (s *Store) publish(batch []*writeReq) {
	s.ix.mu.Lock()
	s.pend.mu.Lock()
	for _, r := range batch {
		if r.rec == nil && r.deliv == nil {
			if r.kv != nil {
				// Set already (unless Badger refused them: then the indexer does);
				// queued so that j/applied moves past them.
				for i, kv := range r.kv {
					s.ver++
					it := ixItem{kind: kindKV, ver: s.ver, end: r.end, kv: kv, replayed: r.kvErr != nil}
					if i < len(r.kv)-1 {
						it.end = wal.Pos{} // only the last moves j/applied
					}
					s.ix.queue = append(s.ix.queue, it)
				}
			}
			continue
		}
		s.ver++
		r.ver = s.ver
		it := ixItem{ver: r.ver, rrn: r.rrn, end: r.end}
		if r.rec != nil {
			it.kind, it.tid, it.dup, it.ksn, it.at, it.ptr = kindUpdate, r.tid, r.dup, r.ksn, r.at, r.ptr
			it.owed, it.owedDone, it.late = r.owed, r.owedDone, r.late
			if r.first {
				it.kind = kindFirst
			}
			if old := s.pend.recs[r.rrn]; old != nil {
				encodeBufs.Put(old.buf)
			}
			s.pend.recs[r.rrn] = &pendRec{ver: r.ver, buf: r.buf, rec: r.rec}
			// The filter first (a lookup reads it before the pending keys), with
			// s.ix.mu held: rebuildDupKeys relies on it.
			if r.dup != "" {
				s.dups.add(r.dup)
				s.pend.dup[r.dup] = r.rrn
			}
			if r.ksn != "" {
				s.dups.add(r.ksn)
				s.pend.dup[r.ksn] = r.rrn
			}
		} else {
			it.kind = kindDeliv
			copy(it.deliv[:], r.deliv)
			s.pend.deliv[r.rrn] = pendDeliv{ver: r.ver, v: it.deliv}
		}
		s.ix.queue = append(s.ix.queue, it)
	}
	s.pend.mu.Unlock()
	s.ix.committed.Store(s.ver)
	s.ix.mu.Unlock()
	select {
	case s.ix.wake <- struct{}{}:
	default:
	}
}
