package journal

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The journal is a log and an index. Record versions and delivery marks are appended
// to segment files (segment.go) with one write and one fdatasync per group commit: that
// is all a transaction waits for. The index lives in Badger, under "j/":
//
//	j/r/<rrn>                          where the record's newest version is in the log,
//	                                   and the delivery of its response (state + unix nanos)
//	j/t/<unix nanos, 8 bytes BE><rrn>  sparse time index: the first record of each second
//	j/T/<tid>/<nanos><rrn>             terminal index
//	j/D/<tid>/<stan>/<de7>             duplicate index -> RRN
//	j/x/<rrn>                          delivery of the response, for a record not in the log
//	                                   (written whole to Badger by an earlier version)
//	j/applied                          the log position the index is complete up to
//	j/kvapplied                        the log position of the last key set in Badger
//	j/B/<tid>                          time of the terminal's last batch close
//	j/ckpt                             recovery checkpoint: no record below this RRN is open
//	j/seq/rrn                          RRN sequence
//
// An indexer goroutine writes the index entries of committed log frames in batches of
// hundreds, without a sync, together with j/applied. Until a frame is indexed it is
// served from memory (the pending maps), so a record is readable as soon as Write
// returns. After a crash, Open re-indexes the log from j/applied on: index writes
// are idempotent, and Badger recovers a prefix of its unsynced writes, so the index
// and j/applied are always consistent with each other.
//
// j/B, j/ckpt and the keys other subsystems write with PutDurable go into the log too,
// and are set in Badger (unsynced) right after the log's sync, before their writer is
// told, together with j/kvapplied; Open sets again only those beyond it. Badger keeps a
// prefix of its writes, so a key the crash took is set again, and one it kept (and a
// subsystem may have changed since) is left alone.
const (
	prefixRecord = "j/r/"
	prefixTime   = "j/t/"
	prefixTerm   = "j/T/"
	keyRRNSeq    = "j/seq/rrn"
	prefixDup    = "j/D/"
	prefixDeliv  = "j/x/"
	prefixBatch  = "j/B/"
	keyCkpt      = "j/ckpt"
	keyApplied   = "j/applied"
	keyKVApplied = "j/kvapplied"
)

// ErrNotFound is returned for an RRN the journal does not hold.
var ErrNotFound = errors.New("journal: no such record")

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("journal: closed")

// The defaults of Options.
const (
	DefaultMaxBatch   = 4096
	DefaultGap        = 50 * time.Microsecond
	DefaultIndexDelay = 200 * time.Millisecond
	DefaultSegmentMB  = 64
)

// Options configure the journal.
type Options struct {
	// Dir is the directory of the log's segment files (required).
	Dir string
	// SegmentSize is the size at which a segment file is closed and the next one
	// started (default 64 MiB).
	SegmentSize int64
	// MaxBatch is the most records written with one sync (default 4096).
	MaxBatch int
	// Window is the longest the committer lets a group gather before its sync, and
	// Gap how long the queue may stay empty before it syncs anyway. With Window 0 it
	// syncs as soon as the queue is empty (while one sync runs, the next group gathers
	// by itself). The Window applies only once groups average 4 writes or more: under
	// load, writes arrive closer than Gap apart and a group gathers for the whole
	// Window (fewer, larger syncs); under a light load nothing waits. Defaults: Window
	// 0, Gap 50 µs.
	Window time.Duration
	Gap    time.Duration
	// IndexDelay is how long the indexer lets committed frames gather before it writes
	// their index entries (default 200 ms, so that most transactions are complete and
	// their versions share one entry). Queries wait for the indexer; reads by RRN
	// and duplicate lookups do not.
	IndexDelay time.Duration
	// NoSync skips the fsyncs (tests of logic only; never in production).
	NoSync bool
}

