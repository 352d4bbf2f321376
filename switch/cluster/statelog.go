package cluster

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/switch/cluster/ordered"
)

// The STATE stream orders the commits of the stores kept in each node's Badger
// (registry, key store, rule lists, review cases): one subject per store,
// state.<store>, and a compare-and-set on the subject's last sequence
// (Nats-Expected-Last-Subject-Sequence) for every commit. A store's revision is
// the stream sequence of the last commit it applied; sequences are stream-wide,
// so the revisions of one store rise but are not consecutive. A store whose
// commits are decided as they are applied (the QR orders: statelog.Submitter)
// publishes them without the compare-and-set (Submit).
const (
	stateStream  = "STATE"
	stateSubject = "state."
	// stateRetry is how long the follower waits before it recreates its
	// consumer after an error (the ordered consumer itself resumes after a
	// lost connection or a stream leader change).
	stateRetry = 250 * time.Millisecond
	// stateRetryMax is where the follower's pause stops doubling while the same
	// fault persists (a commit that cannot be read or applied).
	stateRetryMax = 2 * time.Second
	// failLogEvery is how often the same error of a follower is logged again.
	failLogEvery = time.Minute
	// busyRetry is the follower's pause before it tries a commit again that its
	// store refused with statelog.ErrBusy; busyQuiet is how long it does so
	// without a word before it reports the fault as any other.
	busyRetry = 20 * time.Millisecond
	busyQuiet = 5 * time.Second
	// purgedRetry is the follower's pause after ErrCommitsPurged.
	purgedRetry = 30 * time.Second
	// headerRoom is what the headers of a commit's message may take of the
	// connection's max payload.
	headerRoom = 1024
	// compressAbove is the size from which a commit is deflated: a CSV import's
	// terminals compress about tenfold, and small commits stay cheap to decode.
	compressAbove = 16 << 10
)

// ErrCommitTooLarge is wrapped by Append when a commit, compressed, is larger than
// the NATS max payload: it is refused, not split, because a split commit would no
// longer be ordered with one compare-and-set. A store splits it (a registry import
// approval is written in chunks of records).
var ErrCommitTooLarge = errors.New("commit larger than the NATS max payload")

// ErrNewerCommit is wrapped by a follower's error (Follower.Err) when it met a
// commit of its store that this version cannot read or decide: an encoding it does
// not know (a newer version's: an intent commit, encoding 3 or 4, met by a version
// before 5 December 2026), or a request its store does not know. The follower does
// not skip it; it stops applying the store, and only an upgrade of the node mends
// it (statelog.ErrNewerCommit, the same error).
var ErrNewerCommit = statelog.ErrNewerCommit

// StateLog is the STATE stream on this node's connection; Store gives each
// store's statelog.Log.
type StateLog struct {
	n      *Node
	stream jetstream.Stream

	snapMu  sync.Mutex // guards the snapshot bucket's handles, opened on first use
	snapKV  jetstream.KeyValue
	snapObj jetstream.ObjectStore
}

// StateLog creates the STATE stream (file storage, Config.Replicas copies) or
// finds it, so every node may call it at start, in any order.
func (n *Node) StateLog(ctx context.Context) (*StateLog, error) {
	replicas := n.cfg.Replicas
	if replicas <= 0 {
		replicas = 1
	}
	cfg := jetstream.StreamConfig{
		Name:        stateStream,
		Description: "Switchyard: ordered commits of the stores kept in each node's Badger",
		Subjects:    []string{stateSubject + ">"},
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew, // never drop a commit a node may not have applied yet
	}
	s, err := n.js.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		s, err = n.js.Stream(ctx, stateStream)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: create or find stream %s (%d replicas): %w", stateStream, replicas, err)
	}
	return &StateLog{n: n, stream: s}, nil
}

// Store returns the Log of store name (subject state.<name>).
func (s *StateLog) Store(name string) (*StoreLog, error) {
	if name == "" || strings.ContainsAny(name, " \t\r\n.*>") {
		return nil, fmt.Errorf("cluster: state store name %q is empty or has a space, '.', '*' or '>'", name)
	}
	return &StoreLog{s: s, name: name, subject: stateSubject + name, applied: make(chan struct{})}, nil
}

// Name returns the store's name.
func (l *StoreLog) Name() string { return l.name }

// State returns the store's place in the stream; r is this node's store.
func (l *StoreLog) State(ctx context.Context, r statelog.Replica) StoreState {
	st := StoreState{Store: l.name, Revision: r.Revision()}
	var errs []error
	var err error
	if st.Commits, err = l.Held(ctx); err != nil {
		errs = append(errs, err)
	}
	if st.Snapshot, _, _, err = l.Snapshot(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		st.Error = err.Error()
	}
	return st
}

