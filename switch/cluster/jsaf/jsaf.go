// Package jsaf is the store-and-forward queue of a cluster (issue 14): the
// advices the switch owes issuers (reversals 0420, stand-in advices 0120/0220)
// live in one JetStream work-queue stream, SAF, replicated like the cluster's
// other streams, instead of in a node's Badger. Every node enqueues there, and
// every node delivers from there: an issuer's advices go through one durable
// pull consumer, "saf-<issuer>", that all nodes share, so each advice is with
// one node at a time; when that node dies before the issuer acknowledged it,
// JetStream hands it to a survivor once its AckWait has passed, and the
// survivor sends it as a repeat (0421), as saf does after a failed try.
//
// It satisfies saf.Store: the pipeline and the server do not know which queue
// they have. NATS types stay in here.
package jsaf

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/cluster"
	"github.com/switchyard/switchyard/switch/saf"
)

// StreamName is the work-queue stream of the advices; its subjects are
// saf.<issuer>.
const StreamName = "SAF"

// ParkedStreamName is the stream of the parked advices (Options.ParkAfter); its
// subjects are safparked.<issuer>. It keeps them until an operator requeues or
// resolves them (Requeue, Resolve), and the record of each such action
// (ParkedOpSubject).
const ParkedStreamName = "SAF_PARKED"

// ParkedSubject is the subject of an issuer's parked advices.
func ParkedSubject(issuer string) string { return "safparked." + token(issuer) }

// maxPending bounds what Pending lists: one stream read per advice, and an
// operator reading a list of ten thousand advices wants a count, which Len is.
const maxPending = 10000

// Options tune the queue; the zero values take the defaults of saf.Options where
// the two share a meaning.
type Options struct {
	// Replicas is how many copies the SAF stream keeps: cluster.Config.Replicas
	// (required; 1 for a standalone server).
	Replicas int
	// MinBackoff and MaxBackoff bound the wait after a failed try, doubling
	// from one to the other (defaults 500 ms and 30 s).
	MinBackoff, MaxBackoff time.Duration
	// InFlight bounds the advices of one issuer being sent at once by all the
	// nodes together: it is the consumer's MaxAckPending (default 16).
	InFlight int
	// AckWait is how long an advice taken by a node stays with it without news:
	// a node that dies mid-send gives its advices back after AckWait. While a
	// send is outstanding the node reports progress every AckWait/3, so a slow
	// issuer does not make it expire (default 30 s).
	AckWait time.Duration
	// Poll is the longest a worker's pull request waits at the server (an
	// advice arriving meanwhile is handed over at once); Close waits for the
	// last one to expire, so it bounds Close too (default 1 s).
	Poll time.Duration
	// PublishTimeout bounds an Enqueue waiting for JetStream's acknowledgement
	// (default 2 s); past it the error wraps cluster.ErrNoQuorum.
	PublishTimeout time.Duration
	// Duplicates is the stream's window of Nats-Msg-Id deduplication (default
	// 2 min): the same advice enqueued again within it (a retry after a timeout,
	// or crash recovery on another node) is stored once.
	Duplicates time.Duration
	// WarnEvery is the least time between two warnings about an issuer's failed
	// tries (default 1 min); Now is its clock (default time.Now).
	WarnEvery time.Duration
	Now       func() time.Time
	// HoldWarn is how long a reversal advice may be held back behind an earlier
	// advice of its transaction (saf.Reversal) before it is counted
	// (saf.Stats.HeldLong) and logged as such (default 5 min).
	HoldWarn time.Duration
	// ParkAfter is how many answers without an acknowledgement
	// (saf.ErrNotAcknowledged) an advice may get from its issuer, as this node
	// saw them, before this node parks it: publishes it to ParkedStreamName and
	// acknowledges it out of the SAF stream, counts it (saf.Stats.Parked) and logs
	// it (default saf.DefaultParkAfter; negative: never). An answer refusing it for
	// good (saf.ErrRefused) parks it at once. The count is this node's
	// (a stream message cannot be rewritten): an advice handed to another node
	// starts again from zero there, which parks it later, never loses it.
	ParkAfter int
	// ActionRetention is how long the records of the operators' actions on parked
	// advices (ParkedOpSubject: who requeued or resolved what, when, why) are kept
	// in ParkedStreamName after an advice's last record: Actions lists none older,
	// and every node purges them at start and daily (pruneActions) (default
	// saf.DefaultActionRetention); the oplog keeps its own entry of each for good.
	ActionRetention time.Duration
	// Logger receives delivery warnings; the zero value logs nothing.
	Logger zerolog.Logger
	// Fence, if set, is asked before each pull of advices and before each send:
	// an error (this node's lease not known held now: cluster.Lease.Fresh) takes
	// none, and hands an advice already taken back to the stream unsent, with a
	// short delay, for whichever node may send it. A node woken from a pause after
	// another node claimed its recovery must not send what it took before the
	// pause: the advice went to another node meanwhile (AckWait), and a 0220 sent
	// again after that node sent its 0420 would be booked by the issuer. It must
	// be cheap.
	Fence func() error
}

