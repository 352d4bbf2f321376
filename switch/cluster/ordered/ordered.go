// Package ordered follows a JetStream stream in stream order from a given
// sequence, delivering each message once and never skipping one, as nats.go's
// ordered consumer does, with one difference that matters to a switch: every wait
// it makes is bounded and ends when it is stopped.
//
// nats.go's ordered consumer (v1.55.0) creates its consumer with a fixed 10 s
// request, pauses up to 10 s between attempts, and holds its lock meanwhile, so
// that a node starting before JetStream has elected its leaders waited 10 s for
// nothing, and a Stop while the quorum was lost waited up to 20 s. Here one
// creation attempt waits 2 s at first (a request nobody answers because no meta
// leader exists yet is asked again soon), longer after each failure up to 10 s;
// each attempt names a new consumer and the unanswered one is deleted (one the
// meta leader placed on a server that has just died would never answer); the
// pauses between attempts are short; and Stop cancels whatever is in flight and
// returns once every goroutine of the follower has ended.
//
// A Follower runs one goroutine that owns the consumer: it creates an ephemeral,
// in-memory, unacknowledged pull consumer starting at the next sequence wanted,
// consumes it, and replaces it when the server says it is gone, when its idle
// heartbeats stop (its server died: a consumer of one replica lives on one server),
// when the consumer sequence of a message is not the one after the last
// delivered (a message lost between the server and this client), or when it
// stands still while the stream is ahead: it has delivered nothing for Stall
// while the stream's leader holds a message it should have delivered (a consumer
// whose server's copy of the stream stopped, the server otherwise up, answers
// its pulls with idle heartbeats and nothing else). The consumer that replaces a
// stalled one is not left on the stalled one's server when the cluster places it
// there (at most twice, then taken wherever it lands). Messages go to
// the channel C in stream order; the next consumer starts after the last message
// put in C, so one the client held but had not put there is fetched again.
//
// While no consumer can be created (no JetStream meta leader: one of the servers
// was lost and the meta group elects, or it lost its quorum; a creation is then
// unanswered, or refused at once with 503), the follower reads the messages it
// wants itself, every bridgeEvery, and puts them in C: a stream whose own group
// still has a leader is not followed any later for the meta group's election.
// It reads them by direct get where the stream allows it (answered by a
// replica, the one on the client's own server first, without the meta group),
// else by the API's message get (answered by the stream's leader, but refused by
// every server once it knows it has no meta leader). The consumer created at
// last skips what was delivered so meanwhile.
package ordered

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/rs/zerolog"
)

// Config says what a Follower follows and how patiently.
type Config struct {
	// Stream is the stream's name.
	Stream string
	// Subjects filter the stream; none: every message.
	Subjects []string
	// From is the first stream sequence wanted (at least 1). Ignored with
	// LastPerSubject.
	From uint64
	// LastPerSubject starts with the last message of each subject (what a KV
	// bucket's watcher sees first: each key's current value), then everything
	// after; a consumer replaced later starts after the last message delivered,
	// by sequence: replaced in the middle of the first values, it delivers the
	// earlier messages of the subjects still to come too (in stream order), as
	// nats.go's watcher does. A bucket with one message a key has none.
	LastPerSubject bool
	// Attempt bounds the first wait for a consumer's creation; each failed attempt
	// doubles it, up to 10 s. Default 2 s.
	Attempt time.Duration
	// Heartbeat is the idle heartbeat asked of the server: a consumer silent for
	// two of them is replaced. Default 1 s.
	Heartbeat time.Duration
	// Buffer is how many messages the client asks ahead, and how many C holds
	// that the receiver has not taken yet. Default 256.
	Buffer int
	// Stall is how long a consumer may deliver nothing while the stream's leader
	// holds a message it should deliver before it is replaced (ReasonStalled).
	// The follower asks the leader (one request, and one more per subject with
	// Subjects) every Stall/2 while its consumer has been silent that long and
	// the receiver is not behind (a receiver that leaves C full, however slow,
	// never makes its consumer stalled). It replaces the consumer at a check that
	// finds it silent for Stall and the leader holding a message that it already
	// held at an earlier check (Stall/4 earlier at least), with nothing delivered
	// since: so a consumer that stops delivering is replaced Stall to 1.5×Stall
	// after its last message (Stall/2 to Stall after the first message it should
	// deliver, when it had been idle), plus one question to the leader; while no
	// leader answers (an election), none is. Default 5 s.
	Stall time.Duration
	// Replaced, when set, is told (from the follower's goroutine) of every
	// consumer replaced, with the reason (one of Reasons): for a metric. It must
	// not block.
	Replaced func(reason string)
	// Bridged, when set, is told (from the follower's goroutine) how many
	// messages each round read while no consumer could be created (see the
	// package comment): for a metric. It must not block.
	Bridged func(n int)
	// Logger gets the first failure to create a consumer (not every attempt after
	// it) and, once one is created, how many attempts failed; and each
	// replacement, at most one a minute, with how many went unlogged.
	Logger zerolog.Logger
	// Report, when set, is told (from the follower's goroutine) of every failure
	// to create a consumer and every replacement, with the error, and of every
	// consumer created, with nil. It must not block. For tests.
	Report func(err error)
}

