package cjournal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/switch/cluster"
	"github.com/switchyard/switchyard/switch/journal"
)

// Publishing: every write goes to the grouper (group.go), which packs the entries of
// concurrent writers into one message; a durable write waits for its group's
// acknowledgement. The first version of a request that owns its duplicate key waits
// for the applier's verdict too (first.go).

// The message headers.
const (
	hdrNode   = "Sy-Node"
	hdrKind   = "Sy-Kind"
	hdrFirst  = "Sy-First"
	hdrFormat = "Sy-Format" // Format, on every message this version publishes
)

// The kinds of stream messages (the subject's last token and the Sy-Kind header).
const (
	kindRecord = "r" // a record version (journal.Record.AppendBinary)
	kindDeliv  = "d" // delivery marks, each: state byte, unix nanos (8 bytes BE), RRN length byte, RRN
	kindBatch  = "b" // a batch close: unix nanos (8 bytes BE), terminal ID
)

const (
	// maxAsyncPending bounds the publishes waiting for an acknowledgement on the
	// journal's JetStream context (nats.go stalls new ones beyond it).
	maxAsyncPending = 16384
	// asyncQueue bounds the background publishes waiting for the resender.
	asyncQueue = 65536
	// retryPause is the pause before a publish is sent again after an error
	// (no responders while a stream leader is elected).
	retryPause = 50 * time.Millisecond
	// errDupInProcess is the stream's answer to a Nats-Msg-Id another publish has
	// in flight (the same request on two nodes at once): asked again, it says
	// whether that one was stored.
	errDupInProcess jetstream.ErrorCode = 10158
)

// unavailableError is a write the stream did not acknowledge: it wraps
// journal.ErrUnavailable (the pipeline answers 91), cluster.ErrNoQuorum unless the
// stream refused the write outright, and the cause.
type unavailableError struct {
	what     string
	err      error
	noQuorum bool
}

func (e *unavailableError) Error() string {
	if e.noQuorum {
		return fmt.Sprintf("cjournal: %s: %v: %v", e.what, cluster.ErrNoQuorum, e.err)
	}
	return fmt.Sprintf("cjournal: %s: the stream %s refused it: %v", e.what, StreamName, e.err)
}

func (e *unavailableError) Unwrap() []error {
	if e.noQuorum {
		return []error{journal.ErrUnavailable, cluster.ErrNoQuorum, e.err}
	}
	return []error{journal.ErrUnavailable, e.err}
}

// message builds a stream message of this node.
func (j *Journal) message(kind string, first bool, data []byte) *nats.Msg {
	m := &nats.Msg{Subject: "journal." + j.node + "." + kind, Data: data, Header: nats.Header{}}
	m.Header[hdrNode] = []string{j.node}
	m.Header[hdrKind] = []string{kind}
	m.Header[hdrFormat] = []string{formatText}
	if first {
		m.Header[hdrFirst] = []string{"1"}
	}
	return m
}

// setID gives m a Nats-Msg-Id unique to this node process.
func (j *Journal) setID(m *nats.Msg) {
	m.Header[jetstream.MsgIDHeader] = []string{j.idPrefix + strconv.FormatUint(j.idSeq.Add(1), 10)}
}