// Store is the journal: a log of segment files with group commit, indexed in Badger.
type Store struct {
	db   *badger.DB
	opts Options
	// The RRN sequence: the next number and the end of the lease.
	rrnMu              sync.Mutex
	rrnNext, rrnLeased uint64
	log                *segLog

	reqs   chan *writeReq
	done   chan struct{}
	mu     sync.RWMutex
	closed bool

	onSync     func(batch int, d time.Duration)
	onIndexErr func(error)
	frame      []byte // the commit loop's write buffer
	// groupAvg is the moving average of the group commits' sizes (commit loop only).
	groupAvg float64
	ver      uint64 // the last version handed out (commit loop only)

	// Frames committed to the log but not yet indexed, by RRN and duplicate key.
	pmu       sync.RWMutex
	pend      map[string]*pendRec
	pendDeliv map[string]pendDeliv
	pendDup   map[string]string

	// The indexer's queue and progress.
	ixmu       sync.Mutex
	ixq        []ixItem
	ixSpare    []ixItem
	ixWake     chan struct{}
	ixUrgent   chan struct{}
	ixStop     chan struct{}
	ixDone     chan struct{}
	appliedCh  chan struct{} // closed and replaced after every index batch
	ixErr      error         // the last index write's error, nil once one succeeds
	committed  atomic.Uint64 // version of the last frame committed to the log
	applied    atomic.Uint64 // version of the last frame indexed
	lastSecond int64         // the last second given a time index entry (indexer only)
	touched    map[string]recState
	recent     [2]map[string]recState // index state of recently indexed records, newest first
}

// recState is what the index holds for a record: where its newest version is, and
// the delivery of its response.
type recState struct {
	ptr      ptr
	hasPtr   bool
	deliv    [9]byte
	hasDeliv bool
}

// recentLimit bounds each generation of the indexer's memory of recent records.
const recentLimit = 100000

// pendRec is a record version committed but not indexed yet.
type pendRec struct {
	ver uint64
	buf *[]byte // the pooled buffer holding rec
	rec []byte
}

type pendDeliv struct {
	ver uint64
	v   [9]byte
}

// ixItem is a committed frame for the indexer.
type ixItem struct {
	kind  byte
	ver   uint64
	rrn   string
	tid   string
	dup   string
	at    time.Time
	ptr   ptr
	deliv [9]byte
	kv    [2][]byte // kindKV: the key and value
	// replayed marks a frame read back at Open: its key (kindKV) is set again.
	replayed bool
	end      pos
}

type writeReq struct {
	rec   []byte
	buf   *[]byte // rec's pooled buffer; it moves to the pending map on commit
	rrn   string
	first bool // the first write of a record (its indexes are written with it)
	tid   string
	dup   string // duplicate key, "" for none
	at    time.Time
	deliv []byte      // a delivery mark (9 bytes) for rrn instead of a record
	kv    [][2][]byte // keys to set in Badger (batch marks, checkpoints, PutDurable)
	done  chan error  // nil: do not wait (not durable yet when Write returns)

	ver   uint64 // set by the commit loop
	ptr   ptr
	end   pos
	kvErr error // Badger refused the keys (they are in the log; the indexer sets them)
}