// StoreLog is one store's statelog.Log on the STATE stream, and its follower.
type StoreLog struct {
	s       *StateLog
	name    string
	subject string

	mu      sync.Mutex
	applied chan struct{} // closed and replaced whenever the follower applied a commit
}

var _ statelog.Submitter = (*StoreLog)(nil)

// Append implements statelog.Log: it publishes c to state.<store> on condition
// that the subject's last sequence is after, and returns the new message's
// sequence. A commit another node ordered first wraps statelog.ErrConflict; no
// acknowledgement before ctx ends wraps statelog.ErrUnavailable and ErrNoQuorum
// (the commit may still be ordered: the follower then delivers it).
func (l *StoreLog) Append(ctx context.Context, c statelog.Commit, after uint64) (uint64, error) {
	data, err := encodeCommit(c)
	if err != nil {
		return 0, fmt.Errorf("cluster: %s commit of %d keys: %w", l.name, len(c.Writes), err)
	}
	if max := l.s.n.nc.MaxPayload() - headerRoom; int64(len(data)) > max {
		return 0, fmt.Errorf("cluster: %s commit of %d keys is %d bytes compressed, over the %d the NATS max payload leaves: %w",
			l.name, len(c.Writes), len(data), max, ErrCommitTooLarge)
	}
	start := time.Now()
	msg := &nats.Msg{Subject: l.subject, Data: data, Header: nats.Header{headerAfter: []string{strconv.FormatUint(after, 10)}}}
	ack, err := l.s.n.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(after))
	if err == nil {
		m := l.s.n.Metrics()
		m.ObservePublish(stateStream, time.Since(start))
		m.ObserveGroup(stateStream, 1)
		return ack.Sequence, nil
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return 0, fmt.Errorf("cluster: %s commit after revision %d: %w (%v)", l.name, after, statelog.ErrConflict, err)
	}
	if unacknowledged(err) {
		return 0, fmt.Errorf("cluster: %s commit after revision %d: %w: %w: %w", l.name, after, statelog.ErrUnavailable, ErrNoQuorum, err)
	}
	return 0, fmt.Errorf("cluster: %s commit after revision %d: %w", l.name, after, err)
}

// Submit implements statelog.Submitter: it publishes c, an Intent commit, to
// state.<store> without a condition (it never conflicts) and returns the new
// message's sequence. The message names seen, the submitting store's revision
// (headerSeen), in place of the revision it was ordered after, which the node
// cannot know. Its encoding is one a node of an earlier version refuses to read
// (commitIntent): such a node stops following the store, saying so, rather than
// apply the requests as values. No acknowledgement before ctx ends wraps
// statelog.ErrUnavailable and ErrNoQuorum, as Append's.
func (l *StoreLog) Submit(ctx context.Context, c statelog.Commit, seen uint64) (uint64, error) {
	if !c.Intent {
		return 0, fmt.Errorf("cluster: %s commit of %d keys submitted without a compare-and-set is not an intent commit", l.name, len(c.Writes))
	}
	data, err := encodeCommit(c)
	if err != nil {
		return 0, fmt.Errorf("cluster: %s intent commit of %d keys: %w", l.name, len(c.Writes), err)
	}
	if max := l.s.n.nc.MaxPayload() - headerRoom; int64(len(data)) > max {
		return 0, fmt.Errorf("cluster: %s intent commit of %d keys is %d bytes compressed, over the %d the NATS max payload leaves: %w",
			l.name, len(c.Writes), len(data), max, ErrCommitTooLarge)
	}
	start := time.Now()
	msg := &nats.Msg{Subject: l.subject, Data: data, Header: nats.Header{headerSeen: []string{strconv.FormatUint(seen, 10)}}}
	ack, err := l.s.n.js.PublishMsg(ctx, msg)
	if err == nil {
		m := l.s.n.Metrics()
		m.ObservePublish(stateStream, time.Since(start))
		m.ObserveGroup(stateStream, 1)
		return ack.Sequence, nil
	}
	if unacknowledged(err) {
		return 0, fmt.Errorf("cluster: %s intent commit (seen %d): %w: %w: %w", l.name, seen, statelog.ErrUnavailable, ErrNoQuorum, err)
	}
	return 0, fmt.Errorf("cluster: %s intent commit (seen %d): %w", l.name, seen, err)
}

// unacknowledged says whether a publish's error means that no acknowledgement
// came (the message may still be stored).
func unacknowledged(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrConnectionClosed)
}

