package cjournal

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/cluster"
	"github.com/switchyard/switchyard/switch/journal"
)

// StreamName is the JetStream stream of the cluster's journal.
const StreamName = "JOURNAL"

// The defaults of Options.
const (
	DefaultReplicas   = 3
	DefaultMaxAge     = 35 * 24 * time.Hour
	DefaultAckTimeout = 5 * time.Second
	// DefaultGroupPause is Options.GroupPause's default (cluster.group_pause's).
	DefaultGroupPause = cluster.DefaultGroupPause
	// DuplicateWindow is the stream's Nats-Msg-Id window: the single node's
	// duplicate filter looks back as far.
	DuplicateWindow = 5 * time.Minute
)

// keyApplied is the local Badger key of the last stream sequence the applier
// applied (8 bytes, big endian), written through the journal's log.
const keyApplied = "c/journal/applied"

// Options configure a cluster journal.
type Options struct {
	// Node is this node's number, 1 to 9 (cluster.Config.Node); the store must have
	// been opened with journal.Options.RRNPrefix = the same digit.
	Node int
	// Replicas is the stream's number of copies (cluster.Config.Replicas; default 3).
	Replicas int
	// MaxAge is how long the stream keeps a record version (default 35 days): a node
	// that comes back with an empty disk within it gets everything back.
	MaxAge time.Duration
	// AckTimeout bounds a durable write's wait for the stream's acknowledgement when
	// its context has no earlier deadline, and every asynchronous publish (default 5 s).
	AckTimeout time.Duration
	// GroupPause is the least time between two group messages while entries come
	// fast enough for it to gather 32 of them (default 10 ms; negative: none). At a
	// lower rate a group goes as soon as one of the two in flight is acknowledged.
	GroupPause time.Duration
	// Fence, if set, is asked before every record's first version: an error (the
	// node's lease lost for good: another process runs as this node, or a survivor
	// recovered it after its lease lapsed) refuses it with journal.ErrUnavailable,
	// so that the node starts no transaction; later versions of those in flight
	// still go (the pipeline asks itself whether it may finish them: see
	// pipeline.Config.LeaseLost). It is called on every request: it must be cheap
	// while the lease is known held (the server's is cluster.Lease.Confirm,
	// which waits only when it is not: after a pause of the process).
	Fence func(ctx context.Context) error
	// OnRemote, if set, is called by the applier for each record version of another
	// node it applies to the local store (the server feeds the final ones to the risk
	// engine's velocity and the pipeline's duplicate filter). It runs on the applier's
	// goroutine: whatever it takes delays the applier (the server's raise of a DUKPT
	// counter syncs the key store when the counter rises).
	// prev is the version the local store held before (nil: none), so that the first
	// final version of a record can be told from its later updates; latest reads
	// another record as the applier has applied it (the original of a void). A
	// process hands each stream entry to it once: when the applier applies the
	// stream again after a failed commit of the local store, the entries it had
	// already handed are written to the store again but not handed again (a new
	// process is handed again what lies past the position it starts from).
	OnRemote func(rec, prev *journal.Record, latest Latest)
	// OnRestored, if set, is called by the applier for each version of this node's
	// own record that the local store lacked or held an older version of (a node
	// that lost its disk gets its records back from the stream), on the applier's
	// goroutine, with prev and latest as OnRemote's: the server folds them into
	// velocity counters that did not come back with the disk. Like OnRemote, it is
	// handed each stream entry once a process.
	OnRestored func(rec, prev *journal.Record, latest Latest)
	// BeforeFlush, if set, is called by the applier before it writes the stream
	// position that covers what it applied (about every 10 ms while records come, on
	// its goroutine): what OnRemote and OnRestored left not yet durable must be
	// when it returns. An error keeps the position where it was (after a crash the
	// applier applies those messages again, OnRemote included); the applier logs it,
	// pauses and tries again.
	BeforeFlush func() error
	// ImportWait, if set, returns once every running node's applier has applied the
	// stream message at seq, with those nodes' numbers, or with an error (wrapping
	// ErrImportBehind when an applier stopped moving): Import calls it for each
	// message it publishes, before publishing the one after next, so that an import
	// goes at the pace of the slowest applier rather than leaving the appliers behind
	// the stream (every request on a node waits for its applier: a node far behind
	// answers 91). Nil: this node's applier alone (WaitApplied, at most 2 minutes).
	ImportWait func(ctx context.Context, seq uint64) (nodes []int, err error)
	// ShedAfter: while a message of this node that the stream acknowledged more
	// than ShedAfter ago is not applied by this node's applier, Admit refuses new authorizations and financial requests (ErrBehind,
	// wrapping journal.ErrUnavailable and journal.ErrOverloaded: the pipeline
	// answers 91 before their checks and rules) instead of letting them publish
	// and wait their AckTimeout (shed.go). 0: DefaultShedAfter; negative: never.
	ShedAfter time.Duration
	// Logger receives the applier's and the background publisher's errors.
	Logger zerolog.Logger
}

