package cjournal

import (
	"context"
	"errors"
	"fmt"
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
	fs := &fakeStream{sent: make(chan *groupFuture, 1000)}
	j := &Journal{node: "1", idPrefix: "1.test.", opts: Options{AckTimeout: ackTimeout}, log: testLogger(t),
		async: make(chan asyncPub, 100), asyncDone: make(chan struct{}), stop: make(chan struct{}), publishAsync: fs.publish}
	j.group.init()
	go j.resend()
	go j.groupLoop()
	go j.ackLoop()
	t.Cleanup(func() {
		close(j.stop)
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
	j, fs := groupJournal(t, 300*time.Millisecond)
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