// Write stores a record version in the local store and publishes it to the stream.
// With durable it returns once both hold it (the local sync and the stream's
// acknowledgement, waited for together); without, it returns once the local store
// has queued it, and the publish is acknowledged (or sent again) in the background.
//
// The first write of a request that owns its duplicate key is waited for even when
// not durable, and written to the local store by the applier once the stream's
// order has decided it (first.go): when a record of another RRN holds the key
// earlier in the stream, it returns a *journal.DuplicateError naming it and nothing
// of it is written, on any node (the local store holds that record then, where Get
// finds it). Without an acknowledgement (no quorum) a durable or duplicate-checked
// write fails with an error wrapping journal.ErrUnavailable and, unless the stream
// refused the message outright, cluster.ErrNoQuorum.
func (j *Journal) Write(ctx context.Context, rec *journal.Record, first, durable bool) error {
	if first && j.opts.Fence != nil {
		if err := j.opts.Fence(ctx); err != nil {
			return fmt.Errorf("cjournal: record %s refused: %w: %w", rec.RRN, journal.ErrUnavailable, err)
		}
	}
	if first && keptAnswer(rec) && ownsKey(rec) {
		if err := j.shedding(time.Now(), false); err != nil {
			return fmt.Errorf("cjournal: record %s refused: %w", rec.RRN, err)
		}
	}
	if !first || len(rec.RRN) > 0 && rec.RRN[0] != j.node[0] {
		// A later version, or another node's record: the applier's copy (of a version
		// another node wrote) is no longer the store's version (dropped before and
		// after, for an applier that applies a version meanwhile). A first version
		// of this node's own record cannot be there.
		j.ap.recent.drop(rec.RRN)
		defer j.ap.recent.drop(rec.RRN)
	}
	// One more than the version it was made from (Record.Rev): the appliers keep
	// the highest.
	rec.Rev++
	// The encoding starts in a buffer as large as recent ones grew (growing it from
	// nil, a few doublings a record, was 2.5% of a cluster node's CPU). A write-ahead
	// record's f entry, its RRN's length and the RRN before the encoding, is built in
	// the same buffer.
	keyed := first && ownsKey(rec)
	buf := make([]byte, 0, j.encodeHint())
	if keyed && len(rec.RRN) <= 255 { // writeFirst refuses a longer one
		buf = append(append(buf, byte(len(rec.RRN))), rec.RRN...)
	}
	head := len(buf)
	buf, err := rec.AppendBinary(buf)
	if err != nil {
		return fmt.Errorf("cjournal: encode record %s: %w", rec.RRN, err)
	}
	j.noteEncoded(len(buf))
	data := buf[head:]
	if keyed {
		return j.writeFirst(ctx, rec, buf, data)
	}
	if !durable {
		if err := j.store.WriteEncoded(ctx, rec, data, first, false); err != nil {
			return err
		}
		if _, err := j.enqueue(kindRecord[0], data, false); err != nil {
			j.stats.lost.Add(1)
			j.log.Error().Err(err).Str("rrn", rec.RRN).Msg("cluster journal: a version goes unreplicated")
		}
		return nil
	}
	err = j.writeBoth(ctx, "record "+rec.RRN, kindRecord[0], data, func() error { return j.store.WriteEncoded(ctx, rec, data, first, true) })
	if err != nil {
		j.held.failed(rec)
	}
	return err
}

// maxEncodeHint bounds encodeHint: a rare large record does not make every later
// buffer as large.
const maxEncodeHint = 4096

// encodeHint is the capacity a record's encoding (with an f entry's header) starts
// with in Write: the largest of the encodings noted so far, up to maxEncodeHint.
func (j *Journal) encodeHint() int {
	if h := j.encHint.Load(); h > 0 {
		return int(h)
	}
	return 512
}

// noteEncoded notes the length of an encoding for encodeHint.
func (j *Journal) noteEncoded(n int) {
	if n > maxEncodeHint {
		return
	}
	for {
		h := j.encHint.Load()
		if int64(n) <= h || j.encHint.CompareAndSwap(h, int64(n)) {
			return
		}
	}
}

// writeBoth queues an entry of kind for the grouper, runs the local write meanwhile,
// and waits for both.
func (j *Journal) writeBoth(ctx context.Context, what string, kind byte, payload []byte, local func() error) error {
	start := time.Now()
	ch, qerr := j.enqueue(kind, payload, true)
	if lerr := local(); lerr != nil {
		return lerr
	}
	if qerr != nil {
		return &unavailableError{what: "publish " + what, err: qerr}
	}
	return j.awaitGroup(ctx, "publish "+what, start, ch)
}