// Latest reads the newest version of a record that the applier has applied, for
// OnRemote and OnRestored, on the applier's goroutine: the local store shows a
// version the applier wrote only once its group is committed (a few milliseconds
// later, and a node rebuilt on an empty disk meets a void right behind the version
// of its original that names it). The record it returns may be the one a hook was
// handed earlier: it must not be modified.
type Latest func(rrn string) (*journal.Record, error)

// Journal is a node's replicated journal; it satisfies every role of pipeline.Journal.
// It runs four goroutines, all started by Open and joined by Close: the applier
// (apply.go), the grouper and its acker (group.go) and the resender of background
// publishes (publish.go).
type Journal struct {
	store  *journal.Store
	db     *badger.DB
	js     jetstream.JetStream
	stream jetstream.Stream
	locks  jetstream.KeyValue // LockBucket
	held   heldLocks          // the locks this node holds (locks.go)
	opts   Options
	node   string // Options.Node as a digit
	cn     *cluster.Node
	log    zerolog.Logger

	// publishAsync sends a message and returns its acknowledgement's future:
	// js.PublishMsgAsync (BenchmarkWrite swaps in a group committer to compare).
	publishAsync func(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)

	idPrefix string        // Nats-Msg-Id prefix of this process: node and boot nonce
	idSeq    atomic.Uint64 // the Nats-Msg-Id counter

	encHint atomic.Int64 // Write's encodeHint: the largest encoding noted

	// Background publishes (non-durable versions, delivery marks): publish.go.
	asyncMu     sync.RWMutex
	asyncClosed bool
	async       chan asyncPub
	asyncDone   chan struct{}

	// The applier: apply.go.
	ap applier

	// Shedding new requests while the applier is behind: shed.go.
	shed shedder

	// The grouper and the acker: group.go.
	group grouper

	keepDone  chan struct{} // closed when keepLoop has ended
	stop      chan struct{} // closed by Close
	closeOnce sync.Once
	stats     counters
}

// counters are the journal's metrics (Stats).
type counters struct {
	published, publishFailed, resent, lost, duplicates atomic.Uint64
	groups                                             atomic.Uint64
	appliedRemote, applyErrors, received               atomic.Uint64
	locksTaken, lockWaits, lockFailures                atomic.Uint64
	merchantLapses                                     atomic.Uint64
	shed                                               atomic.Uint64
}

// Open creates or updates the JOURNAL stream (whichever node comes first; the
// configuration is the same on all), starts the applier from the stream position
// this node last applied (kept in db, the store's Badger), and waits, until ctx ends,
// for it to catch up with the stream as it stands: once Open returns, the local store
// holds the whole cluster's records, this node's own included (a node that lost its
// disk gets them back, and its RRN sequence continues after them).
//
// store must be opened on db with journal.Options.RRNPrefix = opts.Node; node must be
// started (Open waits for JetStream). Close the Journal before the store and the node.
func Open(ctx context.Context, node *cluster.Node, store *journal.Store, db *badger.DB, opts Options) (*Journal, error) {
	if opts.Node < 1 || opts.Node > 9 {
		return nil, fmt.Errorf("cjournal: node number %d is not from 1 to 9", opts.Node)
	}
	if opts.Replicas <= 0 {
		opts.Replicas = DefaultReplicas
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.GroupPause == 0 {
		opts.GroupPause = DefaultGroupPause
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = DefaultAckTimeout
	}
	if opts.ShedAfter == 0 {
		opts.ShedAfter = DefaultShedAfter
	}
	js, err := jetstream.New(node.Conn(), jetstream.WithPublishAsyncTimeout(opts.AckTimeout),
		jetstream.WithPublishAsyncMaxPending(maxAsyncPending))
	if err != nil {
		return nil, fmt.Errorf("cjournal: JetStream context: %w", err)
	}
	var nonce [6]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("cjournal: boot nonce: %w", err)
	}
	j := &Journal{store: store, db: db, js: js, cn: node, opts: opts, node: strconv.Itoa(opts.Node), log: opts.Logger,
		idPrefix: fmt.Sprintf("%d.%s.", opts.Node, hex.EncodeToString(nonce[:])),
		async:    make(chan asyncPub, asyncQueue), asyncDone: make(chan struct{}), stop: make(chan struct{})}
	j.publishAsync = js.PublishMsgAsync
	j.ap.init()
	j.shed.after = max(0, opts.ShedAfter)
	j.ap.latest = j.latest
	j.group.init()
	j.held.init()
	j.keepDone = make(chan struct{})
	if err := node.WaitJetStream(ctx); err != nil {
		return nil, err
	}
	if err := checkStreamFormat(ctx, js); err != nil {
		return nil, err
	}
	cfg := jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Switchyard journal: every record version, delivery mark and batch close of every node",
		Subjects:    []string{"journal.>"},
		Storage:     jetstream.FileStorage,
		Replicas:    opts.Replicas,
		MaxAge:      opts.MaxAge,
		Duplicates:  DuplicateWindow,
		AllowDirect: true,
		Metadata:    map[string]string{metaFormat: formatText},
	}
	if j.stream, err = js.CreateOrUpdateStream(ctx, cfg); err != nil {
		return nil, fmt.Errorf("cjournal: create or update the stream %s (replicas %d): %w", StreamName, opts.Replicas, err)
	}
	if j.locks, err = openLocks(ctx, js, opts.Replicas); err != nil {
		return nil, err
	}
	applied, err := j.readApplied()
	if err != nil {
		return nil, err
	}
	info, err := j.stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("cjournal: stream %s: %w", StreamName, err)
	}
	j.ap.applied, j.ap.last, j.ap.restoreTo = applied, max(applied, info.State.LastSeq), info.State.LastSeq
	j.ap.failures = store.CommitFailures()
	j.ap.movedAt, j.ap.stall = time.Now(), followStall
	go j.resend()
	go j.keepLoop()
	go j.groupLoop()
	go j.ackLoop()
	go j.run()
	if err := j.CaughtUp(ctx); err != nil {
		j.Close()
		return nil, fmt.Errorf("cjournal: catching up with the stream %s from sequence %d: %w", StreamName, applied, err)
	}
	return j, nil
}