func (o *Options) defaults() error {
	if o.Replicas < 1 || o.Replicas > 5 {
		return fmt.Errorf("jsaf: replicas %d is not from 1 to 5 (cluster.replicas)", o.Replicas)
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 500 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.InFlight <= 0 {
		o.InFlight = 16
	}
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 2 * time.Second
	}
	if o.Duplicates <= 0 {
		o.Duplicates = 2 * time.Minute
	}
	if o.WarnEvery <= 0 {
		o.WarnEvery = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HoldWarn <= 0 {
		o.HoldWarn = 5 * time.Minute
	}
	if o.ParkAfter == 0 {
		o.ParkAfter = saf.DefaultParkAfter
	}
	if o.ActionRetention <= 0 {
		o.ActionRetention = saf.DefaultActionRetention
	}
	return nil
}

// Queue is the JetStream store-and-forward queue of one node. It does not own
// the node: Close stops its workers, the caller closes the node.
type Queue struct {
	node   *cluster.Node
	js     jetstream.JetStream
	stream jetstream.Stream
	parked jetstream.Stream // ParkedStreamName
	opts   Options
	log    zerolog.Logger

	// Close stops in two steps: closing stops the workers' pulls (pulling
	// counts the workers still pulling), then ctx ends the sends in progress,
	// whose advices are handed back when no pull of this node can take them.
	closing   chan struct{}
	closeOnce sync.Once
	pulling   sync.WaitGroup
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	mu      sync.Mutex
	senders map[string]saf.Sender
	// mine are the stream sequences of the advices this node enqueued and has
	// not seen acknowledged, by issuer: what Flush waits for. A worker forgets
	// those under its consumer's ack floor, which another node may have acked,
	// and (every pruneEvery) those above it no longer in the stream.
	mine map[string]map[uint64]struct{}
	// tries are this node's last tries of the advices it holds or held, by stream
	// sequence: a stream message cannot be rewritten, so the last error and time
	// of a try live here, for Pending, until the advice is acknowledged.
	tries map[uint64]try
	// lens are the last counts Len read, returned when the stream does not answer.
	lens map[string]int
	// pruned is when forget last looked up, by issuer, which of the advices
	// above the ack floor are still in the stream.
	pruned map[string]time.Time
	// ledgers are this node's readings of each issuer's advices in the stream,
	// by issuer: what holds a reversal back (heldBy).
	ledgers map[string]*ledger

	busy atomic.Int64 // sends in progress on this node

	// Sent, Acked and Failed count this node's tries, as saf.Queue's do.
	Sent, Acked, Failed atomic.Int64

	statsMu sync.Mutex
	byIss   map[string]*saf.Stats
}

type try struct {
	issuer  string
	n       int
	last    time.Time
	lastErr string
	// held counts the deliveries of a reversal that this node held back (heldBy)
	// instead of sending: they are not tries. long: counted held long.
	held int
	long bool
	// unacked counts the tries this node saw answered without an acknowledgement
	// (saf.ErrNotAcknowledged): at Options.ParkAfter the advice is parked.
	unacked int
}

var _ saf.Store = (*Queue)(nil)

// Open creates the SAF stream, or brings an existing one to opts (the first
// node creates it, the others find it), and returns the queue; Register starts
// an issuer's deliveries. It needs a JetStream quorum: call after
// Node.WaitJetStream.
func Open(ctx context.Context, node *cluster.Node, opts Options) (*Queue, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	js := node.JetStream()
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Switchyard store-and-forward: advices owed to issuers, subject saf.<issuer>",
		Subjects:    []string{"saf.>"},
		Retention:   jetstream.WorkQueuePolicy, // an acknowledged advice is removed
		Storage:     jetstream.FileStorage,
		Replicas:    opts.Replicas,
		Duplicates:  opts.Duplicates,
		// No direct gets: a replica that lags could miss an advice just
		// enqueued, and Flush would take it for delivered. Reads go to the leader.
		AllowDirect: false,
	})
	if err != nil {
		return nil, fmt.Errorf("jsaf: create stream %s (replicas %d): %w", StreamName, opts.Replicas, err)
	}
	pst, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        ParkedStreamName,
		Description: "Switchyard store-and-forward: advices parked for an operator (answered again and again without an acknowledgement), subject safparked.<issuer>; the operators' actions on them, safparkedop.<id>",
		Subjects:    []string{"safparked.>", "safparkedop.>"},
		Retention:   jetstream.LimitsPolicy, // kept until an operator removes them
		Storage:     jetstream.FileStorage,
		Replicas:    opts.Replicas,
		Duplicates:  opts.Duplicates,
		AllowDirect: false,
		// No AllowMsgTTL for the actions' records (Options.ActionRetention):
		// JetStream refuses to turn it off again, and a node of an earlier release
		// restarted during an upgrade would fail to open its queue; pruneActions
		// purges them instead.
	})
	if err != nil {
		return nil, fmt.Errorf("jsaf: create stream %s (replicas %d): %w", ParkedStreamName, opts.Replicas, err)
	}
	qctx, cancel := context.WithCancel(context.Background())
	q := &Queue{node: node, js: js, stream: st, parked: pst, opts: opts, log: opts.Logger, closing: make(chan struct{}), ctx: qctx, cancel: cancel,
		senders: map[string]saf.Sender{}, mine: map[string]map[uint64]struct{}{}, tries: map[uint64]try{},
		pruned: map[string]time.Time{}, ledgers: map[string]*ledger{}, lens: map[string]int{}, byIss: map[string]*saf.Stats{}}
	q.wg.Add(1)
	go q.pruneDaily()
	return q, nil
}