const (
	defaultAttempt   = 2 * time.Second
	maxAttempt       = 10 * time.Second
	defaultHeartbeat = time.Second
	minHeartbeat     = 500 * time.Millisecond // nats.go's bounds
	maxHeartbeat     = 30 * time.Second
	defaultBuffer    = 256
	defaultStall     = 5 * time.Second
	minStall         = 100 * time.Millisecond
	// stallAsk bounds the question to the stream's leader in a stall check.
	stallAsk = 2 * time.Second
	// avoidTries is how many consumers created on the server of one replaced for
	// a stall are deleted and asked again before one is taken wherever it lands;
	// avoidFor is how long after the stall its server is avoided.
	avoidTries = 2
	avoidFor   = time.Minute
	firstPause = 100 * time.Millisecond
	maxPause   = 2 * time.Second
	// bridgeEvery spaces the follower's own reads of the stream while it has no
	// consumer (readStream); bridgeAsk bounds one round of them.
	bridgeEvery = 250 * time.Millisecond
	bridgeAsk   = time.Second
	// inactive is how long the server keeps a consumer nobody pulls from: one
	// this follower abandoned (its deletion not answered, a creation's late
	// answer) goes by itself.
	inactive = time.Minute
	// deleteWait bounds the deletion of a replaced consumer; stopDeleteWait the
	// deletion of the last one, which Stop waits for (without a quorum nobody
	// answers it; the server's inactivity threshold then deletes the consumer).
	deleteWait     = 5 * time.Second
	stopDeleteWait = 250 * time.Millisecond
	// replaceLogEvery spaces the replacements logged.
	replaceLogEvery = time.Minute
)

// ErrGap is reported when a message's consumer sequence is not the one after
// the last delivered: the consumer is replaced from the next stream sequence.
var ErrGap = errors.New("ordered: a message is missing between the server and this client")

// ErrStalled is reported when a consumer delivered nothing for Config.Stall
// while the stream's leader held a message it should have delivered.
var ErrStalled = errors.New("ordered: the consumer delivers nothing while the stream is ahead")

// The reasons a consumer is replaced, as Config.Replaced is told them.
const (
	ReasonStalled   = "stalled"   // ErrStalled
	ReasonHeartbeat = "heartbeat" // its idle heartbeats stopped (its server died)
	ReasonGone      = "gone"      // the server says it is gone, or the connection is
	ReasonGap       = "gap"       // ErrGap
	ReasonOther     = "other"     // a message without metadata, the subscription ended
)

// Reasons are every reason Config.Replaced may be told, for a metric's series
// created at zero.
var Reasons = []string{ReasonStalled, ReasonHeartbeat, ReasonGone, ReasonGap, ReasonOther}

// reasonOf names why a consume error replaced its consumer.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, ErrStalled):
		return ReasonStalled
	case errors.Is(err, jetstream.ErrNoHeartbeat):
		return ReasonHeartbeat
	case errors.Is(err, ErrGap):
		return ReasonGap
	case replace(err):
		return ReasonGone
	default:
		return ReasonOther
	}
}

