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
)

// Key layout, all under "j/":
//
//	j/r/<rrn>                          the record (binary, see codec.go)
//	j/t/<unix nanos, 8 bytes BE><rrn>  sparse time index: the first record of each second
//	j/T/<tid>/<nanos><rrn>             terminal index
//	j/D/<tid>/<stan>/<de7>             duplicate index -> RRN
//	j/x/<rrn>                          delivery of the response: state byte + unix nanos
//	j/B/<tid>                          time of the terminal's last batch close
//	j/ckpt                             recovery checkpoint: no record below this RRN is open
//	j/seq/rrn                          RRN sequence
const (
	prefixRecord = "j/r/"
	prefixTime   = "j/t/"
	prefixTerm   = "j/T/"
	keyRRNSeq    = "j/seq/rrn"
	prefixDup    = "j/D/"
	prefixDeliv  = "j/x/"
	prefixBatch  = "j/B/"
	keyCkpt      = "j/ckpt"
)

// ErrNotFound is returned for an RRN the journal does not hold.
var ErrNotFound = errors.New("journal: no such record")

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("journal: closed")

// Options tune the group commit.
type Options struct {
	// MaxBatch is the most records written with one sync (default 4096).
	MaxBatch int
	// Window is how long the committer waits for more records before a sync when the
	// batch is small (default 0: sync as soon as the queue is empty; while one sync runs,
	// the next batch gathers by itself).
	Window time.Duration
	// NoSync skips the fsync (tests of logic only; never in production).
	NoSync bool
}

// Store is the Badger journal. It writes in groups: every record handed to Write
// in the same window is committed by one Badger batch and one sync.
type Store struct {
	db   *badger.DB
	opts Options
	seq  *badger.Sequence

	reqs   chan *writeReq
	done   chan struct{}
	mu     sync.RWMutex
	closed bool

	onSync func(batch int, d time.Duration)
	// lastSecond is the last second given a time index entry (commit loop only).
	lastSecond int64
}

type writeReq struct {
	rec   []byte
	buf   *[]byte // rec's pooled buffer, returned after the commit
	rrn   string
	index bool // write the indexes (first write of a record)
	tid   string
	mid   string
	dup   string // duplicate key, "" for none
	at    time.Time
	kv    [][2][]byte // other keys to set (batch marks, checkpoints)
	done  chan error  // nil: do not wait (not durable yet when Write returns)
}

// Open starts a journal on db (opened by the caller; other subsystems may share it
// under other key prefixes).
func Open(db *badger.DB, opts Options) (*Store, error) {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 4096
	}
	seq, err := db.GetSequence([]byte(keyRRNSeq), 10000)
	if err != nil {
		return nil, fmt.Errorf("journal: RRN sequence: %w", err)
	}
	s := &Store{db: db, opts: opts, seq: seq, reqs: make(chan *writeReq, 8192), done: make(chan struct{})}
	go s.commitLoop()
	return s, nil
}

// OnSync sets a function called after every group commit with its size and duration.
func (s *Store) OnSync(f func(batch int, d time.Duration)) { s.onSync = f }

// NextRRN returns a new retrieval reference number: 12 digits, unique across restarts.
func (s *Store) NextRRN() (string, error) {
	n, err := s.seq.Next()
	if err != nil {
		return "", fmt.Errorf("journal: next RRN: %w", err)
	}
	n = n%999999999999 + 1
	var b [12]byte
	for i := 11; i >= 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[:]), nil
}

var donePool = sync.Pool{New: func() any { return make(chan error, 1) }}

// encodeBufs holds record encoding buffers; a buffer goes back after its group commit
// (Badger has copied the value by then).
var encodeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Write stores rec. With durable, it returns once rec is synced to disk; otherwise it
// returns at once and rec is written with the next group. The first write of a record
// (first = true) also writes its indexes.
func (s *Store) Write(ctx context.Context, rec *Record, first, durable bool) error {
	buf := encodeBufs.Get().(*[]byte)
	b, err := rec.AppendBinary((*buf)[:0])
	if err != nil {
		return fmt.Errorf("journal: encode record %s: %w", rec.RRN, err)
	}
	*buf = b
	req := &writeReq{rec: b, buf: buf, rrn: rec.RRN, index: first, tid: rec.TID, mid: rec.MID, at: rec.Received}
	if first && rec.TID != "" && rec.STAN != "" && rec.DE7 != "" {
		req.dup = DupKey(rec.TID, rec.STAN, rec.DE7)
	}
	if durable {
		req.done = donePool.Get().(chan error)
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	s.reqs <- req
	s.mu.RUnlock()
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

func (s *Store) commitLoop() {
	defer close(s.done)
	batch := make([]*writeReq, 0, s.opts.MaxBatch)
	for {
		req, ok := <-s.reqs
		if !ok {
			return
		}
		batch = append(batch[:0], req)
		var timer <-chan time.Time
		if s.opts.Window > 0 {
			timer = time.After(s.opts.Window)
		}
	gather:
		for len(batch) < s.opts.MaxBatch {
			if timer != nil {
				select {
				case r, ok := <-s.reqs:
					if !ok {
						break gather
					}
					batch = append(batch, r)
				case <-timer:
					break gather
				}
				continue
			}
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break gather
				}
				batch = append(batch, r)
			default:
				break gather
			}
		}
		start := time.Now()
		err := s.commit(batch)
		for _, r := range batch {
			if r.buf != nil {
				encodeBufs.Put(r.buf)
			}
			if r.done != nil {
				r.done <- err
			}
		}
		if s.onSync != nil {
			s.onSync(len(batch), time.Since(start))
		}
	}
}