// token is an issuer's name as a subject token and in a consumer name: as is
// when made of letters, digits, '-' and '_', else '~' and its hex (an issuer
// id may hold a '.', which would be a subject separator).
func token(issuer string) string {
	ok := issuer != ""
	for _, c := range []byte(issuer) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			ok = false
			break
		}
	}
	if ok {
		return issuer
	}
	return "~" + hex.EncodeToString([]byte(issuer))
}

// Subject is the subject of an issuer's advices.
func Subject(issuer string) string { return "saf." + token(issuer) }

// ConsumerName is the durable consumer every node pulls an issuer's advices from.
func ConsumerName(issuer string) string { return "saf-" + token(issuer) }

// msgID is an advice's Nats-Msg-Id: the same advice about the same transaction
// (issuer, MTI, RRN) is stored once within the duplicate window, whether it is
// this node retrying after a timeout or a survivor's crash recovery queueing
// what a dead node had queued. An advice without an RRN is told by its creation.
func msgID(it *saf.Item) string {
	if it.RRN == "" {
		return fmt.Sprintf("saf:%s:%s:@%d", token(it.Issuer), it.MTI, it.Created.UnixNano())
	}
	return fmt.Sprintf("saf:%s:%s:%s", token(it.Issuer), it.MTI, it.RRN)
}

// Enqueue publishes it to saf.<issuer> and returns once JetStream acknowledged
// it, that is once a quorum of the stream's replicas stored it; it.Seq becomes
// its stream sequence. Without an acknowledgement within PublishTimeout the
// error wraps cluster.ErrNoQuorum and the advice's fate is unknown (a replica
// may commit it when the quorum returns): enqueueing it again is safe, the
// Nats-Msg-Id stores it once.
func (q *Queue) Enqueue(it *saf.Item) error {
	if it.Issuer == "" {
		return fmt.Errorf("jsaf: enqueue %s for %s: no issuer", it.MTI, it.RRN)
	}
	if it.Created.IsZero() {
		it.Created = time.Now().UTC()
	}
	it.Seq = 0 // the stream's sequence, known from the acknowledgement
	b, err := json.Marshal(it)
	if err != nil {
		return fmt.Errorf("jsaf: encode %s for %s: %w", it.MTI, it.RRN, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), q.opts.PublishTimeout)
	defer cancel()
	start := time.Now()
	var ack *jetstream.PubAck
	for {
		// A stream whose leader was lost answers "no responders" at once until
		// its election ends (4 to 9 s after a kill): try again, under the same
		// Nats-Msg-Id (stored once), until PublishTimeout. An advice owed to an
		// issuer is not given up for an election.
		// Each try is short: a publish that reached the lost leader is answered by
		// nobody and would wait out the whole timeout.
		tctx, tcancel := context.WithTimeout(ctx, 2*time.Second)
		ack, err = q.node.Publish(tctx, Subject(it.Issuer), b, msgID(it))
		tcancel()
		if err == nil || !errors.Is(err, cluster.ErrNoQuorum) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("jsaf: enqueue %s for %s at issuer %s: %w", it.MTI, it.RRN, it.Issuer, err)
	}
	it.Seq = ack.Sequence
	q.node.Metrics().ObservePublish(StreamName, time.Since(start))
	q.node.Metrics().ObserveGroup(StreamName, 1)
	q.mu.Lock()
	m := q.mine[it.Issuer]
	if m == nil {
		m = map[uint64]struct{}{}
		q.mine[it.Issuer] = m
	}
	m[ack.Sequence] = struct{}{}
	q.mu.Unlock()
	return nil
}

// Register sets the sender of an issuer and starts its worker (once per issuer;
// a second Register replaces the sender).
func (q *Queue) Register(issuer string, send saf.Sender) {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, running := q.senders[issuer]
	q.senders[issuer] = send
	if running {
		return
	}
	q.stats(issuer)
	select {
	case <-q.closing:
		return // closed: nothing starts
	default:
	}
	q.wg.Add(1)
	q.pulling.Add(1)
	go q.worker(issuer)
}

func (q *Queue) sender(issuer string) saf.Sender {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.senders[issuer]
}

