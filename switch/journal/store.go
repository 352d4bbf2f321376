package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/switch/journal/wal"
)

// The journal is a log and an index. Record versions and delivery marks are appended
// to the write-ahead log (package wal: segment files, one write and one fdatasync per
// group commit): that is all a transaction waits for. The index lives in Badger, under
// "j/":
//
//	j/r/<rrn>                          where the record's newest version is in the log,
//	                                   and the delivery of its response (state + unix nanos)
//	j/t/<unix nanos, 8 bytes BE><rrn>  sparse time index: the first record of each second
//	j/T/<tid>/<nanos><rrn>             terminal index
//	j/D/<tid>/<stan>/<de7>             duplicate index -> RRN
//	j/O/<node>/<rrn>                   a record whose reversal advice node owes (its OwedBy,
//	                                   not reversed): ScanOwed; rare, and written only for
//	                                   records that name a node
//	j/L/<unix nanos, 8 bytes BE><rrn>  a late change of a record: its first write
//	                                   (Record.Written), its reversal or its approval
//	                                   (Record.DecidedAt) more than LateAfter after it
//	                                   was received, by the change's time: ScanLate;
//	                                   rare (recovery after a long stop, payments
//	                                   journaled by the sweep of owed orders)
//	j/x/<rrn>                          delivery of the response, for a record not in the log
//	                                   (written whole to Badger by an earlier version)
//	j/applied                          the log position the index is complete up to
//	j/kvapplied                        the log position of the last key set in Badger
//	j/B/<tid>                          time of the terminal's last batch close
//	j/ckpt                             recovery checkpoint: no record below this RRN is open
//	j/seq/rrn                          RRN sequence (j/seq/rrn/<prefix> with Options.RRNPrefix)
//
// An indexer goroutine writes the index entries of committed log frames in batches of
// hundreds, without a sync, together with j/applied. Until a frame is indexed it is
// served from memory (the pending maps), so a record is readable as soon as Write
// returns. After a crash, Open re-indexes the log from j/applied on: index writes
// are idempotent, and Badger recovers a prefix of its unsynced writes, so the index
// and j/applied are always consistent with each other.
//
// Retention (purge.go) removes whole old segments from the start of the log, with the
// index entries of the records whose newest version is in them; a read of a removed
// segment is ErrNotFound, never damage.
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
	prefixOwed   = "j/O/"
	prefixLate   = "j/L/"
	prefixBatch  = "j/B/"
	keyCkpt      = "j/ckpt"
	keyApplied   = "j/applied"
	keyKVApplied = "j/kvapplied"
	keyIndexKSN  = "j/indexksn" // set once a store was opened with Options.IndexKSN
)

// ErrNotFound is returned for an RRN the journal does not hold.
var ErrNotFound = errors.New("journal: no such record")

// ErrClosed is returned by writes after Close.
var ErrClosed = wal.ErrClosed

// ErrUnavailable is wrapped by the writes of a journal that cannot make a record
// durable now (a cluster journal without a quorum). The write's outcome is unknown:
// the record may still become durable later. The pipeline answers such a request 91
// and never approves it.
var ErrUnavailable = errors.New("journal unavailable")

// ErrOverloaded is wrapped, with ErrUnavailable, by the first write of a request
// that a journal refuses at once because it cannot keep up (a cluster node whose
// journal applier is behind the stream: cjournal's shedding); nothing of the record
// was written. The pipeline answers 91 journal-overloaded and keeps no record of it
// for the journal's return: writing one would add to the load that was refused.
var ErrOverloaded = errors.New("journal overloaded")

// DuplicateError is returned by the first write of a request record when the journal
// already holds a request with the same DE 41 + 11 + 7, written by another node of a
// cluster (or reaching it at the same moment): the record was not written. The
// pipeline answers the request with the first one's answer.
type DuplicateError struct {
	Key string // the duplicate key (DupKey)
	RRN string // the RRN of the request journaled first
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("journal: request %s is a duplicate of %s, journaled first", e.Key, e.RRN)
}

// KSNReplayError is returned by a cluster journal's first write of a request whose
// DUKPT KSN a record of another RRN carried earlier in the cluster's order (a
// replay that reached this node before it had applied that record): nothing of the
// request is kept, and it must be declined as a replay.
type KSNReplayError struct {
	RRN string // the record that carried the KSN first
}

func (e *KSNReplayError) Error() string {
	return fmt.Sprintf("journal: the request's DUKPT KSN was carried first by record %s (a replay)", e.RRN)
}