// await waits for f's acknowledgement (publishing m first when f is nil), sending
// m again, with its Nats-Msg-Id, after an error, until ctx ends or AckTimeout has
// passed.
func (j *Journal) await(ctx context.Context, what string, m *nats.Msg, f jetstream.PubAckFuture) (*jetstream.PubAck, error) {
	start := time.Now()
	deadline := start.Add(j.opts.AckTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	var last error
	for {
		if f == nil {
			var err error
			if f, err = j.publishAsync(m); err != nil {
				last, f = err, nil
			}
		}
		if f != nil {
			select {
			case ack := <-f.Ok():
				j.stats.published.Add(1)
				// The acknowledgements outstanding with this one: the group the
				// client's asynchronous publishing formed.
				m := j.cn.Metrics()
				m.ObservePublish(StreamName, time.Since(start))
				m.ObserveGroup(StreamName, j.js.PublishAsyncPending()+1)
				return ack, nil
			case err := <-f.Err():
				last, f = err, nil
			case <-timer.C:
				return nil, j.failed(what, errors.New("no acknowledgement in time"))
			case <-ctx.Done():
				return nil, j.failed(what, ctx.Err())
			}
		}
		var api *jetstream.APIError
		if errors.As(last, &api) && api.ErrorCode != errDupInProcess {
			j.stats.publishFailed.Add(1)
			return nil, &unavailableError{what: what, err: last}
		}
		select {
		case <-time.After(retryPause):
		case <-timer.C:
			return nil, j.failed(what, last)
		case <-ctx.Done():
			return nil, j.failed(what, fmt.Errorf("%w (last: %v)", ctx.Err(), last))
		}
	}
}

func (j *Journal) failed(what string, err error) error {
	j.stats.publishFailed.Add(1)
	return &unavailableError{what: what, err: err, noQuorum: true}
}

// CloseBatch records the terminal's batch close locally and in the stream (a
// terminal that moves to another node keeps its batch boundary); it returns once
// both hold it.
func (j *Journal) CloseBatch(ctx context.Context, tid string, at time.Time) error {
	data := append(binary.BigEndian.AppendUint64(nil, uint64(at.UnixNano())), tid...)
	return j.writeBoth(ctx, "batch close of "+tid, kindBatch[0], data, func() error { return j.store.CloseBatch(ctx, tid, at) })
}

// asyncPub is a background publish waiting for its acknowledgement.
type asyncPub struct {
	m       *nats.Msg
	f       jetstream.PubAckFuture // nil: not sent yet
	entries int                    // the group's entries (Stats.Published)
}

// queueResend hands a publish to the resender: it waits for p's acknowledgement, or
// sends p.m when p.f is nil, and again after each failure.
func (j *Journal) queueResend(p asyncPub) {
	j.asyncMu.RLock()
	defer j.asyncMu.RUnlock()
	if j.asyncClosed {
		j.stats.lost.Add(1)
		return
	}
	select {
	case j.async <- p:
	default:
		j.stats.lost.Add(1)
		j.log.Error().Str("subject", p.m.Subject).Msg("cluster journal: background publish queue full; a version goes unreplicated")
	}
}

// resend is the resender's loop: it waits for each background publish's
// acknowledgement in turn and sends a failed one again, with its Nats-Msg-Id, until
// it is acknowledged or Close stops it. Once Close has begun, what is left gets
// AckTimeout in all, not each: after a long loss of quorum the queue may hold
// thousands of publishes, and a stop must not wait for every one of them; those
// still unacknowledged then are counted lost (the local journal has them).
func (j *Journal) resend() {
	defer close(j.asyncDone)
	var (
		stop        = j.stop
		drainOver   <-chan time.Time // from Close's beginning, AckTimeout
		drained     bool
		drainedLost uint64
	)
	// wait waits for f's outcome, noting Close's beginning and the drain's end.
	wait := func(f jetstream.PubAckFuture) error {
		for {
			select {
			case <-f.Ok():
				return nil
			case err := <-f.Err():
				return err
			case <-stop:
				stop, drainOver = nil, time.After(j.opts.AckTimeout)
			case <-drainOver:
				drained = true
				return errDrained
			}
		}
	}
outer:
	for p := range j.async {
		pause := retryPause
		for {
			if drained {
				j.stats.lost.Add(1)
				drainedLost++
				continue outer
			}
			if p.f == nil {
				f, err := j.publishAsync(p.m)
				if err == nil {
					p.f = f
				}
			}
			var err error = errors.New("not sent")
			if p.f != nil {
				err = wait(p.f)
			}
			if err == nil {
				j.stats.published.Add(uint64(max(p.entries, 1)))
				j.stats.groups.Add(1)
				break
			}
			j.stats.publishFailed.Add(1)
			select {
			case <-j.stop:
				j.stats.lost.Add(1)
				if !drained {
					j.log.Error().Err(err).Str("subject", p.m.Subject).Msg("cluster journal: closing with a publish unacknowledged")
				}
				continue outer
			case <-time.After(pause):
			}
			j.stats.resent.Add(1)
			p.f = nil
			pause = min(2*pause, time.Second)
		}
	}
	if drainedLost > 0 {
		j.log.Error().Uint64("lost", drainedLost).Dur("drain", j.opts.AckTimeout).Msg("cluster journal: closed with background publishes unacknowledged after the drain; they go unreplicated")
	}
}

// errDrained: Close's drain of the background publishes ended before an
// acknowledgement came.
var errDrained = errors.New("cluster journal: closing, the background publishes' drain is over")