// consumer creates or finds the issuer's durable consumer, shared by every node.
func (q *Queue) consumer(issuer string) (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(q.ctx, q.opts.PublishTimeout)
	defer cancel()
	c, err := q.js.CreateOrUpdateConsumer(ctx, StreamName, jetstream.ConsumerConfig{
		Durable:       ConsumerName(issuer),
		Description:   "Switchyard store-and-forward deliveries to issuer " + issuer,
		FilterSubject: Subject(issuer),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       q.opts.AckWait,
		MaxAckPending: q.opts.InFlight,
		MaxDeliver:    -1, // an advice is owed until the issuer takes it
		Replicas:      q.opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("jsaf: consumer %s on stream %s: %w", ConsumerName(issuer), StreamName, err)
	}
	return c, nil
}

// worker pulls an issuer's advices, as many as there are free slots (the
// server holds all nodes together to the consumer's MaxAckPending), and sends
// each in its own goroutine, so a slow advice holds up only itself. It stops
// pulling when the queue closes, then waits for its sends.
func (q *Queue) worker(issuer string) {
	defer q.wg.Done()
	var running sync.WaitGroup
	q.pull(issuer, &running)
	q.pulling.Done()
	running.Wait() // Close cancels q.ctx once no worker pulls: the senders return
}

// pull is a worker's loop; it returns once the queue is closing and its last
// pull request has ended.
func (q *Queue) pull(issuer string, running *sync.WaitGroup) {
	done := make(chan struct{}, q.opts.InFlight) // a send ended; never blocks: at most InFlight run
	busy := 0
	st := q.stats(issuer)
	var cons jetstream.Consumer
	var forgot time.Time
	retry := q.opts.MinBackoff
	// wait waits d, counting the sends that end meanwhile; false once the queue
	// is closing.
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				busy--
			case <-t.C:
				return true
			case <-q.closing:
				return false
			}
		}
	}
	pause := func(err error) bool { // false once the queue is closing
		if n, ok := st.WarnDue(q.opts.Now(), q.opts.WarnEvery); ok {
			q.log.Warn().Err(err).Str("issuer", issuer).Dur("retry_in", retry).Int64("failures_not_logged", n).
				Msg("store-and-forward: cannot read the issuer's advices from JetStream")
		}
		d := retry
		retry = min(2*retry, q.opts.MaxBackoff)
		return wait(d)
	}
	// fenced waits MinBackoff (no doubling: the lease is usually known held
	// again within a refresh) while Fence refuses; false once the queue closes.
	fenced := func(err error) bool {
		if n, ok := st.WarnDue(q.opts.Now(), q.opts.WarnEvery); ok {
			q.log.Warn().Err(err).Str("issuer", issuer).Int64("failures_not_logged", n).
				Msg("store-and-forward: this node's lease not known held; taking no advices")
		}
		return wait(q.opts.MinBackoff)
	}
	for {
		for drained := false; !drained; {
			select {
			case <-done:
				busy--
			case <-q.closing:
				return
			default:
				drained = true
			}
		}
		if busy >= q.opts.InFlight {
			select {
			case <-done:
				busy--
			case <-q.closing:
				return
			}
			continue
		}
		if q.opts.Fence != nil {
			if err := q.opts.Fence(); err != nil {
				if !fenced(err) {
					return
				}
				continue
			}
		}
		if cons == nil {
			var err error
			if cons, err = q.consumer(issuer); err != nil {
				if !pause(err) {
					return
				}
				continue
			}
		}
		// The pull request expires at the server (a 408) before the client stops
		// listening: ending it from the client side instead (a context) leaves a
		// moment when the server may hand it an advice nobody reads, which would
		// then wait out AckWait. So even Close lets the last request expire.
		batch, err := cons.Fetch(q.opts.InFlight-busy, jetstream.FetchMaxWait(q.opts.Poll))
		if err != nil {
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				cons = nil
			}
			if !pause(err) {
				return
			}
			continue
		}
		got := 0
		for m := range batch.Messages() {
			got++
			busy++
			running.Add(1)
			go func() {
				defer running.Done()
				q.deliver(issuer, m)
				done <- struct{}{}
			}()
		}
		switch err := batch.Error(); {
		case err == nil: // the batch is full, or the request expired
			retry = q.opts.MinBackoff
			if got == 0 || time.Since(forgot) > 10*q.opts.Poll { // idle, or busy for long
				q.forget(issuer, cons)
				forgot = time.Now()
			}
		case errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrConsumerDeleted):
			cons = nil
			if !pause(err) {
				return
			}
		default:
			if !pause(err) {
				return
			}
		}
	}
}

// forget drops from mine, tries and the ledger the advices of issuer under the
// consumer's ack floor: acknowledged, possibly by another node (else they would
// grow for as long as the other nodes deliver this one's advices). Called when
// the worker is idle.
func (q *Queue) forget(issuer string, cons jetstream.Consumer) {
	l := q.ledger(issuer)
	l.mu.Lock()
	n := len(l.rrns)
	l.mu.Unlock()
	q.mu.Lock()
	n += len(q.mine[issuer])
	for _, t := range q.tries {
		if t.issuer == issuer {
			n++
		}
	}
	q.mu.Unlock()
	if n == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(q.ctx, q.opts.PublishTimeout)
	defer cancel()
	info, err := cons.Info(ctx)
	if err != nil {
		return
	}
	l.mu.Lock()
	var kept []uint64 // the ledger's entries above the floor
	for s := range l.rrns {
		if s <= info.AckFloor.Stream {
			l.drop(s)
		} else {
			kept = append(kept, s)
		}
	}
	l.mu.Unlock()
	q.mu.Lock()
	for s := range q.mine[issuer] {
		if s <= info.AckFloor.Stream {
			delete(q.mine[issuer], s)
		}
	}
	var above []uint64
	for s, t := range q.tries {
		if t.issuer == issuer && s <= info.AckFloor.Stream {
			delete(q.tries, s)
		} else if t.issuer == issuer {
			above = append(above, s)
		}
	}
	if time.Since(q.pruned[issuer]) < pruneEvery {
		q.mu.Unlock()
		return
	}
	q.pruned[issuer] = time.Now()
	for s := range q.mine[issuer] {
		if _, ok := q.tries[s]; !ok {
			above = append(above, s)
		}
	}
	q.mu.Unlock()
	above = append(above, kept...)
	slices.Sort(above)
	above = slices.Compact(above)
	// An advice the issuer never takes holds the ack floor below it for good:
	// the advices acknowledged after it are gone from the (work-queue) stream
	// but above the floor. Look them up, the oldest first, a bounded number at
	// a time.
	for _, s := range above[:min(len(above), pruneMax)] {
		gctx, cancel := context.WithTimeout(ctx, q.opts.PublishTimeout)
		_, err := q.stream.GetMsg(gctx, s)
		cancel()
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			if err != nil {
				return // asked again at the next prune
			}
			continue
		}
		q.mu.Lock()
		delete(q.mine[issuer], s)
		delete(q.tries, s)
		q.mu.Unlock()
		l.mu.Lock()
		l.drop(s)
		l.mu.Unlock()
	}
}

