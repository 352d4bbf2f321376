package cjournal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/switch/cluster/ordered"
	"github.com/switchyard/switchyard/switch/journal"
)

// The applier: one goroutine (run, started by Open, joined by Close) follows the
// whole stream with an ordered consumer from the sequence after the last one it
// applied, and applies every other node's record versions, delivery marks and batch
// closes to the local store (not durably: they are in the stream). Its position goes
// to the local Badger through the journal's log (PutDurable) after the messages it
// covers, flushDelay after the first message applied since the last write (at once
// when a WaitApplied waits), so that after a crash it starts again from a position
// whose messages are all in the store. Own messages are skipped, except those the stream held when Open ran and the
// local store lacks (a node that lost its disk, or crashed between the stream's
// acknowledgement and its own sync, gets them back), and the first versions that own
// a duplicate key (kind f), which every applier decides in stream order (first.go).

// applier is the applier's state.
type applier struct {
	mu        sync.Mutex
	applied   uint64                           // the last stream sequence applied and flushed
	movedAt   time.Time                        // when applied last moved (or the applier started)
	stall     time.Duration                    // followStall (a test shortens it)
	last      uint64                           // the stream's last sequence as last seen
	advanced  chan struct{}                    // closed and replaced when applied moves
	want      chan struct{}                    // a WaitApplied waits: flush now (buffered 1)
	restoreTo uint64                           // own messages up to here are restored if missing
	done      chan struct{}                    // closed when run has ended
	halt      chan struct{}                    // closed when the applier halted for good (format.go)
	haltErr   error                            // why, set before halt is closed
	fol       atomic.Pointer[ordered.Follower] // the stream's follower while run follows

	// The first versions (kind f) this node's writers wait for, by RRN (first.go).
	firstMu sync.Mutex
	firsts  map[string]*firstWait

	// The other nodes' record versions applied last (and this node's own given
	// back by the stream), so that the next version of each finds its
	// predecessor without a read of the store; latest reads through them for the
	// hooks (Journal.latest, bound once).
	recent recentRecords
	latest Latest

	// run's alone:
	next     uint64 // the last sequence applied to the store, not yet flushed
	flushed  uint64 // the position last written to Badger
	failures uint64 // the store's CommitFailures as of the last flush
	// keys are the duplicate keys (and journal.KSNKey of their DUKPT KSNs) of the
	// records applied since the last flush (the store's index may not show them
	// yet), with their RRNs.
	keys map[string]string
	// cur is the entry being applied; handed is the entry after the last one whose
	// record went to OnRemote or OnRestored in this process. After a failed commit
	// of the local store the applier applies the stream again from its last flushed
	// position (reapply), and the store lacks what the failed commit held: the hooks
	// would meet those records as new and the server would fold them into its
	// velocity counters and stand-in book a second time. Entries before handed are
	// written to the store again, not handed again (what the hooks did is in this
	// process's memory, and made durable by BeforeFlush before the next position).
	cur, handed entryPos
}

// entryPos is the place of an entry in the stream: its message's sequence and its
// index in the message (0 for a message of one entry).
type entryPos struct {
	seq uint64
	idx int
}

// before says whether p comes before q in the stream.
func (p entryPos) before(q entryPos) bool {
	return p.seq < q.seq || (p.seq == q.seq && p.idx < q.idx)
}

func (a *applier) init() {
	a.advanced = make(chan struct{})
	a.want = make(chan struct{}, 1)
	a.done = make(chan struct{})
	a.halt = make(chan struct{})
	a.firsts = make(map[string]*firstWait)
	a.keys = make(map[string]string)
}

// flushEvery is the most messages applied between two writes of the position.
const flushEvery = 1024

// flushDelay is how long the applier lets messages gather before it writes its
// position, unless a WaitApplied waits: each write is a commit of the local store
// with its sync, and a write after every message (the queue is often empty between
// two groups) made a commit of its own per group message (docs/performance.md,
// Part 20).
const flushDelay = 10 * time.Millisecond

// restartPause is how long the applier waits before it follows the stream again
// after an error (no quorum to create its consumer, a message it could not apply).
const restartPause = time.Second

// Position returns the last stream sequence applied to the local store and the
// stream's last sequence as the applier last saw it (their difference is the
// replication lag, in messages).
func (j *Journal) Position() (applied, last uint64) {
	j.ap.mu.Lock()
	defer j.ap.mu.Unlock()
	return j.ap.applied, max(j.ap.last, j.ap.applied)
}