// Await implements statelog.Submitter: it waits until r, followed by Follow, has
// applied revision rev, or ctx ends. It asks the stream nothing.
func (l *StoreLog) Await(ctx context.Context, r statelog.Replica, rev uint64) error {
	for {
		l.mu.Lock()
		ch := l.applied
		l.mu.Unlock()
		got := r.Revision()
		if got >= rev {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("cluster: %s has applied revision %d of %d when the wait ended: %w", l.name, got, rev, ctx.Err())
		}
	}
}

// LastRevision returns the sequence of the last commit of the store in the
// stream, 0 for none.
//
// Each request waits at most lastRevisionTry and is made again while ctx lasts: a
// stream just created on another node may not answer its first requests (no
// leader elected yet), and a node starting with its peers waited out a whole 10 s
// attempt for one (3 December 2026, every `bench --cluster 3` start: 12.4 s on two
// nodes of three, against 2.6 s on the third).
func (l *StoreLog) LastRevision(ctx context.Context) (uint64, error) {
	for {
		tctx, cancel := context.WithTimeout(ctx, lastRevisionTry)
		m, err := l.s.stream.GetLastMsgForSubject(tctx, l.subject)
		cancel()
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			return 0, nil
		case err == nil:
			return m.Sequence, nil
		case ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded):
			return 0, fmt.Errorf("cluster: last commit of %s in stream %s: %w", l.name, stateStream, err)
		}
	}
}

// lastRevisionTry bounds one request of LastRevision.
const lastRevisionTry = time.Second

// CatchUp waits until r has applied every commit of the store the stream held
// when it was called (r is followed by Follow), or ctx ends. It is the start-up
// catch-up and what a store does after an ErrConflict before it tries again.
func (l *StoreLog) CatchUp(ctx context.Context, r statelog.Replica) error {
	last, err := l.LastRevision(ctx)
	if err != nil {
		return err
	}
	return l.Await(ctx, r, last)
}

func (l *StoreLog) signalApplied() {
	l.mu.Lock()
	close(l.applied)
	l.applied = make(chan struct{})
	l.mu.Unlock()
}

// Follower applies the commits of one store to its Replica, in order, in its own
// goroutine; Close (or the end of Follow's context) stops it and waits for it.
type Follower struct {
	l   *StoreLog
	r   statelog.Replica
	ctx context.Context

	cancel context.CancelFunc
	done   chan struct{} // closed when run returns
	mu     sync.Mutex
	err    error                            // the last error, for Err
	lostAt time.Time                        // when consume last ended in an error
	fol    atomic.Pointer[ordered.Follower] // the stream's follower while consume runs
	// logged is the error last logged and when; suppressed counts the same
	// error's repeats not logged since.
	logged     string
	loggedAt   time.Time
	suppressed int
}

// Follow starts applying the store's commits above r.Revision() to r, in order:
// an ordered consumer on state.<store> (package ordered) that resumes by itself
// after a lost connection or a leader change. Call CatchUp to wait until r is
// current.
func (l *StoreLog) Follow(ctx context.Context, r statelog.Replica) *Follower {
	ctx, cancel := context.WithCancel(ctx)
	f := &Follower{l: l, r: r, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	go f.run()
	return f
}

// Close stops the follower and waits for its goroutines. It is safe to call more
// than once.
func (f *Follower) Close() {
	f.cancel()
	<-f.done
}

// Consumer says whether the follower has a consumer of the STATE stream now and
// since when it has had one, or has had none, with why it has none: the last
// failure to create one (ordered.Follower.Consumer) or, between two consumers'
// followers, the error that ended the last (Err), since then. Before its first
// consumer's follower starts: false, the zero time, nil.
func (f *Follower) Consumer() (has bool, since time.Time, err error) {
	if fol := f.fol.Load(); fol != nil {
		return fol.Consumer()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return false, f.lostAt, f.err
}

// Err returns the last error the follower met (it keeps trying), or nil. One
// wrapping ErrCommitsPurged stays until the node restarts, one wrapping
// ErrNewerCommit until it is upgraded.
func (f *Follower) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// fail records err as the follower's last error and logs it, the same error at
// most every failLogEvery (with how often it recurred meanwhile).
func (f *Follower) fail(err error) {
	f.mu.Lock()
	f.err = err
	msg, now := err.Error(), time.Now()
	if msg == f.logged && now.Sub(f.loggedAt) < failLogEvery {
		f.suppressed++
		f.mu.Unlock()
		return
	}
	again := 0
	if msg == f.logged {
		again = f.suppressed
	}
	f.logged, f.loggedAt, f.suppressed = msg, now, 0
	f.mu.Unlock()
	f.l.s.n.log.Error().Err(err).Str("store", f.l.name).Int("repeated_unlogged", again).Msg("cluster: state follower")
}

// wait waits d or until the follower is stopped, and says whether to go on.
func (f *Follower) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-f.ctx.Done():
		return false
	}
}