// forget's look-ups of the advices above the ack floor: at most pruneMax, every
// pruneEvery, per issuer.
var (
	pruneEvery = time.Minute
	pruneMax   = 1024
)

// deliver makes one try of an advice the consumer handed this node.
func (q *Queue) deliver(issuer string, m jetstream.Msg) {
	q.busy.Add(1)
	defer q.busy.Add(-1)
	st := q.stats(issuer)
	md, err := m.Metadata()
	if err != nil {
		q.log.Error().Err(err).Str("issuer", issuer).Msg("store-and-forward: a message without JetStream metadata; left to redeliver")
		return
	}
	seq := md.Sequence.Stream
	it := new(saf.Item)
	if err := json.Unmarshal(m.Data(), it); err != nil {
		// An advice that cannot be read must not hold up the others: it stays in
		// the stream for an operator and comes back in a day.
		q.log.Error().Err(err).Str("issuer", issuer).Uint64("seq", seq).Msg("undecodable queued advice set aside")
		_ = m.NakWithDelay(24 * time.Hour)
		return
	}
	if q.opts.Fence != nil {
		if ferr := q.opts.Fence(); ferr != nil {
			// Taken before a pause, or just as the lease went stale: not sent.
			q.log.Warn().Err(ferr).Str("issuer", issuer).Str("rrn", it.RRN).Str("mti", it.MTI).Uint64("seq", seq).
				Msg("store-and-forward: this node's lease not known held; the advice handed back unsent")
			_ = m.NakWithDelay(q.opts.MinBackoff)
			return
		}
	}
	if saf.Reversal(it.MTI) && it.RRN != "" && q.hold(issuer, m, it, seq) {
		return
	}
	// Tries counts the deliveries by every node: more than one means this advice
	// was tried before (here, or on a node that died mid-send) and goes as a repeat.
	// The deliveries this node held back (hold) were not tries; one held back on
	// another node counts as a try here, so that a reversal may go as a repeat
	// (0421) the first time the issuer sees it, which an issuer takes as a reversal.
	q.mu.Lock()
	t := q.tries[seq]
	it.Seq, it.Tries, it.Last, it.LastErr = seq, max(1, int(md.NumDelivered)-t.held), time.Now().UTC(), t.lastErr
	repeat := it.Tries > 1 || it.Repeat // Repeat: saf.Item
	t.issuer, t.n, t.last = issuer, it.Tries, it.Last
	q.tries[seq] = t
	q.mu.Unlock()
	q.Sent.Add(1)
	st.Sent.Add(1)

	send := q.sender(issuer)
	sendDone := make(chan struct{})
	var progress sync.WaitGroup
	progress.Add(1)
	go func() { // keep the advice this node's while the issuer takes its time
		defer progress.Done()
		t := time.NewTicker(q.opts.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-sendDone:
				return
			case <-t.C:
				_ = m.InProgress()
			}
		}
	}()
	err = send(q.ctx, it, repeat)
	close(sendDone)
	progress.Wait()

	if err == nil {
		if id, ok := requeueOf(m.Headers()); ok {
			q.noteGone(id, seq) // before it leaves the queue: finish reads it
		}
		// Wait for the server to take the ack, so that Len and Acked agree for
		// whoever reads both; if it is lost the advice comes back as a repeat,
		// which issuers expect.
		actx, cancel := context.WithTimeout(context.Background(), q.opts.PublishTimeout)
		aerr := m.DoubleAck(actx)
		cancel()
		if aerr != nil {
			q.log.Warn().Err(aerr).Str("issuer", issuer).Str("rrn", it.RRN).Uint64("seq", seq).
				Msg("store-and-forward: the issuer took the advice but JetStream did not confirm its removal; it may be repeated")
		}
		q.mu.Lock()
		delete(q.tries, seq)
		delete(q.mine[issuer], seq)
		q.mu.Unlock()
		q.Acked.Add(1)
		st.Acked.Add(1)
		return
	}
	if q.ctx.Err() != nil {
		// Closing: hand the advice back now rather than after AckWait.
		_ = m.Nak()
		return
	}
	q.Failed.Add(1)
	st.Failed.Add(1)
	backoff := q.opts.MinBackoff << min(it.Tries-1, 16)
	if backoff > q.opts.MaxBackoff || backoff <= 0 {
		backoff = q.opts.MaxBackoff
	}
	q.mu.Lock()
	t = q.tries[seq]
	t.issuer, t.n, t.last, t.lastErr = issuer, it.Tries, it.Last, err.Error()
	if errors.Is(err, saf.ErrNotAcknowledged) {
		t.unacked++
	}
	q.tries[seq] = t
	q.mu.Unlock()
	if q.opts.ParkAfter > 0 && (errors.Is(err, saf.ErrRefused) || errors.Is(err, saf.ErrNotAcknowledged) && t.unacked >= q.opts.ParkAfter) {
		it.Unacked, it.LastErr = t.unacked, err.Error()
		if q.park(issuer, m, it, seq, err) {
			return
		}
	}
	if nerr := m.NakWithDelay(backoff); nerr != nil {
		q.log.Debug().Err(nerr).Uint64("seq", seq).Msg("store-and-forward: nak not sent; the advice comes back after AckWait")
	}
	if n, ok := st.WarnDue(q.opts.Now(), q.opts.WarnEvery); ok {
		q.log.Warn().Err(err).Str("issuer", issuer).Str("mti", it.MTI).Str("rrn", it.RRN).Int("tries", it.Tries).
			Dur("retry_in", backoff).Int64("failures_not_logged", n).Msg("advice not acknowledged; will repeat")
	} else {
		st.Suppressed.Add(1)
	}
}

