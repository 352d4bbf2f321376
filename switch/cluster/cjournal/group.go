package cjournal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Grouping: JetStream stores, replicates and delivers every message on its own, and
// that costs the cluster 20 to 56 µs of CPU per message whatever its size
// (docs/cluster-measurements.md). So the journal packs what its writers hand it —
// record versions, delivery marks, batch closes — into group messages (kind g), many
// entries to a message. One goroutine, the grouper (groupLoop, started by Open,
// joined by Close), sends what has gathered as one message with a Nats-Msg-Id unique
// to this node process (a resend after a lost acknowledgement is stored once), and
// keeps up to maxGroupsInFlight groups unacknowledged: while they are in flight the
// next group gathers, so the busier the node, the larger its groups. While entries
// come fast (Options.GroupPause would gather pauseFrom of them), it also leaves at
// least GroupPause between two groups: fewer, larger messages cost the servers less.
// A second goroutine, the acker (ackLoop), waits for the groups' acknowledgements in
// the order they were sent and wakes each group's durable writers (nil, or the error
// that fails them: journal.ErrUnavailable, cluster.ErrNoQuorum); a group that fails
// is sent again, with its id, until its writers' AckTimeout has passed, and then,
// if it holds entries nobody waits for, handed to the resender.
//
// A group message's data is its entries one after the other, each: kind byte (r, d
// or b, as the messages of those kinds), length (uvarint), payload (the data a
// message of that kind carries).

const (
	kindGroup = "g" // entries of the other kinds: kind byte, uvarint length, payload

	// maxGroupMsg bounds a group message (the stream's default message limit is 1 MiB);
	// an entry larger than it goes alone.
	maxGroupMsg = 256 << 10
	// maxGroupsInFlight is how many groups may wait for their acknowledgement at once.
	maxGroupsInFlight = 2
	// pauseFrom is how many entries a pause (Options.GroupPause) must be expected to
	// gather, at the rate the last groups came, before the grouper pauses: below it,
	// a pause would only add latency.
	pauseFrom = 32
)

// grouper is the queue of entries not yet sent and the groups in flight.
type grouper struct {
	mu      sync.Mutex
	buf     []byte        // encoded entries
	cuts    []int         // buf's entry ends, in order
	waiters []groupWait   // the durable writers of buf's entries
	bg      bool          // buf holds an entry nobody waits for
	closed  bool          // set by groupLoop when Close stops it: Write fails
	wake    chan struct{} // an entry was queued into an empty buffer

	// lastSent and rate (entries a second, measured over the gap before each group
	// sent) are the grouper's, for pacing.
	lastSent time.Time
	rate     float64

	slots    chan struct{} // a token per group in flight
	inflight chan *group   // the groups sent, to the acker
	done     chan struct{} // closed when the acker has ended
}

// groupWait is a durable writer waiting for its entry's group.
type groupWait struct {
	end int        // its entry's end in buf (the group that holds it wakes it)
	ch  chan error // buffered: the acker never blocks on a writer gone
}

// group is a group message sent and waiting for its acknowledgement.
type group struct {
	m       *nats.Msg
	f       jetstream.PubAckFuture // nil: to be sent again
	waiters []chan error
	entries int
	bg      bool
	sent    time.Time
}

func (g *grouper) init() {
	g.wake = make(chan struct{}, 1)
	g.slots = make(chan struct{}, maxGroupsInFlight)
	g.inflight = make(chan *group, maxGroupsInFlight)
	g.done = make(chan struct{})
}

// errClosed fails a write that comes after Close.
var errClosed = errors.New("the cluster journal is closed")

// enqueue queues an entry of kind for the grouper; with wait, it returns the channel
// its group's outcome comes on. It fails once Close has stopped the grouper.
func (j *Journal) enqueue(kind byte, payload []byte, wait bool) (chan error, error) {
	var ch chan error
	if wait {
		ch = make(chan error, 1)
	}
	g := &j.group
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil, errClosed
	}
	wasEmpty := len(g.buf) == 0
	g.buf = binary.AppendUvarint(append(g.buf, kind), uint64(len(payload)))
	g.buf = append(g.buf, payload...)
	g.cuts = append(g.cuts, len(g.buf))
	if wait {
		g.waiters = append(g.waiters, groupWait{end: len(g.buf), ch: ch})
	} else {
		g.bg = true
	}
	g.mu.Unlock()
	if wasEmpty {
		select {
		case g.wake <- struct{}{}:
		default:
		}
	}
	return ch, nil
}

// take cuts the next group off the queue: up to maxGroupMsg bytes at an entry's end
// (at least one entry). It returns nil when nothing is queued.
func (j *Journal) take() *group {
	g := &j.group
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.buf) == 0 {
		return nil
	}
	n, k := len(g.buf), len(g.cuts)
	if n > maxGroupMsg {
		k = 1
		for k < len(g.cuts) && g.cuts[k] <= maxGroupMsg {
			k++
		}
		n = g.cuts[k-1]
	}
	gr := &group{entries: k}
	data := g.buf[:n:n]
	w := 0
	for w < len(g.waiters) && g.waiters[w].end <= n {
		gr.waiters = append(gr.waiters, g.waiters[w].ch)
		w++
	}
	if n == len(g.buf) {
		gr.bg = g.bg
		g.buf, g.cuts, g.waiters, g.bg = nil, g.cuts[:0], g.waiters[:0], false
	} else {
		// The rest stays queued. bg stays set for both (it only lets a failed group
		// go on to the resender).
		gr.bg = g.bg
		rest := append([]byte(nil), g.buf[n:]...)
		cuts := g.cuts[k:]
		for i := range cuts {
			cuts[i] -= n
		}
		waiters := g.waiters[w:]
		for i := range waiters {
			waiters[i].end -= n
		}
		g.buf, g.cuts, g.waiters = rest, append([]int(nil), cuts...), append([]groupWait(nil), waiters...)
	}
	gr.m = j.message(kindGroup, false, data)
	j.setID(gr.m)
	return gr
}