// Follower follows a stream; see the package comment.
type Follower struct {
	js   jetstream.JetStream
	cfg  Config
	c    chan jetstream.Msg
	name string // consumer names: name_1, name_2...

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup // the run goroutine and consumer deletions
	next      atomic.Uint64  // the next stream sequence wanted
	delivered atomic.Bool    // a message was put in c
	resets    atomic.Uint64
	bridged   atomic.Uint64 // messages read without a consumer (readStream)

	mu    sync.Mutex
	err   error     // while no consumer exists: why; for Err
	has   bool      // a consumer exists
	since time.Time // when has last changed (Follow: the start)

	// The run goroutine's alone: the last consumer's number, what was logged.
	serial       int
	failed       int       // failed creations since the last consumer
	replaced     int       // replacements not logged
	replacedLogs time.Time // when a replacement was last logged
	avoid        string    // the server of the last consumer replaced for a stall
	avoidUntil   time.Time // until when create avoids it
	holder       string    // the server of the current consumer, as its creation said
	bridgeLogged bool      // a bridge round was logged since the last consumer
}

// Follow starts following cfg.Stream from cfg.From. It does not wait for the
// consumer: messages arrive on C once one exists. Stop ends it.
func Follow(js jetstream.JetStream, cfg Config) (*Follower, error) {
	if cfg.Stream == "" {
		return nil, errors.New("ordered: no stream named")
	}
	if cfg.LastPerSubject {
		cfg.From = 1 // only until a message is delivered; see create
	}
	if cfg.From == 0 {
		return nil, fmt.Errorf("ordered: follow %s from sequence 0: the first sequence is 1", cfg.Stream)
	}
	if cfg.Attempt < 0 || cfg.Heartbeat < 0 || cfg.Buffer < 0 || cfg.Stall < 0 {
		return nil, fmt.Errorf("ordered: follow %s: negative attempt %v, heartbeat %v, buffer %d or stall %v", cfg.Stream, cfg.Attempt, cfg.Heartbeat, cfg.Buffer, cfg.Stall)
	}
	if cfg.Stall != 0 && cfg.Stall < minStall {
		return nil, fmt.Errorf("ordered: follow %s: stall %v is under %v", cfg.Stream, cfg.Stall, minStall)
	}
	if cfg.Heartbeat != 0 && (cfg.Heartbeat < minHeartbeat || cfg.Heartbeat > maxHeartbeat) {
		// nats.go refuses it at every Consume: the follower would replace its
		// consumer for ever.
		return nil, fmt.Errorf("ordered: follow %s: heartbeat %v is not from %v to %v", cfg.Stream, cfg.Heartbeat, minHeartbeat, maxHeartbeat)
	}
	if cfg.Attempt == 0 {
		cfg.Attempt = defaultAttempt
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = defaultHeartbeat
	}
	if cfg.Buffer == 0 {
		cfg.Buffer = defaultBuffer
	}
	if cfg.Stall == 0 {
		cfg.Stall = defaultStall
	}
	f := &Follower{js: js, cfg: cfg, c: make(chan jetstream.Msg, cfg.Buffer), name: "sy_" + nuid.Next(), since: time.Now()}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.next.Store(cfg.From)
	f.wg.Add(1)
	go f.run()
	return f, nil
}

// C delivers the stream's messages in order. It is never closed: select on it
// with whatever ends the receiver. Messages it holds when the consumer is
// replaced stay in it; the next consumer starts after them.
func (f *Follower) C() <-chan jetstream.Msg { return f.c }

// Next returns the stream sequence the next consumer would start from: the one
// after the last message put in C (once Stop has returned, exactly; while the
// follower runs, it may lag a message the receiver has just taken, or lead by
// the one a read without a consumer is putting in C).
func (f *Follower) Next() uint64 { return f.next.Load() }

// Resets returns how many times a consumer was replaced.
func (f *Follower) Resets() uint64 { return f.resets.Load() }

// Bridged returns how many messages the follower read itself while no
// consumer could be created (see the package comment). Each is counted before
// it is put in C: a receiver that took one sees it counted.
func (f *Follower) Bridged() uint64 { return f.bridged.Load() }

// Stop ends the follower: it cancels a creation or deletion in flight, stops the
// consumer, and returns once its goroutines have ended. A message the receiver
// has not taken is not delivered.
func (f *Follower) Stop() {
	f.cancel()
	f.wg.Wait()
}