// WaitApplied waits until the applier has applied the stream up to seq, or ctx ends.
func (j *Journal) WaitApplied(ctx context.Context, seq uint64) error {
	for {
		j.ap.mu.Lock()
		applied, ch := j.ap.applied, j.ap.advanced
		j.ap.mu.Unlock()
		if applied >= seq {
			return nil
		}
		select {
		case j.ap.want <- struct{}{}:
		default:
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("cjournal: waiting for the stream's sequence %d (applied %d): %w", seq, applied, ctx.Err())
		case <-j.ap.done:
			return fmt.Errorf("cjournal: waiting for the stream's sequence %d (applied %d): the journal is closed", seq, applied)
		case <-j.ap.halt:
			return fmt.Errorf("cjournal: waiting for the stream's sequence %d (applied %d): %w", seq, applied, j.ap.haltErr)
		}
	}
}

// applierStall is the applier's ordered.Config.Stall: how long its consumer may
// deliver nothing while the stream's leader holds messages for it before it is
// replaced (ordered's default is 5 s). Every request on this node waits for the
// applier to reach its write's group, up to AckTimeout (5 s), else it is answered
// 91: with a Stall of 5 s, a consumer standing still (its server's store turned
// read-only) was replaced after 5.4 to 7.4 s, and a purchase arriving meanwhile was
// answered 91 (docs/cluster.md, Known gaps). With 1.5 s, a consumer that stops
// delivering is replaced 1.5 to 2.25 s after its last message (0.75 to 1.5 s after
// the first it owes, when it was idle), which leaves 2.5 s of the request's 5 for
// the replacement's creation and the catch-up. It is not shorter because a healthy
// consumer must not be taken for stalled: it is replaced only when the leader held
// a message for it at two checks 0.75 s apart (0.375 s at least) with nothing
// delivered between them, where a healthy replica delivers within milliseconds of
// the leader's commit (nats-server sends the commit at once); a backlog being
// delivered, an idle stream, a slow applier (ordered's channel full) and a stream
// leader's election (no leader answers the check) replace nothing. The price: an
// idle applier asks the stream's leader once every 0.75 s instead of every 2.5 s.
const applierStall = 1500 * time.Millisecond

// followStall is how long the applier may stand behind the stream without moving
// before Following says it does not follow.
const followStall = 2 * time.Second

// followWait is how long Following waits for an applier behind the stream to catch up
// (an idle applier has not moved for long, and a message just written is not applied
// yet).
const followWait = 500 * time.Millisecond

// Following returns nil while the applier keeps up with the stream: it has applied
// everything the stream holds, or does within followWait (a message another node
// just wrote), or it moved within followStall (it is busy); else an error saying
// where it stands. Every first write waits for this node's applier to decide it
// (first.go), so a node whose applier stands still answers 91: /readyz says so. (The
// applier stands still while nats.go re-creates its ordered consumer, with pauses of
// up to 10 s, after JetStream was unavailable.) It costs one JetStream request.
func (j *Journal) Following(ctx context.Context) error {
	if err := j.halted(); err != nil {
		return err
	}
	info, err := j.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("cjournal: the JetStream stream %s does not answer (its quorum lost?): %w", StreamName, err)
	}
	last := info.State.LastSeq
	j.ap.mu.Lock()
	applied := j.ap.applied
	j.ap.mu.Unlock()
	if applied >= last {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, followWait)
	err = j.WaitApplied(wctx, last)
	cancel()
	j.ap.mu.Lock()
	applied, moved := j.ap.applied, j.ap.movedAt
	j.ap.mu.Unlock()
	if err == nil || time.Since(moved) < j.ap.stall {
		return nil
	}
	why := "JetStream is not delivering the stream to it"
	if f := j.ap.fol.Load(); f != nil {
		if err := f.Err(); err != nil { // once: a consumer may be created meanwhile
			why = "it has no consumer of the stream: " + err.Error()
		}
	}
	return fmt.Errorf("cjournal: the journal's applier stands at sequence %d of the stream's %d and has not moved for %s: requests wait for it (%s; %s)",
		applied, info.State.LastSeq, time.Since(moved).Round(time.Millisecond), why, peers(info.Cluster))
}