// Open starts a journal with its log in opts.Dir and its index in db (opened by the
// caller; other subsystems may share it under other key prefixes). It first indexes
// whatever the log holds beyond the index (after a crash) and cuts off a torn last
// write.
func Open(db *badger.DB, opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("journal: no log directory given")
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.Gap <= 0 {
		opts.Gap = DefaultGap
	}
	if opts.IndexDelay <= 0 {
		opts.IndexDelay = DefaultIndexDelay
	}
	s := &Store{db: db, opts: opts, reqs: make(chan *writeReq, 8192), done: make(chan struct{}),
		pend: map[string]*pendRec{}, pendDeliv: map[string]pendDeliv{}, pendDup: map[string]string{},
		ixWake: make(chan struct{}, 1), ixUrgent: make(chan struct{}, 1), ixStop: make(chan struct{}),
		ixDone: make(chan struct{}), appliedCh: make(chan struct{}), touched: map[string]recState{},
		recent: [2]map[string]recState{{}, {}}}
	from, err := s.readPos(keyApplied)
	if err != nil {
		return nil, err
	}
	kvApplied, err := s.readPos(keyKVApplied)
	if err != nil {
		return nil, err
	}
	var batch []ixItem
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := s.index(batch)
		batch = batch[:0]
		return err
	}
	s.log, err = openLog(opts.Dir, opts.SegmentSize, opts.NoSync, from, func(kind byte, payload []byte, at ptr, end pos) error {
		it, err := replayItem(kind, payload, at, end)
		if err != nil {
			return err
		}
		// A key Badger kept is not set again: it may have been changed since.
		it.replayed = it.replayed && (kind != kindKV || end.after(kvApplied))
		if batch = append(batch, it); len(batch) >= 4096 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err == nil && !opts.NoSync {
		err = db.Sync()
	}
	if err != nil {
		if s.log != nil {
			s.log.close()
		}
		return nil, fmt.Errorf("journal: replay of the log in %s: %w", opts.Dir, err)
	}
	if err := s.startRRNs(); err != nil {
		s.log.close()
		return nil, err
	}
	go s.commitLoop()
	go s.indexLoop()
	return s, nil
}

// readPos reads a log position stored under key (zero if none).
func (s *Store) readPos(key string) (pos, error) {
	var p pos
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(key))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			var ok bool
			if p, ok = decodePos(v); !ok {
				return fmt.Errorf("log position %x is not 8 bytes", v)
			}
			return nil
		})
	})
	if err != nil {
		return pos{}, fmt.Errorf("journal: read %s: %w", key, err)
	}
	return p, nil
}

// replayItem turns a log frame read at Open back into the indexer's item.
func replayItem(kind byte, payload []byte, at ptr, end pos) (ixItem, error) {
	it := ixItem{kind: kind, ptr: at, end: end, replayed: true}
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
	if kind == kindFirst && rec.TID != "" && rec.STAN != "" && rec.DE7 != "" {
		it.dup = DupKey(rec.TID, rec.STAN, rec.DE7)
	}
	return it, nil
}

// OnSync sets a function called after every group commit with its size and duration.
func (s *Store) OnSync(f func(batch int, d time.Duration)) { s.onSync = f }

// OnIndexError sets a function called when writing index entries to Badger fails (the
// indexer retries every second; the entries stay readable from memory meanwhile).
// Set it before the first write.
func (s *Store) OnIndexError(f func(error)) { s.onIndexErr = f }

// Unindexed returns how many log frames are committed but not yet in the index.
func (s *Store) Unindexed() int { return int(s.committed.Load() - s.applied.Load()) }

// rrnLease is how many RRNs are taken at a time; the end of the lease is written
// through the log, so that no RRN is handed out twice, even after a machine crash.
const rrnLease = 10000