// The kinds of the journal's frames in the log.
const (
	kindFirst  byte = 1 // a record's first version: its indexes are written with it
	kindUpdate byte = 2 // a later version of a record
	kindDeliv  byte = 3 // a delivery mark: the RRN, then a state byte and unix nanos
	kindKV     byte = 4 // a key set in Badger directly: uvarint key length, key, value
	maxKind         = kindKV
)

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
	// Prealloc is how far ahead of the appends the log's active segment is kept
	// zero-filled (wal.Options.Prealloc: 0 the default, negative none).
	Prealloc int64
	// OnPreallocError is called when zero-filling the log ahead of the appends fails
	// (wal.Options.OnPreallocError): most likely the disk is filling up.
	OnPreallocError func(error)
	// OnBroken is called once, from the committer, when the log starts refusing every
	// write until a restart (Store.Broken).
	OnBroken func(error)
	// MaxBatch is the most records written with one sync (default 4096).
	MaxBatch int
	// Window is the longest the committer lets a group gather before its sync, and
	// Gap how long the queue may stay empty before it syncs anyway. With Window 0 it
	// syncs as soon as the queue is empty (while one sync runs, the next group gathers
	// by itself). The Window applies only once writes arrive fast enough for it to
	// gather 8 of them (wal.WindowFrom: the measured rate times the Window): then a
	// group gathers while writes come less than a gap apart, up to the Window (fewer,
	// larger syncs); at a light load nothing waits. Defaults: Window 0, Gap 50 µs.
	Window time.Duration
	Gap    time.Duration
	// WindowCPU and Busy: with both set, the Window engages only while the CPUs are
	// busy too, from a share of WindowCPU (0 to 1) of their time as Busy reports it
	// (cpubusy.Meter.Busy) until it falls wal.BusyBand below (wal.GroupOptions):
	// on a machine with CPU to spare a write is synced without waiting for a group.
	// A WindowCPU of 0 leaves the Window to the arrival rate alone.
	WindowCPU float64
	Busy      func() (share float64, known bool)
	// IndexDelay is how long the indexer lets committed frames gather before it writes
	// their index entries (default 200 ms, so that most transactions are complete and
	// their versions share one entry). Queries wait for the indexer; reads by RRN
	// and duplicate lookups do not.
	IndexDelay time.Duration
	// NoSync skips the fsyncs (tests of logic only; never in production).
	NoSync bool
	// RRNPrefix is a single digit "1" to "9" that starts every RRN this store hands
	// out, followed by an 11-digit sequence: a cluster node's number, so that nodes
	// sharing one index (each holds the others' records too) never hand out the same
	// RRN without asking each other. Empty: 12-digit sequence numbers, as a single
	// node has always had.
	RRNPrefix string
	// IndexKSN indexes the DUKPT KSN of the first version of each record that owns
	// its duplicate key beside that key (KSNKey, for LookupKSN): a cluster node's
	// applier refuses a
	// request whose KSN a record of another RRN carried earlier in the stream's
	// order (switch/cluster/cjournal). A single node leaves it off: its HSM's
	// counters refuse a replayed KSN.
	IndexKSN bool
	// LateReceipt is how long after its RRN was taken a record may be received: a
	// merchant-presented payment has its order's ID for RRN, taken when the order
	// was made, and is received when it is paid, up to qr.orders.ttl later. A time
	// query walks each RRN class from that much before its start, so that such a
	// payment received within the query is found (Scan). Default
	// DefaultLateReceipt; at most a day.
	LateReceipt time.Duration

	// indexWrite, in this package's tests, stands in for the index's Badger writes;
	// busyQuiet, when set, for the constant.
	indexWrite func([]ixItem) error
	busyQuiet  time.Duration
}

// DefaultLateReceipt is Options.LateReceipt when it is not set: qr.orders.ttl's
// default.
const DefaultLateReceipt = 5 * time.Minute