func (f *Follower) run() {
	defer close(f.done)
	pause := stateRetry
	for f.ctx.Err() == nil {
		before := f.r.Revision()
		if err := f.consume(); err != nil && f.ctx.Err() == nil {
			f.mu.Lock()
			f.lostAt = time.Now()
			f.mu.Unlock()
			f.fail(err)
			if f.r.Revision() != before {
				pause = stateRetry // it applied commits since: a new fault
			}
			wait := pause
			if errors.Is(err, ErrCommitsPurged) || errors.Is(err, ErrNewerCommit) {
				wait = purgedRetry // only a restart (an upgrade) mends it; say so now and then
			}
			if !f.wait(wait) {
				return
			}
			pause = min(2*pause, stateRetryMax)
		} else if err == nil {
			f.mu.Lock()
			f.err = nil
			f.mu.Unlock()
		}
	}
}

// consume applies commits from a new ordered consumer until an error or Close.
func (f *Follower) consume() error {
	l := f.l
	m := l.s.n.Metrics()
	m.PrepareConsumersReplaced(stateStream)
	fol, err := ordered.Follow(l.s.n.js, ordered.Config{
		Stream:   stateStream,
		Subjects: []string{l.subject},
		From:     f.r.Revision() + 1,
		Logger:   l.s.n.log.With().Str("store", l.name).Logger(),
		Replaced: func(reason string) { m.ObserveConsumerReplaced(stateStream, reason) },
		Bridged:  func(n int) { m.ObserveReadsWithoutConsumer(stateStream, n) },
	})
	if err != nil {
		return fmt.Errorf("cluster: follow %s: %w", l.subject, err)
	}
	defer fol.Stop()
	f.fol.Store(fol)
	defer f.fol.Store(nil)
	for first := true; ; first = false {
		var m jetstream.Msg
		select {
		case m = <-fol.C():
		case <-f.ctx.Done():
			return nil
		}
		meta, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("cluster: follow %s: message metadata: %w", l.subject, err)
		}
		seq := meta.Sequence.Stream
		if after, ok := commitAfter(m.Headers()); ok && after > f.r.Revision() {
			// Applying it would skip the commits between: this store's copy
			// would fork from the others' without a word.
			return fmt.Errorf("cluster: follow %s: the commit at sequence %d was ordered after %d, and this node's store is at %d: %w",
				l.subject, seq, after, f.r.Revision(), ErrCommitsPurged)
		}
		if seen, ok := commitSeen(m.Headers()); ok && seen > f.r.Revision() {
			// An intent commit whose submitter had applied a commit this node
			// never met. Seen is a lower bound, not the exact predecessor, so a
			// gap above it goes unnoticed here: the consumer's first commit is
			// checked against the snapshot's purge below, and a running
			// follower is guarded by the compaction's MinAge.
			return fmt.Errorf("cluster: follow %s: the intent commit at sequence %d was submitted by a node at %d, and this node's store is at %d: %w",
				l.subject, seq, seen, f.r.Revision(), ErrCommitsPurged)
		}
		if _, exact := commitAfter(m.Headers()); first && !exact {
			// The consumer's first commit does not name its predecessor (an
			// intent commit): the stream may have been compacted past this
			// node meanwhile.
			rev := f.r.Revision()
			info, err := l.NeedsSnapshot(f.ctx, rev)
			if err != nil {
				return fmt.Errorf("cluster: follow %s: %w", l.subject, err)
			}
			if info != nil {
				return fmt.Errorf("cluster: follow %s: the stream's commits after %d, this node's revision, were purged below %d (snapshot %s at %d): %w",
					l.subject, rev, info.PurgedBelow, info.Object, info.Revision, ErrCommitsPurged)
			}
		}
		c, err := decodeCommit(m.Data())
		if err != nil {
			// A commit no node can read stops this store's replication: skipping
			// it would silently fork the node's copy. Say so and keep retrying.
			return fmt.Errorf("cluster: follow %s: commit at sequence %d: %w", l.subject, seq, err)
		}
		var busySince time.Time
		for pause := stateRetry; ; {
			err := f.r.ApplyRemote(seq, c)
			if err == nil {
				break
			}
			if errors.Is(err, statelog.ErrBusy) {
				// The store refused writes for a moment (a flush): try again soon.
				if busySince.IsZero() {
					busySince = time.Now()
				}
				if time.Since(busySince) < busyQuiet {
					if !f.wait(busyRetry) {
						return nil
					}
					continue
				}
			}
			f.fail(fmt.Errorf("cluster: apply %s commit at sequence %d: %w", l.name, seq, err))
			if !f.wait(pause) {
				return nil
			}
			pause = min(2*pause, stateRetryMax)
		}
		l.signalApplied()
	}
}