// Consumer says whether the applier has a consumer of the stream now, and since
// when it has had one, or has had none (ordered.Follower.Consumer); false and the
// zero time while it follows nothing (before Open's restore is done, after Close).
func (j *Journal) Consumer() (has bool, since time.Time) {
	if f := j.ap.fol.Load(); f != nil {
		has, since, _ = f.Consumer()
		return has, since
	}
	return false, time.Time{}
}

// peers describes a stream's Raft group for an error: its leader and when each
// replica was last seen (a replica not seen for seconds is lost, and with it,
// perhaps, the quorum).
func peers(c *jetstream.ClusterInfo) string {
	if c == nil {
		return "stream " + StreamName + " has no cluster information"
	}
	leader := c.Leader
	if leader == "" {
		leader = "none"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "stream %s: leader %s", StreamName, leader)
	for _, r := range c.Replicas {
		state := "current"
		switch {
		case r.Offline:
			state = "offline"
		case !r.Current:
			state = "behind"
		}
		fmt.Fprintf(&b, ", %s %s, seen %s ago", r.Name, state, r.Active.Round(time.Millisecond))
	}
	return b.String()
}

// barrierSubject is where Barrier publishes: node 0 is no node.
const barrierSubject = "journal.0.barrier"

// Barrier publishes a message that changes nothing (an empty set of delivery marks)
// and waits until the stream has acknowledged it and the applier has applied the
// stream up to it. The stream is a Raft log, committed in order: a message another
// node published before it lost its process (a dead node's write that a new stream
// leader commits after the election) either is in the stream before the barrier,
// and so applied here when Barrier returns, or is never in the stream. A survivor
// settling a dead node's open transactions scans after a barrier, so that none of
// them shows up after its scan.
func (j *Journal) Barrier(ctx context.Context) error {
	m := &nats.Msg{Subject: barrierSubject, Header: nats.Header{}}
	m.Header[hdrNode] = []string{j.node}
	m.Header[hdrKind] = []string{kindDeliv}
	m.Header[hdrFormat] = []string{formatText}
	ack, err := j.await(ctx, "barrier", m, nil)
	if err != nil {
		return err
	}
	return j.WaitApplied(ctx, ack.Sequence)
}