// Close stops the applier (after writing its position), the grouper (after sending
// what is queued and settling the groups in flight, up to AckTimeout) and the
// background publisher (after the acknowledgements it waits for), and returns once
// all have ended. A write after Close fails. The store and the node stay open.
func (j *Journal) Close() error {
	j.closeOnce.Do(func() {
		close(j.stop)
		<-j.keepDone
		<-j.ap.done
		<-j.group.done
		j.asyncMu.Lock()
		j.asyncClosed = true
		close(j.async)
		j.asyncMu.Unlock()
		<-j.asyncDone
	})
	return nil
}

// readApplied reads the applier's position from the local Badger (0 if none).
func (j *Journal) readApplied() (uint64, error) {
	var seq uint64
	err := j.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyApplied))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("value %x is not 8 bytes", v)
			}
			seq = binary.BigEndian.Uint64(v)
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("cjournal: read %s: %w", keyApplied, err)
	}
	return seq, nil
}

// Stats are the journal's figures for metrics.
type Stats struct {
	// Applied is the last stream sequence the applier applied, StreamLast the
	// stream's last sequence as last seen, Lag their difference.
	Applied, StreamLast, Lag uint64
	// Published counts the versions, marks and batch closes acknowledged by the
	// stream; PublishFailed the publishes that got no acknowledgement in time (for a
	// durable write: the write failed); Resent the publishes sent again after a
	// failure; Lost the versions and marks given up at Close or for a full queue.
	Published, PublishFailed, Resent, Lost uint64
	// Groups counts the group messages acknowledged (Published counts their entries).
	Groups uint64
	// Duplicates counts first writes of this node refused as duplicates (another
	// RRN held their key earlier in the stream).
	Duplicates uint64
	// AppliedRemote counts the other nodes' record versions applied; ApplyErrors the
	// stream messages the applier could not apply (it starts again from its position);
	// Received the stream messages delivered to the applier (every node's).
	AppliedRemote, ApplyErrors, Received uint64
	// LocksTaken counts the record locks this node took (LockRecord), LockWaits the
	// locks it found held by another change (and waited for), LockFailures the locks
	// it did not get.
	LocksTaken, LockWaits, LockFailures uint64
	// MerchantLockLapses counts the merchants' locks (LockMerchant) found lapsed by
	// a refresh while held: a check under such a lock was not exact (each is logged).
	MerchantLockLapses uint64
	// Shed counts the requests refused at once while this node's applier was
	// behind the stream (Options.ShedAfter).
	Shed uint64
}