// groupLoop is the grouper: it sends the queued entries as groups, up to
// maxGroupsInFlight unacknowledged, until Close; then it sends what is left and
// ends, after which the acker ends once it has settled every group.
func (j *Journal) groupLoop() {
	g := &j.group
	defer close(g.inflight)
	for {
		select {
		case <-g.wake:
		case <-j.stop:
			g.mu.Lock()
			g.closed = true
			g.mu.Unlock()
			j.sendQueued()
			return
		}
		j.sendQueued()
	}
}

// sendQueued sends the queued entries, a group at a time, each once a slot is free.
func (j *Journal) sendQueued() {
	g := &j.group
	for {
		g.slots <- struct{}{} // the acker frees one per group settled
		if wait := pause(time.Now(), g.lastSent, g.rate, j.opts.GroupPause); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-j.stop: // Close sends what is left at once
				t.Stop()
			}
		}
		gr := j.take()
		if gr == nil {
			<-g.slots
			return
		}
		gr.sent = time.Now()
		if !g.lastSent.IsZero() {
			g.rate = float64(gr.entries) / max(gr.sent.Sub(g.lastSent).Seconds(), 1e-6)
		}
		g.lastSent = gr.sent
		f, err := j.publishAsync(gr.m)
		if err == nil {
			gr.f = f
		}
		g.inflight <- gr // never blocks: a slot is held
	}
}

// pause returns how long the grouper waits before it takes the next group: what is
// left of the pause p since the last group was sent (at last), when entries came at
// rate (entries a second) fast enough for p to gather pauseFrom of them; 0 otherwise.
// Fewer, larger groups cost the three servers less CPU than the same entries in more
// messages (docs/cluster.md, "The load's concurrency, and pacing the groups"); at a
// low rate the groups go as soon as a slot is free.
func pause(now, last time.Time, rate float64, p time.Duration) time.Duration {
	if p <= 0 || last.IsZero() || rate*p.Seconds() < pauseFrom {
		return 0
	}
	return max(0, last.Add(p).Sub(now))
}

// ackLoop is the acker: it settles the groups in the order they were sent.
func (j *Journal) ackLoop() {
	g := &j.group
	defer close(g.done)
	for gr := range g.inflight {
		j.settle(gr)
		<-g.slots
	}
}

// settle waits for a group's acknowledgement, sending it again after an error until
// AckTimeout has passed since it was first sent (or Close), and wakes its writers.
func (j *Journal) settle(gr *group) {
	deadline := gr.sent.Add(j.opts.AckTimeout)
	var last error
	for {
		if gr.f == nil {
			f, err := j.publishAsync(gr.m)
			if err != nil {
				last = err
			} else {
				gr.f = f
			}
		}
		if gr.f != nil {
			select {
			case ack := <-gr.f.Ok():
				if ack != nil {
					j.shed.acked(ack.Sequence, time.Now())
				}
				j.stats.published.Add(uint64(gr.entries))
				j.stats.groups.Add(1)
				if gr.waiters != nil && j.cn != nil {
					m := j.cn.Metrics()
					m.ObservePublish(StreamName, time.Since(gr.sent))
					m.ObserveGroup(StreamName, gr.entries)
				}
				for _, ch := range gr.waiters {
					ch <- nil
				}
				return
			case last = <-gr.f.Err():
				gr.f = nil
			}
		}
		j.stats.publishFailed.Add(1)
		var api *jetstream.APIError
		refused := errors.As(last, &api) && api.ErrorCode != errDupInProcess
		if refused || !time.Now().Before(deadline) || j.stopped() {
			ue := &unavailableError{err: last, noQuorum: !refused}
			for _, ch := range gr.waiters {
				ch <- ue
			}
			if gr.bg {
				j.queueResend(asyncPub{m: gr.m, entries: gr.entries})
			}
			return
		}
		select {
		case <-time.After(min(retryPause, time.Until(deadline))):
		case <-j.stop:
		}
		j.stats.resent.Add(1)
	}
}

// stopped says whether Close has begun.
func (j *Journal) stopped() bool {
	select {
	case <-j.stop:
		return true
	default:
		return false
	}
}

// awaitGroup waits for the outcome of a durable writer's group (ch, from enqueue),
// until ctx ends or AckTimeout has passed since start.
func (j *Journal) awaitGroup(ctx context.Context, what string, start time.Time, ch chan error) error {
	timer := time.NewTimer(time.Until(start.Add(j.opts.AckTimeout)))
	defer timer.Stop()
	select {
	case err := <-ch:
		if err == nil {
			return nil
		}
		var ue *unavailableError
		if errors.As(err, &ue) {
			return &unavailableError{what: what, err: ue.err, noQuorum: ue.noQuorum}
		}
		return j.failed(what, err)
	case <-timer.C:
		return j.failed(what, errors.New("no acknowledgement in time"))
	case <-ctx.Done():
		return j.failed(what, ctx.Err())
	}
}

// decodeGroup calls fn for each entry of a group message, until it fails.
func decodeGroup(data []byte, fn func(kind string, payload []byte) error) error {
	for len(data) > 0 {
		n, w := binary.Uvarint(data[1:])
		if w <= 0 || uint64(len(data)-1-w) < n {
			return badMessage{fmt.Errorf("group: %d bytes left, too short for an entry", len(data))}
		}
		kind := string(data[:1])
		payload := data[1+w : 1+w+int(n)]
		if err := fn(kind, payload); err != nil {
			return err
		}
		data = data[1+w+int(n):]
	}
	return nil
}