// CaughtUp waits until the applier has applied everything the stream holds now.
func (j *Journal) CaughtUp(ctx context.Context) error {
	info, err := j.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("cjournal: stream %s: %w", StreamName, err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	last := info.State.LastSeq
	j.ap.mu.Lock()
	j.ap.last = max(j.ap.last, last)
	j.ap.mu.Unlock()
	return j.WaitApplied(ctx, last)
}

// run follows the stream until Close, starting again from its position after an
// error.
func (j *Journal) run() {
	defer close(j.ap.done)
	j.ap.flushed, j.ap.next = j.ap.applied, j.ap.applied
	for {
		err := j.follow()
		if err == nil {
			return // stopped
		}
		if errors.Is(err, ErrNewerFormat) {
			j.halt(err)
			<-j.stop
			return
		}
		j.stats.applyErrors.Add(1)
		j.log.Error().Err(err).Msg("cluster journal: applier stopped; following the stream again shortly")
		select {
		case <-j.stop:
			return
		case <-time.After(restartPause):
		}
	}
}

// follow consumes the stream from the position on and applies each message. It
// returns nil when Close stops it, or the error that stopped it.
func (j *Journal) follow() error {
	from := j.ap.next + 1
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-j.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	// Every subject, this node's own too: its first versions are decided here, in
	// stream order, with the other nodes'.
	// A consumer that stands still while the stream is ahead (its server's copy
	// of the stream stopped) is replaced after applierStall, and counted.
	m := j.cn.Metrics()
	m.PrepareConsumersReplaced(StreamName)
	fol, err := ordered.Follow(j.js, ordered.Config{Stream: StreamName, From: from, Buffer: 1024, Logger: j.log, Stall: applierStall,
		Replaced: func(reason string) { m.ObserveConsumerReplaced(StreamName, reason) },
		Bridged:  func(n int) { m.ObserveReadsWithoutConsumer(StreamName, n) }})
	if err != nil {
		return fmt.Errorf("follow %s from sequence %d: %w", StreamName, from, err)
	}
	defer fol.Stop()
	j.ap.fol.Store(fol)
	defer j.ap.fol.Store(nil)
	in := fol.C()
	n := 0
	timer := time.NewTimer(flushDelay)
	timer.Stop()
	defer timer.Stop()
	armed := false // timer runs: a flush is due at its end
	flush := func() error {
		if armed {
			timer.Stop()
			armed = false
		}
		n = 0
		return j.flush()
	}
	for {
		select {
		case m := <-in:
			if err := j.apply(ctx, m); err != nil {
				if ctx.Err() != nil {
					return flush()
				}
				if errors.Is(err, ErrNewerFormat) {
					// Halting: what was applied before the message stays applied.
					if ferr := flush(); ferr != nil {
						j.log.Error().Err(ferr).Msg("cluster journal: the applied position could not be written at the halt")
					}
				}
				return err
			}
			if n++; n >= flushEvery {
				if err := flush(); err != nil {
					return err
				}
			} else if !armed {
				timer.Reset(flushDelay)
				armed = true
			}
		case <-timer.C:
			armed = false
			if err := flush(); err != nil {
				return err
			}
		case <-j.ap.want:
			if err := flush(); err != nil {
				return err
			}
		case <-j.stop:
			return j.flush()
		}
	}
}

// flush writes the applier's position to the local Badger through the journal's
// log, after the messages applied up to it, and then makes it the Position: the
// applied records are readable (their group is committed) and survive a crash.
func (j *Journal) flush() error {
	if j.ap.next == j.ap.flushed {
		return nil
	}
	// The applier's writes are not waited for one by one: a failed commit shows only
	// in the store's count of them. The position never passes a write that may be
	// lost: what was applied since the last flush is applied again.
	failures := j.store.CommitFailures()
	if failures != j.ap.failures {
		return j.reapply(failures)
	}
	if f := j.opts.BeforeFlush; f != nil {
		if err := f(); err != nil {
			return fmt.Errorf("before writing the applied position %d: %w", j.ap.next, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := j.store.PutDurable(ctx, []byte(keyApplied), binary.BigEndian.AppendUint64(nil, j.ap.next)); err != nil {
		// The writes it covers may have failed with it: they are applied again,
		// now (before, the applier went on past them, and applied them again only
		// at a later flush, which an idle stream never brought: Open, waiting for
		// the position, waited out its deadline).
		pos := j.ap.next
		return fmt.Errorf("write the applied position %d: %w; %w", pos, err, j.reapply(j.store.CommitFailures()))
	}
	if f := j.store.CommitFailures(); f != failures {
		// A commit failed before the position's: put the last good one back.
		if err := j.store.PutDurable(ctx, []byte(keyApplied), binary.BigEndian.AppendUint64(nil, j.ap.flushed)); err != nil {
			j.log.Error().Err(err).Uint64("position", j.ap.next).Uint64("good", j.ap.flushed).
				Msg("cluster journal: the applied position may cover writes the local store lost, and could not be put back; a restart now would lack them")
		}
		return j.reapply(f)
	}
	j.ap.flushed = j.ap.next
	j.ap.mu.Lock()
	j.ap.applied, j.ap.movedAt = j.ap.next, time.Now()
	close(j.ap.advanced)
	j.ap.advanced = make(chan struct{})
	j.ap.mu.Unlock()
	// The store's index shows what was applied up to here (the position's write
	// committed it).
	clear(j.ap.keys)
	return nil
}

// reapply makes the applier start again from its last flushed position (its
// caller returns the error, and run follows the stream again): a commit of the local
// store failed since, and what was applied meanwhile may be lost. The keys applied
// stay noted (the stream's order decided them); the recent records go (the store may
// lack them).
func (j *Journal) reapply(failures uint64) error {
	j.ap.failures = failures
	j.ap.next = j.ap.flushed
	j.ap.recent.clear()
	return fmt.Errorf("a write of the local store failed after sequence %d was applied: applying the stream again from there", j.ap.flushed)
}

// apply applies one stream message to the local store and moves the position.
func (j *Journal) apply(ctx context.Context, m jetstream.Msg) error {
	md, err := m.Metadata()
	if err != nil {
		return fmt.Errorf("stream message without metadata: %w", err)
	}
	j.stats.received.Add(1)
	seq := md.Sequence.Stream
	h := m.Headers()
	own := h.Get(hdrNode) == j.node
	// Own messages the stream held when Open ran are restored where the store
	// lacks them; past that, only own first versions are looked at (decided).
	restoring := own && seq <= j.ap.restoreTo
	format, fe := checkFormat(h.Get(hdrFormat))
	if fe != nil {
		fe.where = fmt.Sprintf("%s message %d (%s)", StreamName, seq, m.Subject())
		return fe
	}
	byKSN := format >= ksnFormat
	kind, data := h.Get(hdrKind), m.Data()
	j.ap.cur = entryPos{seq: seq}
	switch {
	case kind == kindGroup:
		idx := 0
		err = decodeGroup(data, func(kind string, payload []byte) error {
			// Every entry counts, applied or not, so that an entry has the same
			// place when the message is applied again.
			j.ap.cur.idx = idx
			idx++
			if own && !restoring && kind != kindFirst {
				return nil
			}
			return j.skipBad(seq, m.Subject(), j.applyMsg(ctx, seq, kind, payload, own, false, byKSN))
		})
	case !own || restoring:
		// A first version published alone (the previous version's form) after this
		// process opened the journal is not in the local store: no need to look.
		fresh := seq > j.ap.restoreTo && h.Get(hdrFirst) == "1"
		err = j.applyMsg(ctx, seq, kind, data, own, fresh, byKSN)
	}
	if err := j.skipBad(seq, m.Subject(), err); err != nil {
		return fmt.Errorf("apply %s sequence %d (%s): %w", StreamName, seq, m.Subject(), err)
	}
	j.ap.next = seq
	j.ap.mu.Lock()
	j.ap.last = max(j.ap.last, seq+md.NumPending)
	j.ap.mu.Unlock()
	return nil
}

// skipBad passes err on unless it is a badMessage: that one is logged and counted,
// and the applier goes on.
func (j *Journal) skipBad(seq uint64, subject string, err error) error {
	var bad badMessage
	if err == nil || !errors.As(err, &bad) {
		return err
	}
	err = fmt.Errorf("apply %s sequence %d (%s): %w", StreamName, seq, subject, err)
	// It will never apply: say so and go on.
	j.stats.applyErrors.Add(1)
	j.log.Error().Err(err).Msg("cluster journal: skipped a stream message (or a group's entry) that cannot be applied")
	return nil
}

// applyMsg applies a message of kind, at stream sequence seq, to the local store.
// An own record version is written only if the store lacks it (or holds an older
// version). With fresh, the message is a record's first version that no earlier run
// of the applier can have applied (the store lacks it).
func (j *Journal) applyMsg(ctx context.Context, seq uint64, kind string, data []byte, own, fresh, byKSN bool) error {
	switch kind {
	case kindRecord:
		rec := new(journal.Record)
		if err := rec.UnmarshalBinary(data); err != nil {
			return badMessage{fmt.Errorf("decode record: %w", err)}
		}
		return j.applyRecord(ctx, rec, data, own, fresh, nil)
	case kindFirst:
		return j.applyFirst(ctx, seq, data, own, byKSN)
	case kindDeliv:
		return j.applyMarks(data)
	case kindBatch:
		if len(data) < 9 {
			return badMessage{fmt.Errorf("batch close of %d bytes", len(data))}
		}
		at := time.Unix(0, int64(binary.BigEndian.Uint64(data[:8]))).UTC()
		tid := string(data[8:])
		prev, err := j.store.LastBatch(tid)
		if err != nil {
			return err
		}
		if at.After(prev) {
			return j.store.CloseBatch(ctx, tid, at)
		}
	default:
		return badMessage{fmt.Errorf("unknown kind %q", kind)}
	}
	return nil
}

// applyRecord applies a record version to the local store: another node's always
// (and hands it to OnRemote), an own one only if the store lacks it or holds an
// older version (and hands it to OnRestored, unless a writer of this process waits
// for it: w); each entry is handed once a process (handed). A first version that
// owns a duplicate key notes the key in keys until the next flush. With w, the
// write is durable and w.committed gets its outcome.
func (j *Journal) applyRecord(ctx context.Context, rec *journal.Record, data []byte, own, fresh bool, w *firstWait) error {
	live := w != nil
	// Another node's version, or an own one given back by the stream, finds its
	// predecessor among the versions applied last: the store does not show a
	// version the applier wrote until its group is committed, and an own record
	// restored a version after another (a node rebuilt on an empty disk) met its
	// final version with no predecessor, as new, and OnRestored folded it twice.
	recent := !own || !live
	local, ok := (*journal.Record)(nil), false
	if recent {
		local, ok = j.ap.recent.get(rec.RRN)
	}
	if !ok && !fresh {
		var err error
		local, err = j.store.Get(rec.RRN)
		switch {
		case errors.Is(err, journal.ErrNotFound):
			local = nil
		case err != nil:
			return err
		}
	}
	if own {
		if local != nil && !newerVersion(rec, local) {
			return nil
		}
		if !live {
			j.store.NoteRRN(rec.RRN)
		}
	} else if local != nil && newerVersion(local, rec) {
		// An older version than the store's: a write-ahead record sent again late
		// (after a failed group went to the resender) behind its final version.
		return nil
	}
	if w != nil {
		var err error
		if w.committed, err = j.store.WriteEncodedAsync(rec, data, local == nil); err != nil {
			return err
		}
	} else if err := j.store.WriteEncoded(ctx, rec, data, local == nil, false); err != nil {
		return err
	}
	if local == nil && ownsKey(rec) {
		j.ap.keys[rec.DuplicateKey()] = rec.RRN
		if rec.KSN != "" { // as the store indexes it
			j.ap.keys[journal.KSNKey(rec.KSN)] = rec.RRN
		}
	}
	if recent {
		j.ap.recent.put(rec)
	}
	if !own {
		j.stats.appliedRemote.Add(1)
		if j.opts.OnRemote != nil && !j.ap.cur.before(j.ap.handed) {
			j.opts.OnRemote(rec, local, j.ap.latest)
			j.ap.handed = entryPos{seq: j.ap.cur.seq, idx: j.ap.cur.idx + 1}
		}
	} else if !live && j.opts.OnRestored != nil && !j.ap.cur.before(j.ap.handed) {
		j.opts.OnRestored(rec, local, j.ap.latest)
		j.ap.handed = entryPos{seq: j.ap.cur.seq, idx: j.ap.cur.idx + 1}
	}
	return nil
}

// latest is Latest over the versions the applier applied last, then the store.
func (j *Journal) latest(rrn string) (*journal.Record, error) {
	if rec, ok := j.ap.recent.get(rrn); ok {
		return rec, nil
	}
	return j.store.Get(rrn)
}

// newerVersion says whether a is a later version of its record than b: a higher
// Rev when both carry one and they differ (every version since 5 December 2026:
// events alone do not order the versions of an original changed by other
// transactions, a refund's reservation adding none, and a node's copy carrying its
// delivery mark merged as an event); else more events, or as many with a final and b
// not. The last is a request answered 91
// while the stream had not acknowledged its write-ahead record: the final version
// the pipeline keeps for the journal's return takes the write-ahead's "sent" event
// back (the request never went to the issuer) and adds its answer, as many events
// as the write-ahead version, which the stream may still have stored, and which
// the resender may send again after it.
func newerVersion(a, b *journal.Record) bool {
	if a.Rev != b.Rev && a.Rev > 0 && b.Rev > 0 {
		return a.Rev > b.Rev
	}
	if len(a.Events) != len(b.Events) {
		return len(a.Events) > len(b.Events)
	}
	return a.Final() && !b.Final()
}

// badMessage is a stream message that cannot be applied however often it is tried
// (undecodable, of an unknown kind): the applier skips it.
type badMessage struct{ error }

func (b badMessage) Unwrap() error { return b.error }

// recentRecords are the other nodes' record versions the applier applied last (and
// this node's own that the stream gave back), by RRN: the next version of a record
// (its final one, a few milliseconds after the first) finds its predecessor here
// instead of in the store. Only the applier puts; every write of this node but a
// first version (a reversal of another node's record, a dead node's recovery, a
// change of its own restored one) drops it (Journal.Write), so that an entry is
// always the store's version. It holds up to maxRecent records and then starts
// again empty.
type recentRecords struct {
	mu sync.Mutex
	m  map[string]*journal.Record
}

const maxRecent = 8192

func (r *recentRecords) get(rrn string) (*journal.Record, bool) {
	r.mu.Lock()
	rec, ok := r.m[rrn]
	r.mu.Unlock()
	return rec, ok
}

func (r *recentRecords) put(rec *journal.Record) {
	r.mu.Lock()
	if r.m == nil || len(r.m) >= maxRecent {
		r.m = make(map[string]*journal.Record, maxRecent)
	}
	r.m[rec.RRN] = rec
	r.mu.Unlock()
}

func (r *recentRecords) clear() {
	r.mu.Lock()
	r.m = nil
	r.mu.Unlock()
}

func (r *recentRecords) drop(rrn string) {
	r.mu.Lock()
	delete(r.m, rrn)
	r.mu.Unlock()
}