// Store is the journal: a write-ahead log with group commit, indexed in Badger. It
// runs two goroutines, both started by Open and joined by Close: the log's committer
// (write.go) and the indexer (indexer.go).
type Store struct {
	db   *badger.DB
	opts Options
	// brokenTold: OnBroken was called (the committer's only).
	brokenTold bool
	log        *wal.Log
	commits    *wal.Committer[*writeReq]
	closed     atomic.Bool

	onSync     func(batch int, d time.Duration)
	onIndexErr func(error)
	onVersion  atomic.Pointer[func(Version)] // OnVersion's
	ver        uint64                        // the last version handed out (committer only)

	rrn  rrnSeq   // durable.go
	pend pending  // read.go: frames committed but not indexed yet
	ix   indexer  // indexer.go
	dups *dupKeys // dupkeys.go: the duplicate keys, a Bloom filter

	onDamage     func(Unreadable) // OnDamage's (damage.go)
	damagedReads atomic.Uint64    // DamagedReads

	commitFailures atomic.Uint64         // groups whose commit failed (CommitFailures)
	refuse         atomic.Pointer[error] // why new records are refused (RefuseNew)

	purgeMu sync.Mutex // one Purge at a time (purge.go)
}

// keepIndexKSN sets opts.IndexKSN when the store was opened with it before, and
// notes it in Badger when it is set.
func keepIndexKSN(db *badger.DB, opts *Options) error {
	noted := false
	err := db.View(func(txn *badger.Txn) error {
		_, err := txn.Get([]byte(keyIndexKSN))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		noted = err == nil
		return err
	})
	switch {
	case err != nil:
	case noted:
		opts.IndexKSN = true
	case opts.IndexKSN:
		err = db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyIndexKSN), []byte{1}) })
	}
	if err != nil {
		return fmt.Errorf("journal: read or note %s: %w", keyIndexKSN, err)
	}
	return nil
}

// Open starts a journal with its log in opts.Dir and its index in db (opened by the
// caller; other subsystems may share it under other key prefixes). It first indexes
// whatever the log holds beyond the index (after a crash) and cuts off a torn last
// write. A log that holds frames while db holds no j/applied (its database lost or
// replaced: an empty Badger) is refused, before anything is written; a new log
// gets j/applied at once. Until 7 December 2026 such a log was replayed from its
// first frame into the empty database, setting again keys changed or deleted since.
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
	if opts.LateReceipt <= 0 {
		opts.LateReceipt = DefaultLateReceipt
	}
	if opts.LateReceipt > writtenLag {
		return nil, fmt.Errorf("journal: late receipt %s: at most %s (qr.orders.ttl)", opts.LateReceipt, writtenLag)
	}
	if opts.IndexDelay <= 0 {
		opts.IndexDelay = DefaultIndexDelay
	}
	if p := opts.RRNPrefix; p != "" && (len(p) != 1 || p[0] < '1' || p[0] > '9') {
		return nil, fmt.Errorf("journal: RRN prefix %q is not a single digit from 1 to 9", p)
	}
	// A store once opened with IndexKSN (a cluster node's) keeps it, so that a tool
	// that opens it alone (switchyard journal) and replays the log's tail does not
	// leave KSNs out of its index.
	if err := keepIndexKSN(db, &opts); err != nil {
		return nil, err
	}
	s := &Store{db: db, opts: opts,
		pend: pending{recs: map[string]*pendRec{}, deliv: map[string]pendDeliv{}, dup: map[string]string{}},
		ix: indexer{wake: make(chan struct{}, 1), urgent: make(chan struct{}, 1), stop: make(chan struct{}),
			done: make(chan struct{}), appliedCh: make(chan struct{}), touched: map[string]recState{},
			recent: [2]map[uint64]recState{{}, {}}}}
	from, err := s.readPos(keyApplied)
	if err != nil {
		return nil, err
	}
	indexed, err := s.has(keyApplied)
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
	s.log, err = wal.Open(opts.Dir, wal.Options{SegmentSize: opts.SegmentSize, Prealloc: opts.Prealloc, OnPreallocError: opts.OnPreallocError, MaxKind: maxKind, NoSync: opts.NoSync}, from, func(f wal.Frame) error {
		if !indexed {
			return errUnindexed // before anything of the frame is written
		}
		it, err := replayItem(f, opts.IndexKSN)
		if err != nil {
			return err
		}
		// A key Badger kept is not set again: it may have been changed since.
		it.replayed = it.replayed && (f.Kind != kindKV || f.End.After(kvApplied))
		if batch = append(batch, it); len(batch) >= 4096 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err == nil && !indexed {
		// A new log: from now on a log with frames always has its index's position
		// in Badger, which is synced before the first frame can be written.
		err = db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyApplied), wal.Pos{}.Encode()) })
	}
	if err == nil && !opts.NoSync {
		err = db.Sync()
	}
	if errors.Is(err, errUnindexed) {
		return nil, fmt.Errorf("journal: the log in %s holds frames, but the database has no %s (the log position its index is complete up to): the database's files were lost or replaced (a missing MANIFEST makes Badger start an empty one), and a start would rebuild it from the log's first frame, setting again keys long changed or deleted (store-and-forward advices the issuer acknowledged would be sent again); restore the data directory from its backup, then start again", opts.Dir, keyApplied)
	}
	if err != nil {
		if s.log != nil {
			s.log.Close()
		}
		return nil, fmt.Errorf("journal: replay of the log in %s: %w", opts.Dir, err)
	}
	if s.dups, err = loadDupKeys(db); err != nil {
		s.log.Close()
		return nil, err
	}
	if err := s.startRRNs(); err != nil {
		s.log.Close()
		return nil, err
	}
	s.commits = wal.StartCommitter(wal.GroupOptions{MaxBatch: opts.MaxBatch, Window: opts.Window, Gap: opts.Gap, Busy: opts.Busy, BusyFrom: opts.WindowCPU}, s.commitGroup)
	s.ix.write = opts.indexWrite
	go s.indexLoop()
	return s, nil
}