// Err returns why the follower has no consumer, while it has none (a creation
// failing, a consumer just replaced), or nil.
func (f *Follower) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// Consumer says whether the follower has a consumer now, and since when it has
// had one, or has had none (from Follow on, until its first consumer), with Err's
// error of the same moment. A reader that must act on a follower without a
// consumer for long (a readiness check) reads them here, together.
func (f *Follower) Consumer() (has bool, since time.Time, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.has, f.since, f.err
}

// report records and logs a failure to create a consumer (creating true, err
// set), a replacement (creating false), or a consumer created (err nil).
func (f *Follower) report(err error, creating bool) {
	f.mu.Lock()
	f.err = err
	if has := err == nil; has != f.has {
		f.has, f.since = has, time.Now()
	}
	f.mu.Unlock()
	if f.cfg.Report != nil {
		f.cfg.Report(err)
	}
	log := &f.cfg.Logger
	switch {
	case err == nil:
		if f.failed > 0 {
			log.Info().Str("stream", f.cfg.Stream).Int("failed_attempts", f.failed).Msg("ordered: consumer created after failed attempts")
		}
		f.failed = 0
	case creating:
		if f.failed++; f.failed == 1 {
			log.Warn().Err(err).Msg("ordered: no consumer yet; asking again")
		}
	default:
		if time.Since(f.replacedLogs) < replaceLogEvery {
			f.replaced++
			return
		}
		log.Warn().Err(err).Int("unlogged_before", f.replaced).Msg("ordered: consumer replaced")
		f.replaced, f.replacedLogs = 0, time.Now()
	}
}

func (f *Follower) run() {
	defer f.wg.Done()
	pause := firstPause
	for f.ctx.Err() == nil {
		cons, name, err := f.create()
		if err != nil {
			return // stopped
		}
		f.report(nil, true)
		f.bridgeLogged = false
		from := f.next.Load()
		err = f.consume(cons)
		f.wg.Add(1)
		go f.delete(name)
		if err == nil {
			return // stopped
		}
		f.resets.Add(1)
		why := reasonOf(err)
		if why == ReasonStalled && f.holder != "" {
			f.avoid, f.avoidUntil = f.holder, time.Now().Add(avoidFor)
		}
		if f.cfg.Replaced != nil {
			f.cfg.Replaced(why)
		}
		on := ""
		if f.holder != "" {
			on = " on server " + f.holder
		}
		f.report(fmt.Errorf("ordered: consumer %s of %s%s replaced from sequence %d: %w", name, f.cfg.Stream, on, f.next.Load(), err), false)
		// A pause before the next: short after a consumer that delivered (its
		// server died), growing while consumers deliver nothing (no responders:
		// the server has not taken it up yet; messages lost on the way again
		// and again).
		if f.next.Load() != from {
			pause = firstPause
		}
		if !f.sleep(pause) {
			return
		}
		if f.next.Load() == from {
			pause = min(2*pause, maxPause)
		}
	}
}

// sleep waits d, or until the follower stops; it says whether to go on.
// It is called only while the follower has no consumer, and reads the stream
// meanwhile (bridge).
func (f *Follower) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	tick := time.NewTicker(bridgeEvery)
	defer tick.Stop()
	for {
		select {
		case <-t.C:
			return true
		case <-f.ctx.Done():
			return false
		case <-tick.C:
			f.bridge()
		}
	}
}

// bridge is one round of reading the stream while the follower has no
// consumer (readStream), told to Config.Bridged and logged once until the next
// consumer. None for a follower that starts with each subject's last message
// until it has delivered one (what the stream holds from a sequence is not
// that), nor for one of several subjects: one read a subject could not take
// the first message of several in the stream's order (two reads, apart in time
// or answered by two replicas, could pass over one).
func (f *Follower) bridge() {
	if f.cfg.LastPerSubject && !f.delivered.Load() || len(f.cfg.Subjects) > 1 {
		return
	}
	n := f.readStream()
	if n == 0 {
		return
	}
	if f.cfg.Bridged != nil {
		f.cfg.Bridged(n)
	}
	if !f.bridgeLogged {
		f.bridgeLogged = true
		f.cfg.Logger.Info().Str("stream", f.cfg.Stream).Uint64("next", f.next.Load()).Int("messages", n).
			Msg("ordered: no consumer yet; reading the stream's messages meanwhile")
	}
}