// Stats returns the journal's figures.
func (j *Journal) Stats() Stats {
	applied, last := j.Position()
	return Stats{Applied: applied, StreamLast: last, Lag: last - applied,
		Published: j.stats.published.Load(), PublishFailed: j.stats.publishFailed.Load(),
		Resent: j.stats.resent.Load(), Groups: j.stats.groups.Load(), Lost: j.stats.lost.Load(), Duplicates: j.stats.duplicates.Load(),
		AppliedRemote: j.stats.appliedRemote.Load(), ApplyErrors: j.stats.applyErrors.Load(), Received: j.stats.received.Load(),
		LocksTaken: j.stats.locksTaken.Load(), LockWaits: j.stats.lockWaits.Load(), LockFailures: j.stats.lockFailures.Load(),
		MerchantLockLapses: j.stats.merchantLapses.Load(), Shed: j.stats.shed.Load()}
}

// The roles that read the local store.

// NextRRN returns a new RRN under this node's prefix (the local store's sequence).
func (j *Journal) NextRRN() (string, error) { return j.store.NextRRN() }

// Get returns the record with the RRN from the local store, whichever node wrote it.
func (j *Journal) Get(rrn string) (*journal.Record, error) { return j.store.Get(rrn) }

// LookupDuplicate looks the duplicate key up in the local store (the cluster's
// requests applied so far; Write's first publish catches those not applied yet).
func (j *Journal) LookupDuplicate(tid, stan, de7 string) (string, bool, error) {
	return j.store.LookupDuplicate(tid, stan, de7)
}

// LookupDuplicateKey looks a duplicate key (journal.DupKey or journal.CaptureDupKey)
// up in the local store, as LookupDuplicate does.
func (j *Journal) LookupDuplicateKey(key string) (string, bool, error) {
	return j.store.LookupDuplicateKey(key)
}

// Scan calls fn for the cluster's records matching q, from the local store.
func (j *Journal) Scan(ctx context.Context, q journal.Query, fn func(*journal.Record) bool) error {
	return j.store.Scan(ctx, q, fn)
}

// ScanLate calls fn for the cluster's records changed late (first written, reversed
// or approved more than journal.LateAfter after they were received) from from to to,
// from the local store, which indexes every node's records as it applies them
// (journal.Store.ScanLate): a terminal's batch (0500) finds there the records of the
// batch received long before it, the same on every node.
func (j *Journal) ScanLate(ctx context.Context, from, to time.Time, fn func(*journal.Record) bool) error {
	return j.store.ScanLate(ctx, from, to, fn)
}

// LastReceived returns the receive time of the newest record in the local store.
func (j *Journal) LastReceived() (time.Time, error) { return j.store.LastReceived() }

// LastBatch returns when the terminal's batch was last closed, on any node.
func (j *Journal) LastBatch(tid string) (time.Time, error) { return j.store.LastBatch(tid) }

// Checkpoint returns this node's recovery checkpoint (local: each node recovers its
// own RRNs).
func (j *Journal) Checkpoint() (string, error) { return j.store.Checkpoint() }

// SetCheckpoint moves this node's recovery checkpoint (local only).
func (j *Journal) SetCheckpoint(ctx context.Context, rrn string) error {
	return j.store.SetCheckpoint(ctx, rrn)
}

// ScanFrom calls fn for this node's records (its RRN prefix) from rrn on, in RRN
// order: crash recovery looks at its own transactions only.
func (j *Journal) ScanFrom(ctx context.Context, rrn string, fn func(*journal.Record) bool) error {
	return j.scanPrefix(ctx, j.node, rrn, fn)
}

// Node is this node's number as a record's OwedBy names it (its RRN prefix).
func (j *Journal) Node() string { return j.node }

// ScanOwed calls fn for every record in the local store, whichever node's, whose
// reversal advice node owes (OwedBy, not reversed): recovery at node's restart, or a
// survivor's once node died, queues them.
func (j *Journal) ScanOwed(ctx context.Context, node string, fn func(*journal.Record) bool) error {
	return j.store.ScanOwed(ctx, node, fn)
}

// ScanNode calls fn for every record of node (its RRN prefix) in the local store, in
// RRN order: a survivor recovering a dead node's open transactions.
func (j *Journal) ScanNode(ctx context.Context, node int, fn func(*journal.Record) bool) error {
	if node < 1 || node > 9 {
		return fmt.Errorf("cjournal: node number %d is not from 1 to 9", node)
	}
	return j.scanPrefix(ctx, strconv.Itoa(node), "", fn)
}

// scanPrefix walks the RRNs under prefix from the larger of from and the prefix's
// first RRN, and stops at the first RRN of another prefix.
func (j *Journal) scanPrefix(ctx context.Context, prefix, from string, fn func(*journal.Record) bool) error {
	if start := prefix + "00000000000"; from < start {
		from = start
	}
	return j.store.ScanFrom(ctx, from, func(r *journal.Record) bool {
		if len(r.RRN) == 0 || r.RRN[:1] != prefix {
			return false
		}
		return fn(r)
	})
}