func (s *Store) commit(batch []*writeReq) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, r := range batch {
		for _, kv := range r.kv {
			if err := wb.Set(kv[0], kv[1]); err != nil {
				return fmt.Errorf("journal: write %s: %w", kv[0], err)
			}
		}
		if r.rec == nil {
			continue
		}
		if err := wb.Set(recordKey(r.rrn), r.rec); err != nil {
			return fmt.Errorf("journal: write %s: %w", r.rrn, err)
		}
		if r.dup != "" {
			if err := wb.Set([]byte(prefixDup+r.dup), []byte(r.rrn)); err != nil {
				return fmt.Errorf("journal: duplicate index %s: %w", r.rrn, err)
			}
		}
		if r.index {
			for _, k := range s.indexKeys(r) {
				if err := wb.Set(k, nil); err != nil {
					return fmt.Errorf("journal: index %s: %w", r.rrn, err)
				}
			}
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("journal: flush batch of %d: %w", len(batch), err)
	}
	if s.opts.NoSync {
		return nil
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("journal: sync: %w", err)
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

// indexKeys returns the index entries of a record's first write: its terminal's, and
// for the first record of a second, the time index's.
func (s *Store) indexKeys(r *writeReq) [][]byte {
	var keys [][]byte
	if sec := r.at.Unix(); sec != s.lastSecond {
		s.lastSecond = sec
		keys = append(keys, timeKey(prefixTime, r.at, r.rrn))
	}
	if r.tid != "" {
		keys = append(keys, timeKey(prefixTerm+r.tid+"/", r.at, r.rrn))
	}
	return keys
}

// Close writes what is queued, syncs and stops the committer. The DB stays open.
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
	err := s.seq.Release()
	if serr := s.db.Sync(); err == nil {
		err = serr
	}
	return err
}

// Get returns the record with the RRN.
func (s *Store) Get(rrn string) (*Record, error) {
	var rec Record
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(recordKey(rrn))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%w: RRN %s", ErrNotFound, rrn)
		}
		if err != nil {
			return err
		}
		if err := item.Value(rec.UnmarshalBinary); err != nil {
			return err
		}
		return mergeDelivery(txn, &rec)
	})
	if err != nil {
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
	req := &writeReq{kv: [][2][]byte{{[]byte(prefixDeliv + rrn), v}}}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	s.reqs <- req
	return nil
}

func mergeDelivery(txn *badger.Txn, rec *Record) error {
	item, err := txn.Get([]byte(prefixDeliv + rec.RRN))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return item.Value(func(v []byte) error {
		if len(v) != 9 {
			return nil
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
		return nil
	})
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
			item, err := txn.Get(recordKey(rrn))
			if err != nil {
				return fmt.Errorf("journal: index points to missing record %s: %w", rrn, err)
			}
			var rec Record
			if err := item.Value(rec.UnmarshalBinary); err != nil {
				return fmt.Errorf("journal: decode record %s: %w", rrn, err)
			}
			if more, err := v.visit(txn, &rec); !more || err != nil {
				return err
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
func (v *visitor) visit(txn *badger.Txn, rec *Record) (bool, error) {
	if !matches(rec, v.q) {
		return true, nil
	}
	if err := mergeDelivery(txn, rec); err != nil {
		return false, err
	}
	if !v.fn(rec) {
		return false, nil
	}
	v.n++
	return v.q.Limit == 0 || v.n < v.q.Limit, nil
}

// timeSlack covers the milliseconds by which RRN order and receive-time order may
// differ (an RRN is taken just after the request is received).
const timeSlack = 2 * time.Second

// scanByTime walks the records in RRN order from the first RRN of the second before
// q.From (the sparse time index), keeping those received in [From, To) (in RRN order,
// which is receive order to within milliseconds).
func (s *Store) scanByTime(ctx context.Context, q Query, fn func(*Record) bool) error {
	v := &visitor{q: q, fn: fn}
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
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 64, Prefix: []byte(prefixRecord)})
		defer it.Close()
		for it.Seek(recordKey(startRRN)); it.ValidForPrefix([]byte(prefixRecord)); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			var rec Record
			if err := it.Item().Value(rec.UnmarshalBinary); err != nil {
				return fmt.Errorf("journal: decode record %s: %w", it.Item().Key(), err)
			}
			if !q.To.IsZero() && rec.Received.After(q.To.Add(timeSlack)) {
				return nil
			}
			if more, err := v.visit(txn, &rec); !more || err != nil {
				return err
			}
		}
		return nil
	})
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
	var rrn string
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

// put writes extra keys through the group commit, durably.
func (s *Store) put(ctx context.Context, kv ...[2][]byte) error {
	req := &writeReq{kv: kv, done: donePool.Get().(chan error)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	s.reqs <- req
	s.mu.RUnlock()
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
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 100, Prefix: []byte(prefixRecord)})
		defer it.Close()
		for it.Seek(recordKey(rrn)); it.ValidForPrefix([]byte(prefixRecord)); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			var rec Record
			if err := it.Item().Value(rec.UnmarshalBinary); err != nil {
				return fmt.Errorf("journal: decode record %s: %w", it.Item().Key(), err)
			}
			if err := mergeDelivery(txn, &rec); err != nil {
				return err
			}
			if !fn(&rec) {
				return nil
			}
		}
		return nil
	})
}

// LastReceived returns the receive time of the newest record (zero when empty).
func (s *Store) LastReceived() (time.Time, error) {
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