// park moves an advice its issuer kept answering without an acknowledgement, or refused
// for good (saf.ErrRefused), out of
// the SAF stream (Options.ParkAfter): it is published to ParkedStreamName first
// (Nats-Msg-Id by its SAF sequence: stored once), then acknowledged out of the SAF
// stream, so that a failure between the two leaves it queued, never lost. A reversal
// held behind it (hold) then goes, as in saf (saf.Queue's park says why that is
// safe). It reports whether the advice was parked; when it cannot be published, it
// stays queued and is repeated.
func (q *Queue) park(issuer string, m jetstream.Msg, it *saf.Item, seq uint64, cause error) bool {
	it.Seq, it.Parked = seq, time.Now().UTC()
	b, err := json.Marshal(it)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), q.opts.PublishTimeout)
		_, err = q.node.Publish(ctx, ParkedSubject(issuer), b, fmt.Sprintf("parked:%d", seq))
		cancel()
	}
	if err != nil {
		q.log.Error().Err(err).Str("issuer", issuer).Str("mti", it.MTI).Str("rrn", it.RRN).Uint64("seq", seq).
			Msg("store-and-forward: advice not parked (it could not be published to " + ParkedStreamName + "): it stays queued and is repeated")
		return false
	}
	if id, ok := requeueOf(m.Headers()); ok {
		q.noteGone(id, seq) // a requeue's repeat parked again: finish reads it
	}
	ctx, cancel := context.WithTimeout(context.Background(), q.opts.PublishTimeout)
	aerr := m.DoubleAck(ctx)
	cancel()
	if aerr != nil {
		// Parked, and still queued: it comes back, and is parked again (stored once).
		q.log.Warn().Err(aerr).Str("issuer", issuer).Str("rrn", it.RRN).Uint64("seq", seq).
			Msg("store-and-forward: a parked advice's removal from the queue not confirmed; it may be tried again")
	}
	q.mu.Lock()
	delete(q.tries, seq)
	delete(q.mine[issuer], seq)
	q.mu.Unlock()
	q.stats(issuer).Parked.Add(1)
	q.log.Error().AnErr("last_error", cause).Str("issuer", issuer).Str("mti", it.MTI).Str("rrn", it.RRN).Uint64("seq", seq).
		Int("tries", it.Tries).Int("unacknowledged_answers", it.Unacked).
		Msg(saf.ParkedLog(cause))
	return true
}

// hold checks a reversal (saf.Reversal) the consumer handed this node against
// the earlier advices of its transaction: while one that is not a reversal (a
// stand-in or completion 0220, a 0120) is still in the stream, not acknowledged by
// the issuer, the reversal is handed back (Nak) with a delay, without being sent,
// and hold reports true. The issuer never gets a reversal before the advice it
// reverses: one that did would find nothing to reverse, acknowledge it (any answer
// acknowledges), then book the advice, the card charged for a transaction the switch
// reversed. Each advice's backoff and in-flight slot being otherwise independent,
// nothing else orders them.
//
// Earlier means a lower stream sequence: the pipeline queues a reversal only after
// the enqueue of the advice it reverses returned (acknowledged, or its fate unknown:
// a publish still in flight then is ahead of the reversal's on the node's
// connection, and a Raft log keeps their order), so the advice, if stored, is
// before it. The check reads the stream (its leader), so it holds whichever node
// enqueued either advice, a node since dead included. It cannot deadlock: the
// consumer hands advices over in sequence order, so the earlier advice was handed
// over before the reversal, and its redeliveries do not wait for free slots.
//
// A check that cannot read the stream holds the reversal too. A reversal held past
// HoldWarn (its earlier advice not delivered: the issuer refuses it, or it cannot
// be read and is set aside) is counted (Stats.HeldLong) and logged, once a minute
// per issuer, and still held: sent, it would reverse at the issuer what the issuer
// may book afterwards.
func (q *Queue) hold(issuer string, m jetstream.Msg, it *saf.Item, seq uint64) bool {
	ctx, cancel := context.WithTimeout(q.ctx, q.opts.PublishTimeout)
	by, err := q.heldBy(ctx, issuer, it.RRN, seq)
	cancel()
	if by == 0 && err == nil {
		return false
	}
	st := q.stats(issuer)
	since := time.Since(it.Created)
	long := since > q.opts.HoldWarn
	q.mu.Lock()
	t := q.tries[seq]
	t.issuer = issuer
	t.held++
	first, newLong := t.held == 1, long && !t.long
	t.long = t.long || long
	q.tries[seq] = t
	q.mu.Unlock()
	if first {
		st.Held.Add(1)
	}
	if newLong {
		st.HeldLong.Add(1)
	}
	// Checked again after a delay that grows as a failed try's backoff does: the
	// earlier advice goes at its own pace (at most MaxBackoff between its tries).
	wait := q.opts.MinBackoff << min(t.held-1, 16)
	if wait > q.opts.MaxBackoff || wait <= 0 {
		wait = q.opts.MaxBackoff
	}
	if nerr := m.NakWithDelay(wait); nerr != nil {
		q.log.Debug().Err(nerr).Uint64("seq", seq).Msg("store-and-forward: nak not sent; the held reversal comes back after AckWait")
	}
	ev := q.log.Debug()
	if long && st.HoldWarnDue(q.opts.Now(), q.opts.WarnEvery) {
		ev = q.log.Warn()
	}
	ev.Err(err).Str("issuer", issuer).Str("rrn", it.RRN).Uint64("seq", seq).Uint64("held_by_seq", by).Dur("held_for", since).
		Msg("store-and-forward: reversal advice held back behind an earlier advice of its transaction still queued; it goes once that one is acknowledged")
	return true
}