// startRRNs sets the RRN sequence past both the stored lease and the highest RRN the
// index holds (the log is indexed by now, so that covers every RRN ever written).
func (s *Store) startRRNs() error {
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyRRNSeq))
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			if err := item.Value(func(v []byte) error {
				if len(v) == 8 {
					s.rrnNext = binary.BigEndian.Uint64(v)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: []byte(prefixRecord)})
		defer it.Close()
		it.Seek(append([]byte(prefixRecord), 0xFF))
		if it.ValidForPrefix([]byte(prefixRecord)) {
			// An RRN is n+1 for sequence number n: the next n is the highest RRN.
			if top, err := strconv.ParseUint(string(it.Item().Key()[len(prefixRecord):]), 10, 64); err == nil && top > s.rrnNext {
				s.rrnNext = top
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("journal: RRN sequence: %w", err)
	}
	s.rrnLeased = s.rrnNext
	return nil
}

// NextRRN returns a new retrieval reference number: 12 digits, unique across restarts.
func (s *Store) NextRRN() (string, error) {
	s.rrnMu.Lock()
	if s.rrnNext >= s.rrnLeased {
		end := s.rrnNext + rrnLease
		if err := s.put(context.Background(), [2][]byte{[]byte(keyRRNSeq), binary.BigEndian.AppendUint64(nil, end)}); err != nil {
			s.rrnMu.Unlock()
			return "", fmt.Errorf("journal: next RRN: lease up to %d: %w", end, err)
		}
		s.rrnLeased = end
	}
	n := s.rrnNext
	s.rrnNext++
	s.rrnMu.Unlock()
	n = n%999999999999 + 1
	var b [12]byte
	for i := 11; i >= 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[:]), nil
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
	if len(b) > maxFrame {
		encodeBufs.Put(buf)
		return fmt.Errorf("journal: record %s encodes to %d bytes, more than a log frame holds (%d)", rec.RRN, len(b), maxFrame)
	}
	req := &writeReq{rec: b, buf: buf, rrn: rec.RRN, first: first, tid: rec.TID, at: rec.Received}
	if first && rec.TID != "" && rec.STAN != "" && rec.DE7 != "" && rec.OwnsDupKey() {
		req.dup = DupKey(rec.TID, rec.STAN, rec.DE7)
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
	select {
	case err := <-req.done:
		donePool.Put(req.done)
		return err
	case <-ctx.Done():
		// The record is still written; the caller just stops waiting.
		return fmt.Errorf("journal: waiting for sync of %s: %w", rec.RRN, ctx.Err())
	}
}

func (s *Store) enqueue(req *writeReq) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	s.reqs <- req
	return nil
}

