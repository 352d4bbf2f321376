package jsaf

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/syncbuf"
	"github.com/switchyard/switchyard/switch/cluster"
	"github.com/switchyard/switchyard/switch/saf"
)

// delivery is one call of a test sender.
type delivery struct {
	rrn, mti string
	repeat   bool
	tries    int
	lastErr  string
	at       time.Time
}

// recorder is a sender that records every call and acknowledges.
type recorder struct {
	mu  sync.Mutex
	got []delivery
}

func (r *recorder) send(_ context.Context, it *saf.Item, repeat bool) error {
	mti := it.MTI
	if repeat {
		mti = saf.RepeatMTI(mti)
	}
	r.mu.Lock()
	r.got = append(r.got, delivery{rrn: it.RRN, mti: mti, repeat: repeat, tries: it.Tries, lastErr: it.LastErr, at: time.Now()})
	r.mu.Unlock()
	return nil
}

func (r *recorder) list() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func advice(issuer, rrn string) *saf.Item {
	return &saf.Item{Issuer: issuer, MTI: "0420", RRN: rrn, Reason: "timeout", Fields: map[int]string{37: rrn}}
}

// TestEnqueueDeliver: on a standalone node, advices enqueued before their
// issuer's sender is registered wait in the stream (Len, Pending, in order,
// the same advice enqueued twice stored once), are delivered once each, not as
// repeats, and are removed when acknowledged; Flush then returns. An issuer id
// that is no subject token (a '.') works too.
func TestEnqueueDeliver(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := standalone(t, ctx)
	q := openRetry(t, ctx, n, Options{Replicas: 1, Logger: testLogger(t)})
	for _, iss := range []string{"bank1", "bank.two"} {
		for i := range 3 {
			it := advice(iss, fmt.Sprintf("%s-%d", iss, i))
			if err := q.Enqueue(it); err != nil {
				t.Fatal(err)
			}
			if it.Seq == 0 {
				t.Fatalf("%s: no stream sequence after enqueue", it.RRN)
			}
		}
	}
	again := advice("bank1", "bank1-1")
	if err := q.Enqueue(again); err != nil || again.Seq != 2 {
		t.Fatalf("the same advice again: seq %d, %v; want the first one's sequence 2", again.Seq, err)
	}
	if got := q.Len(""); got != 6 {
		t.Fatalf("Len(\"\") = %d, want 6 (the duplicate stored once)", got)
	}
	if got := q.Len("bank.two"); got != 3 {
		t.Fatalf("Len(bank.two) = %d, want 3", got)
	}
	p, err := q.Pending("bank1")
	if err != nil {
		t.Fatal(err)
	}
	var rrns []string
	for _, it := range p {
		rrns = append(rrns, it.RRN)
	}
	if !slices.Equal(rrns, []string{"bank1-0", "bank1-1", "bank1-2"}) || p[0].Seq != 1 || p[0].Issuer != "bank1" || p[0].Fields[37] != "bank1-0" {
		t.Fatalf("Pending(bank1) = %+v", p)
	}
	if all, err := q.Pending(""); err != nil || len(all) != 6 {
		t.Fatalf("Pending(\"\"): %d items, %v; want 6", len(all), err)
	}

	r := &recorder{}
	q.Register("bank1", r.send)
	q.Register("bank.two", r.send)
	waitFor(t, "six deliveries", 10*time.Second, func() bool { return len(r.list()) >= 6 })
	if err := q.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := r.list()
	sort.Slice(got, func(i, j int) bool { return got[i].rrn < got[j].rrn })
	if len(got) != 6 {
		t.Fatalf("%d deliveries, want 6: %+v", len(got), got)
	}
	for _, d := range got {
		if d.repeat || d.mti != "0420" || d.tries != 1 {
			t.Errorf("%s went as %s (repeat %v, tries %d); want a first try 0420", d.rrn, d.mti, d.repeat, d.tries)
		}
	}
	if l := q.Len(""); l != 0 {
		t.Fatalf("Len after delivery = %d, want 0", l)
	}
	st := q.IssuerStats()
	if st["bank1"].Sent.Load() != 3 || st["bank1"].Acked.Load() != 3 || st["bank.two"].Acked.Load() != 3 || q.Acked.Load() != 6 {
		t.Fatalf("stats: bank1 sent %d acked %d, bank.two acked %d, total acked %d",
			st["bank1"].Sent.Load(), st["bank1"].Acked.Load(), st["bank.two"].Acked.Load(), q.Acked.Load())
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRepeatItemFirstTry: an advice enqueued with Repeat (a reversal queued by
// recovery, which the node that died may have sent) goes as a repeat (0421) on its
// first delivery; the others as first tries.
func TestRepeatItemFirstTry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := standalone(t, ctx)
	q := openRetry(t, ctx, n, Options{Replicas: 1, Logger: testLogger(t)})
	rec := advice("bank", "000000000001")
	rec.Repeat, rec.Reason = true, "switch:restart"
	for _, it := range []*saf.Item{rec, advice("bank", "000000000002")} {
		if err := q.Enqueue(it); err != nil {
			t.Fatal(err)
		}
	}
	r := &recorder{}
	q.Register("bank", r.send)
	waitFor(t, "two deliveries", 10*time.Second, func() bool { return len(r.list()) >= 2 })
	if err := q.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range r.list() {
		if _, ok := got[d.rrn]; !ok {
			got[d.rrn] = d.mti
		}
	}
	if got["000000000001"] != "0421" || got["000000000002"] != "0420" {
		t.Fatalf("first deliveries %v, want 000000000001 as 0421 (Repeat) and 000000000002 as 0420", got)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRetryBackoff: a sender that fails is tried again after the backoff,
// doubling up to MaxBackoff, each later try a repeat (0421) that knows its
// try count and the last error; the warnings are rate-limited.
func TestRetryBackoff(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := standalone(t, ctx)
	fixed := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	q := openRetry(t, ctx, n, Options{Replicas: 1, MinBackoff: 100 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Now: func() time.Time { return fixed }, Logger: testLogger(t)})
	if err := q.Enqueue(advice("down", "r1")); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []delivery
	var seenPending []saf.Item
	q.Register("down", func(_ context.Context, it *saf.Item, repeat bool) error {
		mti := it.MTI
		if repeat {
			mti = saf.RepeatMTI(mti)
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, delivery{rrn: it.RRN, mti: mti, repeat: repeat, tries: it.Tries, lastErr: it.LastErr, at: time.Now()})
		if len(got) == 3 { // what an operator sees mid-retries
			seenPending, _ = q.Pending("down")
		}
		if len(got) < 4 {
			return fmt.Errorf("issuer down #%d", len(got))
		}
		return nil
	})
	if err := q.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 4 {
		t.Fatalf("%d tries, want 4: %+v", len(got), got)
	}
	wantGap := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond}
	for i, d := range got {
		wantMTI, wantErr := "0421", fmt.Sprintf("issuer down #%d", i)
		if i == 0 {
			wantMTI, wantErr = "0420", ""
		}
		if d.mti != wantMTI || d.repeat != (i > 0) || d.tries != i+1 || d.lastErr != wantErr {
			t.Errorf("try %d: %s repeat %v tries %d last error %q; want %s, tries %d, last error %q",
				i+1, d.mti, d.repeat, d.tries, d.lastErr, wantMTI, i+1, wantErr)
		}
		if i > 0 {
			if gap := d.at.Sub(got[i-1].at); gap < wantGap[i-1] {
				t.Errorf("try %d came %v after the previous; want at least the backoff %v", i+1, gap, wantGap[i-1])
			}
		}
	}
	if len(seenPending) != 1 || seenPending[0].Tries != 3 || seenPending[0].LastErr != "issuer down #2" {
		t.Errorf("Pending during the third try: %+v; want the advice with tries 3, last error #2", seenPending)
	}
	st := q.IssuerStats()["down"]
	if st.Sent.Load() != 4 || st.Failed.Load() != 3 || st.Acked.Load() != 1 || st.Suppressed.Load() != 2 {
		t.Errorf("stats: sent %d failed %d acked %d suppressed %d; want 4, 3, 1, 2 (one warning a minute)",
			st.Sent.Load(), st.Failed.Load(), st.Acked.Load(), st.Suppressed.Load())
	}
}

// TestCluster, on a three-node loopback cluster (R3 stream):
//   - enqueue latency (logged: the figure of docs/cluster.md);
//   - two queues on two nodes share an issuer's advices, each delivered once;
//   - a node that took an advice dies without acknowledging it: a survivor
//     delivers it as a repeat (0421) once AckWait has passed;
//   - with two nodes of three down, Enqueue fails with cluster.ErrNoQuorum.
func TestCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	nodes := threeNodes(t, ctx)
	opts := Options{Replicas: 3, InFlight: 4, AckWait: time.Second, MinBackoff: 100 * time.Millisecond,
		PublishTimeout: time.Second, Logger: testLogger(t)}
	qs := make([]*Queue, 3)
	for i, n := range nodes {
		qs[i] = openRetry(t, ctx, n, opts)
	}

	// Enqueue latency: sequential, each waiting for the R3 acknowledgement.
	const nLat = 200
	lat := make([]time.Duration, 0, nLat)
	for i := range nLat {
		it := advice("lat", fmt.Sprintf("lat-%d", i))
		start := time.Now()
		enqueue(t, ctx, qs[i%3], it)
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("enqueue latency on a 3-node loopback cluster (R3, %d sequential, all nodes): p50 %v, p90 %v, p99 %v, max %v",
		nLat, lat[nLat/2], lat[nLat*9/10], lat[nLat*99/100], lat[nLat-1])
	qs[0].Register("lat", (&recorder{}).send) // so that Flush finds nothing owed

	if !t.Run("share", func(t *testing.T) {
		r1, r2 := &recorder{}, &recorder{}
		qs[0].Register("acq", r1.send)
		qs[1].Register("acq", r2.send)
		// Both workers pulling: the server hands the advices round the waiting
		// pull requests, so both nodes get some.
		waitFor(t, "both nodes' pull requests at the consumer", 20*time.Second, func() bool {
			// A request lost in a leader election gets no answer: bound each.
			ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			c, err := qs[0].js.Consumer(ictx, StreamName, ConsumerName("acq"))
			if err != nil {
				return false
			}
			info, err := c.Info(ictx)
			return err == nil && info.NumWaiting >= 2
		})
		const nShare = 40
		for i := range nShare {
			enqueue(t, ctx, qs[i%2], advice("acq", fmt.Sprintf("acq-%02d", i)))
		}
		waitFor(t, "every advice delivered", 20*time.Second, func() bool { return len(r1.list())+len(r2.list()) >= nShare })
		// Each node forgets, once idle, the advices it enqueued that the other
		// delivered (the consumer's ack floor passed them), without a Flush.
		for i, q := range qs[:2] {
			waitFor(t, fmt.Sprintf("node %d to forget the advices acknowledged", i+1), 10*time.Second, func() bool {
				q.mu.Lock()
				defer q.mu.Unlock()
				return len(q.mine["acq"]) == 0
			})
		}
		for _, q := range qs[:2] {
			if err := q.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
		seen := map[string]int{}
		for _, d := range append(r1.list(), r2.list()...) {
			seen[d.rrn]++
			if d.repeat {
				t.Errorf("%s went as a repeat", d.rrn)
			}
		}
		for rrn, k := range seen {
			if k != 1 {
				t.Errorf("%s delivered %d times", rrn, k)
			}
		}
		if len(seen) != nShare {
			t.Errorf("%d advices delivered, want %d", len(seen), nShare)
		}
		t.Logf("node 1 delivered %d, node 2 %d", len(r1.list()), len(r2.list()))
		if len(r1.list()) == 0 || len(r2.list()) == 0 {
			t.Errorf("one node delivered everything (%d, %d): the consumer is not shared", len(r1.list()), len(r2.list()))
		}
		if l := qs[0].Len("acq"); l != 0 {
			t.Errorf("Len(acq) = %d after delivery", l)
		}
	}) {
		return // the next steps build on this one
	}

	if !t.Run("dead node's advice repeated by a survivor", func(t *testing.T) {
		taken := make(chan struct{})
		var once sync.Once
		qs[2].Register("owed", func(ctx context.Context, it *saf.Item, repeat bool) error {
			once.Do(func() { close(taken) })
			<-ctx.Done() // the issuer never answers before node 3 dies
			return ctx.Err()
		})
		enqueue(t, ctx, qs[0], advice("owed", "owed-1"))
		select {
		case <-taken:
		case <-ctx.Done():
			t.Fatal("node 3 never took the advice")
		}
		r1, r2 := &recorder{}, &recorder{}
		qs[0].Register("owed", r1.send)
		qs[1].Register("owed", r2.send)
		// Node 3 dies: its connection cut without a word (no ack, no nak), then
		// its server. Its queue's sender only sees its context end once the
		// survivors have delivered (Close is the test's cleanup, not the death).
		died := time.Now()
		nodes[2].Conn().Close()
		if err := nodes[2].Close(); err != nil {
			t.Log(err)
		}
		nodes[2] = nil
		waitFor(t, "a survivor to deliver the dead node's advice", 30*time.Second, func() bool { return len(r1.list())+len(r2.list()) > 0 })
		took := time.Since(died)
		qs[2].Close()
		got := append(r1.list(), r2.list()...)
		if len(got) != 1 || got[0].rrn != "owed-1" || !got[0].repeat || got[0].mti != "0421" || got[0].tries < 2 {
			t.Fatalf("survivors' deliveries: %+v; want owed-1 once, as a repeat 0421 with tries >= 2", got)
		}
		if took < opts.AckWait/2 {
			t.Errorf("redelivered %v after the death, before AckWait %v could pass", took, opts.AckWait)
		}
		t.Logf("the dead node's advice delivered by a survivor as %s %v after the death (AckWait %v)", got[0].mti, took.Round(time.Millisecond), opts.AckWait)
		if err := qs[0].Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}) {
		return
	}

	t.Run("no quorum", func(t *testing.T) {
		qs[1].Close()
		if err := nodes[1].Close(); err != nil {
			t.Log(err)
		}
		nodes[1] = nil
		start := time.Now()
		err := qs[0].Enqueue(advice("acq", "lonely"))
		if !errors.Is(err, cluster.ErrNoQuorum) || time.Since(start) > 3*opts.PublishTimeout {
			t.Fatalf("enqueue with two of three nodes down: %v after %v; want cluster.ErrNoQuorum within about %v",
				err, time.Since(start), opts.PublishTimeout)
		}
		t.Log(err)
		fctx, fcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer fcancel()
		if err := qs[0].Flush(fctx); err != nil {
			t.Logf("flush without quorum: %v", err)
		}
	})
}

// enqueue enqueues it, again while JetStream says it has no quorum (a loaded
// machine's leader election): the advice's Nats-Msg-Id stores it once.
func enqueue(t *testing.T, ctx context.Context, q *Queue, it *saf.Item) {
	t.Helper()
	for {
		err := q.Enqueue(it)
		if err == nil {
			return
		}
		if !errors.Is(err, cluster.ErrNoQuorum) || ctx.Err() != nil {
			t.Fatal(err)
		}
		t.Logf("again: %v", err)
	}
}

// TestSlowSendKeepsAdvice: a send that outlasts AckWait keeps its advice (the
// node reports progress), so another node's queue does not send it too.
func TestSlowSendKeepsAdvice(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := standalone(t, ctx)
	opts := Options{Replicas: 1, AckWait: 300 * time.Millisecond, Logger: testLogger(t)}
	q1, q2 := openRetry(t, ctx, n, opts), openRetry(t, ctx, n, opts) // two nodes' queues on one consumer
	if err := q1.Enqueue(advice("slow", "s1")); err != nil {
		t.Fatal(err)
	}
	taken, finished := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	q1.Register("slow", func(ctx context.Context, it *saf.Item, repeat bool) error {
		if calls.Add(1) > 1 {
			return nil // redelivered to this queue: failed below
		}
		close(taken)
		defer close(finished)
		select { // the issuer answers after four AckWaits
		case <-time.After(4 * opts.AckWait):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	<-taken
	r2 := &recorder{}
	q2.Register("slow", r2.send)
	<-finished
	if err := q1.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r2.list(); len(got) != 0 || calls.Load() != 1 {
		t.Fatalf("the advice held by a slow send was sent again: by the other queue %+v, %d calls of the slow sender", got, calls.Load())
	}
	if l := q1.Len(""); l != 0 {
		t.Fatalf("Len = %d after the slow send's acknowledgement", l)
	}
}

// TestCloseHandsBack: a queue closed mid-send hands the advice back at once,
// not after AckWait: another node's queue sends it, as a repeat.
func TestCloseHandsBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := standalone(t, ctx)
	opts := Options{Replicas: 1, AckWait: time.Minute, Logger: testLogger(t)}
	q1, q2 := openRetry(t, ctx, n, opts), openRetry(t, ctx, n, opts)
	if err := q1.Enqueue(advice("iss", "c1")); err != nil {
		t.Fatal(err)
	}
	taken := make(chan struct{})
	q1.Register("iss", func(ctx context.Context, it *saf.Item, repeat bool) error {
		close(taken)
		<-ctx.Done() // the issuer has not answered when the node shuts down
		return ctx.Err()
	})
	<-taken
	r2 := &recorder{}
	q2.Register("iss", r2.send)
	if err := q1.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the other queue to send the handed-back advice (well before the 1 min AckWait)", 10*time.Second,
		func() bool { return len(r2.list()) > 0 })
	if got := r2.list(); len(got) != 1 || got[0].mti != "0421" || got[0].tries != 2 {
		t.Fatalf("deliveries by the other queue: %+v; want c1 once as a repeat 0421, tries 2", got)
	}
}

// TestForgetBehindStuckAdvice: an advice the issuer never takes holds the
// consumer's ack floor below it for good. The advices this node enqueued after
// it, which another node delivered, are gone from the stream but above the
// floor: forget looks them up and drops them, so that this node does not track
// them (and Flush ask for them) for as long as it runs. Before, q.mine kept
// every one of them.
func TestForgetBehindStuckAdvice(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	n := standalone(t, ctx)
	opts := Options{Replicas: 1, AckWait: 2 * time.Second, Poll: 200 * time.Millisecond, MaxBackoff: time.Second, Logger: testLogger(t)}
	q1, q2 := openRetry(t, ctx, n, opts), openRetry(t, ctx, n, opts)
	send := func(_ context.Context, it *saf.Item, _ bool) error {
		if it.RRN == "stuck" {
			return errors.New("the issuer refuses it")
		}
		return nil
	}
	enqueue(t, ctx, q1, advice("iss", "stuck"))
	const count = 40
	for i := range count {
		enqueue(t, ctx, q1, advice("iss", fmt.Sprintf("a%02d", i)))
	}
	q2.Register("iss", send) // another node delivers them
	for q1.Len("iss") != 1 {
		select {
		case <-ctx.Done():
			t.Fatalf("the stream holds %d advices, want the stuck one alone", q1.Len("iss"))
		case <-time.After(20 * time.Millisecond):
		}
	}
	q1.Register("iss", send) // this node's worker, which forgets when idle
	for {
		q1.mu.Lock()
		mine, tries := len(q1.mine["iss"]), len(q1.tries)
		q1.mu.Unlock()
		if mine == 1 {
			t.Logf("q1 tracks %d advice(s) enqueued, %d tried", mine, tries)
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("q1 still tracks %d advices, %d of them delivered by another node long ago", mine, mine-1)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestReversalNotBeforeItsAdvice: a stand-in approval's advice (0220) waits in its
// backoff while the issuer is down; the approval is then reversed (a void, or taken
// back), which queues its 0420 under the same RRN. Once the issuer is back, the
// 0420 must not reach it before the 0220 (or its repeat 0221) it reverses: an issuer
// that gets the reversal first finds nothing to reverse (and acknowledges it, which
// removes it), then books the advice that follows, and the card is charged for a
// transaction the switch reversed. The same holds for a completion's 0220 and the
// 0420 of its void.
func TestReversalNotBeforeItsAdvice(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := standalone(t, ctx)
	// A backoff long against the test's steps: the 0220, failed once, is not tried
	// again for 5 s.
	q := openRetry(t, ctx, n, Options{Replicas: 1, MinBackoff: 5 * time.Second, MaxBackoff: 5 * time.Second, Logger: testLogger(t)})
	var mu sync.Mutex
	up := false
	var accepted []string // what the issuer took, in order ("MTI RRN")
	failed := make(chan struct{}, 1)
	q.Register("bank", func(_ context.Context, it *saf.Item, repeat bool) error {
		mti := it.MTI
		if repeat {
			mti = saf.RepeatMTI(mti)
		}
		mu.Lock()
		defer mu.Unlock()
		if !up {
			select {
			case failed <- struct{}{}:
			default:
			}
			return errors.New("issuer down")
		}
		accepted = append(accepted, mti+" "+it.RRN)
		return nil
	})
	standIn := &saf.Item{Issuer: "bank", MTI: "0220", RRN: "000000000007", Reason: "stand-in", Fields: map[int]string{37: "000000000007", 39: "00"}}
	if err := q.Enqueue(standIn); err != nil {
		t.Fatal(err)
	}
	select { // its first try failed: it waits out its backoff
	case <-failed:
	case <-ctx.Done():
		t.Fatal("the stand-in advice was never tried")
	}
	mu.Lock()
	up = true // the issuer is back
	mu.Unlock()
	// The stand-in approval is voided: its reversal is queued.
	if err := q.Enqueue(advice("bank", "000000000007")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both advices taken by the issuer", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted) >= 2
	})
	mu.Lock()
	got := slices.Clone(accepted)
	mu.Unlock()
	if len(got) != 2 || !strings.HasPrefix(got[0], "022") {
		t.Fatalf("the issuer took %q: the reversal of 000000000007 before the advice it reverses", got)
	}
}

// TestReversalHeldAcrossNodes: the advice and its reversal are handed over together
// (two free slots), the advice queued by another node that is gone since: while the
// issuer still takes its time over the advice, the reversal is held back (the node
// reads the other node's advice from the stream), not sent; once the advice is
// acknowledged the reversal goes. The reversal of another transaction is not held.
func TestReversalHeldAcrossNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := standalone(t, ctx)
	opts := Options{Replicas: 1, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Poll: 200 * time.Millisecond, Logger: testLogger(t)}
	gone, q := openRetry(t, ctx, n, opts), openRetry(t, ctx, n, opts)
	enqueue(t, ctx, gone, &saf.Item{Issuer: "bank", MTI: "0220", RRN: "000000000007", Reason: "stand-in", Fields: map[int]string{37: "000000000007"}})
	if err := gone.Close(); err != nil { // the node that queued it is gone
		t.Fatal(err)
	}
	enqueue(t, ctx, q, advice("bank", "000000000007"))
	enqueue(t, ctx, q, advice("bank", "000000000008"))
	var mu sync.Mutex
	var accepted []string
	entered, release := make(chan struct{}), make(chan struct{})
	q.Register("bank", func(ctx context.Context, it *saf.Item, repeat bool) error {
		if it.MTI == "0220" {
			close(entered)
			select { // the issuer takes its time
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		mu.Lock()
		defer mu.Unlock()
		mti := it.MTI
		if repeat {
			mti = saf.RepeatMTI(mti)
		}
		accepted = append(accepted, mti+" "+it.RRN)
		return nil
	})
	took := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(accepted)
	}
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the advice was never sent")
	}
	waitFor(t, "the reversal of 000000000007 held back while its advice is with the issuer", 20*time.Second, func() bool {
		return q.IssuerStats()["bank"].Held.Load() == 1 && len(took()) == 1
	})
	if got := took(); got[0] != "0420 000000000008" {
		t.Fatalf("the issuer took %q while the advice of 000000000007 was with it; want the other reversal alone", got)
	}
	close(release)
	waitFor(t, "the three advices taken", 20*time.Second, func() bool { return len(took()) == 3 })
	// The held reversal goes as a first try (0420): being held was no try.
	if got := took(); got[1] != "0220 000000000007" || got[2] != "0420 000000000007" {
		t.Fatalf("the issuer took %q, want the advice of 000000000007 then its reversal (0420)", got)
	}
}

// TestReversalHeldBehindUndecodableAdvice: an advice that cannot be read is set
// aside for a day; its reversal (its MTI and RRN read from the Nats-Msg-Id) waits
// for it, and, held past HoldWarn, is counted and logged, not held unknown to all.
func TestReversalHeldBehindUndecodableAdvice(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := standalone(t, ctx)
	var logs syncbuf.Buffer
	q := openRetry(t, ctx, n, Options{Replicas: 1, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		Poll: 200 * time.Millisecond, HoldWarn: time.Millisecond, Logger: zerolog.New(&logs).Level(zerolog.WarnLevel)})
	if _, err := n.Publish(ctx, Subject("bank"), []byte("{not json"), "saf:bank:0220:000000000009"); err != nil {
		t.Fatal(err)
	}
	enqueue(t, ctx, q, advice("bank", "000000000009"))
	enqueue(t, ctx, q, advice("bank", "000000000010"))
	rec := &recorder{}
	q.Register("bank", rec.send)
	waitFor(t, "the reversal held long counted and logged", 20*time.Second, func() bool {
		st := q.IssuerStats()["bank"]
		return st.HeldLong.Load() == 1 && strings.Contains(logs.String(), "reversal advice held back") && len(rec.list()) == 1
	})
	if got := rec.list(); got[0].rrn != "000000000010" {
		t.Fatalf("the issuer took %+v; want the reversal of 000000000010 alone", got)
	}
	if !strings.Contains(logs.String(), `"rrn":"000000000009"`) {
		t.Fatalf("the warning does not name the held reversal's RRN:\n%s", logs.String())
	}
}

// TestFenceHandsBack: a node whose Fence refuses once it has taken an advice (its
// lease found not held after a pause: another node may be recovering it) does not
// send it but hands it back, and takes no more; another node sends it. Before, a
// node woken from a pause sent what it had taken before, which another node had
// sent meanwhile (a 0220 after that node's 0420 is booked by the issuer).
func TestFenceHandsBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := standalone(t, ctx)
	var asked atomic.Int32
	fenced := errors.New("cluster: node 1's lease is lost")
	q1 := openRetry(t, ctx, n, Options{Replicas: 1, AckWait: time.Minute, Logger: testLogger(t), Fence: func() error {
		if asked.Add(1) == 1 {
			return nil // the pull: the lease held then
		}
		return fenced
	}})
	q2 := openRetry(t, ctx, n, Options{Replicas: 1, AckWait: time.Minute, Logger: testLogger(t)})
	if err := q1.Enqueue(advice("iss", "f1")); err != nil {
		t.Fatal(err)
	}
	r1, r2 := &recorder{}, &recorder{}
	q1.Register("iss", r1.send)
	waitFor(t, "the fenced queue to take the advice and ask again", 10*time.Second, func() bool { return asked.Load() >= 3 })
	q2.Register("iss", r2.send)
	waitFor(t, "the other queue to send the handed-back advice (well before the 1 min AckWait)", 10*time.Second,
		func() bool { return len(r2.list()) > 0 })
	if got := r1.list(); len(got) != 0 {
		t.Fatalf("the fenced queue sent %+v", got)
	}
	if got := r2.list(); len(got) != 1 || got[0].rrn != "f1" {
		t.Fatalf("deliveries by the other queue: %+v; want f1 once", got)
	}
	for _, q := range []*Queue{q1, q2} {
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