// A commit's message: a version byte, then the commit (deflated when the
// version byte says so): a uvarint count of writes, and per write a uvarint key
// length, the key, a uvarint value length plus one (0 = delete) and the value.
// Compact and cheap; JSON would base64 every value. An intent commit
// (statelog.Commit.Intent) has version bytes of its own, which versions before
// 5 December 2026 refuse ("unknown commit encoding"): their follower stops on it,
// saying so, instead of writing requests as values (the QR order book submits
// requests only once every lease advertises QRRequests).
const (
	commitPlain          = 1
	commitDeflated       = 2
	commitIntent         = 3
	commitIntentDeflated = 4
)

func encodeCommit(c statelog.Commit) ([]byte, error) {
	n := 1 + binary.MaxVarintLen64
	for _, w := range c.Writes {
		n += 2*binary.MaxVarintLen64 + len(w.Key) + len(w.Value)
	}
	b := make([]byte, 1, n)
	b[0] = commitPlain
	if c.Intent {
		b[0] = commitIntent
	}
	b = binary.AppendUvarint(b, uint64(len(c.Writes)))
	for _, w := range c.Writes {
		b = binary.AppendUvarint(b, uint64(len(w.Key)))
		b = append(b, w.Key...)
		if w.Value == nil {
			b = binary.AppendUvarint(b, 0)
			continue
		}
		b = binary.AppendUvarint(b, uint64(len(w.Value))+1)
		b = append(b, w.Value...)
	}
	if len(b) <= compressAbove {
		return b, nil
	}
	var z bytes.Buffer
	if c.Intent {
		z.WriteByte(commitIntentDeflated)
	} else {
		z.WriteByte(commitDeflated)
	}
	zw, err := flate.NewWriter(&z, flate.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b[1:]); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return z.Bytes(), nil
}

// maxCommitBytes bounds what a deflated commit may expand to (a corrupt or
// hostile message must not exhaust memory).
const maxCommitBytes = 256 << 20

func decodeCommit(data []byte) (statelog.Commit, error) { return decodeCommitMax(data, maxCommitBytes) }

// decodeCommitMax is decodeCommit with limit in place of maxCommitBytes.
func decodeCommitMax(data []byte, limit int) (statelog.Commit, error) {
	var c statelog.Commit
	if len(data) == 0 {
		return c, errors.New("empty message")
	}
	body := data[1:]
	c.Intent = data[0] == commitIntent || data[0] == commitIntentDeflated
	switch data[0] {
	case commitPlain, commitIntent:
	case commitDeflated, commitIntentDeflated:
		var err error
		body, err = io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(body)), int64(limit)+1))
		if err != nil {
			return c, fmt.Errorf("inflate: %w", err)
		}
		if len(body) > limit {
			return c, fmt.Errorf("inflates to more than %d bytes", limit)
		}
	default:
		return c, fmt.Errorf("unknown commit encoding %d: %w", data[0], ErrNewerCommit)
	}
	count, k := binary.Uvarint(body)
	if k <= 0 || count > uint64(len(body)) {
		return c, errors.New("bad write count")
	}
	body = body[k:]
	c.Writes = make([]statelog.KV, 0, count)
	for i := uint64(0); i < count; i++ {
		kl, k := binary.Uvarint(body)
		if k <= 0 || kl > uint64(len(body)-k) {
			return c, fmt.Errorf("write %d: bad key length", i)
		}
		key := append([]byte(nil), body[k:k+int(kl)]...)
		body = body[k+int(kl):]
		vl, k := binary.Uvarint(body)
		if k <= 0 || vl > uint64(len(body)-k)+1 {
			return c, fmt.Errorf("write %d (key %q): bad value length", i, key)
		}
		var val []byte // nil: a delete
		body = body[k:]
		if vl > 0 {
			val = append([]byte{}, body[:vl-1]...)
			body = body[vl-1:]
		}
		c.Writes = append(c.Writes, statelog.KV{Key: key, Value: val})
	}
	if len(body) != 0 {
		return c, fmt.Errorf("%d bytes after the last write", len(body))
	}
	return c, nil
}