func (s *Store) commitLoop() {
	defer close(s.done)
	batch := make([]*writeReq, 0, s.opts.MaxBatch)
	gapTimer := time.NewTimer(time.Hour)
	gapTimer.Stop()
	for {
		req, ok := <-s.reqs
		if !ok {
			return
		}
		batch = append(batch[:0], req)
		s.gather(&batch, gapTimer)
		s.groupAvg += (float64(len(batch)) - s.groupAvg) / 8
		start := time.Now()
		err := s.commit(batch)
		if err == nil {
			s.publish(batch)
		} else {
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
}

// windowFrom is the average group size from which groups gather for a Window: a load
// light enough for small groups is not made to wait.
const windowFrom = 4

// gather adds waiting writes to the batch: all that are queued, and with a Window,
// those that arrive less than Gap apart until the Window is over.
func (s *Store) gather(batch *[]*writeReq, gapTimer *time.Timer) {
	var deadline time.Time
	if s.opts.Window > 0 && s.groupAvg >= windowFrom {
		deadline = time.Now().Add(s.opts.Window)
	}
	for len(*batch) < s.opts.MaxBatch {
		select {
		case r, ok := <-s.reqs:
			if !ok {
				return
			}
			*batch = append(*batch, r)
			continue
		default:
		}
		if deadline.IsZero() {
			return
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return
		}
		gapTimer.Reset(min(wait, s.opts.Gap))
		select {
		case r, ok := <-s.reqs:
			gapTimer.Stop()
			if !ok {
				return
			}
			*batch = append(*batch, r)
		case <-gapTimer.C:
			return
		}
	}
}

// commit appends the batch's frames to the log with one write and one sync, and
// writes its Badger keys, if any, with one more.
func (s *Store) commit(batch []*writeReq) error {
	at, err := s.log.next()
	if err != nil {
		return err
	}
	b := s.frame[:0]
	var kvs int
	for _, r := range batch {
		kvs += len(r.kv)
		for _, kv := range r.kv {
			b = appendFrame(b, kindKV, binary.AppendUvarint(nil, uint64(len(kv[0]))), kv[0], kv[1])
			r.end = pos{at.seg, at.off + uint32(len(b))}
		}
		switch {
		case r.rec != nil:
			kind := kindUpdate
			if r.first {
				kind = kindFirst
			}
			r.ptr = ptr{seg: at.seg, off: at.off + uint32(len(b)) + frameHeader, n: uint32(len(r.rec))}
			b = appendFrame(b, kind, r.rec)
		case r.deliv != nil:
			b = appendFrame(b, kindDeliv, []byte(r.rrn), r.deliv)
		default:
			continue
		}
		r.end = pos{at.seg, at.off + uint32(len(b))}
	}
	if cap(b) <= 4<<20 {
		s.frame = b
	}
	if len(b) > 0 {
		if err := s.log.append(b); err != nil {
			return err
		}
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
	var last pos
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
		if err := wb.Set([]byte(keyKVApplied), last.encode()); err != nil {
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
	s.ixmu.Lock()
	s.pmu.Lock()
	for _, r := range batch {
		if r.rec == nil && r.deliv == nil {
			if r.kv != nil {
				// Set already (unless Badger refused them: then the indexer does);
				// queued so that j/applied moves past them.
				for i, kv := range r.kv {
					s.ver++
					it := ixItem{kind: kindKV, ver: s.ver, end: r.end, kv: kv, replayed: r.kvErr != nil}
					if i < len(r.kv)-1 {
						it.end = pos{} // only the last moves j/applied
					}
					s.ixq = append(s.ixq, it)
				}
			}
			continue
		}
		s.ver++
		r.ver = s.ver
		it := ixItem{ver: r.ver, rrn: r.rrn, end: r.end}
		if r.rec != nil {
			it.kind, it.tid, it.dup, it.at, it.ptr = kindUpdate, r.tid, r.dup, r.at, r.ptr
			if r.first {
				it.kind = kindFirst
			}
			if old := s.pend[r.rrn]; old != nil {
				encodeBufs.Put(old.buf)
			}
			s.pend[r.rrn] = &pendRec{ver: r.ver, buf: r.buf, rec: r.rec}
			if r.dup != "" {
				s.pendDup[r.dup] = r.rrn
			}
		} else {
			it.kind = kindDeliv
			copy(it.deliv[:], r.deliv)
			s.pendDeliv[r.rrn] = pendDeliv{ver: r.ver, v: it.deliv}
		}
		s.ixq = append(s.ixq, it)
	}
	s.pmu.Unlock()
	s.committed.Store(s.ver)
	s.ixmu.Unlock()
	select {
	case s.ixWake <- struct{}{}:
	default:
	}
}

// indexLoop writes the index entries of committed frames: it waits for work, lets
// IndexDelay's worth gather (unless a query is waiting), and writes it all at once.
func (s *Store) indexLoop() {
	defer close(s.ixDone)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-s.ixWake:
			timer.Reset(s.opts.IndexDelay)
			select {
			case <-timer.C:
			case <-s.ixUrgent:
				timer.Stop()
			case <-s.ixStop:
				timer.Stop()
				s.indexQueued()
				return
			}
		case <-s.ixUrgent:
		case <-s.ixStop:
			s.indexQueued()
			return
		}
		s.indexQueued()
	}
}

// indexQueued indexes what is queued and drops it from the pending maps.
func (s *Store) indexQueued() {
	s.ixmu.Lock()
	items := s.ixq
	s.ixq = s.ixSpare[:0]
	s.ixmu.Unlock()
	if len(items) == 0 {
		s.ixSpare = items
		return
	}
	if err := s.index(items); err != nil {
		// Keep the items (in front of what came since) and try again later; they
		// stay readable from the pending maps meanwhile.
		err = fmt.Errorf("journal: index %d log frames: %w", len(items), err)
		if s.onIndexErr != nil {
			s.onIndexErr(err)
		}
		s.ixmu.Lock()
		s.ixErr = err
		s.ixq = append(items, s.ixq...)
		s.ixSpare = nil
		ch := s.appliedCh
		s.appliedCh = make(chan struct{})
		s.ixmu.Unlock()
		close(ch)
		go func() { // retry in a while
			time.Sleep(time.Second)
			select {
			case s.ixWake <- struct{}{}:
			default:
			}
		}()
		return
	}
	s.pmu.Lock()
	for i := range items {
		it := &items[i]
		switch it.kind {
		case kindKV:
		case kindDeliv:
			if d, ok := s.pendDeliv[it.rrn]; ok && d.ver == it.ver {
				delete(s.pendDeliv, it.rrn)
			}
		default:
			if p := s.pend[it.rrn]; p != nil && p.ver == it.ver {
				delete(s.pend, it.rrn)
				encodeBufs.Put(p.buf)
			}
			if it.dup != "" && s.pendDup[it.dup] == it.rrn {
				delete(s.pendDup, it.dup)
			}
		}
	}
	// Inside the lock: a reader that misses the pending maps sees the progress too.
	s.applied.Store(items[len(items)-1].ver)
	s.pmu.Unlock()
	s.ixmu.Lock()
	s.ixErr = nil
	ch := s.appliedCh
	s.appliedCh = make(chan struct{})
	s.ixSpare = items[:0]
	s.ixmu.Unlock()
	close(ch)
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
	clear(s.touched)
	lastSecond := s.lastSecond // kept only if the batch is written
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
			s.touched[it.rrn] = st
			continue
		}
		st, err := s.state(it.rrn, it.kind == kindFirst)
		if err != nil {
			return err
		}
		st.ptr, st.hasPtr = it.ptr, true
		s.touched[it.rrn] = st
		if it.kind != kindFirst {
			continue
		}
		if it.dup != "" {
			if err := set([]byte(prefixDup+it.dup), []byte(it.rrn)); err != nil {
				return err
			}
		}
		if sec := it.at.Unix(); sec != lastSecond {
			lastSecond = sec
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
	for rrn, st := range s.touched {
		var err error
		switch {
		case st.hasPtr:
			v := st.ptr.appendTo(make([]byte, 0, 22))
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
	if err := set([]byte(keyApplied), items[len(items)-1].end.encode()); err != nil {
		return err
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	s.lastSecond = lastSecond
	for rrn, st := range s.touched {
		if len(s.recent[0]) >= recentLimit {
			s.recent[1], s.recent[0] = s.recent[0], make(map[string]recState, recentLimit)
		}
		s.recent[0][rrn] = st
	}
	return nil
}

// state returns what the index holds for rrn: from this batch, from the recently
// indexed records, or from Badger. A record's first version has nothing before it.
func (s *Store) state(rrn string, first bool) (recState, error) {
	if st, ok := s.touched[rrn]; ok {
		return st, nil
	}
	if first {
		return recState{}, nil
	}
	for _, m := range s.recent {
		if st, ok := m[rrn]; ok {
			return st, nil
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
	target := s.committed.Load()
	for s.applied.Load() < target {
		s.ixmu.Lock()
		ch, ixErr := s.appliedCh, s.ixErr
		s.ixmu.Unlock()
		if ixErr != nil {
			return ixErr
		}
		if s.applied.Load() >= target {
			break
		}
		select {
		case s.ixUrgent <- struct{}{}:
		default:
		}
		select {
		case <-ch:
		case <-s.ixDone:
			if s.applied.Load() < target {
				return ErrClosed
			}
		case <-ctx.Done():
			return fmt.Errorf("journal: waiting for the index: %w", ctx.Err())
		}
	}
	return nil
}

func recordKey(rrn string) []byte { return []byte(prefixRecord + rrn) }

func timeKey(prefix string, at time.Time, rrn string) []byte {
	k := make([]byte, 0, len(prefix)+8+len(rrn))
	k = append(k, prefix...)
	k = binary.BigEndian.AppendUint64(k, uint64(at.UnixNano()))
	return append(k, rrn...)
}

// Close writes what is queued, syncs, indexes everything and stops. The DB stays open.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.reqs)
	s.mu.Unlock()
	<-s.done
	close(s.ixStop)
	<-s.ixDone
	s.ixmu.Lock()
	err := s.ixErr
	s.ixmu.Unlock()
	// Give back the unused part of the lease (unsynced: losing it only skips RRNs).
	s.rrnMu.Lock()
	next := s.rrnNext
	s.rrnMu.Unlock()
	if serr := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set([]byte(keyRRNSeq), binary.BigEndian.AppendUint64(nil, next))
	}); err == nil {
		err = serr
	}
	if serr := s.db.Sync(); err == nil {
		err = serr
	}
	if cerr := s.log.close(); err == nil {
		err = cerr
	}
	return err
}

// Get returns the record with the RRN.
func (s *Store) Get(rrn string) (*Record, error) {
	var rec *Record
	gen := s.applied.Load()
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
	s.pmu.RLock()
	p := s.pend[rrn]
	var err error
	if p != nil {
		err = rec.UnmarshalBinary(p.rec)
	}
	d, pendingDeliv := s.pendDeliv[rrn]
	moved := s.applied.Load() != gen
	s.pmu.RUnlock()
	if moved && (p == nil || !pendingDeliv) {
		var fresh *Record
		gen = s.applied.Load()
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
			if v, err = s.log.read(at); err != nil {
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

func mergeDelivery(rec *Record, v []byte) {
	if len(v) != 9 {
		return
	}
	st := StateUndeliver
	if v[0] == 1 {
		st = StateResponded
	}
	at := time.Unix(0, int64(binary.BigEndian.Uint64(v[1:]))).UTC()
	// Keep the events in time order; the state is the delivery unless a later
	// event (a reversal) came after it.
	i := len(rec.Events)
	for i > 0 && rec.Events[i-1].At.After(at) {
		i--
	}
	rec.Events = append(rec.Events[:i], append([]Event{{State: st, At: at}}, rec.Events[i:]...)...)
	rec.State = rec.Events[len(rec.Events)-1].State
}

// Scan calls fn for each record matching q, in receive-time order, until fn returns
// an error or false.
func (s *Store) Scan(ctx context.Context, q Query, fn func(*Record) bool) error {
	if q.RRN != "" {
		rec, err := s.Get(q.RRN)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if matches(rec, q) {
			fn(rec)
		}
		return nil
	}
	if err := s.catchUp(ctx); err != nil {
		return err
	}
	if q.TID == "" {
		return s.scanByTime(ctx, q, fn)
	}
	prefix := prefixTerm + q.TID + "/"
	start := []byte(prefix)
	if !q.From.IsZero() {
		start = timeKey(prefix, q.From, "")
	}
	var end []byte
	if !q.To.IsZero() {
		end = timeKey(prefix, q.To, "")
	}
	v := &visitor{q: q, fn: fn}
	gen := s.applied.Load()
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: []byte(prefix)})
		defer it.Close()
		for it.Seek(start); it.ValidForPrefix([]byte(prefix)); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			k := it.Item().Key()
			if end != nil && bytes.Compare(k, end) >= 0 {
				return nil
			}
			rrn := string(k[len(prefix)+8:])
			rec, err := s.load(txn, gen, rrn, nil)
			if err != nil {
				return fmt.Errorf("journal: terminal index entry %s: %w", rrn, err)
			}
			if !v.visit(rec) {
				return nil
			}
		}
		return nil
	})
}

// visitor hands the records a query matches to its function, up to its limit.
type visitor struct {
	q  Query
	fn func(*Record) bool
	n  int
}

// visit passes rec on if it matches; it reports whether to go on.
func (v *visitor) visit(rec *Record) bool {
	if !matches(rec, v.q) {
		return true
	}
	if !v.fn(rec) {
		return false
	}
	v.n++
	return v.q.Limit == 0 || v.n < v.q.Limit
}

// timeSlack covers the milliseconds by which RRN order and receive-time order may
// differ (an RRN is taken just after the request is received).
const timeSlack = 2 * time.Second

// scanByTime walks the records in RRN order from the first RRN of the second before
// q.From (the sparse time index), keeping those received in [From, To) (in RRN order,
// which is receive order to within milliseconds).
func (s *Store) scanByTime(ctx context.Context, q Query, fn func(*Record) bool) error {
	v := &visitor{q: q, fn: fn}
	gen := s.applied.Load()
	return s.db.View(func(txn *badger.Txn) error {
		startRRN := ""
		if !q.From.IsZero() {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixTime)})
			it.Seek(timeKey(prefixTime, q.From.Add(-timeSlack), ""))
			if it.ValidForPrefix([]byte(prefixTime)) {
				startRRN = string(it.Item().Key()[len(prefixTime)+8:])
			}
			it.Close()
			if startRRN == "" {
				return nil // nothing received since From
			}
		}
		return s.walk(ctx, txn, gen, startRRN, func(rec *Record) bool {
			if !q.To.IsZero() && rec.Received.After(q.To.Add(timeSlack)) {
				return false
			}
			return v.visit(rec)
		})
	})
}