// create creates a consumer from the next sequence wanted, asking again until
// one is created or the follower stops; it returns an error only then. Each
// attempt names a new consumer, and the one that went unanswered is deleted
// (bounded, in the background): the meta leader may have placed it on a server
// that has just died and not been found out yet, and an attempt under the same
// name would then ask that dead assignment for ever. One created after its
// attempt gave up, and not deleted, delivers nothing (nobody pulls) and goes
// after its inactivity threshold.
func (f *Follower) create() (jetstream.Consumer, string, error) {
	cfg := jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       f.next.Load(),
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: inactive,
		Replicas:          1,
		MemoryStorage:     true,
	}
	if f.cfg.LastPerSubject && !f.delivered.Load() {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverLastPerSubjectPolicy, 0
	}
	if len(f.cfg.Subjects) == 1 {
		cfg.FilterSubject = f.cfg.Subjects[0]
	} else {
		cfg.FilterSubjects = f.cfg.Subjects
	}
	wait, pause := f.cfg.Attempt, firstPause
	avoided := 0
	for {
		f.serial++
		cfg.Name = fmt.Sprintf("%s_%d", f.name, f.serial)
		if cfg.DeliverPolicy == jetstream.DeliverByStartSequencePolicy {
			cfg.OptStartSeq = f.next.Load() // past what readStream delivered
		}
		cons, err := f.createOne(cfg, wait)
		if err == nil {
			f.holder = ""
			if ci := cons.CachedInfo(); ci != nil && ci.Cluster != nil {
				f.holder = ci.Cluster.Leader
			}
			if f.holder == "" || f.holder != f.avoid || avoided >= avoidTries || !time.Now().Before(f.avoidUntil) {
				return cons, cfg.Name, nil
			}
			// Placed on the server whose consumer stood still: its copy of the
			// stream may still stand. The cluster places a consumer of one
			// replica on a random peer of the stream; ask again.
			avoided++
			f.cfg.Logger.Info().Str("stream", f.cfg.Stream).Str("server", f.holder).Str("consumer", cfg.Name).Msg("ordered: consumer placed on the server of the one that stood still; asking again")
			f.wg.Add(1)
			go f.delete(cfg.Name)
			if f.ctx.Err() != nil {
				return nil, "", f.ctx.Err()
			}
			continue
		}
		f.wg.Add(1)
		go f.delete(cfg.Name)
		if f.ctx.Err() != nil {
			return nil, "", f.ctx.Err()
		}
		f.report(fmt.Errorf("ordered: create consumer %s of %s from sequence %d (waited up to %v): %w", cfg.Name, f.cfg.Stream, cfg.OptStartSeq, wait, err), true)
		if !f.sleep(pause) {
			return nil, "", f.ctx.Err()
		}
		wait, pause = min(2*wait, max(maxAttempt, f.cfg.Attempt)), min(2*pause, maxPause)
	}
}

// createOne asks for one consumer, waiting up to wait for the answer, and
// reads the stream meanwhile, every bridgeEvery (bridge).
func (f *Follower) createOne(cfg jetstream.ConsumerConfig, wait time.Duration) (jetstream.Consumer, error) {
	type result struct {
		cons jetstream.Consumer
		err  error
	}
	ctx, cancel := context.WithTimeout(f.ctx, wait)
	defer cancel()
	done := make(chan result, 1)
	go func() { // joined below: it ends by ctx at the latest
		cons, err := f.js.CreateOrUpdateConsumer(ctx, f.cfg.Stream, cfg)
		done <- result{cons, err}
	}()
	tick := time.NewTicker(bridgeEvery)
	defer tick.Stop()
	for {
		select {
		case r := <-done:
			return r.cons, r.err
		case <-tick.C:
			f.bridge()
		}
	}
}