// errUnindexed stops the replay of a log whose frames Badger holds no index position
// for (Open).
var errUnindexed = errors.New("journal: the log holds frames, the database no index position")

// has reports whether Badger holds key.
func (s *Store) has(key string) (bool, error) {
	found := false
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get([]byte(key))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("journal: read %s: %w", key, err)
	}
	return found, nil
}

// readPos reads a log position stored under key (zero if none).
func (s *Store) readPos(key string) (wal.Pos, error) {
	var p wal.Pos
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
			if p, ok = wal.DecodePos(v); !ok {
				return fmt.Errorf("log position %x is not 8 bytes", v)
			}
			return nil
		})
	})
	if err != nil {
		return wal.Pos{}, fmt.Errorf("journal: read %s: %w", key, err)
	}
	return p, nil
}

// OnSync sets a function called after every group commit with its size and duration.
func (s *Store) OnSync(f func(batch int, d time.Duration)) { s.onSync = f }

// OnIndexError sets a function called when writing index entries to Badger fails (the
// indexer retries every second; the entries stay readable from memory meanwhile).
// Set it before the first write.
func (s *Store) OnIndexError(f func(error)) { s.onIndexErr = f }

// OnVersion sets a function told of every record version written through this
// store (a cluster node's own and, as its applier writes them, the other nodes'),
// once the version is committed and readable and before its writer is told: a
// query that starts after the function was told of a version finds that version
// or a later one. It runs on the committer, which waits for it: it must be quick
// and must not wait for a journal write. Versions written before it is set are
// not told (a query finds them).
func (s *Store) OnVersion(f func(Version)) { s.onVersion.Store(&f) }

// Version is what OnVersion tells of a record version: what the record counts for
// in a merchant's sums (an approved purchase, less what was reversed or refunded).
type Version struct {
	RRN, TID, Type   string
	Received         time.Time
	Amount, Refunded int64
	// Approved and Reversed are the record's Approved() and Reversed().
	Approved, Reversed bool
}

// versionOf is what OnVersion is told of rec.
func versionOf(rec *Record) Version {
	return Version{RRN: rec.RRN, TID: rec.TID, Type: rec.Type, Received: rec.Received, Amount: rec.Amount, Refunded: rec.Refunded,
		Approved: rec.Approved(), Reversed: rec.Reversed()}
}

// WriteRate returns the writes a second into the group commit, as its committer last
// measured them, and whether groups then gather for the Window (wal.Committer.Rate).
func (s *Store) WriteRate() (perSecond float64, windowEngaged bool) { return s.commits.Rate() }

// Unindexed returns how many log frames are committed but not yet in the index.
func (s *Store) Unindexed() int { return int(s.ix.committed.Load() - s.ix.applied.Load()) }

// Close writes what is queued, syncs, indexes everything and stops: it returns once
// the committer and the indexer have ended. The DB stays open.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.commits.Close()
	close(s.ix.stop)
	<-s.ix.done
	s.ix.mu.Lock()
	err := s.ix.err
	s.ix.mu.Unlock()
	// Give back the unused part of the lease (unsynced: losing it only skips RRNs).
	s.rrn.mu.Lock()
	next := s.rrn.next
	s.rrn.mu.Unlock()
	if serr := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set([]byte(s.rrnSeqKey()), binary.BigEndian.AppendUint64(nil, next))
	}); err == nil {
		err = serr
	}
	if serr := s.db.Sync(); err == nil {
		err = serr
	}
	if cerr := s.log.Close(); err == nil {
		err = cerr
	}
	return err
}