// walk calls fn for the records from RRN from on, in RRN order, until it returns false.
func (s *Store) walk(ctx context.Context, txn *badger.Txn, gen uint64, from string, fn func(*Record) bool) error {
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 100, Prefix: []byte(prefixRecord)})
	defer it.Close()
	for it.Seek(recordKey(from)); it.ValidForPrefix([]byte(prefixRecord)); it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		item := it.Item()
		rrn := string(item.Key()[len(prefixRecord):])
		v, err := item.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("journal: index entry %s: %w", rrn, err)
		}
		rec, err := s.load(txn, gen, rrn, v)
		if err != nil {
			return err
		}
		if !fn(rec) {
			return nil
		}
	}
	return nil
}

func matches(r *Record, q Query) bool {
	return (q.TID == "" || r.TID == q.TID) && (q.MID == "" || r.MID == q.MID) &&
		(q.From.IsZero() || !r.Received.Before(q.From)) && (q.To.IsZero() || r.Received.Before(q.To))
}

// ParseTime reads a query time: RFC 3339, a date (YYYY-MM-DD, UTC), or a duration
// before now ("15m", "24h").
func ParseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	return time.Time{}, fmt.Errorf("time %q: want RFC 3339, YYYY-MM-DD, unix seconds or a duration like 24h", s)
}