// readStream reads the messages the follower wants from its next sequence on, in
// order, up to the last sequence the stream's leader holds (its stream info,
// which the leader answers without the meta leader), and puts them in C while C
// has room, up to Buffer of them; it returns how many it put. Any failure (no
// leader answers, a replica that lacks a message yet) ends the round: the next
// one asks again. A replica's copy never holds a message the stream's leader
// did not commit, so what a direct get returns is the stream's, in its order.
// The run goroutine's alone, as the consumers' deliveries are.
func (f *Follower) readStream() int {
	ctx, cancel := context.WithTimeout(f.ctx, bridgeAsk)
	defer cancel()
	st, err := f.js.Stream(ctx, f.cfg.Stream) // the leader answers
	if err != nil {
		return 0
	}
	lastSeq := st.CachedInfo().State.LastSeq
	subject := ">"
	if len(f.cfg.Subjects) == 1 {
		subject = f.cfg.Subjects[0]
	}
	n := 0
	for n < f.cfg.Buffer && f.next.Load() <= lastSeq {
		// A direct get where the stream allows them (jetstream.Stream's
		// choice), else the message get: the first message on the subject
		// from the next sequence on, which a replica that lacks it yet
		// answers "not found" (its copy is a prefix of the stream's).
		first, err := st.GetMsg(ctx, f.next.Load(), jetstream.WithGetMsgSubject(subject))
		if err != nil || first.Sequence < f.next.Load() {
			return n
		}
		m := &readMsg{raw: first, stream: f.cfg.Stream}
		if len(f.cfg.Subjects) == 0 && lastSeq > first.Sequence {
			m.pending = lastSeq - first.Sequence
		}
		if len(f.c) == cap(f.c) {
			return n // the receiver is behind: the next round
		}
		// Counted before the receiver can see the message (Bridged counts
		// what C delivered); the send cannot wait, as C has room and nothing
		// else sends meanwhile (no consumer's handler runs: consume returns
		// once its subscription closed, after the handler's last call).
		f.next.Store(first.Sequence + 1)
		f.delivered.Store(true)
		f.bridged.Add(1)
		n++
		f.c <- m
	}
	return n
}

// readMsg is a message the follower read itself (readStream), as C
// delivers it: its metadata holds its stream sequence, time and (with no
// Subjects) how many the stream held after it, no consumer sequence. The
// follower's consumers take no acknowledgement, so neither does it.
type readMsg struct {
	raw     *jetstream.RawStreamMsg
	stream  string
	pending uint64
}

func (m *readMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: m.raw.Sequence}, NumDelivered: 1,
		NumPending: m.pending, Timestamp: m.raw.Time, Stream: m.stream}, nil
}
func (m *readMsg) Data() []byte                       { return m.raw.Data }
func (m *readMsg) Headers() nats.Header               { return m.raw.Header }
func (m *readMsg) Subject() string                    { return m.raw.Subject }
func (m *readMsg) Reply() string                      { return "" }
func (m *readMsg) Ack() error                         { return nil }
func (m *readMsg) DoubleAck(context.Context) error    { return nil }
func (m *readMsg) Nak() error                         { return nil }
func (m *readMsg) NakWithDelay(time.Duration) error   { return nil }
func (m *readMsg) InProgress() error                  { return nil }
func (m *readMsg) Term() error                        { return nil }
func (m *readMsg) TermWithReason(reason string) error { return nil }

// replace reports whether a consume error means the consumer is gone or can no
// longer be trusted to deliver.
func replace(err error) bool {
	return errors.Is(err, jetstream.ErrNoHeartbeat) ||
		errors.Is(err, jetstream.ErrConsumerDeleted) ||
		errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrConnectionClosed)
}