// ledger is this node's reading of one issuer's advices in the stream, whichever
// node enqueued them: those that are not reversals, by RRN, read in stream order
// (each message once) as far as the reversal being checked. A work queue removes an
// advice once the issuer acknowledged it, so an entry is looked up in the stream
// before it holds a reversal back, and dropped when gone; forget drops the entries
// under the consumer's ack floor, and looks up those above it with mine and tries.
type ledger struct {
	mu    sync.Mutex
	next  uint64                         // the first stream sequence not read yet
	ahead map[string]map[uint64]struct{} // by RRN
	rrns  map[uint64]string              // each entry's RRN
}

func (l *ledger) drop(seq uint64) {
	rrn, ok := l.rrns[seq]
	if !ok {
		return
	}
	delete(l.rrns, seq)
	if delete(l.ahead[rrn], seq); len(l.ahead[rrn]) == 0 {
		delete(l.ahead, rrn)
	}
}

func (q *Queue) ledger(issuer string) *ledger {
	q.mu.Lock()
	defer q.mu.Unlock()
	l := q.ledgers[issuer]
	if l == nil {
		l = &ledger{next: 1, ahead: map[string]map[uint64]struct{}{}, rrns: map[uint64]string{}}
		q.ledgers[issuer] = l
	}
	return l
}

// heldBy returns the stream sequence of the earliest advice of issuer with RRN
// rrn, before seq and not a reversal, still in the stream (0 if none).
func (q *Queue) heldBy(ctx context.Context, issuer, rrn string, seq uint64) (uint64, error) {
	l := q.ledger(issuer)
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.next < seq {
		m, err := q.stream.GetMsg(ctx, l.next, jetstream.WithGetMsgSubject(Subject(issuer)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break // none left from next on
		}
		if err != nil {
			return 0, fmt.Errorf("jsaf: read the advices of %s from sequence %d: %w", issuer, l.next, err)
		}
		switch mti, r, ok := adviceOf(m); {
		case !ok:
			q.log.Error().Str("issuer", issuer).Uint64("seq", m.Sequence).
				Msg("store-and-forward: an advice whose transaction cannot be read (body and Nats-Msg-Id): no reversal is held back behind it")
		case !saf.Reversal(mti) && r != "":
			if l.ahead[r] == nil {
				l.ahead[r] = map[uint64]struct{}{}
			}
			l.ahead[r][m.Sequence] = struct{}{}
			l.rrns[m.Sequence] = r
		}
		l.next = m.Sequence + 1
	}
	var before []uint64
	for s := range l.ahead[rrn] {
		if s < seq {
			before = append(before, s)
		}
	}
	slices.Sort(before)
	for _, s := range before {
		_, err := q.stream.GetMsg(ctx, s)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			l.drop(s) // acknowledged: removed from the work queue
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("jsaf: look up advice %d of %s: %w", s, issuer, err)
		}
		return s, nil
	}
	return 0, nil
}

// adviceOf returns the MTI and RRN of a stream message: from its body, or, when
// that cannot be read, from its Nats-Msg-Id (msgID: saf:<issuer>:<MTI>:<RRN>).
func adviceOf(m *jetstream.RawStreamMsg) (mti, rrn string, ok bool) {
	var it saf.Item
	if err := json.Unmarshal(m.Data, &it); err == nil && it.MTI != "" {
		return it.MTI, it.RRN, true
	}
	p := strings.SplitN(m.Header.Get(jetstream.MsgIDHeader), ":", 4)
	if len(p) == 4 && p[0] == "saf" && p[2] != "" && !strings.HasPrefix(p[3], "@") {
		return p[2], p[3], true
	}
	return "", "", false
}

func (q *Queue) stats(issuer string) *saf.Stats {
	q.statsMu.Lock()
	defer q.statsMu.Unlock()
	st := q.byIss[issuer]
	if st == nil {
		st = &saf.Stats{}
		q.byIss[issuer] = st
	}
	return st
}

// IssuerStats returns this node's delivery counts of every issuer tried or
// registered, by issuer.
func (q *Queue) IssuerStats() map[string]*saf.Stats {
	q.statsMu.Lock()
	defer q.statsMu.Unlock()
	out := make(map[string]*saf.Stats, len(q.byIss))
	for k, v := range q.byIss {
		out[k] = v
	}
	return out
}

