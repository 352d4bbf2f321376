package cjournal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/switch/cluster"
	"github.com/switchyard/switchyard/switch/journal"
)

// fakeStream stands for the stream in the grouper's unit tests: every publish hands
// its future to the test, which settles it.
type fakeStream struct{ sent chan *groupFuture }

func (f *fakeStream) publish(m *nats.Msg, _ ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	g := &groupFuture{m: m, ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	f.sent <- g
	return g, nil
}

// next waits for the next publish.
func (f *fakeStream) next(t *testing.T) *groupFuture {
	t.Helper()
	select {
	case g := <-f.sent:
		return g
	case <-time.After(10 * time.Second):
		t.Fatal("no publish within 10 s")
		return nil
	}
}

// groupJournal is a Journal with its grouper, acker and resender running on a fake
// stream.
func groupJournal(t *testing.T, ackTimeout time.Duration) (*Journal, *fakeStream) {
	return groupJournalOpts(t, Options{AckTimeout: ackTimeout})
}

// groupJournalOpts is groupJournal with opts; a test may close j.stop itself.
func groupJournalOpts(t *testing.T, opts Options) (*Journal, *fakeStream) {
	fs := &fakeStream{sent: make(chan *groupFuture, 1000)}
	j := &Journal{node: "1", idPrefix: "1.test.", opts: opts, log: testLogger(t),
		async: make(chan asyncPub, 100), asyncDone: make(chan struct{}), stop: make(chan struct{}), publishAsync: fs.publish}
	j.group.init()
	go j.resend()
	go j.groupLoop()
	go j.ackLoop()
	t.Cleanup(func() {
		if !j.stopped() {
			close(j.stop)
		}
		// Settle whatever is still sent, so that the acker ends.
		go func() {
			for g := range fs.sent {
				g.err <- errors.New("closing")
			}
		}()
		<-j.group.done
		j.asyncMu.Lock()
		j.asyncClosed = true
		close(j.async)
		j.asyncMu.Unlock()
		<-j.asyncDone
		close(fs.sent)
	})
	return j, fs
}

// entries decodes a group message's entries as "kind:payload".
func entries(t *testing.T, m *nats.Msg) []string {
	t.Helper()
	if m.Subject != "journal.1.g" || m.Header.Get(hdrKind) != kindGroup || m.Header.Get(jetstream.MsgIDHeader) == "" {
		t.Fatalf("group message %s, headers %v", m.Subject, m.Header)
	}
	var got []string
	if err := decodeGroup(m.Data, func(kind string, p []byte) error {
		got = append(got, kind+":"+string(p))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestGroupMessages: queued entries leave in group messages of at most maxGroupMsg,
// cut at entries' ends, and decode back to the same entries in order; a torn group
// is refused as a message that will never apply.
func TestGroupMessages(t *testing.T) {
	j := &Journal{node: "1", idPrefix: "1.test."}
	j.group.init()
	const n = 40000 // ~1 MB of marks: several messages
	at := time.Unix(1764583200, 123).UTC()
	for i := range n {
		if _, err := j.enqueue(kindDeliv[0], appendMark(nil, fmt.Sprintf("1%011d", i), i%3 != 0, at.Add(time.Duration(i))), false); err != nil {
			t.Fatal(err)
		}
	}
	var msgs []*nats.Msg
	for g := j.take(); g != nil; g = j.take() {
		if !g.bg || len(g.waiters) != 0 {
			t.Fatalf("group of background entries: bg %v, %d waiters", g.bg, len(g.waiters))
		}
		msgs = append(msgs, g.m)
	}
	if len(msgs) < 3 {
		t.Fatalf("%d messages; want several", len(msgs))
	}
	ids := map[string]bool{}
	i := 0
	for _, m := range msgs {
		if len(m.Data) > maxGroupMsg || m.Subject != "journal.1.g" {
			t.Fatalf("message %s of %d bytes", m.Subject, len(m.Data))
		}
		id := m.Header.Get(jetstream.MsgIDHeader)
		if id == "" || ids[id] {
			t.Fatalf("message id %q empty or seen before", id)
		}
		ids[id] = true
		err := decodeGroup(m.Data, func(kind string, p []byte) error {
			if kind != kindDeliv {
				return fmt.Errorf("entry %d of kind %q", i, kind)
			}
			return decodeMarks(p, func(rrn string, delivered bool, got time.Time) error {
				if rrn != fmt.Sprintf("1%011d", i) || delivered != (i%3 != 0) || !got.Equal(at.Add(time.Duration(i))) {
					return fmt.Errorf("mark %d: %s %v %v", i, rrn, delivered, got)
				}
				i++
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if i != n {
		t.Fatalf("%d marks decoded; %d queued", i, n)
	}
	var bad badMessage
	if err := decodeGroup(msgs[0].Data[:15], func(string, []byte) error { return nil }); !errors.As(err, &bad) {
		t.Fatalf("torn group: %v; want a badMessage", err)
	}
	if err := decodeGroup([]byte{'r'}, func(string, []byte) error { return nil }); !errors.As(err, &bad) {
		t.Fatalf("group of a kind byte alone: %v; want a badMessage", err)
	}
}

// TestGroupWaiters: while two groups are in flight the next writers gather into one
// group; each writer is woken when its own group is acknowledged, not before; a group
// that gets no acknowledgement fails every writer waiting for it with
// journal.ErrUnavailable and cluster.ErrNoQuorum once AckTimeout has passed, and
// a group the stream refuses outright fails them with journal.ErrUnavailable alone.
func TestGroupWaiters(t *testing.T) {
	j, fs := groupJournal(t, time.Second)
	ctx := context.Background()
	type result struct {
		name string
		err  error
	}
	done := make(chan result, 10)
	write := func(name string) {
		start := time.Now()
		ch, err := j.enqueue(kindRecord[0], []byte(name), true)
		if err != nil {
			t.Fatal(err)
		}
		go func() { done <- result{name, j.awaitGroup(ctx, "record "+name, start, ch)} }()
	}
	noResult := func() {
		t.Helper()
		select {
		case r := <-done:
			t.Fatalf("writer %s woken (%v) before its group was settled", r.name, r.err)
		case <-time.After(20 * time.Millisecond): // nothing more may come: a short look suffices
		}
	}
	write("a")
	g1 := fs.next(t)
	write("b")
	g2 := fs.next(t)
	// Both slots are taken: c, d and e wait together; so does a mark nobody waits for.
	write("c")
	write("d")
	if _, err := j.enqueue(kindDeliv[0], appendMark(nil, "100000000001", true, time.Now()), false); err != nil {
		t.Fatal(err)
	}
	write("e")
	noResult()
	if got := entries(t, g1.m); len(got) != 1 || got[0] != "r:a" {
		t.Fatalf("first group %v", got)
	}
	g1.ok <- &jetstream.PubAck{Stream: StreamName, Sequence: 1}
	if r := <-done; r.name != "a" || r.err != nil {
		t.Fatalf("after the first group's ack: %s %v; want a, nil", r.name, r.err)
	}
	g3 := fs.next(t) // a slot is free
	got := entries(t, g3.m)
	if len(got) != 4 || got[0] != "r:c" || got[1] != "r:d" || got[2][:2] != "d:" || got[3] != "r:e" {
		t.Fatalf("third group %v; want c, d, the mark, e", got)
	}
	noResult()
	// The third group acknowledged first (the acker waits in order): nobody is woken
	// until the second is.
	g3.ok <- &jetstream.PubAck{Stream: StreamName, Sequence: 3}
	noResult()
	g2.ok <- &jetstream.PubAck{Stream: StreamName, Sequence: 2}
	woken := map[string]error{}
	for range 4 {
		r := <-done
		woken[r.name] = r.err
	}
	for _, name := range []string{"b", "c", "d", "e"} {
		if err, ok := woken[name]; !ok || err != nil {
			t.Fatalf("writer %s after the acks: %v (%v)", name, err, ok)
		}
	}

	// No quorum: every send of the group fails until AckTimeout.
	write("f")
	write("g")
	var sends int
	var failed []result
	for len(failed) < 2 {
		select {
		case g := <-fs.sent:
			sends++
			g.err <- nats.ErrNoResponders
		case r := <-done:
			failed = append(failed, r)
		case <-time.After(10 * time.Second):
			t.Fatal("the writers of a group without acknowledgement were not failed")
		}
	}
	for _, r := range failed {
		if !errors.Is(r.err, journal.ErrUnavailable) || !errors.Is(r.err, cluster.ErrNoQuorum) {
			t.Fatalf("writer %s without a quorum: %v; want ErrUnavailable and ErrNoQuorum", r.name, r.err)
		}
	}
	if sends <= 2 {
		t.Fatalf("the failed group was sent %d times; want it sent again after its errors", sends)
	}

	// The acker gives the failed groups up at their deadline: until then, they are
	// sent again (and fail again).
	for deadline := time.Now().Add(10 * time.Second); len(j.group.slots) > 0; {
		select {
		case g := <-fs.sent:
			g.err <- nats.ErrNoResponders
		case <-time.After(time.Millisecond): // polling, with a deadline
		}
		if time.Now().After(deadline) {
			t.Fatal("the failed groups were not given up")
		}
	}

	// Refused outright: failed at once, without ErrNoQuorum.
	write("h")
	g := fs.next(t)
	g.err <- &jetstream.APIError{Code: 400, ErrorCode: 10054, Description: "maximum message payload exceeded"}
	r := <-done
	if !errors.Is(r.err, journal.ErrUnavailable) || errors.Is(r.err, cluster.ErrNoQuorum) {
		t.Fatalf("writer of a refused group: %v; want ErrUnavailable without ErrNoQuorum", r.err)
	}
}

// TestGroupsOnStream: on a real stream (one server, R1, the journals of nodes 1 and
// 2), concurrent writers' versions and marks leave in fewer messages than writes, and
// the other node applies them all; every applier follows the whole stream (its own
// node's first versions are decided there); a group sent again after a lost acknowledgement is
// stored and applied once; and messages of the previous version's kinds (r, d, b, one
// entry each) still apply.
func TestGroupsOnStream(t *testing.T) {
	ctx, m1, m2 := twoOnOne(t, 60*time.Second)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

	const writers, each = 32, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range each {
				if _, err := journalTxn(ctx, m1, fmt.Sprintf("G%02d", w), fmt.Sprintf("%06d", k+1), at.Add(time.Duration(k)*time.Second)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	const txns = writers * each
	// The marks go in the background: wait for their acknowledgements.
	for m1.j.Stats().Published < 3*txns {
		if ctx.Err() != nil {
			t.Fatalf("published %d of %d versions and marks", m1.j.Stats().Published, 3*txns)
		}
		time.Sleep(time.Millisecond) // polling, with the test's deadline
	}
	info, err := m1.j.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := m1.j.Stats()
	// Every write goes in a group, the first ones (kind f) too.
	if st.Groups == 0 || st.Groups >= 2*txns || info.State.Msgs != st.Groups {
		t.Fatalf("%d transactions: %d messages, %d of them groups; want only groups, fewer than the transactions' two durable writes (%d)",
			txns, info.State.Msgs, st.Groups, 2*txns)
	}
	t.Logf("%d writes in %d messages (%d groups)", 3*txns, info.State.Msgs, st.Groups)
	if err := m2.j.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	got := scanAll(t, ctx, m2)
	if len(got) != txns {
		t.Fatalf("node 2 holds %d records; %d written", len(got), txns)
	}
	for rrn, r := range got {
		for r.State != journal.StateResponded && ctx.Err() == nil {
			time.Sleep(time.Millisecond) // the marks' group may be applied a moment later
			r, _ = m2.j.Get(rrn)
		}
		if r.RC != "00" || r.State != journal.StateResponded {
			t.Fatalf("node 2: %s is %s/%q; want the final version with its delivery", rrn, r.State, r.RC)
		}
	}
	// Both appliers follow the whole stream (node 1 decides its own first versions);
	// node 1's may still be taking the last group of marks.
	if err := m1.j.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if n := m1.j.Stats().Received; n != info.State.Msgs {
		t.Fatalf("node 1's applier received %d messages; want the stream's %d", n, info.State.Msgs)
	}
	if n := m2.j.Stats().Received; n != info.State.Msgs {
		t.Fatalf("node 2's applier received %d messages; want node 1's %d", n, info.State.Msgs)
	}

	t.Run("resent group stored once", func(t *testing.T) {
		rec := answer(request("100000099990", "GR", "000001", at), at)
		data := binaryEntry(kindRecord[0], mustEncode(t, rec))
		data = append(data, binaryEntry(kindBatch[0], append(binaryTime(at.Add(time.Hour)), "GR"...))...)
		m := m1.j.message(kindGroup, false, data)
		m1.j.setID(m)
		before := m2.j.Stats().AppliedRemote
		a1, err := m1.j.await(ctx, "group", m, nil)
		if err != nil {
			t.Fatal(err)
		}
		a2, err := m1.j.await(ctx, "group again", m, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !a2.Duplicate || a2.Sequence != a1.Sequence {
			t.Fatalf("a group and its resend: %+v, %+v; want it stored once", a1, a2)
		}
		if err := m2.j.CaughtUp(ctx); err != nil {
			t.Fatal(err)
		}
		if r, err := m2.j.Get(rec.RRN); err != nil || r.RC != "00" {
			t.Fatalf("node 2: the resent group's record: %+v %v", r, err)
		}
		if lb, err := m2.j.LastBatch("GR"); err != nil || !lb.Equal(at.Add(time.Hour)) {
			t.Fatalf("node 2: the resent group's batch close: %v %v", lb, err)
		}
		if n := m2.j.Stats().AppliedRemote - before; n != 1 {
			t.Fatalf("node 2 applied %d versions of the resent group; want 1", n)
		}
	})

	t.Run("old kinds", func(t *testing.T) {
		req := request("100000099991", "GO", "000001", at)
		for _, m := range []*nats.Msg{
			m1.j.message(kindRecord, true, mustEncode(t, req)),
			m1.j.message(kindRecord, false, mustEncode(t, answer(req, at))),
			m1.j.message(kindDeliv, false, appendMark(nil, req.RRN, true, at.Add(time.Second))),
			m1.j.message(kindBatch, false, append(binaryTime(at.Add(2*time.Hour)), "GO"...)),
		} {
			m1.j.setID(m)
			if _, err := m1.j.await(ctx, "old kind", m, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := m2.j.CaughtUp(ctx); err != nil {
			t.Fatal(err)
		}
		if r, err := m2.j.Get(req.RRN); err != nil || r.RC != "00" || r.State != journal.StateResponded {
			t.Fatalf("node 2: a record of old-kind messages: %+v %v; want final and delivered", r, err)
		}
		if lb, err := m2.j.LastBatch("GO"); err != nil || !lb.Equal(at.Add(2*time.Hour)) {
			t.Fatalf("node 2: an old-kind batch close: %v %v", lb, err)
		}
	})
}

// binaryEntry encodes a group entry.
func binaryEntry(kind byte, payload []byte) []byte {
	return append(binary.AppendUvarint([]byte{kind}, uint64(len(payload))), payload...)
}

func binaryTime(at time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(at.UnixNano()))
}

// TestFollowing: a node whose applier keeps up follows; one whose applier stands
// behind the stream (here: stopped) does not, and says where it stands.
func TestFollowing(t *testing.T) {
	ctx, m1, m2 := twoOnOne(t, 30*time.Second)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	if _, err := journalTxn(ctx, m1, "TF", "000001", at); err != nil {
		t.Fatal(err)
	}
	if err := m2.j.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m2.j.Following(ctx); err != nil {
		t.Fatalf("a caught-up applier: %v", err)
	}
	// An idle applier (here: counted as stalled at once) that a message another node
	// just wrote puts behind still follows: Following waits for it to catch up.
	m1.j.ap.stall = 0
	if _, err := journalTxn(ctx, m2, "TF", "000003", at.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := m1.j.Following(ctx); err != nil {
		t.Fatalf("an idle applier, one message behind: %v", err)
	}
	// Node 2's applier stops (its journal closed); node 1 writes on.
	if err := m2.j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := journalTxn(ctx, m1, "TF", "000002", at.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	m2.j.ap.stall = 0
	err := m2.j.Following(ctx)
	if err == nil || !strings.Contains(err.Error(), "has not moved") || !strings.Contains(err.Error(), "JetStream is not delivering the stream to it; stream JOURNAL: leader") {
		t.Fatalf("a stopped applier behind the stream: %v; want an error saying where it stands and how the stream's group is", err)
	}
}

// twoOnOne opens the journals of nodes 1 and 2 on one standalone server (an R1
// stream), closed when the test ends; ctx ends after d.
func twoOnOne(t *testing.T, d time.Duration) (context.Context, *member, *member) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	nc := startCluster(t, ctx, 1)
	m1 := openMember(t, ctx, nc.nodes[0], 1, 1, t.TempDir())
	t.Cleanup(func() { m1.close(t) })
	m2 := openMember(t, ctx, nc.nodes[0], 2, 1, t.TempDir())
	t.Cleanup(func() { m2.close(t) })
	return ctx, m1, m2
}

// TestPause: the grouper pauses only while entries come fast enough for the pause to
// gather pauseFrom of them, and only for what is left of it since the last group.
func TestPause(t *testing.T) {
	last := time.Unix(1764583200, 0)
	const p = 10 * time.Millisecond
	for _, c := range []struct {
		name  string
		now   time.Time
		last  time.Time
		rate  float64
		p     time.Duration
		wants time.Duration
	}{
		{"first group", last, time.Time{}, 1e6, p, 0},
		{"no pause configured", last, last, 1e6, 0, 0},
		{"pause off", last, last, 1e6, -1, 0},
		{"slow: 3,199 entries a second gather 31 in 10 ms", last, last, 3199, p, 0},
		{"fast: 3,200 a second gather 32", last, last, 3200, p, p},
		{"fast, 4 ms since the last group", last.Add(4 * time.Millisecond), last, 6000, p, 6 * time.Millisecond},
		{"fast, the pause over", last.Add(11 * time.Millisecond), last, 6000, p, 0},
	} {
		if got := pause(c.now, c.last, c.rate, c.p); got != c.wants {
			t.Errorf("%s: pause = %v; want %v", c.name, got, c.wants)
		}
	}
}

// TestGroupPaced: with groups that came fast, the grouper holds the next one back for
// the pause (an hour here), and Close sends it at once.
func TestGroupPaced(t *testing.T) {
	j, fs := groupJournalOpts(t, Options{AckTimeout: time.Minute, GroupPause: time.Hour})
	// As if a group had just gone after others at a million entries a second (the
	// grouper reads these once woken by the entries below).
	j.group.lastSent, j.group.rate = time.Now(), 1e6
	at := time.Unix(1764583200, 0).UTC()
	for i := range pauseFrom {
		if _, err := j.enqueue(kindDeliv[0], appendMark(nil, fmt.Sprintf("1%011d", i), true, at), false); err != nil {
			t.Fatal(err)
		}
	}
	// Without the pause the grouper sends at once (well within the 100 ms looked
	// at); with it, nothing comes before Close, however long one waits.
	select {
	case g := <-fs.sent:
		g.err <- errors.New("test failed") // so that the acker ends
		t.Fatalf("a group of %d entries sent during the pause", len(entries(t, g.m)))
	case <-time.After(100 * time.Millisecond):
	}
	close(j.stop)
	for sent := 0; sent < pauseFrom; {
		g := fs.next(t)
		sent += len(entries(t, g.m))
		g.ok <- &jetstream.PubAck{}
	}
}

// TestResendDrainBounded: once Close has begun, the background publishes still
// queued (here 50, none of which the stream ever acknowledges, as after a long
// loss of quorum) get AckTimeout in all: they are counted lost, not waited for one
// after another. Before, the resender waited for each one's acknowledgement in
// turn, and a stop could take the queue's length times the wait.
func TestResendDrainBounded(t *testing.T) {
	j, fs := groupJournalOpts(t, Options{AckTimeout: 200 * time.Millisecond})
	const n = 50
	for i := range n {
		j.queueResend(asyncPub{m: &nats.Msg{Subject: fmt.Sprintf("journal.1.g.%d", i)}, entries: 1})
	}
	<-fs.sent // the first is sent, and never answered
	close(j.stop)
	for deadline := time.After(10 * time.Second); j.stats.lost.Load() < n; {
		select {
		case <-deadline:
			t.Fatalf("%d of %d unacknowledged background publishes given up 10 s after the stop began", j.stats.lost.Load(), n)
		case <-time.After(5 * time.Millisecond): // polling, with a deadline
		}
	}
	if sent := len(fs.sent); sent != 0 {
		t.Errorf("%d publishes sent after the drain ended", sent)
	}
}