// consume delivers cons's messages until the consumer must be replaced (the
// reason returned) or the follower stops (nil).
func (f *Follower) consume(cons jetstream.Consumer) error {
	why := make(chan error, 1)
	var gone atomic.Bool // a reason was given: deliver nothing more
	signal := func(err error) {
		if gone.CompareAndSwap(false, true) {
			why <- err
		}
	}
	quit := make(chan struct{})
	var (
		dseq    uint64       // the last consumer sequence delivered; the handler's alone
		heard   atomic.Int64 // when the handler last got a message or put one in C (Unix ns)
		waiting atomic.Bool  // the handler waits for room in C: the receiver is behind
	)
	heard.Store(time.Now().UnixNano())
	handler := func(m jetstream.Msg) {
		if gone.Load() {
			return
		}
		heard.Store(time.Now().UnixNano())
		meta, err := m.Metadata()
		if err != nil {
			signal(fmt.Errorf("message metadata: %w", err))
			return
		}
		if meta.Sequence.Consumer != dseq+1 {
			signal(fmt.Errorf("%w: consumer sequence %d after %d (stream sequence %d)", ErrGap, meta.Sequence.Consumer, dseq, meta.Sequence.Stream))
			return
		}
		if meta.Sequence.Stream < f.next.Load() {
			// Read by the follower itself while this consumer's creation
			// went unanswered (readStream).
			dseq = meta.Sequence.Consumer
			return
		}
		waiting.Store(true)
		select {
		case f.c <- m:
			dseq = meta.Sequence.Consumer
			f.next.Store(meta.Sequence.Stream + 1)
			f.delivered.Store(true)
		case <-quit:
		}
		waiting.Store(false)
		heard.Store(time.Now().UnixNano())
	}
	onErr := func(_ jetstream.ConsumeContext, err error) {
		if replace(err) {
			signal(err)
		}
	}
	hb := f.cfg.Heartbeat
	cc, err := cons.Consume(handler,
		jetstream.PullMaxMessages(f.cfg.Buffer),
		jetstream.PullHeartbeat(hb),
		jetstream.PullExpiry(max(30*time.Second, 3*hb)),
		jetstream.ConsumeErrHandler(onErr))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	closed := cc.Closed()
	tick := time.NewTicker(f.cfg.Stall / 2)
	defer tick.Stop()
	var (
		ahead   time.Time // when the leader was seen holding a message wanted, the consumer silent; zero: not
		aheadOf uint64    // the last sequence it held then
	)
	var reason error
wait:
	for {
		select {
		case reason = <-why:
			break wait
		case <-closed:
			reason = errors.New("the subscription ended")
			break wait
		case <-f.ctx.Done():
			break wait
		case <-tick.C:
			last := time.Unix(0, heard.Load())
			silent := time.Since(last)
			if waiting.Load() || silent < f.cfg.Stall/2 {
				ahead = time.Time{}
				continue
			}
			held, err := f.held()
			if err != nil || held < f.next.Load() {
				// No leader answers (an election: nothing is replaced until one
				// does), or the consumer has delivered all it holds.
				ahead = time.Time{}
				continue
			}
			if ahead.IsZero() || last.After(ahead) {
				ahead, aheadOf = time.Now(), held
				continue
			}
			// The leader held aheadOf when ahead was set, and nothing came since.
			// A slow answer may bring the next tick right after ahead: wait for
			// evidence Stall/4 old at least, not a few milliseconds.
			if silent >= f.cfg.Stall && f.next.Load() <= aheadOf && time.Since(ahead) >= f.cfg.Stall/4 {
				reason = fmt.Errorf("%w: nothing delivered for %v, the last sequence delivered %d, the stream's leader holding %d (and %d %v ago)",
					ErrStalled, silent.Round(time.Millisecond), f.next.Load()-1, held, aheadOf, time.Since(ahead).Round(time.Millisecond))
				break wait
			}
		}
	}
	gone.Store(true)
	close(quit)
	cc.Stop()
	<-closed
	return reason
}

// held asks the stream's leader for the last sequence it holds of the messages
// the follower wants: the stream's last with no Subjects, else the last of
// each subject's (0: none). A stream whose direct gets are allowed answers a
// subject's last from any replica, perhaps one behind: a stall may then go
// unseen, not be seen where there is none.
func (f *Follower) held() (uint64, error) {
	ctx, cancel := context.WithTimeout(f.ctx, min(f.cfg.Stall/2, stallAsk))
	defer cancel()
	st, err := f.js.Stream(ctx, f.cfg.Stream) // the leader answers
	if err != nil {
		return 0, err
	}
	state := st.CachedInfo().State
	if state.Msgs == 0 {
		return 0, nil
	}
	if state.LastSeq < f.next.Load() || len(f.cfg.Subjects) == 0 {
		return state.LastSeq, nil
	}
	var last uint64
	for _, subj := range f.cfg.Subjects {
		m, err := st.GetLastMsgForSubject(ctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		last = max(last, m.Sequence)
	}
	return last, nil
}

// delete deletes a replaced consumer, bounded; the server's inactivity threshold
// deletes one whose deletion fails.
func (f *Follower) delete(name string) {
	defer f.wg.Done()
	ctx, cancel := context.WithTimeout(f.ctx, deleteWait)
	defer cancel()
	if f.ctx.Err() != nil {
		// Stopping: one quick try, not bound to the cancelled context.
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeout(context.Background(), stopDeleteWait)
		defer c2()
	}
	_ = f.js.DeleteConsumer(ctx, f.cfg.Stream, name)
}