// DupKey is the key of the duplicate index: DE 41, DE 11 and DE 7.
func DupKey(tid, stan, de7 string) string { return tid + "/" + stan + "/" + de7 }

// LookupDuplicate returns the RRN of the request with the same DE 41, DE 11 and DE 7,
// if the journal holds one.
func (s *Store) LookupDuplicate(tid, stan, de7 string) (string, bool, error) {
	s.pmu.RLock()
	rrn, ok := s.pendDup[DupKey(tid, stan, de7)]
	s.pmu.RUnlock()
	if ok {
		return rrn, true, nil
	}
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(prefixDup + DupKey(tid, stan, de7)))
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
		return "", false, fmt.Errorf("journal: duplicate lookup %s/%s: %w", tid, stan, err)
	}
	return rrn, rrn != "", nil
}

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
		case len(p[0])+len(p[1])+binary.MaxVarintLen64 > maxFrame:
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

// ScanFrom calls fn for every record with an RRN at or above rrn, in RRN order.
func (s *Store) ScanFrom(ctx context.Context, rrn string, fn func(*Record) bool) error {
	if err := s.catchUp(ctx); err != nil {
		return err
	}
	gen := s.applied.Load()
	return s.db.View(func(txn *badger.Txn) error { return s.walk(ctx, txn, gen, rrn, fn) })
}

// LastReceived returns the receive time of the newest record (zero when empty).
func (s *Store) LastReceived() (time.Time, error) {
	if err := s.catchUp(context.Background()); err != nil {
		return time.Time{}, err
	}
	var t time.Time
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: []byte(prefixTime)})
		defer it.Close()
		seek := append([]byte(prefixTime), 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF)
		it.Seek(seek)
		if it.ValidForPrefix([]byte(prefixTime)) {
			k := it.Item().Key()
			if len(k) >= len(prefixTime)+8 {
				t = time.Unix(0, int64(binary.BigEndian.Uint64(k[len(prefixTime):]))).UTC()
			}
		}
		return nil
	})
	return t, err
}