// Pending lists the advices in the stream, the whole cluster's, oldest first
// (all issuers when issuer is ""), at most 10000. Tries counts this node's
// knowledge: the tries of an advice another node holds are not known here.
func (q *Queue) Pending(issuer string) ([]saf.Item, error) {
	filter := "saf.>"
	if issuer != "" {
		filter = Subject(issuer)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*q.opts.PublishTimeout)
	defer cancel()
	var out []saf.Item
	for seq := uint64(1); len(out) < maxPending; {
		m, err := q.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("jsaf: list the advices of %q from sequence %d: %w", filter, seq, err)
		}
		var it saf.Item
		if err := json.Unmarshal(m.Data, &it); err != nil {
			return out, fmt.Errorf("jsaf: advice at sequence %d of stream %s: %w", m.Sequence, StreamName, err)
		}
		it.Seq = m.Sequence
		q.mu.Lock()
		if t, ok := q.tries[m.Sequence]; ok {
			it.Tries, it.Last, it.LastErr = t.n, t.last, t.lastErr
		}
		q.mu.Unlock()
		out = append(out, it)
		seq = m.Sequence + 1
	}
	return out, nil
}

// Parked lists the advices parked (Options.ParkAfter), the whole cluster's, oldest
// first (all issuers when issuer is ""), at most 10000; Seq is each one's sequence in
// the SAF stream it left. An advice an operator acted on more than staleAfter
// ago (its node died before the action finished, or the parked copy's delete failed)
// has its action finished (finish) and is not listed.
func (q *Queue) Parked(issuer string) ([]saf.Item, error) {
	filter := "safparked.>"
	if issuer != "" {
		filter = ParkedSubject(issuer)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*q.opts.PublishTimeout)
	defer cancel()
	var out []saf.Item
	for seq := uint64(1); len(out) < maxPending; {
		m, err := q.parked.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("jsaf: list the parked advices of %q from sequence %d: %w", filter, seq, err)
		}
		var it saf.Item
		if err := json.Unmarshal(m.Data, &it); err != nil {
			return out, fmt.Errorf("jsaf: parked advice at sequence %d of stream %s: %w", m.Sequence, ParkedStreamName, err)
		}
		seq = m.Sequence + 1
		if prev, op, ok := q.parkedOp(ctx, it.Seq); ok && q.opts.Now().Sub(op.Time) >= q.staleAfter() {
			_, ferr := q.finish(ctx, prev, op, m.Sequence)
			if ferr == nil {
				continue
			}
			q.log.Error().Err(ferr).Uint64("seq", it.Seq).Str("action", prev.Action).Str("by", prev.By).
				Msg("store-and-forward: an operator's action on a parked advice, left unfinished, could not be finished; it stays listed")
		}
		out = append(out, it)
	}
	return out, nil
}

// Len counts the advices in the stream for issuer ("" for all issuers), the
// whole cluster's. When JetStream does not answer it returns the last count
// it read (the figure is for metrics; Pending reports errors).
func (q *Queue) Len(issuer string) int {
	ctx, cancel := context.WithTimeout(context.Background(), q.opts.PublishTimeout)
	defer cancel()
	var opts []jetstream.StreamInfoOpt
	if issuer != "" {
		opts = append(opts, jetstream.WithSubjectFilter(Subject(issuer)))
	}
	info, err := q.stream.Info(ctx, opts...)
	q.mu.Lock()
	defer q.mu.Unlock()
	if err != nil {
		q.log.Debug().Err(err).Str("issuer", issuer).Msg("store-and-forward: stream info; the last count stands")
		return q.lens[issuer]
	}
	n := int(info.State.Msgs)
	if issuer != "" {
		n = int(info.State.Subjects[Subject(issuer)])
	}
	q.lens[issuer] = n
	return n
}

// Flush waits until this node owes nothing: no send in progress here, and
// every advice it enqueued acknowledged (by whichever node), or ctx ends.
// What stays is safe in the stream: the other nodes deliver it.
func (q *Queue) Flush(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		left, err := q.owed(ctx)
		if err == nil && left == 0 && q.busy.Load() == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("jsaf: flush: %w (last check: %w)", ctx.Err(), err)
			}
			return fmt.Errorf("jsaf: %d advice(s) this node enqueued still in the stream, %d send(s) in progress: %w",
				left, q.busy.Load(), ctx.Err())
		case <-t.C:
		}
	}
}

// owed checks this node's enqueued advices against the stream, forgetting those
// no longer there (a work queue removes an advice when it is acknowledged).
func (q *Queue) owed(ctx context.Context) (int, error) {
	q.mu.Lock()
	var seqs []uint64
	for _, m := range q.mine {
		for s := range m {
			seqs = append(seqs, s)
		}
	}
	q.mu.Unlock()
	left := 0
	for _, s := range seqs {
		// A request lost in a leader election is not answered at all: each
		// waits PublishTimeout at most, and Flush asks again.
		gctx, cancel := context.WithTimeout(ctx, q.opts.PublishTimeout)
		_, err := q.stream.GetMsg(gctx, s)
		cancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			q.mu.Lock()
			for _, m := range q.mine {
				delete(m, s)
			}
			delete(q.tries, s)
			q.mu.Unlock()
			continue
		}
		if err != nil {
			return len(seqs), err
		}
		left++
	}
	return left, nil
}

// Close stops the workers and waits for them: first their pulls (the last
// pull request expires within Poll; the advices it brings are sent), then the
// sends still in progress, whose advices are handed back to the stream at once
// and go to another node as repeats. The node stays open: it belongs to the
// caller.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		q.mu.Lock() // Register must not add to pulling once Wait may run
		close(q.closing)
		q.mu.Unlock()
	})
	q.pulling.Wait()
	q.cancel()
	q.wg.Wait()
	return nil
}
